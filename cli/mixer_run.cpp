// `mixlab mixer run NAME [--set key=value]... --d-model D --n-heads H --seed N
//                        (--input x.safetensors | --random-input B,N) --out y.safetensors
//                        [--weights-in w.safetensors | --weights-out w.safetensors]
//                        [--device cpu|cuda] [--dtype float32|float64|bfloat16|float16]`
//
// Builds one registry entry, seeds LibTorch before building it (so the initial weights are a
// function of the seed), then either overwrites the weights from --weights-in (strict: every
// name, shape and kind of dtype must match) or saves the initial weights to --weights-out, runs
// forward on the tensor `x` ([batch, seq, d_model]) of --input and writes `y` (same shape, the
// chosen dtype) to --out, with the entry, its parameters, d_model, heads, seed and dtype in
// the file's metadata (written from the CPU; the implementation that ran is in it).  --random-input B,N draws x ~ N(0, 1) of shape [B, N, d_model] from
// --seed + 1 instead and writes it into --out beside y.  This is the seam for checking a mixer against an outside implementation:
// feed both the same x and weights, compare the y.
//
// Bad input (unknown entry or --set key, a value of the wrong type, a missing x, x of the wrong
// shape, a malformed safetensors file) prints one line and exits with status 2.

#include "cli/command.h"
#include "cli/set_option.h"
#include "harness/config.h"
#include "harness/device.h"
#include "harness/safetensors.h"
#include "core/implementation.h"
#include "core/registry.h"

#include <iostream>
#include <sstream>

namespace mixlab::cli {
namespace {

struct MixerRunOptions {
  std::string name;
  std::vector<std::string> sets;
  int64_t d_model = 64;
  int64_t heads = 4;
  int64_t seed = 0;
  std::string input, random_input, output, weights_in, weights_out;
  std::string dtype = "float32";
  std::string device = "cpu";
};

std::string shape_text(torch::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

// "key=value" pairs, each value parsed as the entry's declared type for that key.
std::map<std::string, ParamValue> parse_sets(const std::string& name, const std::vector<std::string>& sets) {
  std::map<std::string, ParamValue> given;
  for (const auto& assignment : sets) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--set", assignment, "expected key=value, e.g. window=128");
    const std::string key = assignment.substr(0, eq);
    given[key] = Registry::global().parse(name, key, assignment.substr(eq + 1));
  }
  return given;
}

// --random-input "B,N": x ~ N(0, 1), [B, N, d_model], drawn from seed + 1 (the weights use seed).
torch::Tensor random_input(const MixerRunOptions& options, torch::ScalarType dtype) {
  int64_t batch = 0, seq = 0;
  char comma = 0, rest = 0;
  std::istringstream in(options.random_input);
  if (!(in >> batch >> comma >> seq) || comma != ',' || (in >> rest) || batch < 1 || seq < 1)
    throw ConfigError("--random-input", options.random_input, "expected BATCH,SEQ with positive integers, e.g. 1,128");
  torch::manual_seed(static_cast<uint64_t>(options.seed) + 1);
  return torch::randn({batch, seq, options.d_model}, torch::kFloat64).to(dtype);
}

// The input tensor x: [batch, seq, d_model], floating point, converted to `dtype`.
torch::Tensor read_input(const MixerRunOptions& options, torch::ScalarType dtype) {
  if (!options.random_input.empty()) return random_input(options, dtype);
  if (options.input.empty()) throw ConfigError("mixer run", "", "give --input x.safetensors or --random-input BATCH,SEQ");
  const TensorMap inputs = read_safetensors(options.input);
  auto found = inputs.find("x");
  if (found == inputs.end()) {
    std::vector<std::string> names;
    for (const auto& item : inputs) names.push_back(item.first);
    std::string listed;
    for (size_t i = 0; i < names.size(); ++i) listed += (i ? ", " : "") + names[i];
    throw ConfigError(options.input, "x", "missing: the input must hold a tensor named 'x' of shape "
                                          "[batch, seq, d_model]; found: " +
                                              (listed.empty() ? std::string("(no tensors)") : listed));
  }
  const torch::Tensor& x = found->second;
  if (x.dim() != 3 || x.size(2) != options.d_model)
    throw ConfigError(options.input, "x", "has shape " + shape_text(x.sizes()) + ", expected [batch, seq, " +
                                              std::to_string(options.d_model) + "] (--d-model " +
                                              std::to_string(options.d_model) + ")");
  if (x.size(0) < 1 || x.size(1) < 1)
    throw ConfigError(options.input, "x", "has shape " + shape_text(x.sizes()) + "; batch and seq must be at least 1");
  if (!c10::isFloatingType(x.scalar_type()))
    throw ConfigError(options.input, "x", std::string("has dtype ") + c10::toString(x.scalar_type()) +
                                              "; a floating-point tensor is needed");
  return x.to(dtype);
}

int run_mixer(const MixerRunOptions& options) {
  const Registry& registry = Registry::global();
  const MixerEntry& entry = registry.at(options.name);  // unknown names list the valid ones
  const auto given = parse_sets(options.name, options.sets);
  const MixerParams params = registry.resolve(options.name, given);
  const MixerContext context{options.d_model, options.heads};
  if (entry.validate) entry.validate(context, params);
  const torch::ScalarType dtype = scalar_type_of(options.dtype);
  const Device device{resolve_device_kind(options.device, "--device"), options.dtype};

  if (options.output.empty()) throw ConfigError("mixer run", "", "--out y.safetensors is required");
  // Read before building: fail fast on bad input.
  const torch::Tensor x = read_input(options, dtype).to(device.torch_device());

  torch::manual_seed(static_cast<uint64_t>(options.seed));  // on the CPU: the same weights for every device
  TokenMixerPtr mixer = registry.create(options.name, context, given);
  mixer->to(dtype);
  if (!options.weights_in.empty()) load_module_weights(*mixer, options.weights_in, /*strict=*/true);
  mixer->to(device.torch_device());
  mixer->eval();

  // What produced y, for the record.
  json params_json = json::object();
  for (const auto& [key, value] : params.values())
    std::visit([&](const auto& v) { params_json[key] = v; }, value);
  Metadata metadata = {{"mixer", options.name},
                       {"params", params_json.dump()},
                       {"d_model", std::to_string(options.d_model)},
                       {"heads", std::to_string(options.heads)},
                       {"seed", std::to_string(options.seed)},
                       {"dtype", options.dtype},
                       {"device", device.kind}};
  if (!options.weights_in.empty()) metadata["weights"] = options.weights_in;
  if (!options.weights_out.empty()) save_module_weights(*mixer, options.weights_out, metadata);

  torch::NoGradGuard no_grad;
  ImplementationLog implementations;
  const torch::Tensor y = mixer->forward(x).to(torch::kCPU);  // [batch, seq, d_model]
  metadata["implementation"] = implementations.summary();
  TensorMap written = {{"y", y}};
  if (!options.random_input.empty()) written["x"] = x.to(torch::kCPU);  // the drawn input, for an outside implementation
  write_safetensors(options.output, written, metadata);
  std::cout << "mixer " << options.name << ": x " << shape_text(x.sizes()) << " -> y "
            << shape_text(y.sizes()) << " written to " << options.output
            << (options.random_input.empty() ? "" : " (with x)") << "\n";
  return 0;
}

}  // namespace

// Registered directly rather than through MIXLAB_REGISTER_COMMAND, whose name is an identifier:
// the space makes `run` a subcommand of the `mixer` group (cli/main.cpp).
static const CommandRegistrar mixer_run_command(
    "mixer run", "run one registry entry on x from a safetensors file, write y", [](CLI::App& app) -> Action {
      auto options = std::make_shared<MixerRunOptions>();
      app.add_option("name", options->name, "registry entry (see `mixlab list`)")->required();
      app.add_option("--set", options->sets, "entry parameter key=value (repeatable)");
      app.add_option("--d-model", options->d_model, "model width")->check(CLI::PositiveNumber)->capture_default_str();
      app.add_option("--n-heads", options->heads, "attention heads")->check(CLI::PositiveNumber)->capture_default_str();
      add_hidden_alias(app, "--heads", options->heads);
      app.add_option("--seed", options->seed, "seed for the initial weights")->capture_default_str();
      auto input = app.add_option("--input", options->input, "safetensors file holding x: [batch, seq, d_model]");
      auto random = app.add_option("--random-input", options->random_input,
                                   "draw x ~ N(0, 1) of shape [BATCH, SEQ, d_model] instead (e.g. 1,128); x is written beside y");
      input->excludes(random);
      app.add_option("--out", options->output, "safetensors file to write y into (required)");
      add_hidden_alias(app, "--output", options->output);
      auto in = app.add_option("--weights-in", options->weights_in, "load the entry's weights from this file");
      auto out = app.add_option("--weights-out", options->weights_out, "save the entry's seeded initial weights");
      in->excludes(out);
      app.add_option("--dtype", options->dtype, "compute dtype")
          ->check(CLI::IsMember({"float32", "float64", "bfloat16", "float16"}))
          ->capture_default_str();
      app.add_option("--device", options->device, "where the entry runs (cuda: its kernel where it has one)")
          ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
          ->capture_default_str();
      return [options] { return run_mixer(*options); };
    });

}  // namespace mixlab::cli
