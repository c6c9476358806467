#pragma once
// Synthetic recall tasks, deterministic from a seed (docs/training.md, "The data streams").
//
// Each example is a pair of sequences of length seq_len: inputs x and targets y, where y[t] is
// what the model should predict after reading x[0..t] and y[t] = kIgnore where nothing is asked.
// The loss mask is y ≠ kIgnore.  Example i of split s is generated from its own stream,
// seed = mix(base_seed, task name, s, i): splits (0 train, 1 test) never share a stream.
//
//   mqar       Zoology's multi-query associative recall: K key-value pairs, then the keys asked
//              again at gaps drawn ∝ i^(a-1); the value is the target on the repeated key.
//   passkey    Landmark Attention's prompt at a chosen byte length and needle depth; the five
//              digits of the key are the targets (bytes; needs vocab ≥ 256).
//   copy       MAD's selective copying: n tokens scattered among blanks, then a copy marker;
//              the tokens in order are the targets at the trailing blanks.
//   induction  Safari's induction head: a marker once followed by X, at the end the marker
//              again; X is the single target.
//
// Accuracy (Zoology): per example, the fraction of target positions whose argmax is right,
// then the mean over examples.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::data {

constexpr int64_t kIgnore = -100;

struct TaskSpec {
  std::string task = "mqar";     // mqar | passkey | copy | induction
  int64_t seq_len = 64;
  int64_t vocab = 64;            // tokens the task may use (≤ the model's vocabulary)
  // mqar
  int64_t num_kv_pairs = 4;
  double power_a = 0.01;
  bool random_non_queries = true;
  // passkey
  double depth = -1;             // needle position in [0, 1] of the haystack; < 0: uniform
  // copy
  int64_t copy_tokens = 16;
};

// The task names, for error messages.
const std::vector<std::string>& task_names();

struct Example {
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;  // kIgnore where no answer is asked
};

struct Batch {
  torch::Tensor inputs;   // [B, L] int64
  torch::Tensor targets;  // [B, L] int64, kIgnore where masked
  torch::Tensor mask;     // [B, L] bool, targets ≠ kIgnore
};

class SyntheticTask {
 public:
  // Throws std::invalid_argument with the field and the valid range for a bad spec.
  explicit SyntheticTask(TaskSpec spec);

  const TaskSpec& spec() const { return spec_; }
  Example example(uint64_t seed, int64_t split, int64_t index) const;
  Batch batch(uint64_t seed, int64_t split, int64_t first_index, int64_t count) const;
  // The examples `indices` of the split, in that order (a fixed example set read in shuffled order).
  Batch batch(uint64_t seed, int64_t split, const std::vector<int64_t>& indices) const;

 private:
  TaskSpec spec_;
};

// Zoology accuracy from predictions (argmax ids) [B, L] or logits [B, L, V].
double task_accuracy(const torch::Tensor& predictions_or_logits, const Batch& batch);

// The prompt pieces of the passkey task (exposed for tests and docs).
struct PasskeyLayout {
  std::string intro, garbage, question;
  static std::string needle(const std::string& key);  // "The pass key is K. Remember it. K is the pass key."
  int64_t overhead() const;                           // bytes outside the haystack, key included
};
const PasskeyLayout& passkey_layout();

}  // namespace mixlab::data
