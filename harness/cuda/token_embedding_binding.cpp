// LibTorch entry of the token embedding whose weight gradient is token_embedding_grad.cu's kernel:
// the autograd Function (forward: index_select; backward: zeros, then the kernel) and what it takes.
// The reference and the dispatch are harness/token_embedding.cpp's.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "harness/cuda/kernels.h"
#include "harness/cuda/launch.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class TokenEmbeddingFunction : public torch::autograd::Function<TokenEmbeddingFunction> {
 public:
  // weight: [V, d]; tokens: [...] -> [..., d]
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& weight, const torch::Tensor& tokens) {
    const auto flat = tokens.reshape({-1}).contiguous();  // [T]
    ctx->save_for_backward({flat});
    ctx->saved_data["vocab"] = weight.size(0);
    auto shape = tokens.sizes().vec();
    shape.push_back(weight.size(1));
    return weight.index_select(0, flat).view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto flat = ctx->get_saved_variables()[0];
    const int64_t vocab = ctx->saved_data["vocab"].toInt();
    const auto grad = grad_outputs[0].to(torch::kFloat).contiguous();  // [..., d]
    const int64_t dim = grad.size(-1);
    auto grad_weight = torch::zeros({vocab, dim}, grad.options());
    if (flat.numel() > 0) {
      const c10::cuda::CUDAGuard guard(grad.device());
      detail::token_embedding_grad(grad.data_ptr<float>(), reinterpret_cast<const long long*>(flat.data_ptr<int64_t>()),
                                   flat.numel(), vocab, dim, grad_weight.data_ptr<float>(),
                                   at::cuda::getCurrentCUDAStream().stream());
    }
    return {grad_weight, torch::Tensor()};
  }
};

}  // namespace

bool token_embedding_supported(const torch::Tensor& weight, const torch::Tensor& tokens) {
  return weight.defined() && tokens.defined() && weight.is_cuda() && weight.dim() == 2 &&
         weight.scalar_type() == torch::kFloat && weight.is_contiguous() && weight.size(1) > 0 &&
         tokens.device() == weight.device() && tokens.scalar_type() == torch::kInt64;
}

torch::Tensor token_embedding(const torch::Tensor& weight, const torch::Tensor& tokens) {
  TORCH_CHECK(token_embedding_supported(weight, tokens),
              "harness/cuda/token_embedding_binding.cpp: token_embedding takes a CUDA float32 weight [V, d] "
              "(contiguous) and int64 tokens on its device; got weight ",
              weight.sizes(), " ", weight.scalar_type(), " on ", weight.device(), ", tokens ", tokens.scalar_type(),
              " on ", tokens.device(), "; call mixlab::token_embedding (harness/token_embedding.h), which runs the "
              "reference for these");
  return TokenEmbeddingFunction::apply(weight, tokens);
}

}  // namespace mixlab::cuda
