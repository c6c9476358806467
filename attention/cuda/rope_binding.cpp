// LibTorch entry of the fused RoPE kernel (rope.cu): which inputs it takes, the autograd Function
// and the launches.  The reference is apply_rope's composed form (attention/rope.cpp), which
// calls these where rope_supported passes; there is no third implementation here.
//
// Backward.  Per row, y = M x with M = [[C1, −S1], [S2, C2]] (C, S the diagonal matrices of the table
// halves), so dL/dx = Mᵀ g = [[C1, S2], [−S1, C2]] g:  dx1 = g1·c1 + g2·s2,  dx2 = g2·c2 − g1·s1,
// the kernel's `transpose` form.  For RoPE's tables (c1 = c2 = cos θ, s1 = s2 = sin θ) M is the
// rotation R(θ) of each pair and Mᵀ = R(−θ): the forward with sin negated.  The tables get no
// gradient (rope_supported refuses tables that ask for one).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "attention/cuda/kernels.h"
#include "attention/cuda/rope_launch.h"
#include "core/compat.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The dtype of y: the op's dtype (compat::custom_op_dtype), as for the attention kernels.  Under
// CUDA autocast that is the autocast dtype: the attention after RoPE casts q and k to it anyway,
// so writing it here gives the same values (float32 arithmetic, one rounding) and saves the casts
// and half the bytes; otherwise x·cos's promoted dtype, as the reference.
torch::ScalarType rope_output_dtype(const torch::Tensor& x, const torch::Tensor& cos) {
  return compat::custom_op_dtype({x, cos});
}

// The kernel's element type of `dtype`; false for a dtype it is not built for.
bool rope_element_of(torch::ScalarType dtype, detail::RopeElement& element) {
  if (dtype == torch::kFloat32) element = detail::RopeElement::f32;
  else if (dtype == torch::kBFloat16) element = detail::RopeElement::bf16;
  else if (dtype == torch::kHalf) element = detail::RopeElement::fp16;
  else return false;
  return true;
}

// in, out: [B, H, N, d_h] with unit stride in d_h; cos, sin: [N, d_h] contiguous.
detail::RopeShape rope_shape(const torch::Tensor& in, const torch::Tensor& table, const torch::Tensor& out,
                             bool transpose) {
  detail::RopeShape s;
  rope_element_of(in.scalar_type(), s.in);
  rope_element_of(table.scalar_type(), s.table);
  rope_element_of(out.scalar_type(), s.out);
  s.batch = static_cast<int>(in.size(0));
  s.heads = static_cast<int>(in.size(1));
  s.n = static_cast<int>(in.size(2));
  s.head_dim = static_cast<int>(in.size(3));
  for (int d = 0; d < 3; ++d) {
    s.in_stride[d] = in.stride(d);
    s.out_stride[d] = out.stride(d);
  }
  s.transpose = transpose;
  return s;
}

// out = M x (forward) or Mᵀ x (transpose), written into `out` (unit stride in d_h).
void rotate_into(const torch::Tensor& x_in, const torch::Tensor& cos, const torch::Tensor& sin, torch::Tensor& out,
                 bool transpose) {
  if (out.numel() == 0) return;
  const auto x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  detail::rope(rope_shape(x, cos, out, transpose), x.data_ptr(), cos.data_ptr(), sin.data_ptr(), out.data_ptr(),
               at::cuda::getCurrentCUDAStream().stream());
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  // x: [B, H, N, d_h]; cos, sin: [N, d_h] -> y: [B, H, N, d_h] in rope_output_dtype and, as an
  // elementwise op keeps it, x's layout where x is dense and non-overlapping (else contiguous).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto c = cos.contiguous(), s = sin.contiguous();
    const auto y_dtype = rope_output_dtype(x, c);
    auto y = torch::empty_like(x, x.options().dtype(y_dtype));
    if (y.stride(3) != 1) y = torch::empty(x.sizes(), x.options().dtype(y_dtype));
    rotate_into(x, c, s, y, false);
    ctx->save_for_backward({c, s});
    ctx->saved_data["x_dtype"] = x.scalar_type();
    ctx->saved_data["y_dtype"] = y_dtype;
    ctx->saved_data["layout"] = y.strides().vec();  // dx takes the same layout
    return y;
  }

  // g = dL/dy: [B, H, N, d_h] -> dL/dx = Mᵀ g in x's dtype; none for the tables.
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &c = saved[0], &s = saved[1];
    const auto g = grads[0].to(ctx->saved_data["y_dtype"].toScalarType());
    const c10::cuda::CUDAGuard guard(g.device());
    auto dx = torch::empty_strided(g.sizes(), ctx->saved_data["layout"].toIntVector(),
                                   g.options().dtype(ctx->saved_data["x_dtype"].toScalarType()));
    rotate_into(g, c, s, dx, true);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool rope_supported(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  detail::RopeElement in, table, out;
  if (!x.defined() || !cos.defined() || !sin.defined() || !x.is_cuda() || x.dim() != 4) return false;
  if (cos.device() != x.device() || sin.device() != x.device() || cos.dim() != 2 || sin.sizes() != cos.sizes())
    return false;
  const int64_t n = x.size(2), head_dim = x.size(3);
  if (cos.size(0) != n || cos.size(1) != head_dim || head_dim < 2 || head_dim % 2 != 0) return false;
  if (x.numel() == 0 || x.size(0) * x.size(1) * n * (head_dim / 2) >= (int64_t{1} << 31)) return false;
  if (!rope_element_of(x.scalar_type(), in) || !rope_element_of(cos.scalar_type(), table) ||
      !rope_element_of(rope_output_dtype(x, cos), out) || sin.scalar_type() != cos.scalar_type())
    return false;
  // The forward (in, table, out) and the backward (out, table, in) as the kernel is built.
  if (!detail::rope_elements_supported(in, table, out) || !detail::rope_elements_supported(out, table, in))
    return false;
  return !(torch::GradMode::is_enabled() && (cos.requires_grad() || sin.requires_grad()));
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(rope_supported(x, cos, sin),
              "attention/cuda/rope_binding.cpp: apply_rope: the kernel takes CUDA x [B, H, N, d_h] (even d_h; "
              "bf16, fp16 or float32) with cos, sin [N, d_h] of x's dtype or float32 and no gradient for the "
              "tables; got x ", x.sizes(), " ", x.scalar_type(), ", cos ", cos.sizes(), " ", cos.scalar_type(),
              "; call mixlab::apply_rope (attention/rope.h), which runs the reference for these");
  return RopeFunction::apply(x, cos, sin);
}

}  // namespace mixlab::cuda
