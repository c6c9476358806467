// `mixlab kernel_bench OUT.csv [--quick] [--ops=swa,scout,scan]`: the mixlab side of the kernel
// benchmark (docs/PERF.md; scripts/gpu.sh runs it).  Times the CUDA kernels of attention/cuda and
// mixers/cuda, forward and forward+backward, bf16, over N = 1k .. 64k, with batch x heads chosen so
// that every shape holds 2^20 tokens (the GPU stays full).  Prints CSV rows
//   impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops
// (FLOPs count only the (query, key) pairs that the mask keeps: 4·d per pair forward, 2.5x that
// backward) and a matmul-peak row, to stdout and to the file named by the first argument.

#include <torch/torch.h>

#include "cli/command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#include "mixers/cuda/kernels.h"
#endif

namespace {

// Median wall time of fn in milliseconds, synchronising the device around every call.
double median_ms(const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  torch::cuda::synchronize();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    torch::cuda::synchronize();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double window_pairs(double n, double w) { return n >= w ? n * w - w * (w - 1) / 2 : n * (n + 1) / 2; }
double checkpoint_pairs(int64_t n, int64_t s) {
  double pairs = 0;
  for (int64_t t = 0; t < n; ++t) pairs += 1 + static_cast<double>(t / s);
  return pairs;
}

struct KernelBenchOptions {
  std::string path = "mixlab_kernels.csv";
  bool quick = false;
  std::string ops = "swa,scout,scan";
};

int run_kernel_bench(const KernelBenchOptions& options) {
#ifndef MIXLAB_WITH_CUDA
  std::cerr << "mixlab kernel_bench: built without CUDA; nothing measured (build on a GPU machine: scripts/gpu.sh)\n";
  return 1;
#else
  if (!torch::cuda::is_available()) {
    std::cerr << "mixlab kernel_bench: no CUDA device visible; nothing measured\n";
    return 1;
  }
  const std::string& path = options.path;
  const bool quick = options.quick;
  const std::string& ops = options.ops;
  auto wanted = [&](const std::string& op) { return ("," + ops + ",").find("," + op + ",") != std::string::npos; };
  std::ofstream csv(path);
  auto emit = [&](const std::string& row) {
    std::cout << row << std::endl;
    csv << row << "\n";
    csv.flush();
  };
  emit("impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops");
  torch::NoGradGuard no_grad_outer;
  auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);

  {  // measured bf16 matmul peak
    auto a = torch::randn({8192, 8192}, bf16), b = torch::randn({8192, 8192}, bf16);
    const double ms = median_ms([&] { (void)torch::matmul(a, b); }, 10, 20);
    emit("mixlab,matmul_peak,8192,0,1," + std::to_string(ms) + ",0," + std::to_string(2.0 * 8192.0 * 8192 * 8192) + ",0");
  }

  const int64_t tokens = 1 << 20, window = 1024, segment = 10;
  std::vector<int64_t> lengths = quick ? std::vector<int64_t>{1024, 16384} : std::vector<int64_t>{1024, 4096, 16384, 65536};
  for (int64_t hd : {64, 128}) {
    for (int64_t n : lengths) {
      if (!wanted("swa") && !wanted("scout")) break;
      const int64_t bh = std::max<int64_t>(1, tokens / n);
      auto q = torch::randn({1, bh, n, hd}, bf16), k = torch::randn({1, bh, n, hd}, bf16),
           v = torch::randn({1, bh, n, hd}, bf16), dout = torch::randn({1, bh, n, hd}, bf16);
      for (const std::string op : {"swa", "scout"}) {
        if (!wanted(op)) continue;
        auto run = [&](const torch::Tensor& qq, const torch::Tensor& kk, const torch::Tensor& vv) {
          return op == "swa" ? mixlab::cuda::sliding_window_attention(qq, kk, vv, window)
                             : mixlab::cuda::checkpoint_attention(qq, kk, vv, segment);
        };
        const double fwd = median_ms([&] { (void)run(q, k, v); }, 10, 20);
        torch::Tensor qg, kg, vg;
        const double both = median_ms(
            [&] {
              torch::AutoGradMode grad(true);
              qg = q.detach().requires_grad_(true);
              kg = k.detach().requires_grad_(true);
              vg = v.detach().requires_grad_(true);
              run(qg, kg, vg).backward(dout);
            },
            10, 20);
        const double pairs = op == "swa" ? window_pairs(n, window) : checkpoint_pairs(n, segment);
        const double f = 4.0 * hd * pairs * bh;
        emit("mixlab," + op + "," + std::to_string(n) + "," + std::to_string(hd) + "," + std::to_string(bh) + "," +
             std::to_string(fwd) + "," + std::to_string(both) + "," + std::to_string(f) + "," + std::to_string(3.5 * f));
      }
    }
  }

  // Selective scan: batch 8, E = 2048 channels, n = 16, bf16 activations (the kernel runs 4 threads
  // per channel, so 8 x 2048 channels give 16 warps per SM).
  const int64_t batch = 8, channels = 2048, states = 16;
  auto f32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  for (int64_t n : lengths) {
    if (!wanted("scan")) break;
    auto u = torch::randn({batch, channels, n}, bf16), delta = (torch::randn({batch, channels, n}, bf16) - 1.0);
    auto z = torch::randn({batch, channels, n}, bf16), dout = torch::randn({batch, channels, n}, bf16);
    auto B = torch::randn({batch, states, n}, bf16), C = torch::randn({batch, states, n}, bf16);
    auto A = -torch::exp(torch::randn({channels, states}, f32) * 0.5), D = torch::randn({channels}, f32);
    auto bias = torch::randn({channels}, f32) * 0.3;
    const double fwd = median_ms([&] { (void)mixlab::cuda::selective_scan(u, delta, A, B, C, D, z, bias); }, 10, 20);
    const double both = median_ms(
        [&] {
          torch::AutoGradMode grad(true);
          auto ug = u.detach().requires_grad_(true), dg = delta.detach().requires_grad_(true);
          auto Ag = A.detach().requires_grad_(true), Bg = B.detach().requires_grad_(true);
          auto Cg = C.detach().requires_grad_(true), Dg = D.detach().requires_grad_(true);
          auto zg = z.detach().requires_grad_(true), bg = bias.detach().requires_grad_(true);
          mixlab::cuda::selective_scan(ug, dg, Ag, Bg, Cg, Dg, zg, bg).backward(dout);
        },
        10, 20);
    emit("mixlab,scan," + std::to_string(n) + ",16," + std::to_string(batch * channels) + "," + std::to_string(fwd) +
         "," + std::to_string(both) + ",0,0");
  }
  return 0;
#endif
}

}  // namespace

namespace mixlab::cli {
MIXLAB_REGISTER_COMMAND(kernel_bench, "time the CUDA kernels (attention/cuda, mixers/cuda) for docs/PERF.md",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<KernelBenchOptions>();
                          app.add_option("out,--out", options->path, "CSV file to write");
                          app.add_flag("--quick", options->quick, "N = 1k and 16k only");
                          app.add_option("--ops", options->ops, "comma-separated subset of swa,scout,scan");
                          return [options] { return run_kernel_bench(*options); };
                        });
}  // namespace mixlab::cli
