#pragma once
// SCONE contextual input embeddings (Yu et al. 2025, "Scaling Embedding Layers in Language
// Models"), the embedding slot `model.embedding = "scone"`.  arXiv 2502.01637; docs/schemes.md,
// "SCONE embeddings"; the rule below is from memory of the paper
// [recalled, not re-checked] and is written so that every part is testable on its own.
//
//   V_f      = the `count` most frequent n-grams of the training corpus, 2 ≤ n ≤ max_n ("f-grams")
//   n_t      = length of the longest f-gram ending at position t (x_{t-n+1..t} ∈ V_f), or 0
//   e_t      = A_F( x_{t-n_t+1..t} )_last     if n_t ≥ 2      A_F: a small causal transformer
//   e_t      = E[x_t]                          otherwise       (fgram_layers × [attention, mlp],
//                                                               pre-norm, over E of the f-gram)
//
// e_t depends on the last max_n tokens only, so the model stays causal; decoding keeps the last
// max_n − 1 tokens as state.  The paper's point is that A_F's outputs for all of V_f can be
// precomputed after training and served from a table off the accelerator, so A_F adds parameters
// and training compute but (almost) no inference compute.  With embedding_params.inference_table
// = true, an eval-mode forward (and step()) reads e_t from that table:
//   T[f] = A_F(f)_last for every f ∈ V_f        [|V_f|, d], built on first use and rebuilt when A_F's
//                                               or E's weights change (their version counters move)
// and cost() then charges no A_F work (a lookup); training always runs A_F.
//
// V_f comes from the corpus: FgramTable::from_corpus counts n-grams in a token stream, save/load
// keep it in a text file named by embedding_params.fgram_file.  With no file the table is empty
// (every e_t = E[x_t]) until set_table() installs one.

#include "core/registry.h"

#include <set>
#include <string>
#include <vector>

namespace mixlab {

class FgramTable {
 public:
  FgramTable() = default;
  explicit FgramTable(int64_t max_n) : max_n_(max_n) {}
  // The `count` most frequent n-grams (2 ≤ n ≤ max_n) of `tokens` ([N] or [B, N] int64, rows are
  // separate documents) seen at least `min_count` times; ties broken by the n-gram's tokens.
  static FgramTable from_corpus(const torch::Tensor& tokens, int64_t max_n, int64_t count, int64_t min_count = 2);
  // One f-gram a line, token ids separated by spaces.
  static FgramTable load(const std::string& file, int64_t max_n);
  void save(const std::string& file) const;

  void insert(const std::vector<int64_t>& fgram);
  bool contains(const std::vector<int64_t>& ngram) const { return fgrams_.count(ngram) > 0; }
  int64_t size() const { return static_cast<int64_t>(fgrams_.size()); }
  int64_t max_n() const { return max_n_; }
  const std::set<std::vector<int64_t>>& fgrams() const { return fgrams_; }

  // tokens: [B, N] int64 -> [B, N] int64, the length of the longest f-gram ending at each position (0 = none).
  torch::Tensor longest_match(const torch::Tensor& tokens) const;

 private:
  int64_t max_n_ = 0;
  std::set<std::vector<int64_t>> fgrams_;
};

class SconeEmbeddingImpl : public torch::nn::Module {
 public:
  // params (model.embedding_params): max_n (default 3), fgram_layers (1), fgram_file (""),
  // inference_table (false).
  SconeEmbeddingImpl(const MixerContext& context, double norm_eps, torch::nn::Embedding token_embedding,
                     const std::map<std::string, ParamValue>& params);

  // tokens: [B, N] -> embeddings [B, N, d]
  torch::Tensor forward(const torch::Tensor& tokens);
  // Decoding: tokens_t [B] -> [B, d]; the state holds the last max_n − 1 tokens.
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const;
  torch::Tensor step(const torch::Tensor& tokens_t, MixerState& state);

  // A_F's work on the f-grams matched by the last forward (per sequence, scaled to `shape`), and
  // the decode state (max_n − 1 int64 tokens per sequence).  Zero work before any forward.
  Cost cost(const CostShape& shape) const;
  // Fraction of positions embedded through an f-gram in the last forward.
  double matched_fraction() const { return last_matched_fraction_; }

  void set_table(FgramTable table);
  const FgramTable& table() const { return table_; }

  // The inference-time table (built now if missing or stale): [|V_f|, d], rows in V_f's order.
  const torch::Tensor& inference_table();
  // Whether the next forward reads the table (inference_table on, eval mode).
  bool uses_inference_table() const { return use_inference_table_ && !is_training(); }
  // Bytes the table occupies for `bytes_per_element` (kept off the accelerator in the paper).
  double inference_table_bytes(int64_t bytes_per_element) const;

 private:
  // windows: [M, n] f-gram tokens -> [M, d], A_F's output at the last position.
  torch::Tensor fgram_model(const torch::Tensor& windows);
  // tokens [B, N] -> [B, N] row of the longest f-gram ending at each position in the table, or −1.
  torch::Tensor table_rows(const torch::Tensor& tokens) const;
  int64_t weights_version() const;

  torch::nn::Embedding token_embedding_{nullptr};
  FgramTable table_;
  double norm_eps_;
  std::vector<torch::Tensor> norm_weights_;
  std::vector<TokenMixerPtr> sublayers_;
  std::vector<double> last_matches_per_length_;  // index n: matched positions of length n, per sequence
  double last_seq_len_ = 0, last_matched_fraction_ = 0;
  bool use_inference_table_ = false;
  torch::Tensor inference_table_;                // [|V_f|, d]
  std::map<std::vector<int64_t>, int64_t> row_of_;
  int64_t table_version_ = -1;                   // weights_version() when the table was built
};
TORCH_MODULE(SconeEmbedding);

}  // namespace mixlab
