#include "harness/train.h"

#include "harness/checkpoint.h"
#include "harness/model_file.h"
#include "harness/train_log.h"

#include "data/corpus.h"
#include "data/rng.h"
#include "harness/config.h"
#include "harness/run_folder_records.h"
#include "harness/interrupt.h"
#include "harness/json_input.h"
#include "harness/device.h"
#include "harness/distributed.h"
#include "core/compat.h"
#include "core/implementation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <unistd.h>

namespace mixlab {
namespace fs = std::filesystem;

// ============================================================================ the train section
namespace {

void reject_unknown(const json& object, const std::set<std::string>& known, const std::string& file,
                    const std::string& path) {
  for (auto it = object.begin(); it != object.end(); ++it)
    if (!known.count(it.key())) {
      std::string valid;
      for (const auto& key : known) valid += (valid.empty() ? "" : ", ") + key;
      throw ConfigError(file, path + "." + it.key(), "unknown key; valid: " + valid);
    }
}

int64_t read_int(const json& object, const std::string& key, int64_t fallback, int64_t lo, int64_t hi,
                 const std::string& file, const std::string& path) {
  if (!object.contains(key)) return fallback;
  const json& value = object[key];
  // Budgets such as 1e6 may be written as floating-point numbers; accept them when integral.
  if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>() &&
      std::fabs(value.get<double>()) < 9e18)
    return read_int(json{{key, static_cast<int64_t>(value.get<double>())}}, key, fallback, lo, hi, file, path);
  if (!value.is_number_integer()) throw ConfigError(file, path + "." + key, "must be an integer, got " + value.dump());
  const int64_t x = value.get<int64_t>();
  if (x < lo || x > hi)
    throw ConfigError(file, path + "." + key, "is " + std::to_string(x) + ", outside the valid range [" +
                                                  std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double read_real(const json& object, const std::string& key, double fallback, double lo, double hi,
                 const std::string& file, const std::string& path) {
  if (!object.contains(key)) return fallback;
  if (!object[key].is_number()) throw ConfigError(file, path + "." + key, "must be a number, got " + object[key].dump());
  const double x = object[key].get<double>();
  if (!(x >= lo && x <= hi)) {
    std::ostringstream range;
    range << "is " << x << ", outside the valid range [" << lo << ", " << hi << "]";
    throw ConfigError(file, path + "." + key, range.str());
  }
  return x;
}

std::string read_choice(const json& object, const std::string& key, const std::string& fallback,
                        const std::vector<std::string>& choices, const std::string& file, const std::string& path) {
  if (!object.contains(key)) return fallback;
  std::string valid;
  for (const auto& c : choices) valid += (valid.empty() ? "" : ", ") + c;
  if (!object[key].is_string()) throw ConfigError(file, path + "." + key, "must be a string, one of " + valid);
  const std::string value = object[key].get<std::string>();
  if (!choices.empty() && std::find(choices.begin(), choices.end(), value) == choices.end())
    throw ConfigError(file, path + "." + key, "is '" + value + "'; valid: " + valid);
  return value;
}

bool read_bool(const json& object, const std::string& key, bool fallback, const std::string& file,
               const std::string& path) {
  if (!object.contains(key)) return fallback;
  if (!object[key].is_boolean()) throw ConfigError(file, path + "." + key, "must be true or false");
  return object[key].get<bool>();
}

constexpr int64_t kHuge = int64_t{1} << 40;
constexpr int64_t kMaxStepTokens = kHuge;

// train.threads may not exceed the machine's hardware threads (4096 threads on 2 cores hang).
int64_t machine_threads() { return std::max<int64_t>(1, std::thread::hardware_concurrency()); }

// Task fields shared by train.data (synthetic source) and train.eval.tasks[i].
data::TaskSpec read_task_fields(const json& object, data::TaskSpec spec, const std::string& file,
                                const std::string& path) {
  spec.vocab = read_int(object, "vocab", spec.vocab, 0, 1 << 24, file, path);
  spec.num_kv_pairs = read_int(object, "num_kv_pairs", spec.num_kv_pairs, 1, kHuge, file, path);
  spec.power_a = read_real(object, "power_a", spec.power_a, 1e-9, 1.0, file, path);
  spec.random_non_queries = read_bool(object, "random_non_queries", spec.random_non_queries, file, path);
  spec.depth = read_real(object, "depth", spec.depth, -1.0, 1.0, file, path);
  spec.copy_tokens = read_int(object, "copy_tokens", spec.copy_tokens, 1, kHuge, file, path);
  return spec;
}

// Check a task's layout; vocab 0 (= the model's) is checked later, against the model.
void check_task(data::TaskSpec spec, const std::string& file, const std::string& path) {
  if (spec.vocab == 0) spec.vocab = 1 << 16;
  try {
    data::SyntheticTask task(spec);
  } catch (const std::invalid_argument& error) {
    const std::string what = error.what();
    const auto colon = what.find(':');
    throw ConfigError(file, path + "." + what.substr(0, colon), what.substr(colon + 2));
  }
}

const std::vector<std::string> kSources = {"corpus", "mqar", "passkey", "copy", "induction"};

// epochs need a fixed example set at least one optimiser step long; stop_at_accuracy needs a
// synthetic task whose held-out accuracy it watches.
void check_epochs(const TrainConfig& c, const json& train, const std::string& file, const std::string& path) {
  if (c.epochs > 0 && c.train_examples == 0)
    throw ConfigError(file, path + ".epochs", "needs a fixed example set: set train.data.examples (a synthetic task)");
  if (c.train_examples > 0 && c.train_examples < c.batch_size * c.grad_accum)
    throw ConfigError(file, path + ".data.examples", "is " + std::to_string(c.train_examples) +
                                                         ", fewer than one optimiser step's batch_size * grad_accum = " +
                                                         std::to_string(c.batch_size * c.grad_accum));
  if (train.contains("stop_at_accuracy") && c.source == "corpus")
    throw ConfigError(file, path + ".stop_at_accuracy", "needs a synthetic task (data.source mqar, passkey, copy or "
                                                        "induction); the corpus has no accuracy");
}

}  // namespace

TrainConfig parse_train_config(const json& train, const std::string& file, const std::string& path) {
  if (!train.is_object()) throw ConfigError(file, path, "must be an object (see docs/training.md)");
  reject_unknown(train, {"data", "seq_len", "batch_size", "grad_accum", "steps", "tokens", "flop_budget", "epochs",
                         "stop_at_accuracy", "lr",
                         "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "eps", "grad_clip", "seed",
                         "eval", "checkpoint_every", "precision", "threads", "progress", "log_every"},
                 file, path);
  TrainConfig c;
  c.seq_len = read_int(train, "seq_len", c.seq_len, 2, kHuge, file, path);
  c.batch_size = read_int(train, "batch_size", c.batch_size, 1, kHuge, file, path);
  c.grad_accum = read_int(train, "grad_accum", c.grad_accum, 1, 1 << 20, file, path);

  const int budgets =
      train.contains("steps") + train.contains("tokens") + train.contains("flop_budget") + train.contains("epochs");
  if (budgets != 1)
    throw ConfigError(file, path, "give exactly one budget: steps, tokens, flop_budget or epochs (got " +
                                      std::to_string(budgets) + ")");
  c.steps = read_int(train, "steps", 0, 1, kHuge, file, path);
  c.tokens = read_int(train, "tokens", 0, 1, int64_t{1} << 62, file, path);
  // Tokens per optimiser step; every budget divides by it, so it must be a sane int64.
  int64_t step_tokens = 0;
  if (!checked_multiply(c.grad_accum, c.batch_size, step_tokens) || !checked_multiply(step_tokens, c.seq_len, step_tokens) ||
      step_tokens > kMaxStepTokens)
    throw ConfigError(file, path, "grad_accum * batch_size * seq_len = " + std::to_string(c.grad_accum) + " * " +
                                      std::to_string(c.batch_size) + " * " + std::to_string(c.seq_len) +
                                      " tokens per step exceeds the limit of 2^40");
  c.flop_budget = read_real(train, "flop_budget", 0, 1.0, 1e30, file, path);
  c.epochs = read_int(train, "epochs", 0, 1, 1 << 20, file, path);
  c.stop_at_accuracy = read_real(train, "stop_at_accuracy", 0, 1e-9, 1.0, file, path);

  c.lr = read_real(train, "lr", c.lr, 0.0, 10.0, file, path);
  c.min_lr = read_real(train, "min_lr", std::min(c.min_lr, c.lr), 0.0, c.lr, file, path);
  c.warmup_steps = read_int(train, "warmup_steps", c.warmup_steps, 0, kHuge, file, path);
  c.weight_decay = read_real(train, "weight_decay", c.weight_decay, 0.0, 10.0, file, path);
  c.beta1 = read_real(train, "beta1", c.beta1, 0.0, 0.999999, file, path);
  c.beta2 = read_real(train, "beta2", c.beta2, 0.0, 0.999999, file, path);
  c.eps = read_real(train, "eps", c.eps, 1e-30, 1.0, file, path);
  c.grad_clip = read_real(train, "grad_clip", c.grad_clip, 0.0, 1e9, file, path);
  c.seed = static_cast<uint64_t>(read_int(train, "seed", 0, 0, int64_t{1} << 62, file, path));
  c.checkpoint_every = read_int(train, "checkpoint_every", 0, 0, kHuge, file, path);
  c.precision = read_choice(train, "precision", c.precision, {"auto", "float32", "bfloat16"}, file, path);
  c.threads = read_int(train, "threads", 0, 0, machine_threads(), file, path);
  c.progress = read_bool(train, "progress", true, file, path);
  c.log_every = read_int(train, "log_every", 0, 0, kHuge, file, path);

  const json data = train.value("data", json::object());
  const std::string data_path = path + ".data";
  if (!data.is_object()) throw ConfigError(file, data_path, "must be an object, e.g. {\"source\": \"corpus\"}");
  reject_unknown(data, {"source", "tokenizer", "bpe_vocab", "corpus_dir", "vocab", "num_kv_pairs", "power_a",
                        "random_non_queries", "depth", "copy_tokens", "examples"},
                 file, data_path);
  c.source = read_choice(data, "source", c.source, kSources, file, data_path);
  if (c.source == "corpus") {
    for (const char* key : {"vocab", "num_kv_pairs", "power_a", "random_non_queries", "depth", "copy_tokens", "examples"})
      if (data.contains(key))
        throw ConfigError(file, data_path + "." + key, "is a synthetic-task field; source is 'corpus'");
    c.tokenizer = read_choice(data, "tokenizer", c.tokenizer, {"byte", "bpe"}, file, data_path);
    c.bpe_vocab = read_int(data, "bpe_vocab", c.bpe_vocab, 260, 65535, file, data_path);
    if (data.contains("corpus_dir")) c.corpus_dir = read_choice(data, "corpus_dir", "", {}, file, data_path);
  } else {
    for (const char* key : {"tokenizer", "bpe_vocab", "corpus_dir"})
      if (data.contains(key)) throw ConfigError(file, data_path + "." + key, "is a corpus field; source is '" + c.source + "'");
    data::TaskSpec spec;
    spec.task = c.source;
    spec.vocab = 0;
    spec.seq_len = c.seq_len;
    c.task = read_task_fields(data, spec, file, data_path);
    check_task(c.task, file, data_path);
    c.train_examples = read_int(data, "examples", 0, 1, kHuge, file, data_path);
  }
  check_epochs(c, train, file, path);

  const json eval = train.value("eval", json::object());
  const std::string eval_path = path + ".eval";
  if (!eval.is_object()) throw ConfigError(file, eval_path, "must be an object");
  reject_unknown(eval, {"every", "batches", "seq_len", "position_buckets", "examples", "tasks"}, file, eval_path);
  // With epochs the held-out set is evaluated at the end of every epoch unless told otherwise.
  c.eval_every = read_int(eval, "every", steps_per_epoch(c), 0, kHuge, file, eval_path);
  c.eval_batches = read_int(eval, "batches", c.eval_batches, 1, kHuge, file, eval_path);
  c.eval_seq_len = read_int(eval, "seq_len", 0, 0, kHuge, file, eval_path);
  c.position_buckets = read_int(eval, "position_buckets", c.position_buckets, 1, 1 << 20, file, eval_path);
  const int64_t examples = read_int(eval, "examples", 256, 1, kHuge, file, eval_path);
  if (c.source != "corpus") c.eval_tasks.push_back({c.task, examples});
  if (eval.contains("tasks")) {
    if (!eval["tasks"].is_array()) throw ConfigError(file, eval_path + ".tasks", "must be a list of task objects");
    for (size_t i = 0; i < eval["tasks"].size(); ++i) {
      const json& item = eval["tasks"][i];
      const std::string item_path = eval_path + ".tasks[" + std::to_string(i) + "]";
      if (!item.is_object()) throw ConfigError(file, item_path, "must be an object, e.g. {\"task\": \"mqar\"}");
      reject_unknown(item, {"task", "seq_len", "examples", "vocab", "num_kv_pairs", "power_a", "random_non_queries",
                            "depth", "copy_tokens"},
                     file, item_path);
      data::TaskSpec spec;
      spec.task = read_choice(item, "task", "", data::task_names(), file, item_path);
      if (spec.task.empty()) throw ConfigError(file, item_path + ".task", "is missing; valid: mqar, passkey, copy, induction");
      spec.vocab = 0;
      spec.seq_len = read_int(item, "seq_len", c.seq_len, 4, kHuge, file, item_path);
      spec = read_task_fields(item, spec, file, item_path);
      check_task(spec, file, item_path);
      c.eval_tasks.push_back({spec, read_int(item, "examples", examples, 1, kHuge, file, item_path)});
    }
  }
  return c;
}

// ============================================================================ budget, schedule
double training_step_flops(const TrainConfig& config, const LanguageModelImpl& model) {
  CostShape shape;
  shape.batch = config.batch_size * config.grad_accum;
  shape.seq_len = config.seq_len;
  return 3.0 * model.cost(shape).flops;
}

int64_t steps_per_epoch(const TrainConfig& config) {
  return config.train_examples / (config.grad_accum * config.batch_size);
}

namespace {
// One permutation is kept per thread: a run asks for the same epoch's order step after step.
const std::vector<int64_t>& cached_epoch_order(const TrainConfig& config, int64_t epoch) {
  thread_local std::tuple<uint64_t, int64_t, int64_t> cached_key{0, -1, -1};
  thread_local std::vector<int64_t> cached;
  const std::tuple<uint64_t, int64_t, int64_t> key{config.seed, config.train_examples, epoch};
  if (key != cached_key) {
    cached.resize(config.train_examples);
    for (int64_t i = 0; i < config.train_examples; ++i) cached[i] = i;
    data::SplitMix64 rng(data::mix_seed({config.seed, 0xE90C5ull, static_cast<uint64_t>(epoch)}));
    rng.partial_shuffle(cached, cached.size());
    cached_key = key;
  }
  return cached;
}
}  // namespace

std::vector<int64_t> epoch_order(const TrainConfig& config, int64_t epoch) { return cached_epoch_order(config, epoch); }

std::vector<int64_t> fixed_set_indices(const TrainConfig& config, int64_t step, int64_t micro) {
  const int64_t per_epoch = steps_per_epoch(config) * config.grad_accum * config.batch_size;
  const int64_t first = ((step - 1) * config.grad_accum + micro) * config.batch_size;
  std::vector<int64_t> indices(config.batch_size);
  for (int64_t b = 0; b < config.batch_size; ++b) {
    const int64_t r = first + b;
    indices[b] = cached_epoch_order(config, r / per_epoch)[r % per_epoch];
  }
  return indices;
}

int64_t budget_steps(const TrainConfig& config, const LanguageModelImpl& model) {
  if (config.steps > 0) return config.steps;
  if (config.epochs > 0) return config.epochs * steps_per_epoch(config);
  if (config.tokens > 0) return config.tokens / (config.grad_accum * config.batch_size * config.seq_len);
  return static_cast<int64_t>(std::floor(config.flop_budget / training_step_flops(config, model)));
}

double learning_rate(const TrainConfig& c, int64_t step, int64_t total_steps) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps)
    return c.lr * static_cast<double>(step) / static_cast<double>(c.warmup_steps);
  const int64_t decay_steps = total_steps - c.warmup_steps;
  if (decay_steps <= 0) return c.lr;
  const double progress = static_cast<double>(step - c.warmup_steps) / static_cast<double>(decay_steps);
  return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + std::cos(M_PI * std::min(progress, 1.0)));
}

// ============================================================================ loss and trainer
// The head runs only where a target is asked: the mean over those positions equals cross entropy
// with ignore_index over every position, and a synthetic task asks few (MQAR: K of L), so the
// [B·L, vocab] logits, which dominate the step for small models, shrink to [answers, vocab].
torch::Tensor language_model_loss(LanguageModel& model, const data::Batch& batch) {
  auto hidden = model->hidden_states(batch.inputs);              // [B, L, d]
  auto flat = hidden.reshape({-1, hidden.size(-1)});             // [B·L, d]
  auto targets = batch.targets.reshape({-1}).to(flat.device());  // [B·L]
  const auto asked = targets.ne(data::kIgnore);
  if (asked.sum().item<int64_t>() < targets.numel()) {
    const auto rows = asked.nonzero().squeeze(1);                // [M]
    flat = flat.index_select(0, rows);                            // [M, d]
    targets = targets.index_select(0, rows);                      // [M]
  }
  auto logits = model->logits(flat);                             // [M, V]
  auto loss = torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32), targets,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(data::kIgnore));
  auto auxiliary = model->auxiliary_loss();
  return loss + auxiliary.to(loss.device(), torch::kFloat32);
}

namespace {
data::Batch to_device(const data::Batch& batch, const torch::Device& device) {
  return {batch.inputs.to(device), batch.targets.to(device), batch.mask.to(device)};
}
bool use_autocast(const TrainConfig& config, const torch::Device& device) {
  if (config.precision == "bfloat16" && !device.is_cuda())
    throw std::runtime_error("train.precision 'bfloat16' needs a CUDA device (the CPU trains in float32)");
  return device.is_cuda() && config.precision != "float32";
}
}  // namespace

Trainer::Trainer(LanguageModel model, const TrainConfig& config, torch::Device device, int64_t total_steps)
    : model_(std::move(model)), config_(config), device_(device), total_steps_(total_steps),
      autocast_(use_autocast(config, device)) {
  model_->to(device_);
  // Weight decay on matrices only: embeddings and projections decay; norms' gains, biases and
  // scalars do not.
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& parameter : model_->parameters()) (parameter.dim() >= 2 ? decay : no_decay).push_back(parameter);
  auto options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.lr)
                                                            .betas({config.beta1, config.beta2})
                                                            .eps(config.eps)
                                                            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(config.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  optimizer_ = std::make_unique<torch::optim::AdamW>(groups, *options(config.weight_decay));
}

double Trainer::step(const std::vector<data::Batch>& micro_batches, int64_t step) {
  model_->train();
  optimizer_->zero_grad();
  const double lr = learning_rate(config_, step, total_steps_);
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  // The loss is read once, after the optimiser step is queued: a read per micro-batch would
  // stop the host until that backward pass ends, leaving the GPU idle while the next kernels
  // are launched.
  torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  ImplementationLog implementations;
  for (const auto& micro : micro_batches) {
    torch::Tensor loss;
    {
      compat::CudaAutocast autocast(autocast_);
      loss = language_model_loss(model_, to_device(micro, device_)) / static_cast<double>(micro_batches.size());
    }
    if (reducer_) reducer_->prepare(/*last_micro_batch=*/&micro == &micro_batches.back());
    loss.backward();
    total += loss.detach().to(torch::kFloat64);
  }
  if (reducer_) reducer_->finish();
  if (config_.grad_clip > 0) clip_gradient_norm(model_->parameters(), config_.grad_clip);
  optimizer_->step();
  implementation_ = implementations.summary();
  return total.item<double>();
}

void clip_gradient_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : parameters)
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      norms.push_back(p.grad().norm(2).to(torch::kFloat32));
    }
  if (grads.empty()) return;
  const torch::Tensor total = torch::stack(norms).norm(2);  // ‖g‖₂ over every parameter
  const torch::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
}

// ============================================================================ data streams
namespace {

// Windows of seq_len + 1 tokens from a token split: inputs the first seq_len, targets the next.
data::Batch corpus_windows(const data::TokenSplit& split, const std::vector<int64_t>& starts, int64_t seq_len) {
  std::vector<torch::Tensor> rows;
  rows.reserve(starts.size());
  for (int64_t start : starts) rows.push_back(split.tokens.narrow(0, start, seq_len + 1));
  auto windows = torch::stack(rows).to(torch::kInt64);  // [B, L+1]
  auto targets = windows.narrow(1, 1, seq_len).contiguous();
  return {windows.narrow(1, 0, seq_len).contiguous(), targets, torch::ones_like(targets, torch::kBool)};
}

class TrainingStream {
 public:
  virtual ~TrainingStream() = default;
  // Micro-batch `micro` of optimiser step `step`: a function of (seed, step, micro) alone.
  virtual data::Batch batch(int64_t step, int64_t micro) const = 0;
};

class CorpusStream : public TrainingStream {
 public:
  CorpusStream(const data::TokenSplit& split, const TrainConfig& c) : split_(split), c_(c) {
    if (split.size() < c.seq_len + 2)
      throw std::runtime_error("the training split has " + std::to_string(split.size()) +
                               " tokens, too few for train.seq_len " + std::to_string(c.seq_len));
  }
  data::Batch batch(int64_t step, int64_t micro) const override {
    data::SplitMix64 rng(data::mix_seed({c_.seed, 0xC0A9005ull, static_cast<uint64_t>(step), static_cast<uint64_t>(micro)}));
    std::vector<int64_t> starts(c_.batch_size);
    for (auto& start : starts) start = static_cast<int64_t>(rng.below(split_.size() - c_.seq_len - 1));
    return corpus_windows(split_, starts, c_.seq_len);
  }

 private:
  const data::TokenSplit& split_;
  TrainConfig c_;
};

class TaskStream : public TrainingStream {
 public:
  TaskStream(data::TaskSpec spec, const TrainConfig& c) : task_(spec), c_(c) {}
  data::Batch batch(int64_t step, int64_t micro) const override {  // split 0: an endless stream of fresh examples
    const int64_t first = ((step - 1) * c_.grad_accum + micro) * c_.batch_size;
    return task_.batch(c_.seed, /*split=*/0, first, c_.batch_size);
  }

 private:
  data::SyntheticTask task_;
  TrainConfig c_;
};

// The fixed set is generated once (examples in parallel) and kept as int32 rows, [N, L] inputs
// and targets; a batch gathers its rows (fixed_set_indices).  Generating 100k MQAR examples of
// length 512 every epoch would cost the CPU more than a small model's epoch costs the GPU.
class FixedSetStream : public TrainingStream {
 public:
  FixedSetStream(const data::TaskSpec& spec, const TrainConfig& c) : c_(c) {
    const data::SyntheticTask task(spec);
    const int64_t N = c.train_examples, L = spec.seq_len;
    inputs_ = torch::empty({N, L}, torch::kInt32);
    targets_ = torch::empty({N, L}, torch::kInt32);
    auto* in = inputs_.data_ptr<int32_t>();
    auto* out = targets_.data_ptr<int32_t>();
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto ex = task.example(c.seed, /*split=*/0, i);
        std::copy(ex.inputs.begin(), ex.inputs.end(), in + i * L);
        std::copy(ex.targets.begin(), ex.targets.end(), out + i * L);
      }
    });
  }
  data::Batch batch(int64_t step, int64_t micro) const override {
    const auto rows = torch::tensor(fixed_set_indices(c_, step, micro), torch::kInt64);
    auto targets = targets_.index_select(0, rows).to(torch::kInt64);
    return {inputs_.index_select(0, rows).to(torch::kInt64), targets, targets.ne(data::kIgnore)};
  }

 private:
  TrainConfig c_;
  torch::Tensor inputs_, targets_;  // [N, L] int32
};

// ============================================================================ evaluation
struct Evaluation {
  std::string task, metric;
  double value;
  std::optional<int64_t> seq_len, bucket;
  std::string extra_json = "{}";
};

std::string task_settings_json(const data::TaskSpec& spec) {
  json extra{{"vocab", spec.vocab}};
  if (spec.task == "mqar") {
    extra["num_kv_pairs"] = spec.num_kv_pairs;
    extra["power_a"] = spec.power_a;
    extra["random_non_queries"] = spec.random_non_queries;
  } else if (spec.task == "passkey") {
    extra["depth"] = spec.depth;
  } else if (spec.task == "copy") {
    extra["copy_tokens"] = spec.copy_tokens;
  }
  return extra.dump();
}

class Evaluator {
 public:
  Evaluator(const TrainConfig& c, const data::TokenizedCorpus* corpus, std::vector<EvalTaskConfig> tasks,
            torch::Device device, bool autocast)
      : c_(c), corpus_(corpus), tasks_(std::move(tasks)), device_(device), autocast_(autocast) {
    if (corpus_) {
      const int64_t L = c.eval_seq_len > 0 ? c.eval_seq_len : c.seq_len;
      const int64_t n = c.eval_batches * c.batch_size, span = corpus_->validation.size() - L - 1;
      if (span < 0)
        throw std::runtime_error("the validation split has " + std::to_string(corpus_->validation.size()) +
                                 " tokens, too few for windows of " + std::to_string(L));
      for (int64_t i = 0; i < n; ++i) eval_starts_.push_back(n == 1 ? 0 : i * span / (n - 1));  // evenly spaced
      eval_seq_len_ = L;
    }
  }

  std::vector<Evaluation> run(LanguageModel& model) {
    torch::NoGradGuard no_grad;
    model->eval();
    std::vector<Evaluation> out;
    if (corpus_) text(model, out);
    for (const auto& task : tasks_) synthetic(model, task, out);
    model->train();
    return out;
  }

 private:
  // Validation loss (nats/token), bits per byte = loss / ln 2 / (bytes per token), perplexity
  // = e^loss, and the mean loss of each position bucket [b·L/n_buckets, (b+1)·L/n_buckets).
  void text(LanguageModel& model, std::vector<Evaluation>& out) {
    const int64_t L = eval_seq_len_;
    std::vector<double> position_loss(L, 0.0);
    for (size_t first = 0; first < eval_starts_.size(); first += c_.batch_size) {
      std::vector<int64_t> starts(eval_starts_.begin() + first,
                                  eval_starts_.begin() + std::min(eval_starts_.size(), first + c_.batch_size));
      auto batch = to_device(corpus_windows(corpus_->validation, starts, L), device_);
      torch::Tensor logits;
      {
        compat::CudaAutocast autocast(autocast_);
        logits = model->forward(batch.inputs);
      }
      auto losses = torch::nn::functional::cross_entropy(
          logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), batch.targets.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
      auto per_position = losses.reshape({-1, L}).to(torch::kFloat64).sum(0).cpu();
      auto* p = per_position.data_ptr<double>();
      for (int64_t t = 0; t < L; ++t) position_loss[t] += p[t];
    }
    const double windows = static_cast<double>(eval_starts_.size());
    double total = 0;
    for (double v : position_loss) total += v;
    const double loss = total / (windows * L);
    const double bits_per_byte = loss / std::log(2.0) / corpus_->validation_bytes_per_token();
    const std::string extra = json{{"tokenizer", corpus_->tokenizer},
                                   {"windows", eval_starts_.size()},
                                   {"state_bytes", inference_state_bytes(model, L)}}.dump();
    out.push_back({"text", "loss", loss, L, std::nullopt, extra});
    out.push_back({"text", "bits_per_byte", bits_per_byte, L, std::nullopt, extra});
    out.push_back({"text", "perplexity", std::exp(loss), L, std::nullopt, extra});
    const int64_t width = (L + c_.position_buckets - 1) / c_.position_buckets;
    for (int64_t start = 0; start < L; start += width) {
      double sum = 0;
      const int64_t end = std::min(L, start + width);
      for (int64_t t = start; t < end; ++t) sum += position_loss[t];
      out.push_back({"text", "loss_bucket", sum / (windows * (end - start)), L, start, extra});
    }
  }

  // Accuracy (Zoology) and masked loss on the task's held-out split.
  // The held-out split of a task, batch by batch; made once and kept (it is fixed).
  const std::vector<data::Batch>& held_out(const EvalTaskConfig& config) {
    auto& batches = held_out_[&config];
    if (batches.empty()) {
      data::SyntheticTask task(config.spec);
      for (int64_t first = 0; first < config.examples; first += c_.batch_size)
        batches.push_back(task.batch(c_.seed, /*split=*/1, first, std::min(c_.batch_size, config.examples - first)));
    }
    return batches;
  }

  void synthetic(LanguageModel& model, const EvalTaskConfig& config, std::vector<Evaluation>& out) {
    double accuracy_sum = 0, loss_sum = 0;
    int64_t examples = 0, batches = 0;
    for (const auto& batch : held_out(config)) {
      const int64_t count = batch.inputs.size(0);
      auto on_device = to_device(batch, device_);
      torch::Tensor logits;
      {
        compat::CudaAutocast autocast(autocast_);
        logits = model->forward(on_device.inputs);
      }
      accuracy_sum += data::task_accuracy(logits, on_device) * static_cast<double>(count);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), on_device.targets.reshape({-1}),
                      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(data::kIgnore))
                      .item<double>();
      examples += count;
      ++batches;
    }
    json settings = json::parse(task_settings_json(config.spec));
    settings["state_bytes"] = inference_state_bytes(model, config.spec.seq_len);
    const std::string extra = settings.dump();
    out.push_back({config.spec.task, "accuracy", accuracy_sum / examples, config.spec.seq_len, std::nullopt, extra});
    out.push_back({config.spec.task, "loss", loss_sum / batches, config.spec.seq_len, std::nullopt, extra});
  }

  // Bytes of inference state one sequence holds after seq_len tokens (cost().state_bytes: KV
  // caches, SSM states, checkpoint caches), in the precision the evaluation ran in.
  double inference_state_bytes(LanguageModel& model, int64_t seq_len) const {
    CostShape shape;
    shape.batch = 1;
    shape.seq_len = seq_len;
    shape.bytes_per_element = autocast_ ? 2 : 4;
    return model->cost(shape).state_bytes;
  }

  TrainConfig c_;
  const data::TokenizedCorpus* corpus_;
  std::vector<EvalTaskConfig> tasks_;
  torch::Device device_;
  bool autocast_;
  std::vector<int64_t> eval_starts_;
  int64_t eval_seq_len_ = 0;
  std::map<const EvalTaskConfig*, std::vector<data::Batch>> held_out_;
};

// ============================================================================ checkpoints
struct Checkpoint {
  int64_t step = 0;
  double elapsed_s = 0;
};

const char* kCheckpointFile = "checkpoint.safetensors";

// Weights, optimiser state by parameter name, step, elapsed time and the CPU generator's state
// in one safetensors file (harness/checkpoint.h), written beside the old one and renamed over it.
void save_checkpoint(const fs::path& run_dir, Trainer& trainer, const Checkpoint& state, const std::string& fingerprint,
                     const json& model_json) {
  save_training_checkpoint((run_dir / kCheckpointFile).string(), *trainer.model(), trainer.optimizer(),
                           {state.step, state.elapsed_s, fingerprint}, model_json);
}

// Loads the checkpoint when it belongs to this configuration; a stale or unreadable one is
// removed and the run restarts cleanly.
std::optional<Checkpoint> load_checkpoint(const fs::path& run_dir, Trainer& trainer, const std::string& fingerprint) {
  const fs::path file = run_dir / kCheckpointFile;
  if (!fs::exists(file)) return std::nullopt;
  try {
    const auto stored = read_checkpoint_state(file.string());
    if (stored->fingerprint != fingerprint) throw std::runtime_error("written for another configuration");
    const CheckpointState loaded = load_training_checkpoint(file.string(), *trainer.model(), trainer.optimizer());
    return Checkpoint{loaded.step, loaded.elapsed_s};
  } catch (const std::exception& error) {
    const std::string what = error.what();  // a c10::Error carries a backtrace after its first line
    std::cerr << "mixlab train: ignoring checkpoint " << file << " (" << what.substr(0, what.find('\n'))
              << "); starting afresh\n";
    fs::remove(file);
    return std::nullopt;
  }
}

// Data-parallel resumption: rank 0 decides (and removes a stale checkpoint); the other ranks
// then read the same file, so every rank continues from the same weights and optimiser state.
std::optional<Checkpoint> load_checkpoint_on_every_rank(distributed::Job& job, const fs::path& run_dir, Trainer& trainer,
                                                        const std::string& fingerprint, torch::Device device) {
  std::optional<Checkpoint> loaded;
  if (job.is_main()) loaded = load_checkpoint(run_dir, trainer, fingerprint);
  const int64_t step = job.value_of_main(loaded ? loaded->step : 0, device);
  if (!job.is_main() && step > 0) {
    const CheckpointState read = load_training_checkpoint((run_dir / kCheckpointFile).string(), *trainer.model(),
                                                          trainer.optimizer());
    if (read.step != step)
      throw std::runtime_error("rank " + std::to_string(job.rank()) + " read step " + std::to_string(read.step) + " from " +
                               (run_dir / kCheckpointFile).string() + " but rank 0 resumes from step " +
                               std::to_string(step) + " (every rank must see rank 0's run folder)");
    loaded = Checkpoint{read.step, read.elapsed_s};
  }
  return loaded;
}

// A run that stopped early (train.stop_at_accuracy) leaves early_stop.json beside its final
// checkpoint, {"step", "accuracy", "fingerprint"}, so that a rerun resuming from that checkpoint
// does not train past it.
const char* kEarlyStopFile = "early_stop.json";

void write_early_stop(const fs::path& run_dir, int64_t step, double accuracy, const std::string& fingerprint) {
  const fs::path file = run_dir / kEarlyStopFile, partial = run_dir / (std::string(kEarlyStopFile) + ".partial");
  {
    std::ofstream out(partial);
    out << json{{"step", step}, {"accuracy", accuracy}, {"fingerprint", fingerprint}}.dump() << "\n";
    if (!out) throw std::runtime_error("cannot write " + partial.string());
  }
  fs::rename(partial, file);
}

// The step of this configuration's early stop, when the run folder records one.
std::optional<int64_t> read_early_stop(const fs::path& run_dir, const std::string& fingerprint) {
  std::ifstream in(run_dir / kEarlyStopFile);
  if (!in) return std::nullopt;
  const json marker = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!marker.is_object() || marker.value("fingerprint", "") != fingerprint || !marker.contains("step") ||
      !marker["step"].is_number_integer())
    return std::nullopt;
  return marker["step"].get<int64_t>();
}

}  // namespace

// ============================================================================ the run
TrainSummary run_training(const json& point_config, const std::string& run_dir, const std::string& device_name,
                          TrainingRecords& records) {
  if (!point_config.contains("train")) throw ConfigError("point", "train", "is missing");
  const TrainConfig c = parse_train_config(point_config["train"], "point", "train");
  const ModelConfig model_config = parse_model_config(point_config.at("model"), "point", "model");
  // train.threads applies to this run only: the sweep's next point gets the setting back.
  const ScopedThreadCount thread_count(c.threads);
  const torch::Device device(device_name);

  // Data first: the model's vocabulary must cover it.
  std::unique_ptr<data::TokenizedCorpus> corpus;
  std::unique_ptr<TrainingStream> stream;
  std::vector<EvalTaskConfig> eval_tasks = c.eval_tasks;
  for (auto& task : eval_tasks) {
    if (task.spec.vocab == 0) task.spec.vocab = model_config.vocab_size;
    if (task.spec.vocab > model_config.vocab_size)
      throw ConfigError("point", "train", "task " + task.spec.task + " uses vocab " + std::to_string(task.spec.vocab) +
                                              " > model.vocab_size " + std::to_string(model_config.vocab_size));
    try {
      data::SyntheticTask check(task.spec);
    } catch (const std::invalid_argument& error) {
      throw ConfigError("point", "train." + task.spec.task, error.what());
    }
  }
  if (c.source == "corpus") {
    const std::string dir = c.corpus_dir.empty() ? data::default_corpus_dir() : c.corpus_dir;
    if (!fs::is_directory(fs::path(dir) / "docs"))
      throw std::runtime_error("no corpus in " + dir + "/docs: build it with data/fetch_corpus.sh (or set "
                               "train.data.corpus_dir to a folder whose docs/ holds *.txt files)");
    corpus = std::make_unique<data::TokenizedCorpus>(data::prepare_corpus(dir, c.tokenizer, c.bpe_vocab));
    if (corpus->vocab_size > model_config.vocab_size)
      throw ConfigError("point", "model.vocab_size", "is " + std::to_string(model_config.vocab_size) + " but the " +
                                                         corpus->tokenizer + " tokenizer has " +
                                                         std::to_string(corpus->vocab_size) + " tokens");
    stream = std::make_unique<CorpusStream>(corpus->train, c);
  } else if (c.train_examples > 0) {
    stream = std::make_unique<FixedSetStream>(eval_tasks.front().spec, c);
  } else {
    stream = std::make_unique<TaskStream>(eval_tasks.front().spec, c);
  }

  torch::manual_seed(c.seed);
  LanguageModel model(model_config);
  load_initial_weights(*model, point_config.at("model"));  // --init-from
  const int64_t total_steps = budget_steps(c, *model);
  if (total_steps < 1)
    throw ConfigError("point", "train", "the budget allows no optimiser step for this model (one step costs " +
                                            std::to_string(training_step_flops(c, *model)) + " FLOPs)");
  const double step_flops = training_step_flops(c, *model);
  const int64_t step_tokens = c.grad_accum * c.batch_size * c.seq_len;

  // Data parallel (harness/distributed.h; a world of one without launcher variables): rank 0's
  // initial weights everywhere, gradients averaged across ranks, rank 0 alone writes.  The job
  // picks each rank's CUDA device before the model moves there.
  distributed::Job& job = distributed::Job::get(device_name);
  Trainer trainer(model, c, device, total_steps);
  job.broadcast_from_main(*trainer.model());
  distributed::GradientReducer reducer(job, trainer.model()->parameters());
  if (job.world_size() > 1) trainer.synchronise_gradients(&reducer);
  Evaluator evaluator(c, corpus.get(), eval_tasks, device, trainer.autocast());
  const std::string fingerprint =
      std::to_string(data::fnv1a64(json{{"model", point_config.at("model")}, {"train", point_config.at("train")}}.dump()));

  // Rows go to the database and the run folder's record file; resuming from step k writes the
  // folder's rows up to k to the database again, so a new or incomplete database is made whole.
  RunFolderRecords folder_on_main(run_dir, records);
  distributed::DiscardedRecords discarded;
  TrainingRecords& folder = job.is_main() ? static_cast<TrainingRecords&>(folder_on_main) : discarded;
  if (job.is_main() && fs::exists(fs::path(run_dir) / kCheckpointFile) && !folder_on_main.exists()) {
    std::cerr << "mixlab train: " << run_dir << " holds a checkpoint but no " << RunFolderRecords::kFileName
              << " (its rows cannot be restored); training afresh\n";
    fs::remove(fs::path(run_dir) / kCheckpointFile);
  }
  TrainSummary summary;
  Checkpoint state;
  const bool terminal = ::isatty(STDERR_FILENO);
  TrainLog log(stderr, terminal, total_steps, step_tokens, c.log_every);
  if (auto loaded = load_checkpoint_on_every_rank(job, run_dir, trainer, fingerprint, device)) {
    state = *loaded;
    if (job.is_main()) log.resumed(state.step, (fs::path(run_dir) / kCheckpointFile).string());
  }
  summary.resumed_from_step = state.step;
  folder.discard_after(state.step);
  // A run that stopped early at its checkpoint's step is finished.
  int64_t last_step = total_steps;
  if (const auto stopped = read_early_stop(run_dir, fingerprint); stopped && *stopped == state.step && state.step > 0)
    last_step = summary.stopped_at_step = state.step;
  else if (job.is_main())
    fs::remove(fs::path(run_dir) / kEarlyStopFile);

  const int64_t checkpoint_every = c.checkpoint_every > 0 ? c.checkpoint_every : c.eval_every;
  const bool log_steps = c.progress || !terminal;  // train.progress switches the terminal line off
  using clock = std::chrono::steady_clock;
  const auto session_start = clock::now();
  const double elapsed_before = state.elapsed_s;

  // Records the evaluations at `step`; returns the accuracy on the training task's own held-out
  // set (the first task evaluated; NaN when training on the corpus).
  auto log_evaluations = [&](int64_t step) {
    std::map<std::string, double> headline;
    double training_task_accuracy = std::nan("");
    for (const auto& e : evaluator.run(trainer.model())) {
      folder.log_evaluation(step, e.task, e.metric, e.value, e.seq_len, e.bucket, e.extra_json);
      if (!e.bucket) headline[e.task + "/" + e.metric] = e.value;
      if (e.task == c.source && e.metric == "accuracy" && std::isnan(training_task_accuracy))
        training_task_accuracy = e.value;
    }
    for (const auto& [name, value] : headline) summary.final[name] = value;
    log.evaluation(step, headline);
    return training_task_accuracy;
  };

  for (int64_t step = state.step + 1; step <= last_step; ++step) {
    throw_if_interrupted();  // a sweep's Ctrl-C: the last checkpoint is where a rerun resumes
    const auto step_start = clock::now();
    std::vector<data::Batch> micro;
    for (int64_t m = 0; m < c.grad_accum; ++m) micro.push_back(job.shard(stream->batch(step, m)));
    const double loss = job.mean_over_ranks(trainer.step(micro, step), device);
    if (!std::isfinite(loss))
      throw std::runtime_error("training loss is " + std::to_string(loss) + " at step " + std::to_string(step));
    const double step_seconds = std::chrono::duration<double>(clock::now() - step_start).count();
    const double session_seconds = std::chrono::duration<double>(clock::now() - session_start).count();
    state = {step, elapsed_before + session_seconds};
    folder.set_implementation(trainer.implementation());
    folder.log_step(step, step * step_tokens, step * step_flops, loss, learning_rate(c, step, total_steps),
                     step_tokens / std::max(step_seconds, 1e-9), state.elapsed_s);
    summary.final_train_loss = loss;

    if (log_steps && job.is_main()) log.step(step, loss, learning_rate(c, step, total_steps), session_seconds, state.elapsed_s);
    // Rank 0 evaluates and checkpoints; an early stop is rank 0's decision, broadcast at each
    // evaluation step so that every rank leaves the loop at the same step.
    const bool evaluate = (c.eval_every > 0 && step % c.eval_every == 0) || step == total_steps;
    const double accuracy = evaluate && job.is_main() ? log_evaluations(step) : std::nan("");
    bool stop = c.stop_at_accuracy > 0 && step < total_steps && accuracy >= c.stop_at_accuracy;
    if (evaluate && c.stop_at_accuracy > 0 && job.world_size() > 1) stop = job.value_of_main(stop ? 1 : 0, device) != 0;
    if (!job.is_main()) {
      if (stop) break;
      continue;
    }
    if ((checkpoint_every > 0 && step % checkpoint_every == 0) || step == total_steps || stop)
      save_checkpoint(run_dir, trainer, state, fingerprint, point_config.at("model"));
    if (stop) {
      write_early_stop(run_dir, step, accuracy, fingerprint);
      summary.stopped_at_step = step;
      std::cerr << "  stop  step " << step << "/" << total_steps << "  " << c.source << "/accuracy " << accuracy
                << " >= train.stop_at_accuracy " << c.stop_at_accuracy << "\n";
      break;
    }
  }
  if (summary.final.empty() && job.is_main()) {
    // Resumed from the final checkpoint: its evaluations are recorded already; recompute the
    // figures for the summary without writing them again.
    for (const auto& e : evaluator.run(trainer.model()))
      if (!e.bucket) summary.final[e.task + "/" + e.metric] = e.value;
  }
  summary.steps = summary.stopped_at_step > 0 ? summary.stopped_at_step : total_steps;
  return summary;
}

// ============================================================================ the hook
namespace {
const bool registered = [] {
  TrainingHook hook;
  hook.validate = [](const json& train, const std::string& file, const std::string& path) {
    parse_train_config(train, file, path);
  };
  hook.run = [](const json& point_config, const std::string& run_dir, const std::string& device,
                TrainingRecords& records) { run_training(point_config, run_dir, device, records); };
  register_training_hook(std::move(hook));
  return true;
}();
}  // namespace

}  // namespace mixlab
