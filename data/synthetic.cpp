#include "data/synthetic.h"

#include "data/rng.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace mixlab::data {
namespace {

void require(bool ok, const std::string& field, const std::string& message) {
  if (!ok) throw std::invalid_argument(field + ": " + message);
}

// ---------------------------------------------------------------------------------- MQAR
// Context k_0 v_0 … k_{K-1} v_{K-1} (keys distinct in [1, V/2), values distinct in [V/2, V)),
// then a query region of L − 2K positions; key j reappears at ctx + 2·g_j with the K gaps g_j
// drawn without replacement from [0, (L − 2K)/2) with weights w_i = a·i^(a−1), i = g + 1.
// Target at the repeated key: its value.  Unused query-region inputs: 0, or U[0, V) when
// random_non_queries.
Example mqar(const TaskSpec& spec, SplitMix64& rng) {
  const int64_t L = spec.seq_len, K = spec.num_kv_pairs, V = spec.vocab, ctx = 2 * K, half = V / 2;
  auto distinct = [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> pool;
    for (int64_t t = lo; t < hi; ++t) pool.push_back(t);
    rng.partial_shuffle(pool, static_cast<size_t>(K));
    pool.resize(K);
    return pool;
  };
  const auto keys = distinct(1, half), values = distinct(half, V);

  const int64_t space = (L - ctx) / 2;
  std::vector<double> weight(space);
  double total = 0;
  for (int64_t i = 0; i < space; ++i) total += weight[i] = spec.power_a * std::pow(i + 1.0, spec.power_a - 1.0);
  std::vector<int64_t> gaps;
  while (static_cast<int64_t>(gaps.size()) < K) {  // weighted draw without replacement
    double u = rng.unit() * total;
    int64_t g = 0;
    while (g < space - 1 && (weight[g] == 0 || u >= weight[g])) {
      u -= weight[g];
      ++g;
    }
    while (weight[g] == 0) g = (g + space - 1) % space;  // rounding at the top end: nearest free slot below
    gaps.push_back(g);
    total -= weight[g];
    weight[g] = 0;
  }

  Example ex{std::vector<int64_t>(L, 0), std::vector<int64_t>(L, kIgnore)};
  for (int64_t k = 0; k < K; ++k) {
    ex.inputs[2 * k] = keys[k];
    ex.inputs[2 * k + 1] = values[k];
    ex.inputs[ctx + 2 * gaps[k]] = keys[k];
    ex.targets[ctx + 2 * gaps[k]] = values[k];
  }
  if (spec.random_non_queries)
    for (int64_t i = ctx; i < L; ++i) {
      const int64_t fill = static_cast<int64_t>(rng.below(V));
      if (ex.targets[i] == kIgnore) ex.inputs[i] = fill;
    }
  return ex;
}

// ---------------------------------------------------------------------------------- passkey
// intro \n haystack[0, p) \n needle \n haystack[0, H − p) \n question + " " key
// (H garbage bytes in all, so that the sequence is exactly L + 1 bytes; inputs are the first L,
// targets the next byte at the five key digits).
Example passkey(const TaskSpec& spec, SplitMix64& rng) {
  const auto& layout = passkey_layout();
  char digits[8];
  std::snprintf(digits, sizeof digits, "%05d", static_cast<int>(rng.below(100000)));
  const std::string key(digits);
  const int64_t haystack = spec.seq_len + 1 - layout.overhead();
  const int64_t prefix = spec.depth < 0 ? static_cast<int64_t>(rng.below(haystack + 1))
                                        : static_cast<int64_t>(std::llround(spec.depth * haystack));
  auto garbage = [&](int64_t n) {
    std::string out;
    while (static_cast<int64_t>(out.size()) < n) out += layout.garbage;
    return out.substr(0, n);
  };
  const std::string text = layout.intro + "\n" + garbage(prefix) + "\n" + PasskeyLayout::needle(key) + "\n" +
                           garbage(haystack - prefix) + "\n" + layout.question + " " + key;
  Example ex{std::vector<int64_t>(spec.seq_len), std::vector<int64_t>(spec.seq_len, kIgnore)};
  for (int64_t i = 0; i < spec.seq_len; ++i) ex.inputs[i] = static_cast<unsigned char>(text[i]);
  for (int64_t i = spec.seq_len - 5; i < spec.seq_len; ++i) ex.targets[i] = static_cast<unsigned char>(text[i + 1]);
  return ex;
}

// ---------------------------------------------------------------------------------- copy
// copy = V−1, blank = V−2, data U[0, V−2).  The first n + b positions (b = L − 2n − 1 blanks)
// hold the n data tokens in order at n random slots, then the copy marker, then n blanks whose
// targets are the data tokens.
Example selective_copy(const TaskSpec& spec, SplitMix64& rng) {
  const int64_t L = spec.seq_len, n = spec.copy_tokens, V = spec.vocab;
  const int64_t copy = V - 1, blank = V - 2, region = L - n - 1;
  std::vector<int64_t> slots(region);
  for (int64_t i = 0; i < region; ++i) slots[i] = i;
  rng.partial_shuffle(slots, static_cast<size_t>(n));
  slots.resize(n);
  std::sort(slots.begin(), slots.end());
  Example ex{std::vector<int64_t>(L, blank), std::vector<int64_t>(L, kIgnore)};
  for (int64_t j = 0; j < n; ++j) {
    const int64_t token = static_cast<int64_t>(rng.below(V - 2));
    ex.inputs[slots[j]] = token;
    ex.targets[region + 1 + j] = token;
  }
  ex.inputs[region] = copy;
  return ex;
}

// ---------------------------------------------------------------------------------- induction
// Ordinary tokens U[0, V−1), marker V−1 at one position p ∈ [0, L−3) and at the end L−1; the
// token after the first marker, X = x[p+1], is the target at the end.
Example induction(const TaskSpec& spec, SplitMix64& rng) {
  const int64_t L = spec.seq_len, marker = spec.vocab - 1;
  Example ex{std::vector<int64_t>(L), std::vector<int64_t>(L, kIgnore)};
  for (int64_t i = 0; i < L - 1; ++i) ex.inputs[i] = static_cast<int64_t>(rng.below(marker));
  const int64_t p = static_cast<int64_t>(rng.below(L - 3));
  ex.inputs[p] = marker;
  ex.inputs[L - 1] = marker;
  ex.targets[L - 1] = ex.inputs[p + 1];
  return ex;
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names{"mqar", "passkey", "copy", "induction"};
  return names;
}

const PasskeyLayout& passkey_layout() {
  static const PasskeyLayout layout{
      "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
      "I will quiz you about the important information there.",
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ",
      "What is the pass key? The pass key is"};
  return layout;
}

std::string PasskeyLayout::needle(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}

int64_t PasskeyLayout::overhead() const {
  // intro \n [prefix] \n needle \n [suffix] \n question ' ' key
  return static_cast<int64_t>(intro.size() + 1 + 1 + needle("00000").size() + 1 + 1 + question.size() + 1 + 5);
}

SyntheticTask::SyntheticTask(TaskSpec spec) : spec_(std::move(spec)) {
  const auto& s = spec_;
  require(s.seq_len >= 4, "seq_len", "must be at least 4 (got " + std::to_string(s.seq_len) + ")");
  if (s.task == "mqar") {
    require(s.num_kv_pairs >= 1, "num_kv_pairs", "must be ≥ 1");
    require(4 * s.num_kv_pairs <= s.seq_len, "num_kv_pairs",
            "MQAR needs 4·num_kv_pairs ≤ seq_len (got " + std::to_string(s.num_kv_pairs) + " pairs at seq_len " +
                std::to_string(s.seq_len) + ")");
    require(s.vocab / 2 - 1 >= s.num_kv_pairs, "vocab",
            "MQAR needs vocab/2 − 1 ≥ num_kv_pairs distinct keys (got vocab " + std::to_string(s.vocab) + ")");
    require(s.power_a > 0 && s.power_a <= 1, "power_a", "must be in (0, 1]");
  } else if (s.task == "passkey") {
    require(s.vocab >= 256, "vocab", "passkey is byte text: needs vocab ≥ 256");
    require(s.seq_len >= passkey_layout().overhead() + 1, "seq_len",
            "passkey needs seq_len ≥ " + std::to_string(passkey_layout().overhead() + 1));
    require(s.depth <= 1, "depth", "must be in [0, 1], or negative for a uniform depth");
  } else if (s.task == "copy") {
    require(s.copy_tokens >= 1, "copy_tokens", "must be ≥ 1");
    require(s.seq_len > 2 * s.copy_tokens + 1, "seq_len", "selective copying needs seq_len > 2·copy_tokens + 1");
    require(s.vocab >= 3, "vocab", "must be ≥ 3");
  } else if (s.task == "induction") {
    require(s.vocab >= 3, "vocab", "must be ≥ 3");
  } else {
    throw std::invalid_argument("task: unknown task '" + s.task + "'; valid: mqar, passkey, copy, induction");
  }
}

Example SyntheticTask::example(uint64_t seed, int64_t split, int64_t index) const {
  SplitMix64 rng(mix_seed({seed, fnv1a64(spec_.task), static_cast<uint64_t>(split), static_cast<uint64_t>(index)}));
  if (spec_.task == "mqar") return mqar(spec_, rng);
  if (spec_.task == "passkey") return passkey(spec_, rng);
  if (spec_.task == "copy") return selective_copy(spec_, rng);
  return induction(spec_, rng);
}

Batch SyntheticTask::batch(uint64_t seed, int64_t split, int64_t first_index, int64_t count) const {
  std::vector<int64_t> indices(count);
  for (int64_t b = 0; b < count; ++b) indices[b] = first_index + b;
  return batch(seed, split, indices);
}

Batch SyntheticTask::batch(uint64_t seed, int64_t split, const std::vector<int64_t>& indices) const {
  const int64_t L = spec_.seq_len, count = static_cast<int64_t>(indices.size());
  auto inputs = torch::empty({count, L}, torch::kInt64);
  auto targets = torch::empty({count, L}, torch::kInt64);
  auto* in = inputs.data_ptr<int64_t>();
  auto* out = targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < count; ++b) {
    const auto ex = example(seed, split, indices[b]);
    std::copy(ex.inputs.begin(), ex.inputs.end(), in + b * L);
    std::copy(ex.targets.begin(), ex.targets.end(), out + b * L);
  }
  return {inputs, targets, targets.ne(kIgnore)};
}

double task_accuracy(const torch::Tensor& predictions_or_logits, const Batch& batch) {
  auto predictions = predictions_or_logits.dim() == 3 ? predictions_or_logits.argmax(-1) : predictions_or_logits;
  auto mask = batch.mask.to(predictions.device());
  auto correct = (predictions.to(torch::kInt64) == batch.targets.to(predictions.device())).logical_and(mask);
  auto per_example_count = mask.sum(1).to(torch::kFloat64);
  auto asked = per_example_count.gt(0);
  auto per_example = correct.sum(1).to(torch::kFloat64) / per_example_count.clamp_min(1);
  const int64_t examples = asked.sum().item<int64_t>();
  return examples == 0 ? 0.0 : per_example.masked_select(asked).sum().item<double>() / examples;
}

}  // namespace mixlab::data
