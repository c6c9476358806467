#pragma once
// The token-mixer contract (docs/design.md, "The mixer contract").
//
// A token mixer maps x: [batch, seq, d_model] to the same shape, causally: output position t
// depends on inputs 0..t only.  Channel mixers (the MLP) and whole blocks (Gated CNN) honour the
// same contract, so one registry and one set of tests covers them all.

#include "core/input_norm.h"
#include "core/skinny_linear.h"

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

// The shape a cost is asked for.  bytes_per_element converts state elements to bytes.
struct CostShape {
  int64_t batch = 1;
  int64_t seq_len = 0;
  int64_t bytes_per_element = 4;
};

// Analytic cost of one forward pass over `seq_len` tokens for `batch` sequences.
// A multiply-add counts as 2 FLOPs.
struct Cost {
  // What the equations need: projections plus the query-key pairs (or scan steps) the
  // mixer's rule keeps; masked-out pairs are not counted.  Achieved TFLOP/s uses this.
  double flops = 0;
  // FLOPs of the matrix products the CPU reference forward actually issues, masked work
  // included (e.g. a dense N x N score block).  Tests check it against a count of the
  // matrix-product shapes the forward issues (harness/flop_counter.h).
  double matmul_flops = 0;
  // Inference state after seq_len tokens (KV cache, SSM state, checkpoint cache), in bytes.
  double state_bytes = 0;

  Cost& operator+=(const Cost& other) {
    flops += other.flops;
    matmul_flops += other.matmul_flops;
    state_bytes += other.state_bytes;
    return *this;
  }
};

// The state carried by step() from one token to the next.  Tensors are named by the mixer;
// their total size is the measured inference-state memory.
struct MixerState {
  int64_t position = 0;  // tokens consumed so far
  std::map<std::string, torch::Tensor> tensors;
  // Static decoding only: tensors derived once from the weights for one decoding session (e.g. the
  // three projections as one matrix, RoPE tables), read by static_step(); not inference state.
  std::map<std::string, torch::Tensor> constants;

  int64_t bytes() const {
    int64_t total = 0;
    for (const auto& [name, tensor] : tensors)
      if (tensor.defined()) total += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    return total;
  }
};

// The cache slot a static step writes at position t, for mixers whose cache is not indexed by t
// itself: m = ⌊t / divisor⌋ mod modulus (modulus 0: no mod).  swa's ring: {1, W}; SCOUT's
// checkpoints: {S, 0}.
struct SlotRule {
  int64_t divisor = 1, modulus = 0;

  bool operator<(const SlotRule& other) const {
    return divisor != other.divisor ? divisor < other.divisor : modulus < other.modulus;
  }
  // position: int64 [1] on the device -> m: int64 [1] (one op each for the division and the mod).
  torch::Tensor of(const torch::Tensor& position) const {
    const auto quotient = divisor > 1 ? position.div(divisor, "floor") : position;
    return modulus > 0 ? quotient.remainder(modulus) : quotient;
  }
};

// Where a static (graph-capturable) decode step is: the position lives on the device, so that one
// captured step serves every position; the host knows only a bound on it.
struct StepPosition {
  torch::Tensor position;  // int64 [1] on the state's device: t, the position of x_t
  int64_t span = 0;        // a host bound, t < span <= capacity: the step may read cache slots [0, span) only
  // The sublayer's slot at t by its static_slot_rule(), where the caller made it (the model makes
  // each rule's slot once per step for all the sublayers that share it); undefined: the step makes it.
  torch::Tensor slot;

  // The slot by `rule` at t: the one given, else computed here.
  torch::Tensor slot_by(const SlotRule& rule) const { return slot.defined() ? slot : rule.of(position); }
};

// A static decode step stopped before its output projection: the step's output is
//   output_of(step) = skinny_linear(activations, weight, bias)
// and the caller may instead add it to the residual stream in that projection's store
// (core/skinny_linear.h, skinny_linear_add).
struct UnprojectedStep {
  torch::Tensor activations;  // [B, in]
  torch::Tensor weight;       // [d_model, in]
  torch::Tensor bias;         // [d_model], or undefined
};

inline torch::Tensor output_of(const UnprojectedStep& step) {
  return skinny_linear(step.activations, step.weight, step.bias);
}

class TokenMixer : public torch::nn::Module {
 public:
  // x: [B, N, d_model] -> [B, N, d_model], causal.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // Analytic forward FLOPs and inference-state bytes (see Cost).
  virtual Cost cost(const CostShape& shape) const = 0;

  // One-token decoding.  Mixers without it keep the defaults; the harness then re-runs the
  // prefix and says so.
  virtual bool has_step() const { return false; }
  // A fresh state for `batch` sequences with the dtype/device of `options`.
  virtual MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const {
    throw std::logic_error("this mixer has no step()");
  }
  // x_t: [B, d_model] -> [B, d_model]; advances state.position by one.
  virtual torch::Tensor step(const torch::Tensor& x_t, MixerState& state) {
    throw std::logic_error("this mixer has no step()");
  }

  // Static decoding (issue 13; docs/decode.md): the same step as step(), on a state preallocated for
  // `capacity` tokens, written in place (never reassigned, never resized) and with the position
  // read from a device tensor, so a CUDA graph captured once replays it at every position.  The
  // state's position field is not used; the caller advances `at.position` after the step.
  virtual bool has_static_step() const { return false; }
  virtual MixerState static_state(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const {
    throw std::logic_error("this mixer has no static_step()");
  }
  // x_t: [B, d_model] -> [B, d_model]; writes the state in place.
  virtual torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) {
    throw std::logic_error("this mixer has no static_step()");
  }

  // The static step between the residual stream and the residual add, for a pre-norm block
  // (docs/decode.md, "one kernel fewer per norm"):
  //   static_step(RMSNorm(h_t)·g, state, at) = output_of(fused_static_step(h_t, {g, eps}, state, at))
  // The mixer's first product normalises h_t itself (core/input_norm.h; an undefined norm: h_t is
  // x_t), and its output projection is left to the caller.  Mixers whose step begins and ends with a
  // product override it; static_step is then output_of(fused_static_step(x_t, {}, ...)).
  virtual bool has_fused_static_step() const { return false; }
  virtual UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                            const StepPosition& at) {
    throw std::logic_error("this mixer has no fused_static_step()");
  }
  // The rule of the cache slot the static step writes (SlotRule), for mixers that have one; the
  // model then computes each rule's slot once per step and passes it in StepPosition::slot.
  virtual std::optional<SlotRule> static_slot_rule() const { return std::nullopt; }

  // Prefill: the sublayer's output for a whole prompt x: [B, N, d_model] (N ≤ the state's
  // capacity) that also leaves a static state exactly as N static steps from an empty one would,
  // so that decoding continues at position N.  The default runs those N steps; a mixer overrides
  // it with its parallel forward plus the state that forward implies.
  virtual torch::Tensor static_prefill(const torch::Tensor& x, MixerState& state) {
    std::vector<torch::Tensor> outputs;  // N of [B, d_model]
    const auto index = torch::TensorOptions().dtype(torch::kLong).device(x.device());
    for (int64_t t = 0; t < x.size(1); ++t)
      outputs.push_back(static_step(x.select(1, t), state, StepPosition{torch::full({1}, t, index), x.size(1)}));
    return torch::stack(outputs, 1);
  }

  // Mixers whose rule also reads the block's un-normalised residual input h (DTRNet's router)
  // override these; the model passes u = RMSNorm(h) and h.  The defaults ignore h.
  virtual torch::Tensor forward_with_residual(const torch::Tensor& u, const torch::Tensor& h) {
    return forward(u);
  }
  virtual torch::Tensor step_with_residual(const torch::Tensor& u_t, const torch::Tensor& h_t,
                                           MixerState& state) {
    return step(u_t, state);
  }

  // An auxiliary loss from the last forward (e.g. DTRNet's routing loss), to be added to the
  // training loss; undefined tensor when the mixer has none.
  virtual torch::Tensor auxiliary_loss() const { return {}; }
  // Figures from the last forward worth recording (e.g. DTRNet's routed fraction).
  virtual std::map<std::string, double> statistics() const { return {}; }
};

using TokenMixerPtr = std::shared_ptr<TokenMixer>;

}  // namespace mixlab
