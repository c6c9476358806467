#include "harness/peak_flops.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mixlab {

double measured_peak_flops(const Device& device) {
  static std::mutex mutex;
  static std::map<std::string, double> cached;  // "kind/dtype" -> FLOP/s (a process uses one GPU)
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = device.kind + "/" + device.dtype;
  if (const auto it = cached.find(key); it != cached.end()) return it->second;

  torch::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 8192 : 512;
  const auto options = torch::TensorOptions().dtype(device.scalar_type()).device(device.torch_device());
  const torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  torch::Tensor c = torch::empty({n, n}, options);
  CallTimer timer(device);
  std::vector<double> ms;
  for (int repeat = 0; repeat < 7; ++repeat) {
    timer.start();
    torch::matmul_out(c, a, b);
    const double t = timer.stop_ms();
    if (repeat >= 2) ms.push_back(t);  // two warm-ups
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  const double flops = 2.0 * static_cast<double>(n) * n * n / (ms[ms.size() / 2] / 1000.0);
  cached[key] = flops;
  return flops;
}

}  // namespace mixlab
