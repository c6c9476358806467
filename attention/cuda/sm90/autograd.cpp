// The sm90 kernels as differentiable ops, for the attention ops' dispatch
// (attention/cuda/attention_binding.cpp): forward window_forward / checkpoint_forward, backward
// window_backward / checkpoint_backward, the forward's o and lse saved between them.  Which scheme
// runs them on a Hopper is MIXLAB_SM90_ATTENTION (sm90_attention_wanted below; docs/gpu.md,
// "Hopper's own instructions").  Takes what the backwards take: bf16, head dim 64 or 128; q, k, v
// are made contiguous here (the sm90 kernels read [B, H, N, d] rows 2d bytes apart, where the sm_80
// kernels read the projection's strided heads in place).

#include <c10/cuda/CUDAGuard.h>

#include <cstdlib>
#include <string>

#include "attention/cuda/kernels.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// o = attention of q over k, v under a scheme's mask (W: sliding window, S: SCOUT checkpoints), by
// the scheme's pair of kernels (attention/cuda/kernels.h).
template <auto Forward, auto Backward>
class Sm90AttentionFunction : public torch::autograd::Function<Sm90AttentionFunction<Forward, Backward>> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t window_or_segment) {
    const c10::cuda::CUDAGuard guard(q.device());
    auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
    auto [o, lse] = Forward(q_c, k_c, v_c, window_or_segment);
    ctx->save_for_backward({q_c, k_c, v_c, o, lse});
    ctx->saved_data["window_or_segment"] = window_or_segment;
    return o;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const c10::cuda::CUDAGuard guard(saved[0].device());
    auto dout = grads[0].to(torch::kBFloat16).contiguous();
    auto [dq, dk, dv] = Backward(saved[0], saved[1], saved[2], saved[3], dout, saved[4],
                                 ctx->saved_data["window_or_segment"].toInt());
    return {dq, dk, dv, torch::Tensor()};
  }
};

// MIXLAB_SM90_ATTENTION, read at every call: which schemes the sm90 kernels run.
struct Sm90Choice {
  bool window = false;
  bool checkpoint = true;  // unset: the checkpoint scheme only (docs/gpu.md says why)
};

Sm90Choice sm90_choice() {
  const char* flag = std::getenv("MIXLAB_SM90_ATTENTION");
  if (flag == nullptr || *flag == '\0') return {};
  const std::string value(flag);
  if (value == "0" || value == "none") return {false, false};
  if (value == "1" || value == "all") return {true, true};
  if (value == "window") return {true, false};
  if (value == "checkpoint") return {false, true};
  TORCH_CHECK(false, "attention/cuda/sm90/autograd.cpp: MIXLAB_SM90_ATTENTION=", value,
              " is not a choice (valid: unset for the default, checkpoint; none or 0; all or 1; window; checkpoint)");
  return {};
}

}  // namespace

ScopedSm90Choice::ScopedSm90Choice(const char* value) {
  if (const char* before = std::getenv("MIXLAB_SM90_ATTENTION")) saved_ = before;
  if (value)
    ::setenv("MIXLAB_SM90_ATTENTION", value, 1);
  else
    ::unsetenv("MIXLAB_SM90_ATTENTION");
}

ScopedSm90Choice::~ScopedSm90Choice() {
  if (saved_)
    ::setenv("MIXLAB_SM90_ATTENTION", saved_->c_str(), 1);
  else
    ::unsetenv("MIXLAB_SM90_ATTENTION");
}

bool sm90_attention_wanted(const torch::Tensor& q, Sm90Scheme scheme) {
  const auto choice = sm90_choice();
  if (!(scheme == Sm90Scheme::window ? choice.window : choice.checkpoint)) return false;
  return q.is_cuda() && q.scalar_type() == torch::kBFloat16 && q.dim() == 4 &&
         (q.size(3) == 64 || q.size(3) == 128) && sm90_kernels_available();
}

torch::Tensor sm90_sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            int64_t window) {
  return Sm90AttentionFunction<sm90_window_forward, sm90_window_backward>::apply(q, k, v, window);
}

torch::Tensor sm90_checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        int64_t segment) {
  return Sm90AttentionFunction<sm90_checkpoint_forward, sm90_checkpoint_backward>::apply(q, k, v, segment);
}

}  // namespace mixlab::cuda
