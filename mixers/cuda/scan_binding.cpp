// Autograd wrapper of the selective-scan kernels (selective_scan.cu): which inputs the kernels take
// (`selective_scan_supported`), the dtype the op computes in (autocast's rule for a custom op),
// checks, saved tensors, and the reduction of dB, dC to the inputs' dtype.  For inputs the kernels
// do not take (d_state other than 16, no D or z) the caller runs the reference
// (mixers/selective_scan.cpp): there is no third implementation here.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "mixers/cuda/kernels.h"
#include "core/compat.h"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

detail::ScanShape make_shape(const torch::Tensor& u, const torch::Tensor& B) {
  detail::ScanShape sh;
  sh.element = u.scalar_type() == torch::kBFloat16 ? detail::ScanElement::bf16
               : u.scalar_type() == torch::kHalf   ? detail::ScanElement::fp16
                                                   : detail::ScanElement::f32;
  sh.batch = static_cast<int>(u.size(0));
  sh.channels = static_cast<int>(u.size(1));
  sh.n = static_cast<int>(u.size(2));
  sh.states = static_cast<int>(B.size(1));
  sh.time_splits = detail::selective_scan_time_splits(sh);
  return sh;
}

// The kernels' scratch for time slices ([B, E, G, n + 1] float32), null when they need none.
torch::Tensor slice_workspace(const detail::ScanShape& sh, const torch::Tensor& like) {
  const auto floats = detail::selective_scan_workspace_floats(sh);
  return floats > 0 ? torch::empty({floats}, like.options().dtype(torch::kFloat)) : torch::Tensor();
}
float* data_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

const float* ptr_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// The operands as the kernels read them: contiguous, B and C in u's dtype; bias undefined for none.
struct ScanOperands {
  torch::Tensor u, delta, A, B, C, D, z, bias;
};
ScanOperands contiguous_operands(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                                 const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                                 const torch::Tensor& z, const torch::Tensor& bias) {
  return {u.contiguous(),
          delta.contiguous(),
          A.contiguous(),
          B.to(u.scalar_type()).contiguous(),
          C.to(u.scalar_type()).contiguous(),
          D.contiguous(),
          z.contiguous(),
          bias.numel() > 0 ? bias.contiguous() : torch::Tensor()};
}

// The forward kernel: out [B, E, N] and the saved states [B, E, ceil(N / 16), n] float32, the
// last of which is the state after step N - 1 (the kernel holds h still past the end).
std::pair<torch::Tensor, torch::Tensor> run_forward(const ScanOperands& op) {
  const c10::cuda::CUDAGuard guard(op.u.device());
  const auto sh = make_shape(op.u, op.B);
  const int64_t chunks = (sh.n + detail::kScanStateStride - 1) / detail::kScanStateStride;
  auto states = torch::empty({sh.batch, sh.channels, chunks, sh.states}, op.u.options().dtype(torch::kFloat));
  auto out = torch::empty_like(op.u);
  auto workspace = slice_workspace(sh, op.u);
  detail::selective_scan_forward(sh, op.u.data_ptr(), op.delta.data_ptr(), op.A.data_ptr<float>(), op.B.data_ptr(),
                                 op.C.data_ptr(), op.D.data_ptr<float>(), op.z.data_ptr(), ptr_or_null(op.bias),
                                 out.data_ptr(), states.data_ptr<float>(), data_or_null(workspace),
                                 at::cuda::getCurrentCUDAStream().stream());
  return {out, states};
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& u_in, const torch::Tensor& delta_in,
                               const torch::Tensor& A_in, const torch::Tensor& B_in, const torch::Tensor& C_in,
                               const torch::Tensor& D_in, const torch::Tensor& z_in,
                               const torch::Tensor& bias_in) {
    const ScanOperands op = contiguous_operands(u_in, delta_in, A_in, B_in, C_in, D_in, z_in, bias_in);
    auto [out, states] = run_forward(op);
    ctx->save_for_backward({op.u, op.delta, op.A, op.B, op.C, op.D, op.z, bias_in, states});
    ctx->saved_data["B_dtype"] = static_cast<int64_t>(B_in.scalar_type());
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto &u = s[0], &delta = s[1], &A = s[2], &B = s[3], &C = s[4], &D = s[5], &z = s[6], &states = s[8];
    const auto bias = s[7].numel() > 0 ? s[7] : torch::Tensor();
    const c10::cuda::CUDAGuard guard(u.device());
    auto dout = grads[0].to(u.scalar_type()).contiguous();
    const auto sh = make_shape(u, B);
    auto f32 = u.options().dtype(torch::kFloat);
    auto du = torch::empty_like(u), ddelta = torch::empty_like(delta), dz = torch::empty_like(z);
    auto dA = torch::zeros(A.sizes(), f32), dD = torch::zeros(D.sizes(), f32);
    auto dB = torch::zeros(B.sizes(), f32), dC = torch::zeros(C.sizes(), f32);
    auto dbias = bias.defined() ? torch::zeros(bias.sizes(), f32) : torch::Tensor();
    auto workspace = slice_workspace(sh, u);
    detail::selective_scan_backward(sh, u.data_ptr(), delta.data_ptr(), A.data_ptr<float>(), B.data_ptr(),
                                    C.data_ptr(), D.data_ptr<float>(), z.data_ptr(), ptr_or_null(bias),
                                    states.data_ptr<float>(), dout.data_ptr(), du.data_ptr(), ddelta.data_ptr(),
                                    dA.data_ptr<float>(), dB.data_ptr<float>(), dC.data_ptr<float>(),
                                    dD.data_ptr<float>(), dz.data_ptr(), bias.defined() ? dbias.data_ptr<float>() : nullptr,
                                    data_or_null(workspace), at::cuda::getCurrentCUDAStream().stream());
    const auto b_dtype = static_cast<c10::ScalarType>(ctx->saved_data["B_dtype"].toInt());
    return {du, ddelta, dA, dB.to(b_dtype), dC.to(b_dtype), dD, dz, dbias};  // dbias undefined without a bias
  }
};

}  // namespace

bool selective_scan_supported(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                              const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                              const torch::Tensor& z, const torch::Tensor& delta_bias) {
  if (!u.defined() || !u.is_cuda() || u.dim() != 3 || !D.defined() || !z.defined()) return false;
  if (A.dim() != 2 || A.size(1) != detail::kScanStates) return false;
  const auto dtype = compat::custom_op_dtype({u, delta, z, B, C});
  return dtype == torch::kBFloat16 || dtype == torch::kHalf || dtype == torch::kFloat;
}

namespace {

// The op's dtype for the sequence operands (A, D and delta_bias are float32 parameters of the
// state), checked shapes; "no bias" as an empty tensor (autograd::Function takes no undefined ones).
ScanOperands checked_operands(const char* where, const torch::Tensor& u_in, const torch::Tensor& delta_in,
                              const torch::Tensor& A_in, const torch::Tensor& B_in, const torch::Tensor& C_in,
                              const torch::Tensor& D_in, const torch::Tensor& z_in, const torch::Tensor& bias_in) {
  TORCH_CHECK(selective_scan_supported(u_in, delta_in, A_in, B_in, C_in, D_in, z_in, bias_in), where,
              "the kernels take CUDA inputs with d_state 16, D and z given, in bf16/fp16/float32; "
              "call mixlab::selective_scan (mixers/selective_scan.h), which runs the reference for others");
  const auto dtype = compat::custom_op_dtype({u_in, delta_in, z_in, B_in, C_in});
  ScanOperands op{u_in.to(dtype),           delta_in.to(dtype), A_in.to(torch::kFloat), B_in.to(dtype),
                  C_in.to(dtype),           D_in.to(torch::kFloat), z_in.to(dtype),
                  bias_in.defined() ? bias_in.to(torch::kFloat) : torch::empty({0}, A_in.options().dtype(torch::kFloat))};
  const auto &u = op.u, &delta = op.delta, &z = op.z, &A = op.A, &B = op.B, &C = op.C, &D = op.D;
  TORCH_CHECK(delta.sizes() == u.sizes() && z.sizes() == u.sizes(), where,
              "u, delta, z must be [B, E, N] of one shape, got ", u.sizes(), ", ", delta.sizes(), ", ", z.sizes());
  TORCH_CHECK(A.size(0) == u.size(1), where, "A must be [E, n], got ", A.sizes());
  TORCH_CHECK(B.dim() == 3 && B.size(0) == u.size(0) && B.size(1) == A.size(1) && B.size(2) == u.size(2) &&
                  C.sizes() == B.sizes(),
              where, "B, C must be [B, n, N], got ", B.sizes(), ", ", C.sizes());
  TORCH_CHECK(D.dim() == 1 && D.size(0) == u.size(1), where, "D must be [E], got ", D.sizes());
  TORCH_CHECK(op.bias.numel() == 0 || (op.bias.dim() == 1 && op.bias.size(0) == u.size(1)), where,
              "delta_bias must be [E] or undefined, got ", op.bias.sizes());
  return op;
}

}  // namespace

torch::Tensor selective_scan(const torch::Tensor& u_in, const torch::Tensor& delta_in, const torch::Tensor& A_in,
                             const torch::Tensor& B_in, const torch::Tensor& C_in, const torch::Tensor& D_in,
                             const torch::Tensor& z_in, const torch::Tensor& bias_in) {
  const auto op = checked_operands("mixers/cuda/scan_binding.cpp: selective_scan: ", u_in, delta_in, A_in, B_in,
                                   C_in, D_in, z_in, bias_in);
  return SelectiveScanFunction::apply(op.u, op.delta, op.A, op.B, op.C, op.D, op.z, op.bias);
}

std::pair<torch::Tensor, torch::Tensor> selective_scan_with_final_state(
    const torch::Tensor& u_in, const torch::Tensor& delta_in, const torch::Tensor& A_in, const torch::Tensor& B_in,
    const torch::Tensor& C_in, const torch::Tensor& D_in, const torch::Tensor& z_in, const torch::Tensor& bias_in) {
  const char* where = "mixers/cuda/scan_binding.cpp: selective_scan_with_final_state: ";
  TORCH_CHECK(!torch::GradMode::is_enabled() ||
                  !(u_in.requires_grad() || delta_in.requires_grad() || A_in.requires_grad() || B_in.requires_grad() ||
                    C_in.requires_grad() || D_in.requires_grad() || z_in.requires_grad() ||
                    (bias_in.defined() && bias_in.requires_grad())),
              where, "not differentiable: call it without gradients (a prefill), or selective_scan");
  const auto checked = checked_operands(where, u_in, delta_in, A_in, B_in, C_in, D_in, z_in, bias_in);
  auto [out, states] = run_forward(contiguous_operands(checked.u, checked.delta, checked.A, checked.B, checked.C,
                                                       checked.D, checked.z, checked.bias));
  return {out, states.select(2, states.size(2) - 1)};  // [B, E, n]
}

}  // namespace mixlab::cuda
