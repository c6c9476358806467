// FlatAdamW (harness/flat_adamw.h) against LibTorch's own torch::optim::AdamW, the independent
// reference: the same parameters, gradients and learning rates step for step.

#include "harness/flat_adamw.h"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace mixlab;

namespace MIXLAB_UNITY_ID {

// Named parameters of a few shapes: matrices (decayed) and vectors and scalars (not).
std::vector<std::pair<std::string, torch::Tensor>> make_parameters(torch::Dtype dtype) {
  torch::manual_seed(11);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  int i = 0;
  for (auto shape : {std::vector<int64_t>{5}, {4, 3}, {}, {2, 3, 2}, {7}})
    out.emplace_back("p" + std::to_string(i++), torch::randn(shape, dtype).requires_grad_());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> clone_parameters(
    const std::vector<std::pair<std::string, torch::Tensor>>& parameters) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, p] : parameters) out.emplace_back(name, p.detach().clone().requires_grad_());
  return out;
}

// g_i(step) = a fixed random tensor per parameter and step (the same for both optimisers).
torch::Tensor gradient(const torch::Tensor& p, int64_t step, size_t index) {
  torch::manual_seed(1000 * step + static_cast<int64_t>(index));
  return torch::randn(p.sizes(), p.options().requires_grad(false));
}

const AdamWSettings kSettings{0.9, 0.95, 1e-8, 0.1};


TEST(FlatAdamW, EqualsLibTorchAdamWWithDecayOnMatricesOnly) {
  auto ours = make_parameters(torch::kFloat64);
  auto theirs = clone_parameters(ours);
  FlatAdamW flat(ours, kSettings);

  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : theirs) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options = [&](double lr, double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).betas({kSettings.beta1, kSettings.beta2}).eps(kSettings.eps).weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(1e-2, kSettings.weight_decay));
  groups.emplace_back(no_decay, options(1e-2, 0.0));
  torch::optim::AdamW reference(groups, *options(1e-2, kSettings.weight_decay));

  for (int64_t step = 1; step <= 6; ++step) {
    const double lr = 1e-2 / static_cast<double>(step);  // a schedule: the lr changes every step
    flat.set_learning_rate(lr);
    flat.zero_grad();
    for (auto& group : reference.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    for (size_t i = 0; i < ours.size(); ++i) {
      ours[i].second.mutable_grad().add_(gradient(ours[i].second, step, i));  // in place, as backward does
      theirs[i].second.mutable_grad() = gradient(theirs[i].second, step, i);
    }
    flat.step();
    reference.step();
    for (size_t i = 0; i < ours.size(); ++i)
      ASSERT_TRUE(torch::allclose(ours[i].second, theirs[i].second, 1e-12, 1e-14))
          << ours[i].first << " at step " << step << ": " << (ours[i].second - theirs[i].second).abs().max().item<double>();
  }
  EXPECT_EQ(flat.steps_taken(), 6);
}

// The parameters stay the model's tensor objects: their values and gradients are slices of the
// flat buffers, and backward accumulates into the flat gradient in place.
TEST(FlatAdamW, ParametersAreViewsAndBackwardAccumulatesInPlace) {
  auto parameters = make_parameters(torch::kFloat32);
  const auto before = clone_parameters(parameters);
  FlatAdamW flat(parameters, kSettings);
  EXPECT_EQ(flat.elements(), 5 + 12 + 1 + 12 + 7);
  for (size_t i = 0; i < parameters.size(); ++i)
    EXPECT_TRUE(torch::equal(parameters[i].second, before[i].second)) << "values kept";
  auto loss = [&] {
    torch::Tensor sum = torch::zeros({});
    for (const auto& [name, p] : parameters) sum = sum + (p * p).sum();
    return sum;
  };
  loss().backward();
  loss().backward();  // two backward passes: the gradients add up (2 · 2p)
  for (const auto& [name, p] : parameters) EXPECT_TRUE(torch::allclose(p.grad(), 4 * p.detach())) << name;
  flat.zero_grad();
  for (const auto& [name, p] : parameters) EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0) << name;
  flat.set_learning_rate(0.1);
  loss().backward();
  flat.step();
  for (size_t i = 0; i < parameters.size(); ++i)
    EXPECT_FALSE(torch::equal(parameters[i].second, before[i].second)) << "the step moved " << parameters[i].first;
}

TEST(FlatAdamW, StateByNameRoundTripsAndSnapshotRestores) {
  auto a_parameters = make_parameters(torch::kFloat64);
  auto b_parameters = clone_parameters(a_parameters);
  FlatAdamW a(a_parameters, kSettings), b(b_parameters, kSettings);
  EXPECT_TRUE(a.state_by_name().empty()) << "no state before the first step";
  auto take_step = [](FlatAdamW& optimizer, auto& parameters, int64_t step) {
    optimizer.zero_grad();
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].second.mutable_grad().add_(gradient(parameters[i].second, step, i));
    optimizer.set_learning_rate(1e-2);
    optimizer.step();
  };
  for (int64_t step = 1; step <= 3; ++step) take_step(a, a_parameters, step);
  const auto state = a.state_by_name();
  ASSERT_EQ(state.size(), 3 * a_parameters.size());
  EXPECT_EQ(state.at("optimizer.step.p1").item<int64_t>(), 3);
  EXPECT_EQ(state.at("optimizer.exp_avg.p1").sizes(), a_parameters[1].second.sizes());
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a_parameters.size(); ++i) b_parameters[i].second.copy_(a_parameters[i].second);
  }
  b.load_state_by_name(state);
  EXPECT_EQ(b.steps_taken(), 3);
  const auto saved = a.snapshot();
  take_step(a, a_parameters, 4);
  take_step(b, b_parameters, 4);
  for (size_t i = 0; i < a_parameters.size(); ++i)
    EXPECT_TRUE(torch::equal(a_parameters[i].second, b_parameters[i].second)) << a_parameters[i].first;
  a.restore(saved);
  EXPECT_EQ(a.steps_taken(), 3);
  take_step(a, a_parameters, 4);  // the same step again from the restored state: the same result
  for (size_t i = 0; i < a_parameters.size(); ++i)
    EXPECT_TRUE(torch::equal(a_parameters[i].second, b_parameters[i].second)) << a_parameters[i].first;
}

TEST(FlatAdamW, LoadingABadStateNamesTheEntry) {
  auto parameters = make_parameters(torch::kFloat64);
  FlatAdamW optimizer(parameters, kSettings);
  optimizer.set_learning_rate(1e-3);
  optimizer.step();
  const auto good = optimizer.state_by_name();
  auto expect_error = [&](std::map<std::string, torch::Tensor> state, const std::string& needle) {
    try {
      optimizer.load_state_by_name(state);
      ADD_FAILURE() << "accepted a state with " << needle;
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  auto missing = good;
  missing.erase("optimizer.exp_avg_sq.p3");
  expect_error(missing, "optimizer.exp_avg_sq.p3 is missing");
  auto misshapen = good;
  misshapen["optimizer.exp_avg.p1"] = torch::zeros({3, 4}, torch::kFloat64);
  expect_error(misshapen, "optimizer.exp_avg.p1: shape does not match");
  auto two_counts = good;
  two_counts["optimizer.step.p2"] = torch::tensor(int64_t{7});
  expect_error(two_counts, "one step count for every parameter");
  EXPECT_EQ(optimizer.steps_taken(), 1) << "a rejected state changes nothing";
}

TEST(FlatAdamW, RejectsParametersOfMixedDtypes) {
  std::vector<std::pair<std::string, torch::Tensor>> mixed = {
      {"a", torch::zeros({2}, torch::kFloat32).requires_grad_()}, {"b", torch::zeros({2}, torch::kFloat64).requires_grad_()}};
  EXPECT_THROW(FlatAdamW(mixed, kSettings), std::invalid_argument);
}

}  // namespace
