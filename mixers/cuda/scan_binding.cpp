// Autograd wrapper of the selective-scan kernels (selective_scan.cu): checks, saved tensors, and
// the reduction of dB, dC to the inputs' dtype.  d_state other than 16 takes a LibTorch loop over
// time (exact, slow, autograd).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "mixers/cuda/kernels.h"
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
  return sh;
}

const float* ptr_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& u_in, const torch::Tensor& delta_in,
                               const torch::Tensor& A_in, const torch::Tensor& B_in, const torch::Tensor& C_in,
                               const torch::Tensor& D_in, const torch::Tensor& z_in,
                               const torch::Tensor& bias_in) {
    const c10::cuda::CUDAGuard guard(u_in.device());
    auto u = u_in.contiguous(), delta = delta_in.contiguous(), z = z_in.contiguous();
    auto B = B_in.to(u.scalar_type()).contiguous(), C = C_in.to(u.scalar_type()).contiguous();
    auto A = A_in.contiguous(), D = D_in.contiguous();
    auto bias = bias_in.numel() > 0 ? bias_in.contiguous() : torch::Tensor();
    const auto sh = make_shape(u, B);
    const int64_t chunks = (sh.n + detail::kScanStateStride - 1) / detail::kScanStateStride;
    auto states = torch::empty({sh.batch, sh.channels, chunks, sh.states}, u.options().dtype(torch::kFloat));
    auto out = torch::empty_like(u);
    detail::selective_scan_forward(sh, u.data_ptr(), delta.data_ptr(), A.data_ptr<float>(), B.data_ptr(),
                                   C.data_ptr(), D.data_ptr<float>(), z.data_ptr(), ptr_or_null(bias),
                                   out.data_ptr(), states.data_ptr<float>(), at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({u, delta, A, B, C, D, z, bias_in, states});
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
    detail::selective_scan_backward(sh, u.data_ptr(), delta.data_ptr(), A.data_ptr<float>(), B.data_ptr(),
                                    C.data_ptr(), D.data_ptr<float>(), z.data_ptr(), ptr_or_null(bias),
                                    states.data_ptr<float>(), dout.data_ptr(), du.data_ptr(), ddelta.data_ptr(),
                                    dA.data_ptr<float>(), dB.data_ptr<float>(), dC.data_ptr<float>(),
                                    dD.data_ptr<float>(), dz.data_ptr(), bias.defined() ? dbias.data_ptr<float>() : nullptr,
                                    at::cuda::getCurrentCUDAStream().stream());
    const auto b_dtype = static_cast<c10::ScalarType>(ctx->saved_data["B_dtype"].toInt());
    return {du, ddelta, dA, dB.to(b_dtype), dC.to(b_dtype), dD, dz, dbias};  // dbias undefined without a bias
  }
};

// The recurrence, step by step in LibTorch (float32): the path for d_state != 16.
torch::Tensor scan_by_steps(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                            const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                            const torch::Tensor& z, const torch::Tensor& bias) {
  auto uf = u.to(torch::kFloat), zf = z.to(torch::kFloat), Bf = B.to(torch::kFloat), Cf = C.to(torch::kFloat);
  auto dt = delta.to(torch::kFloat);
  if (bias.defined()) dt = dt + bias.view({1, -1, 1});
  dt = torch::softplus(dt);  // [b, E, N]
  auto h = torch::zeros({u.size(0), u.size(1), A.size(1)}, uf.options());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < u.size(2); ++t) {
    auto dt_t = dt.select(2, t).unsqueeze(-1);  // [b, E, 1]
    h = torch::exp(dt_t * A) * h + dt_t * uf.select(2, t).unsqueeze(-1) * Bf.select(2, t).unsqueeze(1);
    ys.push_back((h * Cf.select(2, t).unsqueeze(1)).sum(-1));
  }
  auto y = torch::stack(ys, 2) + D.view({1, -1, 1}) * uf;
  return (y * torch::silu(zf)).to(u.scalar_type());
}

}  // namespace

torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias) {
  const char* where = "mixers/cuda/scan_binding.cpp: selective_scan: ";
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes() && z.sizes() == u.sizes(), where,
              "u, delta, z must be [B, E, N] of one shape, got ", u.sizes(), ", ", delta.sizes(), ", ", z.sizes());
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(1), where, "A must be [E, n], got ", A.sizes());
  TORCH_CHECK(B.dim() == 3 && B.size(0) == u.size(0) && B.size(1) == A.size(1) && B.size(2) == u.size(2) &&
                  C.sizes() == B.sizes(),
              where, "B, C must be [B, n, N], got ", B.sizes(), ", ", C.sizes());
  TORCH_CHECK(D.dim() == 1 && D.size(0) == u.size(1), where, "D must be [E], got ", D.sizes());
  TORCH_CHECK(!delta_bias.defined() || (delta_bias.dim() == 1 && delta_bias.size(0) == u.size(1)), where,
              "delta_bias must be [E] or undefined, got ", delta_bias.sizes());
  TORCH_CHECK(A.scalar_type() == torch::kFloat && D.scalar_type() == torch::kFloat &&
                  (!delta_bias.defined() || delta_bias.scalar_type() == torch::kFloat),
              where, "A, D, delta_bias must be float32");
  TORCH_CHECK(delta.scalar_type() == u.scalar_type() && z.scalar_type() == u.scalar_type(), where,
              "u, delta, z must share one dtype");
  TORCH_CHECK(u.is_cuda(), where, "tensors must be on CUDA");
  if (A.size(1) != detail::kScanStates) return scan_by_steps(u, delta, A, B, C, D, z, delta_bias);
  // autograd::Function takes no undefined tensors: "no bias" travels as an empty one.
  const auto bias = delta_bias.defined() ? delta_bias : torch::empty({0}, A.options());
  return SelectiveScanFunction::apply(u, delta, A, B, C, D, z, bias);
}

}  // namespace mixlab::cuda
