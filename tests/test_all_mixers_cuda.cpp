// The registry-wide contract on CUDA, for every entry present now or added later (the CUDA twin
// of test_all_mixers.cpp; skipped on machines without a GPU):
//
//   * forward, the input gradient and every parameter gradient on CUDA, in float32 and bf16,
//     against the float64 CPU reference of the same weights and inputs;
//   * step() on CUDA equal to forward() on CUDA;
//   * the decode state held on CUDA equal to cost().state_bytes.
//
// Tolerance, the rule flash-attention's tests use: the CUDA result may be off the float64
// reference by at most kFactor times what the CPU run of the same code in the same low precision
// is off by, plus a floor (errors are relative Frobenius norms, ‖a − ref‖ / ‖ref‖):
//
//   err(cuda, p) ≤ kFactor · err(cpu, p) + floor(p),   floor(float32) = 1e-5, floor(bf16) = 1e-2
//
// Sizes: d_model 128 with 2 heads (head dim 64, so the attention kernels run in bf16), N = 37
// (ragged against every block size, S ∤ N), batch 2.  MIXLAB_TEST_DEVICE=cpu runs the same code
// on the CPU (for debugging the test itself; it then compares the CPU with itself).

#include "core/registry.h"
#include "tests/mixer_test_helpers.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr int64_t kBatch = 2, kSeq = 37, kModel = 128, kHeads = 2;
constexpr double kFactor = 3.0;
constexpr uint64_t kSeed = 4321;

// Parameters that make the entry's rule matter at N = 37 (the defaults' windows exceed it).
std::map<std::string, ParamValue> test_params(const std::string& entry) {
  if (entry == "swa") return {{"window", ParamValue{int64_t{16}}}};
  if (entry == "checkpoint_attention") return {{"segment_size", ParamValue{int64_t{5}}}};
  return {};
}

// Entries whose rule makes discrete choices from scores (routing, top-k): in bf16 a rounding can
// flip a choice, so their bf16 outputs are checked for shape and finiteness only.
const std::map<std::string, std::string> kDiscreteChoices = {
    {"dtrnet", "routes tokens by a threshold on router scores"},
    {"learned_topk", "selects the top-k keys by score"},
};
// Entries whose decode state is data-dependent (as in test_all_mixers.cpp).
const std::map<std::string, std::string> kStateExemptions = {
    {"dtrnet", "its KV cache holds the routed tokens only"},
    {"learned_topk", "state depends on the selected keys"},
};

torch::Device test_device() {
  const char* name = std::getenv("MIXLAB_TEST_DEVICE");
  return torch::Device(name && std::string(name) == "cpu" ? torch::kCPU : torch::kCUDA);
}

bool device_available() { return test_device().is_cpu() || torch::cuda::is_available(); }

double floor_for(torch::ScalarType dtype) { return dtype == torch::kFloat ? 1e-5 : 1e-2; }

// ‖a − ref‖ / ‖ref‖ in float64 on the CPU (absolute when ref is ~0).
double relative_error(const torch::Tensor& a, const torch::Tensor& ref) {
  auto a64 = a.detach().to(torch::kCPU, torch::kFloat64), r64 = ref.detach().to(torch::kCPU, torch::kFloat64);
  const double scale = r64.norm().item<double>();
  return (a64 - r64).norm().item<double>() / (scale > 1e-12 ? scale : 1.0);
}

// The output, the input gradient and every parameter gradient of one run.
struct MixerRun {
  torch::Tensor output;
  std::map<std::string, torch::Tensor> gradients;  // "input" and the parameters' names
};

TokenMixerPtr make_mixer(const std::string& entry, torch::Device device, torch::ScalarType dtype) {
  torch::manual_seed(kSeed);  // the same initial weights and buffers for every copy
  auto mixer = Registry::global().create(entry, MixerContext{kModel, kHeads, 0, 1, 0.2}, test_params(entry));
  mixer->to(device, dtype);
  mixer->train();
  return mixer;
}

// y = mixer(x); L = Σ y ⊙ g (+ the mixer's auxiliary loss); the gradients of L.
MixerRun run_mixer(const std::string& entry, torch::Device device, torch::ScalarType dtype, const torch::Tensor& x64,
              const torch::Tensor& g64) {
  auto mixer = make_mixer(entry, device, dtype);
  auto x = x64.detach().to(device, dtype).clone().requires_grad_(true);  // a fresh leaf on every run
  auto y = mixer->forward(x);
  auto loss = (y * g64.to(device, dtype)).sum();
  auto aux = mixer->auxiliary_loss();
  if (aux.defined()) loss = loss + aux;
  loss.backward();
  MixerRun run;
  run.output = y.detach();
  run.gradients["input"] = x.grad();
  for (const auto& item : mixer->named_parameters())
    if (item.value().requires_grad()) run.gradients[item.key()] = item.value().grad();
  return run;
}

class EveryMixerOnCuda : public ::testing::TestWithParam<std::tuple<std::string, torch::ScalarType>> {
 protected:
  void SetUp() override {
    if (!device_available()) GTEST_SKIP() << "skipped: no GPU";
    std::tie(entry_, dtype_) = GetParam();
    // float32 means float32 here: cuDNN convolutions would otherwise run in TF32 (10-bit mantissa).
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  std::string entry_;
  torch::ScalarType dtype_ = torch::kFloat;
};

TEST_P(EveryMixerOnCuda, ForwardAndEveryGradientMatchTheFloat64Reference) {
  torch::manual_seed(kSeed + 1);
  const auto x64 = torch::randn({kBatch, kSeq, kModel}, torch::kFloat64);
  const auto g64 = torch::randn({kBatch, kSeq, kModel}, torch::kFloat64);
  const MixerRun reference = run_mixer(entry_, torch::kCPU, torch::kFloat64, x64, g64);
  const MixerRun device = run_mixer(entry_, test_device(), dtype_, x64, g64);

  ASSERT_EQ(device.output.sizes(), reference.output.sizes());
  ASSERT_TRUE(torch::isfinite(device.output).all().item<bool>()) << entry_ << ": non-finite output";
  if (dtype_ != torch::kFloat && kDiscreteChoices.count(entry_)) {
    std::printf("%s in %s: shape and finiteness only (%s)\n", entry_.c_str(), c10::toString(dtype_),
                kDiscreteChoices.at(entry_).c_str());
    return;
  }
  // The same code on the CPU in the same precision sets how far this precision may be off; where
  // the CPU cannot run it in this precision, the floor alone bounds the error.
  MixerRun cpu;
  try {
    cpu = run_mixer(entry_, torch::kCPU, dtype_, x64, g64);
  } catch (const std::exception& error) {
    std::printf("%s in %s: no CPU run in this precision (%s); bound = floor\n", entry_.c_str(),
                c10::toString(dtype_), std::string(error.what()).substr(0, 120).c_str());
  }
  auto check = [&](const std::string& what, const torch::Tensor& got, const torch::Tensor& cpu_got,
                   const torch::Tensor& want) {
    ASSERT_TRUE(got.defined()) << entry_ << ": no " << what << " on the device";
    ASSERT_TRUE(want.defined()) << entry_ << ": no " << what << " in the reference";
    const double device_error = relative_error(got, want);
    const double cpu_error = cpu_got.defined() ? relative_error(cpu_got, want) : 0.0;
    const double bound = kFactor * cpu_error + floor_for(dtype_);
    EXPECT_LE(device_error, bound) << entry_ << " " << c10::toString(dtype_) << " " << what << ": device error "
                                   << device_error << ", CPU error in the same precision " << cpu_error;
  };
  check("output", device.output, cpu.output, reference.output);
  for (const auto& [name, gradient] : reference.gradients) {
    const auto found = device.gradients.find(name);
    ASSERT_NE(found, device.gradients.end()) << entry_ << ": no gradient for " << name << " on the device";
    const auto cpu_found = cpu.gradients.find(name);
    check("gradient of " + name, found->second, cpu_found == cpu.gradients.end() ? torch::Tensor() : cpu_found->second,
          gradient);
  }
}

TEST_P(EveryMixerOnCuda, StepDecodingEqualsForwardAndHoldsTheAnalyticState) {
  auto mixer = make_mixer(entry_, test_device(), dtype_);
  if (!mixer->has_step()) GTEST_SKIP() << entry_ << " has no step(); decode re-runs the prefix";
  mixer->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(kSeed + 2);
  const auto x = torch::randn({kBatch, kSeq, kModel}, torch::kFloat64).to(test_device(), dtype_);
  const auto y = mixer->forward(x);
  auto state = mixer->initial_state(kBatch, x.options());
  const auto decoded = testing::decode_all(*mixer, x, state);
  // Two orders of summation of the same function: float32 agrees to ~1e-6, bf16 to its rounding.
  const double tolerance = dtype_ == torch::kFloat ? 1e-4 : 3e-2;
  if (!(dtype_ != torch::kFloat && kDiscreteChoices.count(entry_))) {
    EXPECT_LE(relative_error(decoded, y), tolerance) << entry_ << " " << c10::toString(dtype_);
  }
  EXPECT_EQ(state.position, kSeq);
  if (!kStateExemptions.count(entry_)) {
    const auto element = static_cast<int64_t>(torch::elementSize(dtype_));
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), mixer->cost(CostShape{kBatch, kSeq, element}).state_bytes)
        << entry_ << ": the decode state held on the device differs from cost().state_bytes";
  }
}

std::vector<std::tuple<std::string, torch::ScalarType>> cases() {
  std::vector<std::tuple<std::string, torch::ScalarType>> out;
  for (const auto& name : Registry::global().names())
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) out.emplace_back(name, dtype);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryMixerOnCuda, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, torch::ScalarType>>& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) == torch::kFloat ? "_float32" : "_bf16");
                         });

}  // namespace
}  // namespace mixlab
