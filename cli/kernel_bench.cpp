// `mixlab kernel_bench OUT.csv [--quick] [--ops=swa,scout,scan] [--lengths=N,...] [--list-ops]`: the mixlab side of
// the kernel benchmark (docs/PERF.md; scripts/gpu.sh runs it).  Times the CUDA kernels of
// attention/cuda and mixers/cuda, forward and forward+backward, bf16, on the shapes of the op
// table (cli/kernel_ops.h), which bench/peers reads too (`--list-ops` prints it as JSON, no GPU
// needed).  Prints CSV rows
//   impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops
// and a matmul-peak row, to stdout and to the file named by the first argument; on a Hopper also
// `mixlab_sm90` rows (swa and scout; forward and backward at head dim 64 and 128): the wgmma
// kernels (attention/cuda/sm90).
//
// Timing as the peers' (triton.testing.do_bench): CUDA events around each call, the L2 flushed
// (a 256 MiB write) before each, the median of the repeats after a warm-up.

#include <torch/torch.h>

#include "cli/command.h"
#include "cli/kernel_ops.h"
#include "harness/device.h"

#include <algorithm>
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

using mixlab::cli::KernelShape;

struct KernelBenchOptions {
  std::string path = "mixlab_kernels.csv";
  bool quick = false;
  bool list_ops = false;
  std::vector<int64_t> lengths;  // empty: every length of the op table
  std::vector<std::string> ops = {"swa", "scout", "scan", "scan_narrow"};
};

#ifdef MIXLAB_WITH_CUDA

// Median milliseconds of `fn` over `repeats` calls after `warmup`, each on a flushed L2.
double median_ms(const std::function<void()>& fn, int warmup = 10, int repeats = 20) {
  static torch::Tensor l2_flush = torch::empty({int64_t{1} << 26}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kInt));
  mixlab::CallTimer timer(mixlab::Device{"cuda", "bfloat16"});
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    l2_flush.zero_();
    timer.start();
    fn();
    times.push_back(timer.stop_ms());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Forward and forward + backward of attention on one shape by the sm_80 kernels: [1, batch_heads,
// N, head_dim] bf16.  MIXLAB_SM90_ATTENTION=none while it runs: on a Hopper the attention ops'
// default sends SCOUT's checkpoints to the sm90 kernels, which have their own rows (session 21's
// first run timed them twice).
std::pair<double, double> time_attention(const KernelShape& s) {
  const mixlab::cuda::ScopedSm90Choice sm80_only("none");
  auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  auto q = torch::randn({1, s.batch_heads, s.n, s.head_dim}, bf16), k = torch::randn_like(q), v = torch::randn_like(q),
       dout = torch::randn_like(q);
  auto run = [&](const torch::Tensor& qq, const torch::Tensor& kk, const torch::Tensor& vv) {
    return s.op == "swa" ? mixlab::cuda::sliding_window_attention(qq, kk, vv, s.window)
                         : mixlab::cuda::checkpoint_attention(qq, kk, vv, s.segment);
  };
  const double forward = median_ms([&] {
    torch::NoGradGuard no_grad;
    (void)run(q, k, v);
  });
  const double both = median_ms([&] {
    auto qg = q.detach().requires_grad_(true), kg = k.detach().requires_grad_(true), vg = v.detach().requires_grad_(true);
    run(qg, kg, vg).backward(dout);
  });
  return {forward, both};
}

// The sm90 (wgmma) kernels on one shape, where they run (a Hopper, a build for sm_90a), else
// {-1, -1}: forward and forward + backward (head dim 64 and 128) of the sliding window and of
// SCOUT.  The backward's time includes what its binding adds around the kernels (D = Σ dO·O, the
// zeroed float32 dQ accumulator, its scaling to bf16), as the sm_80 path's autograd includes its own.
std::pair<double, double> time_sm90(const KernelShape& s) {
  if ((s.op != "swa" && s.op != "scout") || (s.head_dim != 64 && s.head_dim != 128) ||
      !mixlab::cuda::sm90_kernels_available())
    return {-1, -1};
  auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  auto q = torch::randn({1, s.batch_heads, s.n, s.head_dim}, bf16), k = torch::randn_like(q), v = torch::randn_like(q),
       dout = torch::randn_like(q);
  if (s.op == "scout") {
    const double forward = median_ms([&] { (void)mixlab::cuda::sm90_checkpoint_forward(q, k, v, s.segment); });
    const double both = median_ms([&] {
      auto [o, lse] = mixlab::cuda::sm90_checkpoint_forward(q, k, v, s.segment);
      (void)mixlab::cuda::sm90_checkpoint_backward(q, k, v, o, dout, lse, s.segment);
    });
    return {forward, both};
  }
  const double forward = median_ms([&] { (void)mixlab::cuda::sm90_window_forward(q, k, v, s.window); });
  const double both = median_ms([&] {
    auto [o, lse] = mixlab::cuda::sm90_window_forward(q, k, v, s.window);
    (void)mixlab::cuda::sm90_window_backward(q, k, v, o, dout, lse, s.window);
  });
  return {forward, both};
}

// Forward and forward + backward of the selective scan on one shape.
std::pair<double, double> time_scan(const KernelShape& s) {
  auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  auto f32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  auto u = torch::randn({s.batch, s.channels, s.n}, bf16), delta = torch::randn_like(u) - 1.0;
  auto z = torch::randn_like(u), dout = torch::randn_like(u);
  auto B = torch::randn({s.batch, s.states, s.n}, bf16), C = torch::randn_like(B);
  auto A = -torch::exp(torch::randn({s.channels, s.states}, f32) * 0.5), D = torch::randn({s.channels}, f32);
  auto bias = torch::randn({s.channels}, f32) * 0.3;
  const double forward = median_ms([&] {
    torch::NoGradGuard no_grad;
    (void)mixlab::cuda::selective_scan(u, delta, A, B, C, D, z, bias);
  });
  const double both = median_ms([&] {
    std::vector<torch::Tensor> leaves;
    for (const auto& t : {u, delta, A, B, C, D, z, bias}) leaves.push_back(t.detach().requires_grad_(true));
    mixlab::cuda::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], leaves[7])
        .backward(dout);
  });
  return {forward, both};
}

int time_kernels(const std::vector<KernelShape>& shapes, const std::string& path) {
  if (!torch::cuda::is_available()) {
    std::cerr << "mixlab kernel_bench: no CUDA device visible; nothing measured\n";
    return 1;
  }
  std::ofstream csv(path);
  auto emit = [&](const std::string& row) {
    std::cout << row << std::endl;
    csv << row << "\n";
    csv.flush();
  };
  emit("impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops");
  {  // the measured bf16 matmul rate
    auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
    auto a = torch::randn({8192, 8192}, bf16), b = torch::randn({8192, 8192}, bf16);
    const double ms = median_ms([&] { (void)torch::matmul(a, b); });
    emit("mixlab,matmul_peak,8192,0,1," + std::to_string(ms) + ",0," + std::to_string(2.0 * 8192.0 * 8192 * 8192) + ",0");
  }
  for (const auto& s : shapes) {
    if (s.op == "causal") continue;  // no mixlab kernel: full attention is SDPA's, timed by the peers
    const auto [forward, both] = s.op.rfind("scan", 0) == 0 ? time_scan(s) : time_attention(s);
    emit("mixlab," + s.op + "," + std::to_string(s.n) + "," + std::to_string(s.head_dim) + "," +
         std::to_string(s.batch_heads) + "," + std::to_string(forward) + "," + std::to_string(both) + "," +
         std::to_string(s.fwd_flops) + "," + std::to_string(s.fwdbwd_flops));
    if (const auto [f90, b90] = time_sm90(s); f90 >= 0)
      emit("mixlab_sm90," + s.op + "," + std::to_string(s.n) + "," + std::to_string(s.head_dim) + "," +
           std::to_string(s.batch_heads) + "," + std::to_string(f90) + "," + std::to_string(b90) + "," +
           std::to_string(s.fwd_flops) + "," + std::to_string(s.fwdbwd_flops));
  }
  return 0;
}

#endif

int run_kernel_bench(const KernelBenchOptions& options) {
  std::vector<KernelShape> shapes;
  try {
    shapes = mixlab::cli::kernel_shapes(options.ops, options.quick);
  } catch (const std::invalid_argument& error) {
    std::cerr << "mixlab kernel_bench: --ops: " << error.what() << "\n";
    return 2;
  }
  if (!options.lengths.empty()) {  // only the asked lengths (one shape under a profiler)
    std::vector<KernelShape> kept;
    for (const auto& s : shapes)
      if (std::find(options.lengths.begin(), options.lengths.end(), s.n) != options.lengths.end()) kept.push_back(s);
    if (kept.empty()) {
      std::cerr << "mixlab kernel_bench: --lengths: no shape of the asked ops has these N (the op table's N: 1024, "
                   "4096, 16384, 65536; --quick: 1024, 16384)\n";
      return 2;
    }
    shapes = kept;
  }
  if (options.list_ops) {
    nlohmann::json table = nlohmann::json::array();
    for (const auto& s : shapes) table.push_back(mixlab::cli::to_json(s));
    std::cout << table.dump(1) << "\n";
    return 0;
  }
#ifndef MIXLAB_WITH_CUDA
  std::cerr << "mixlab kernel_bench: built without CUDA; nothing measured (build on a GPU machine: scripts/gpu.sh)\n";
  return 1;
#else
  return time_kernels(shapes, options.path);
#endif
}

}  // namespace

namespace mixlab::cli {
MIXLAB_REGISTER_COMMAND(kernel_bench, "time the CUDA kernels (attention/cuda, mixers/cuda) for docs/PERF.md",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<KernelBenchOptions>();
                          app.add_option("out,--out", options->path, "CSV file to write");
                          app.add_flag("--quick", options->quick, "N = 1k and 16k only");
                          app.add_option("--ops", options->ops, "comma-separated subset of causal,swa,scout,scan")
                              ->delimiter(',');
                          app.add_option("--lengths", options->lengths,
                                         "comma-separated N to keep (e.g. 16384: one shape per op, for a profiler)")
                              ->delimiter(',');
                          app.add_flag("--list-ops", options->list_ops,
                                       "print the op table (shapes, kept pairs, FLOPs, floor bytes) as JSON and exit");
                          return [options] { return run_kernel_bench(*options); };
                        });
}  // namespace mixlab::cli
