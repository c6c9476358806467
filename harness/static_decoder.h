#pragma once
// Greedy decoding on a static state, each step a CUDA graph replay (issue 13; docs/decode.md).
//
// A step of a small model at batch 16 is a few hundred tiny kernels; launched one by one from the
// host it costs tens of milliseconds while reading the weights once costs a fraction of one.
// Here the whole step
//
//   logits = model.static_step(tokens, states, {t, span});  tokens ← argmax(logits);  t ← t + 1
//
// is captured once and replayed: the states are preallocated for the longest context (the
// point's length), the position t is a device tensor advanced inside the graph, and the host
// keeps only a count.  A step reads cache slots [0, span) (masked past t), so one graph per span
// serves every position below it: spans double from kMinSpan up to the capacity, reading at most
// twice the slots the position needs.  All graphs are captured before the first token, at t = 0,
// and the state is then cleared.  Without CUDA (or when a capture fails) the same step runs
// eagerly; `execution()` says which, `why_not_captured()` why not.

#include "harness/model.h"

#include <map>
#include <memory>
#include <string>

namespace mixlab {

class CapturedCall;

class StaticDecoder {
 public:
  static constexpr int64_t kMinSpan = 256;

  // model: has_static_step(); capacity: the most tokens to decode; use_graphs: capture (CUDA only).
  StaticDecoder(LanguageModel model, int64_t batch, int64_t capacity, const torch::TensorOptions& options,
                bool use_graphs, int warmup = 2);
  ~StaticDecoder();

  // Clears the state; the next step consumes `first_tokens` ([B] int64) at position 0.
  void reset(const torch::Tensor& first_tokens);
  // Clears the state and consumes a whole prompt ([B, N] int64, N ≤ capacity) at once
  // (LanguageModel::static_prefill, eagerly): the next step decodes position N from the prompt's
  // greedy continuation.
  void prefill(const torch::Tensor& prompt);
  // Decodes one token per sequence; at most `capacity` steps after a reset.
  void step();

  const torch::Tensor& logits() const { return logits_; }  // [B, vocab] of the last step
  const torch::Tensor& tokens() const { return tokens_; }  // [B]: the next step's input
  int64_t position() const { return position_; }
  int64_t capacity() const { return capacity_; }
  // Moves to `position` (0 <= position < capacity) without touching the state: for timing the
  // steps at a position (measure.decode_timing = "spans"), whose work does not depend on the values.
  void seek(int64_t position);
  int64_t state_bytes() const;
  // The span read at position t: min(capacity, max(kMinSpan, the power of two above t)).
  int64_t span_at(int64_t position) const;
  const std::string& execution() const { return execution_; }  // "cuda_graph" or "eager"
  const std::string& why_not_captured() const { return why_not_; }

 private:
  void run_step(int64_t span);  // the step itself, eager or under capture

  LanguageModel model_;
  int64_t capacity_;
  std::vector<MixerState> states_;
  torch::Tensor device_position_;  // int64 [1]
  torch::Tensor tokens_;           // [B] int64
  torch::Tensor logits_;           // [B, vocab]
  int64_t position_ = 0;
  std::map<int64_t, std::unique_ptr<CapturedCall>> graphs_;  // by span
  std::string execution_ = "eager", why_not_;
};

}  // namespace mixlab
