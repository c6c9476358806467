// Autograd wrapper of the selective-scan kernels (selective_scan.cu): which inputs the kernels take
// (`selective_scan_supported`), the dtype the op computes in (autocast's rule for a custom op),
// checks, saved tensors, and the reduction of dB, dC to the inputs' dtype.  For inputs the kernels
// do not take (d_state other than 16, no D or z) the caller runs the reference
// (mixers/selective_scan.cpp): there is no third implementation here.  Two kernel
// implementations of the same op: v1 (selective_scan.cu, the default) and v2 (selective_scan_v2.cu),
// chosen by MIXLAB_SCAN_KERNEL for selective_scan (scan_kernel_choice below).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdlib>
#include <string>
#include <tuple>

#include "mixers/cuda/kernels.h"
#include "core/compat.h"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda {

ScanKernel scan_kernel_choice() {
  const char* flag = std::getenv("MIXLAB_SCAN_KERNEL");
  if (flag == nullptr || *flag == '\0') return ScanKernel::v1;
  const std::string value(flag);
  if (value == "v1") return ScanKernel::v1;
  if (value == "v2") return ScanKernel::v2;
  TORCH_CHECK(false, "mixers/cuda/scan_binding.cpp: MIXLAB_SCAN_KERNEL=", value,
              " is not a choice (valid: unset or v1 for the default kernels, selective_scan.cu; v2 for "
              "selective_scan_v2.cu)");
  return ScanKernel::v1;
}

namespace {
// Sets (or, for nullptr, unsets) an environment variable; returns its value before.
std::optional<std::string> exchange_env(const char* name, const char* value) {
  std::optional<std::string> before;
  if (const char* now = std::getenv(name)) before = now;
  if (value)
    ::setenv(name, value, 1);
  else
    ::unsetenv(name);
  return before;
}
}  // namespace

ScopedScanKernel::ScopedScanKernel(const char* kernel, const char* v2_split)
    : saved_kernel_(exchange_env("MIXLAB_SCAN_KERNEL", kernel)),
      saved_split_(exchange_env("MIXLAB_SCAN_V2_SPLIT", v2_split)) {}

ScopedScanKernel::~ScopedScanKernel() {
  exchange_env("MIXLAB_SCAN_KERNEL", saved_kernel_ ? saved_kernel_->c_str() : nullptr);
  exchange_env("MIXLAB_SCAN_V2_SPLIT", saved_split_ ? saved_split_->c_str() : nullptr);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// MIXLAB_SCAN_V2_SPLIT="F,B": v2's threads per channel, forward F (1, 2, 4) and backward B (2, 4),
// for tuning on a device (selective_scan_v2.cu); unset or empty: v2's defaults.
std::pair<int, int> v2_split() {
  const char* flag = std::getenv("MIXLAB_SCAN_V2_SPLIT");
  if (flag == nullptr || *flag == '\0') return {0, 0};
  const std::string value(flag);
  const auto comma = value.find(',');
  const std::string f = value.substr(0, comma), b = comma == std::string::npos ? "" : value.substr(comma + 1);
  const bool ok = (f == "1" || f == "2" || f == "4") && (b == "2" || b == "4");
  TORCH_CHECK(ok, "mixers/cuda/scan_binding.cpp: MIXLAB_SCAN_V2_SPLIT=", value,
              " is not a choice (valid: unset for the defaults, or F,B with forward F in 1, 2, 4 and backward B "
              "in 2, 4 threads per channel)");
  return {std::stoi(f), std::stoi(b)};
}

// The kernels' shape, with the time slices of the chosen implementation.
detail::ScanShape make_shape(const torch::Tensor& u, const torch::Tensor& B, ScanKernel kernel) {
  detail::ScanShape sh;
  sh.element = u.scalar_type() == torch::kBFloat16 ? detail::ScanElement::bf16
               : u.scalar_type() == torch::kHalf   ? detail::ScanElement::fp16
                                                   : detail::ScanElement::f32;
  sh.batch = static_cast<int>(u.size(0));
  sh.channels = static_cast<int>(u.size(1));
  sh.n = static_cast<int>(u.size(2));
  sh.states = static_cast<int>(B.size(1));
  sh.time_splits = kernel == ScanKernel::v1 ? detail::selective_scan_time_splits(sh)
                                             : detail::selective_scan_time_splits_v2(sh);
  if (kernel == ScanKernel::v2) std::tie(sh.forward_split, sh.backward_split) = v2_split();
  return sh;
}

// The kernels' scratch for time slices ([B, E, G, n + 1] float32, one format for v1 and v2), null when
// they need none.
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
// last of which is the state after step N - 1 (the kernel holds h still past the end).  Both
// implementations write the same states.
std::pair<torch::Tensor, torch::Tensor> run_forward(const ScanOperands& op, ScanKernel kernel = ScanKernel::v1) {
  const c10::cuda::CUDAGuard guard(op.u.device());
  const auto sh = make_shape(op.u, op.B, kernel);
  const int64_t chunks = (sh.n + detail::kScanStateStride - 1) / detail::kScanStateStride;
  auto states = torch::empty({sh.batch, sh.channels, chunks, sh.states}, op.u.options().dtype(torch::kFloat));
  auto out = torch::empty_like(op.u);
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  auto workspace = slice_workspace(sh, op.u);
  if (kernel == ScanKernel::v2) {
    detail::selective_scan_forward_v2(sh, op.u.data_ptr(), op.delta.data_ptr(), op.A.data_ptr<float>(),
                                      op.B.data_ptr(), op.C.data_ptr(), op.D.data_ptr<float>(), op.z.data_ptr(),
                                      ptr_or_null(op.bias), out.data_ptr(), states.data_ptr<float>(),
                                      data_or_null(workspace), stream);
    return {out, states};
  }
  detail::selective_scan_forward(sh, op.u.data_ptr(), op.delta.data_ptr(), op.A.data_ptr<float>(), op.B.data_ptr(),
                                 op.C.data_ptr(), op.D.data_ptr<float>(), op.z.data_ptr(), ptr_or_null(op.bias),
                                 out.data_ptr(), states.data_ptr<float>(), data_or_null(workspace), stream);
  return {out, states};
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& u_in, const torch::Tensor& delta_in,
                               const torch::Tensor& A_in, const torch::Tensor& B_in, const torch::Tensor& C_in,
                               const torch::Tensor& D_in, const torch::Tensor& z_in,
                               const torch::Tensor& bias_in) {
    const ScanOperands op = contiguous_operands(u_in, delta_in, A_in, B_in, C_in, D_in, z_in, bias_in);
    const ScanKernel kernel = scan_kernel_choice();
    auto [out, states] = run_forward(op, kernel);
    ctx->save_for_backward({op.u, op.delta, op.A, op.B, op.C, op.D, op.z, bias_in, states});
    ctx->saved_data["B_dtype"] = static_cast<int64_t>(B_in.scalar_type());
    ctx->saved_data["kernel"] = static_cast<int64_t>(kernel);  // the backward runs the same implementation
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto &u = s[0], &delta = s[1], &A = s[2], &B = s[3], &C = s[4], &D = s[5], &z = s[6], &states = s[8];
    const auto bias = s[7].numel() > 0 ? s[7] : torch::Tensor();
    const c10::cuda::CUDAGuard guard(u.device());
    auto dout = grads[0].to(u.scalar_type()).contiguous();
    const auto kernel = static_cast<ScanKernel>(ctx->saved_data["kernel"].toInt());
    const auto sh = make_shape(u, B, kernel);
    auto f32 = u.options().dtype(torch::kFloat);
    auto du = torch::empty_like(u), ddelta = torch::empty_like(delta), dz = torch::empty_like(z);
    auto dA = torch::zeros(A.sizes(), f32), dD = torch::zeros(D.sizes(), f32);
    auto dB = torch::zeros(B.sizes(), f32), dC = torch::zeros(C.sizes(), f32);
    auto dbias = bias.defined() ? torch::zeros(bias.sizes(), f32) : torch::Tensor();
    auto workspace = slice_workspace(sh, u);
    if (kernel == ScanKernel::v2) {
      detail::selective_scan_backward_v2(
          sh, u.data_ptr(), delta.data_ptr(), A.data_ptr<float>(), B.data_ptr(), C.data_ptr(), D.data_ptr<float>(),
          z.data_ptr(), ptr_or_null(bias), states.data_ptr<float>(), dout.data_ptr(), du.data_ptr(),
          ddelta.data_ptr(), dA.data_ptr<float>(), dB.data_ptr<float>(), dC.data_ptr<float>(), dD.data_ptr<float>(),
          dz.data_ptr(), bias.defined() ? dbias.data_ptr<float>() : nullptr, data_or_null(workspace),
          at::cuda::getCurrentCUDAStream().stream());
      const auto b_dtype = static_cast<c10::ScalarType>(ctx->saved_data["B_dtype"].toInt());
      return {du, ddelta, dA, dB.to(b_dtype), dC.to(b_dtype), dD, dz, dbias};
    }
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
