#include "harness/train_config.h"

#include "data/rng.h"
#include "harness/config.h"
#include "harness/json_input.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

namespace mixlab {

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
                         "eval", "checkpoint_every", "precision", "threads", "progress", "log_every",
                         "curve_every", "execution"},
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
  c.execution = read_choice(train, "execution", c.execution, {"auto", "cuda_graph", "eager"}, file, path);
  c.log_every = read_int(train, "log_every", 0, 0, kHuge, file, path);
  c.curve_every = read_int(train, "curve_every", 1, 1, kHuge, file, path);

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

}  // namespace mixlab
