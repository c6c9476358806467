#include "harness/linear_cross_entropy.h"

#include <algorithm>
#include <vector>

#include "harness/cross_entropy_rows.h"

namespace mixlab {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk_rows) {
    const int64_t rows = hidden.size(0);
    std::vector<torch::Tensor> log_normalisers, target_logits;  // per chunk: [n] log Σᵥ exp(hᵢ·wᵥ), [n] hᵢ·w_{yᵢ}
    torch::ScalarType product = hidden.scalar_type();
    for (int64_t start = 0; start < rows; start += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - start);
      const auto logits = torch::matmul(hidden.narrow(0, start, n), weight.t());  // [n, V] (autocast's dtype)
      product = logits.scalar_type();
      auto [lse, picked] = cross_entropy_rows_forward(logits, targets.narrow(0, start, n));
      log_normalisers.push_back(std::move(lse));
      target_logits.push_back(std::move(picked));
    }
    const auto log_normaliser = joined(log_normalisers), target_logit = joined(target_logits);  // [M] each
    ctx->save_for_backward({hidden, weight, targets, log_normaliser});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["product"] = static_cast<int64_t>(product);
    return (log_normaliser - target_logit).mean();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &targets = saved[2], &log_normaliser = saved[3];
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const auto product = static_cast<torch::ScalarType>(ctx->saved_data["product"].toInt());
    const int64_t rows = hidden.size(0);
    const auto reduce = log_normaliser.scalar_type();
    const auto scale = (grad_outputs[0] / static_cast<double>(rows)).to(reduce);  // [] dloss · 1/M
    const auto weight_p = weight.to(product);                                       // [V, d]
    auto grad_hidden = torch::empty_like(hidden);
    auto grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(reduce));
    for (int64_t start = 0; start < rows; start += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - start);
      const auto h = hidden.narrow(0, start, n).to(product);                                    // [n, d]
      const auto p = cross_entropy_rows_backward(torch::matmul(h, weight_p.t()), targets.narrow(0, start, n),
                                                 log_normaliser.narrow(0, start, n), scale);    // [n, V] dlogits
      grad_hidden.narrow(0, start, n).copy_(torch::matmul(p, weight_p));                        // [n, d]
      grad_weight.add_(torch::matmul(p.t(), h));                                                // [V, d]
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), torch::Tensor(), torch::Tensor()};
  }

 private:
  // The chunks' [n] pieces as one [M] (the piece itself where there is one chunk).
  static torch::Tensor joined(const std::vector<torch::Tensor>& pieces) {
    return pieces.size() == 1 ? pieces.front() : torch::cat(pieces);
  }
};

}  // namespace

torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                   const torch::Tensor& targets, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "linear_cross_entropy: hidden [M, d] and weight [V, d] expected");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0), "linear_cross_entropy: targets [M] expected");
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t{1} << 27) / std::max<int64_t>(weight.size(0), 1));
  return LinearCrossEntropy::apply(hidden, weight, targets, chunk_rows);
}

}  // namespace mixlab
