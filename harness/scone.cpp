#include "harness/scone.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace mixlab {

// ---------------------------------------------------------------- f-gram table

FgramTable FgramTable::from_corpus(const torch::Tensor& tokens, int64_t max_n, int64_t count, int64_t min_count) {
  auto rows = (tokens.dim() == 1 ? tokens.unsqueeze(0) : tokens).to(torch::kCPU, torch::kLong).contiguous();
  std::map<std::vector<int64_t>, int64_t> counts;
  for (int64_t b = 0; b < rows.size(0); ++b) {
    auto row_tensor = rows[b];
    auto row = row_tensor.accessor<int64_t, 1>();
    const int64_t length = rows.size(1);
    for (int64_t n = 2; n <= max_n; ++n)
      for (int64_t start = 0; start + n <= length; ++start) {
        std::vector<int64_t> ngram(n);
        for (int64_t i = 0; i < n; ++i) ngram[i] = row[start + i];
        ++counts[ngram];
      }
  }
  std::vector<std::pair<int64_t, std::vector<int64_t>>> ranked;
  for (auto& [ngram, seen] : counts)
    if (seen >= min_count) ranked.emplace_back(seen, ngram);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  FgramTable table(max_n);
  for (int64_t i = 0; i < std::min<int64_t>(count, ranked.size()); ++i) table.insert(ranked[i].second);
  return table;
}

FgramTable FgramTable::load(const std::string& file, int64_t max_n) {
  std::ifstream in(file);
  if (!in) throw std::invalid_argument(file + ": cannot open the f-gram file (model.embedding_params.fgram_file)");
  FgramTable table(max_n);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::vector<int64_t> fgram;
    for (int64_t id; fields >> id;) fgram.push_back(id);
    if (fgram.empty()) continue;
    if (fgram.size() < 2 || static_cast<int64_t>(fgram.size()) > max_n)
      throw std::invalid_argument(file + ": line " + std::to_string(number) + ": an f-gram has 2 to max_n = " +
                                  std::to_string(max_n) + " tokens, got " + std::to_string(fgram.size()));
    table.insert(fgram);
  }
  return table;
}

void FgramTable::save(const std::string& file) const {
  std::ofstream out(file);
  if (!out) throw std::invalid_argument(file + ": cannot write the f-gram file");
  for (const auto& fgram : fgrams_) {
    for (size_t i = 0; i < fgram.size(); ++i) out << (i ? " " : "") << fgram[i];
    out << "\n";
  }
}

void FgramTable::insert(const std::vector<int64_t>& fgram) {
  if (fgram.size() < 2 || static_cast<int64_t>(fgram.size()) > max_n_)
    throw std::invalid_argument("an f-gram has 2 to max_n = " + std::to_string(max_n_) + " tokens");
  fgrams_.insert(fgram);
}

torch::Tensor FgramTable::longest_match(const torch::Tensor& tokens) const {
  auto cpu = tokens.to(torch::kCPU, torch::kLong).contiguous();
  auto result = torch::zeros_like(cpu);
  auto in = cpu.accessor<int64_t, 2>();
  auto out = result.accessor<int64_t, 2>();
  for (int64_t b = 0; b < cpu.size(0); ++b)
    for (int64_t t = 0; t < cpu.size(1); ++t)
      for (int64_t n = std::min(max_n_, t + 1); n >= 2; --n) {
        std::vector<int64_t> suffix(n);
        for (int64_t i = 0; i < n; ++i) suffix[i] = in[b][t - n + 1 + i];
        if (fgrams_.count(suffix)) {
          out[b][t] = n;
          break;
        }
      }
  return result.to(tokens.device());
}

// ---------------------------------------------------------------- the embedding

namespace {
int64_t integer_param(const std::map<std::string, ParamValue>& params, const std::string& name, int64_t fallback,
                      int64_t minimum) {
  auto it = params.find(name);
  if (it == params.end()) return fallback;
  if (!std::holds_alternative<int64_t>(it->second) || std::get<int64_t>(it->second) < minimum)
    throw RegistryError("model.embedding_params." + name + " must be an integer ≥ " + std::to_string(minimum));
  return std::get<int64_t>(it->second);
}
}  // namespace

SconeEmbeddingImpl::SconeEmbeddingImpl(const MixerContext& context, double norm_eps,
                                       torch::nn::Embedding token_embedding,
                                       const std::map<std::string, ParamValue>& params)
    : token_embedding_(token_embedding), norm_eps_(norm_eps) {
  for (const auto& [name, value] : params)
    if (name != "max_n" && name != "fgram_layers" && name != "fgram_file" && name != "inference_table")
      throw RegistryError("model.embedding_params." + name + ": unknown parameter of the scone embedding; "
                          "valid: fgram_file, fgram_layers, inference_table, max_n");
  if (auto it = params.find("inference_table"); it != params.end()) {
    if (!std::holds_alternative<bool>(it->second))
      throw RegistryError("model.embedding_params.inference_table must be true or false");
    use_inference_table_ = std::get<bool>(it->second);
  }
  const int64_t max_n = integer_param(params, "max_n", 3, 2);
  const int64_t layers = integer_param(params, "fgram_layers", 1, 1);
  table_ = FgramTable(max_n);
  if (auto it = params.find("fgram_file"); it != params.end()) {
    if (!std::holds_alternative<std::string>(it->second))
      throw RegistryError("model.embedding_params.fgram_file must be a path (a string)");
    if (!std::get<std::string>(it->second).empty()) table_ = FgramTable::load(std::get<std::string>(it->second), max_n);
  }
  // Parameter names: fgram_model.<i>.norm, fgram_model.<i>.<mixer>.<weight>, i over A_F's sublayers.
  auto fgram_layers = register_module("fgram_model", torch::nn::ModuleList());
  for (int64_t layer = 0; layer < layers; ++layer)
    for (const char* mixer : {"attention", "mlp"}) {
      auto holder = std::make_shared<torch::nn::Module>();
      norm_weights_.push_back(holder->register_parameter("norm", torch::ones({context.d_model})));
      sublayers_.push_back(holder->register_module(mixer, Registry::global().create(mixer, context)));
      fgram_layers->push_back(holder);
    }
}

void SconeEmbeddingImpl::set_table(FgramTable table) {
  if (table.max_n() != table_.max_n())
    throw std::invalid_argument("scone: the f-gram table has max_n = " + std::to_string(table.max_n()) +
                                ", the embedding was built for max_n = " + std::to_string(table_.max_n()));
  table_ = std::move(table);
  table_version_ = -1;  // the inference table, if any, described the old V_f
}

int64_t SconeEmbeddingImpl::weights_version() const {
  int64_t version = token_embedding_->weight._version();
  for (const auto& parameter : parameters()) version += parameter._version();
  return version;
}

// T[f] = A_F(f)_last for every f-gram, computed by length in V_f's (sorted) order.
const torch::Tensor& SconeEmbeddingImpl::inference_table() {
  if (inference_table_.defined() && table_version_ == weights_version()) return inference_table_;
  torch::NoGradGuard no_grad;
  const auto& weight = token_embedding_->weight;
  inference_table_ = torch::zeros({table_.size(), weight.size(1)}, weight.options());
  row_of_.clear();
  for (const auto& fgram : table_.fgrams()) row_of_.emplace(fgram, static_cast<int64_t>(row_of_.size()));
  for (int64_t length = 2; length <= table_.max_n(); ++length) {
    std::vector<int64_t> flat, rows;
    for (const auto& [fgram, row] : row_of_)
      if (static_cast<int64_t>(fgram.size()) == length) {
        flat.insert(flat.end(), fgram.begin(), fgram.end());
        rows.push_back(row);
      }
    if (rows.empty()) continue;
    auto windows = torch::tensor(flat, torch::kLong).to(weight.device()).view({-1, length});
    inference_table_.index_copy_(0, torch::tensor(rows, torch::kLong).to(weight.device()), fgram_model(windows));
  }
  table_version_ = weights_version();
  return inference_table_;
}

double SconeEmbeddingImpl::inference_table_bytes(int64_t bytes_per_element) const {
  return static_cast<double>(table_.size()) * token_embedding_->weight.size(1) * bytes_per_element;
}

torch::Tensor SconeEmbeddingImpl::table_rows(const torch::Tensor& tokens) const {
  auto cpu = tokens.to(torch::kCPU, torch::kLong).contiguous();
  auto match = table_.longest_match(cpu);
  auto rows = torch::full_like(cpu, -1);
  auto in = cpu.accessor<int64_t, 2>();
  auto length = match.accessor<int64_t, 2>();
  auto out = rows.accessor<int64_t, 2>();
  for (int64_t b = 0; b < cpu.size(0); ++b)
    for (int64_t t = 0; t < cpu.size(1); ++t)
      if (const int64_t n = length[b][t]; n >= 2) {
        std::vector<int64_t> fgram(in[b].data() + t - n + 1, in[b].data() + t + 1);
        out[b][t] = row_of_.at(fgram);
      }
  return rows.to(tokens.device());
}

// A_F: pre-norm residual [attention, mlp] × fgram_layers over the f-gram's token embeddings.
torch::Tensor SconeEmbeddingImpl::fgram_model(const torch::Tensor& windows) {
  auto h = token_embedding_->forward(windows);  // [M, n, d]
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    auto normalised = h * torch::rsqrt(h.square().mean(-1, true) + norm_eps_) * norm_weights_[i];
    h = h + sublayers_[i]->forward(normalised);
  }
  return h.select(1, h.size(1) - 1);
}

torch::Tensor SconeEmbeddingImpl::forward(const torch::Tensor& tokens) {
  const int64_t batch = tokens.size(0), n = tokens.size(1);
  if (uses_inference_table()) {  // inference: e_t = T[f] for the longest f-gram f ending at t
    const auto& table = inference_table();
    auto rows = table_rows(tokens);                                            // [B, N], −1 = none
    auto found = (rows >= 0).unsqueeze(-1);
    last_seq_len_ = static_cast<double>(n);
    last_matched_fraction_ = found.to(torch::kDouble).mean().item<double>();
    if (table.size(0) == 0) return token_embedding_->forward(tokens);
    return torch::where(found, table.index_select(0, rows.clamp_min(0).flatten()).view({batch, n, -1}),
                        token_embedding_->forward(tokens));
  }
  auto out = token_embedding_->forward(tokens);  // [B, N, d]: E[x_t] where no f-gram ends
  auto match = table_.longest_match(tokens);     // [B, N]
  last_matches_per_length_.assign(table_.max_n() + 1, 0.0);
  double matched = 0;
  for (int64_t length = 2; length <= std::min(table_.max_n(), n); ++length) {
    auto at_length = match == length;                                          // [B, N]
    const int64_t count = at_length.sum().item<int64_t>();
    if (count == 0) continue;
    // The window ending at t starts at t − length + 1: unfold position t − length + 1.
    auto windows = tokens.unfold(1, length, 1).index({at_length.narrow(1, length - 1, n - length + 1)});  // [M, length]
    out = out.index_put({at_length}, fgram_model(windows));
    last_matches_per_length_[length] = static_cast<double>(count) / batch;
    matched += count;
  }
  last_seq_len_ = static_cast<double>(n);
  last_matched_fraction_ = matched / static_cast<double>(batch * n);
  return out;
}

MixerState SconeEmbeddingImpl::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["recent_tokens"] = torch::zeros({batch, 0}, options.dtype(torch::kLong));
  return state;
}

// e_t depends only on the last max_n tokens: embed that window and keep its last position.
torch::Tensor SconeEmbeddingImpl::step(const torch::Tensor& tokens_t, MixerState& state) {
  auto& recent = state.tensors["recent_tokens"];
  auto window = torch::cat({recent, tokens_t.unsqueeze(1).to(torch::kLong)}, 1);  // [B, ≤ max_n]
  const auto kept = std::min<int64_t>(window.size(1), table_.max_n() - 1);
  recent = window.narrow(1, window.size(1) - kept, kept);
  state.position += 1;
  auto saved = last_matches_per_length_;  // decoding does not change the training statistics
  auto saved_len = last_seq_len_, saved_fraction = last_matched_fraction_;
  auto embedded = forward(window).select(1, window.size(1) - 1);
  last_matches_per_length_ = saved;
  last_seq_len_ = saved_len;
  last_matched_fraction_ = saved_fraction;
  return embedded;
}

Cost SconeEmbeddingImpl::cost(const CostShape& shape) const {
  Cost total;
  if (last_seq_len_ > 0 && !uses_inference_table()) {  // with the table, e_t is a lookup: no A_F work
    const double stretch = static_cast<double>(shape.seq_len) / last_seq_len_;
    for (int64_t length = 2; length < static_cast<int64_t>(last_matches_per_length_.size()); ++length) {
      const double windows = last_matches_per_length_[length] * shape.batch * stretch;
      if (windows <= 0) continue;
      // One A_F pass over `windows` sequences of `length` tokens; the sublayers' cost is linear in batch.
      for (const auto& sublayer : sublayers_) {
        Cost one = sublayer->cost(CostShape{1, length, shape.bytes_per_element});
        one.state_bytes = 0;  // A_F keeps no decode state: its outputs are per f-gram
        one.flops *= windows;
        one.matmul_flops *= windows;
        total += one;
      }
      total.flops += windows * 4.0 * length * token_embedding_->weight.size(1) * sublayers_.size();  // norms
    }
  }
  total.state_bytes += static_cast<double>(shape.batch) * std::min<int64_t>(table_.max_n() - 1, shape.seq_len) * 8;
  return total;
}

}  // namespace mixlab
