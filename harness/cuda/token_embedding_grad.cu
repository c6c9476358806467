// The weight gradient of a token embedding (harness/cuda/launch.h; reference: LibTorch's
// embedding backward, harness/token_embedding.h):
//
//   dW_v = Σ_{t : y_t = v} de_t            de: [T, d] float32, y: [T] int64, dW: [V, d] float32 (zeroed)
//
// Each warp takes kTokensPerWarp consecutive tokens; lane l sums columns l, l + 32, ... of de over
// each run of equal tokens in registers and adds the run's sum to dW with one atomicAdd per column
// when the token changes.  A run of one token over many positions (MQAR's padding) costs one atomic
// per column per warp instead of one per position.  Tokens outside [0, V) are skipped (the
// forward's lookup has already failed on them).

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "harness/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kTokensPerWarp = 32;

__global__ void __launch_bounds__(32 * kWarps)
    token_embedding_grad_kernel(const float* __restrict__ grad, const long long* __restrict__ tokens, long long count,
                                long long vocab, int dim, float* __restrict__ grad_weight) {
  const int lane = threadIdx.x % 32;
  const long long first = (static_cast<long long>(blockIdx.x) * kWarps + threadIdx.x / 32) * kTokensPerWarp;
  if (first >= count) return;
  const long long last = min(first + kTokensPerWarp, count);
  for (int column = lane; column < dim; column += 32) {
    long long run_token = tokens[first];
    float sum = 0.f;
    for (long long t = first; t < last; ++t) {
      const long long token = tokens[t];
      if (token != run_token) {
        if (run_token >= 0 && run_token < vocab) atomicAdd(grad_weight + run_token * dim + column, sum);
        run_token = token;
        sum = 0.f;
      }
      sum += grad[t * dim + column];
    }
    if (run_token >= 0 && run_token < vocab) atomicAdd(grad_weight + run_token * dim + column, sum);
  }
}

}  // namespace

void token_embedding_grad(const float* grad, const long long* tokens, long long count, long long vocab, long long dim,
                          float* grad_weight, void* stream) {
  if (count < 1 || vocab < 1 || dim < 1 || dim > 0x7fffffffLL)
    throw std::invalid_argument("token_embedding_grad: unsupported shape (tokens " + std::to_string(count) +
                                ", vocab " + std::to_string(vocab) + ", dim " + std::to_string(dim) + ")");
  const long long per_block = static_cast<long long>(kWarps) * kTokensPerWarp;
  const long long blocks = (count + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("token_embedding_grad: too many tokens");
  token_embedding_grad_kernel<<<static_cast<unsigned>(blocks), 32 * kWarps, 0, static_cast<cudaStream_t>(stream)>>>(
      grad, tokens, count, vocab, static_cast<int>(dim), grad_weight);
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string("token_embedding_grad: ") + cudaGetErrorString(error));
}

}  // namespace mixlab::cuda::detail
