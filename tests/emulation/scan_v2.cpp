// Host emulation of the v2 selective-scan kernels (mixers/cuda/selective_scan_v2*.cuh), for checking
// them where there is no GPU: every CUDA thread of a block is a std::thread, blocks run one at a
// time (so one global array is the block's shared memory, filled with NaN before each block),
// __syncthreads / __syncwarp / __shfl_xor_sync go through barriers, atomicAdd through a mutex.
// The kernels' own source runs (float32 elements), launched as selective_scan_v2.cu launches
// them (time slices: summary, carry, scan), and every output and gradient is compared with a
// float64 LibTorch autograd loop.  Not part of the build; from the repository root:
//   g++ -std=c++20 -O1 -w -I. -isystem /usr/local/cuda/include \
//       -isystem /usr/include/torch/csrc/api/include tests/emulation/scan_v2.cpp -o /tmp/emulate_scan_v2 \
//       -ltorch -ltorch_cpu -lc10 -lpthread && /tmp/emulate_scan_v2
// It checks the index arithmetic, the barriers and shuffles, the slices; not timing, bank
// conflicts or the GPU's fast-math intrinsics (exp2f, __expf run as the host's).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#undef __align__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __align__(n)
inline int min(int a, int b) { return a < b ? a : b; }

thread_local uint3 emu_threadIdx, emu_blockIdx;
thread_local dim3 emu_gridDim, emu_blockDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define gridDim emu_gridDim
#define blockDim emu_blockDim

std::unique_ptr<std::barrier<>> block_barrier;
std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
float shfl_slots[32][32];
std::mutex atomic_mutex;

inline void __syncthreads() { block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int m) {
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  shfl_slots[w][lane] = v;
  warp_barriers[w]->arrive_and_wait();
  const float r = shfl_slots[w][lane ^ m];
  warp_barriers[w]->arrive_and_wait();
  return r;
}
inline float atomicAdd(float* p, float v) {
  std::lock_guard<std::mutex> lock(atomic_mutex);
  const float old = *p;
  *p = old + v;
  return old;
}
#define __expf expf
// fast-math spellings on the host
inline float emu_exp2f(float x) { return std::exp2(x); }

namespace mixlab::cuda::detail {
namespace {
alignas(16) unsigned char smem_raw[1 << 18];
}
}  // namespace mixlab::cuda::detail

#include "mixers/cuda/selective_scan_v2_backward.cuh"
#include "mixers/cuda/selective_scan_v2_common.cuh"
#include "mixers/cuda/selective_scan_v2_forward.cuh"
#include "mixers/cuda/selective_scan_v2_slices.cuh"

#include <torch/torch.h>

#include <iostream>

using namespace mixlab::cuda::detail;

void launch(dim3 grid, int threads, const std::function<void()>& kernel) {
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        std::memset(smem_raw, 0xff, sizeof(smem_raw));  // NaN floats: reads of unwritten shared memory show
        block_barrier = std::make_unique<std::barrier<>>(threads);
        warp_barriers.clear();
        for (int w = 0; w < (threads + 31) / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            emu_threadIdx = {static_cast<unsigned>(t), 0, 0};
            emu_blockIdx = {x, y, z};
            emu_gridDim = grid;
            emu_blockDim = dim3(threads);
            kernel();
          });
        for (auto& th : pool) th.join();
      }
}

struct Case {
  int batch, channels, n, slices, fp, bp;
  bool bias;
};

torch::Tensor reference(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                        const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D, const torch::Tensor& z,
                        const torch::Tensor& bias) {
  auto dt = torch::softplus(delta + (bias.defined() ? bias.view({1, -1, 1}) : torch::zeros_like(delta)));
  auto h = torch::zeros({u.size(0), u.size(1), A.size(1)}, u.options());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < u.size(2); ++t) {
    auto dt_t = dt.select(2, t).unsqueeze(-1);
    h = torch::exp(dt_t * A) * h + dt_t * u.select(2, t).unsqueeze(-1) * B.select(2, t).unsqueeze(1);
    ys.push_back((h * C.select(2, t).unsqueeze(1)).sum(-1) + D.view({1, -1}) * u.select(2, t));
  }
  return torch::stack(ys, 2) * z * torch::sigmoid(z);
}

double rel(const torch::Tensor& got, const torch::Tensor& want) {
  auto g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  if (!torch::isfinite(g).all().item<bool>()) return 1e30;
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

template <int FP, int BP>
bool run_case(const Case& c) {
  torch::manual_seed(c.n + c.channels);
  const int bsz = c.batch, E = c.channels, N = c.n, S = 16;
  auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  auto u = torch::randn({bsz, E, N}, f32), delta = torch::randn({bsz, E, N}, f32) * 0.5 - 1.0;
  auto A = -torch::exp(torch::randn({E, S}, f32) * 0.5), Bm = torch::randn({bsz, S, N}, f32),
       Cm = torch::randn({bsz, S, N}, f32), D = torch::randn({E}, f32), z = torch::randn({bsz, E, N}, f32);
  auto bias = c.bias ? torch::randn({E}, f32) * 0.3 : torch::Tensor();
  auto dout = torch::randn({bsz, E, N}, f32);
  const int n_saved = (N + 15) / 16, G = c.slices, n_chunks = (N + kL - 1) / kL;
  const int slice_chunks = (n_chunks + G - 1) / G;
  if ((G - 1) * slice_chunks >= n_chunks) {
    std::cout << "bad slices\n";
    return false;
  }
  auto out = torch::full({bsz, E, N}, NAN, f32), states = torch::full({bsz, E, n_saved, S}, NAN, f32);
  auto work = torch::full({bsz * E * G * (S + 1)}, NAN, f32);
  float* ws = work.data_ptr<float>();
  float* dsum = ws + static_cast<size_t>(bsz) * E * G * S;
  const float* biasp = c.bias ? bias.data_ptr<float>() : nullptr;
  const dim3 grid((E + kK - 1) / kK, bsz, G);
  auto carry = [&](bool backward) {
    const long long threads = static_cast<long long>(bsz) * E * S;
    const int blocks = static_cast<int>((threads + 255) / 256);
    launch(dim3(blocks), 256, [&] { slice_carry_kernel(ws, dsum, A.data_ptr<float>(), bsz, E, G, backward); });
  };
  const float* h_in = nullptr;
  if (G > 1) {
    launch(grid, Split<FP>::kThreads, [&] {
      slice_summary_kernel<float, FP, false>(u.data_ptr<float>(), delta.data_ptr<float>(), z.data_ptr<float>(),
                                             A.data_ptr<float>(), Bm.data_ptr<float>(), biasp, ws, dsum, E, N,
                                             slice_chunks);
    });
    carry(false);
    h_in = ws;
  }
  launch(grid, Split<FP>::kThreads, [&] {
    scan_v2_forward_kernel<float, FP>(u.data_ptr<float>(), delta.data_ptr<float>(), A.data_ptr<float>(),
                                      Bm.data_ptr<float>(), Cm.data_ptr<float>(), D.data_ptr<float>(),
                                      z.data_ptr<float>(), biasp, out.data_ptr<float>(), states.data_ptr<float>(),
                                      h_in, E, N, slice_chunks);
  });
  auto du = torch::full({bsz, E, N}, NAN, f32), ddelta = du.clone(), dz = du.clone();
  auto dA = torch::zeros({E, S}, f32), dD = torch::zeros({E}, f32), dB = torch::zeros({bsz, S, N}, f32),
       dC = torch::zeros({bsz, S, N}, f32), dbias = torch::zeros({E}, f32);
  work.fill_(NAN);
  const float* dh_in = nullptr;
  if (G > 1) {
    launch(grid, Split<BP>::kThreads, [&] {
      slice_summary_kernel<float, BP, true>(dout.data_ptr<float>(), delta.data_ptr<float>(), z.data_ptr<float>(),
                                            A.data_ptr<float>(), Cm.data_ptr<float>(), biasp, ws, dsum, E, N,
                                            slice_chunks);
    });
    carry(true);
    dh_in = ws;
  }
  launch(grid, Split<BP>::kThreads, [&] {
    scan_v2_backward_kernel<float, BP>(
        u.data_ptr<float>(), delta.data_ptr<float>(), A.data_ptr<float>(), Bm.data_ptr<float>(),
        Cm.data_ptr<float>(), D.data_ptr<float>(), z.data_ptr<float>(), biasp, states.data_ptr<float>(),
        dout.data_ptr<float>(), du.data_ptr<float>(), ddelta.data_ptr<float>(), dA.data_ptr<float>(),
        dB.data_ptr<float>(), dC.data_ptr<float>(), dD.data_ptr<float>(), dz.data_ptr<float>(),
        c.bias ? dbias.data_ptr<float>() : nullptr, dh_in, E, N, slice_chunks);
  });

  auto d64 = [](const torch::Tensor& t) {
    return t.defined() ? t.to(torch::kDouble).detach().requires_grad_(true) : torch::Tensor();
  };
  auto u6 = d64(u), de6 = d64(delta), A6 = d64(A), B6 = d64(Bm), C6 = d64(Cm), D6 = d64(D), z6 = d64(z),
       b6 = d64(bias);
  auto ref = reference(u6, de6, A6, B6, C6, D6, z6, b6);
  ref.backward(dout.to(torch::kDouble));
  const double errs[] = {rel(out, ref),        rel(du, u6.grad()), rel(ddelta, de6.grad()), rel(dA, A6.grad()),
                         rel(dB, B6.grad()),   rel(dC, C6.grad()), rel(dD, D6.grad()),      rel(dz, z6.grad()),
                         c.bias ? rel(dbias, b6.grad()) : 0.0};
  const char* names[] = {"out", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "dbias"};
  bool ok = true;
  std::cout << "B" << bsz << " E" << E << " N" << N << " G" << G << " P" << FP << "," << BP << ":";
  for (int i = 0; i < 9; ++i) {
    std::cout << " " << names[i] << "=" << errs[i];
    ok = ok && errs[i] < 1e-4;
  }
  std::cout << (ok ? "  OK" : "  FAIL") << std::endl;
  return ok;
}

int main() {
  torch::set_num_threads(1);
  bool ok = true;
  const std::vector<Case> cases = {{1, 3, 10, 1, 2, 4, true},  {2, 24, 16, 1, 2, 4, false}, {1, 24, 33, 1, 2, 4, true},
                                   {1, 70, 100, 1, 2, 4, true}, {1, 8, 150, 3, 2, 4, true},  {2, 5, 97, 2, 2, 4, false},
                                   {1, 1, 1, 1, 2, 4, true},   {1, 64, 256, 4, 2, 4, true}, {3, 2, 64, 2, 2, 4, true}};
  for (const auto& c : cases) ok = run_case<2, 4>(c) && ok;
  for (const auto& c : {cases[3], cases[4]}) {
    ok = run_case<1, 2>(c) && ok;
    ok = run_case<4, 2>(c) && ok;
    ok = run_case<2, 2>(c) && ok;
    ok = run_case<4, 4>(c) && ok;
  }
  std::cout << (ok ? "ALL OK" : "SOME FAILED") << std::endl;
  return ok ? 0 : 1;
}
