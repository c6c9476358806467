#include "harness/evaluation.h"

#include "core/compat.h"
#include "harness/config.h"
#include "harness/training_data.h"

#include <algorithm>
#include <cmath>

namespace mixlab {

namespace {

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

}  // namespace

struct Evaluator::Impl {
  Impl(const TrainConfig& c, const data::TokenizedCorpus* corpus, std::vector<EvalTaskConfig> tasks,
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

  // The head runs only at the positions the task asks (a target, or a position of the accuracy
  // mask): MQAR asks K of L, and the [B·L, vocab] float32 logits of the whole batch (2 GiB at
  // batch 128, L 512, vocab 8192) are what filled the GPU when several runs shared it.
  struct AskedLogits {
    torch::Tensor rows;    // [M] flat positions b·L + t that are asked
    torch::Tensor logits;  // [M, vocab] float32 (float64 for a float64 model)
  };
  AskedLogits asked_logits(LanguageModel& model, const data::Batch& batch) {
    torch::Tensor hidden;
    {
      compat::CudaAutocast autocast(autocast_);
      hidden = model->hidden_states(batch.inputs);  // [B, L, d]
    }
    const auto asked = batch.targets.reshape({-1}).ne(data::kIgnore).logical_or(batch.mask.reshape({-1}));
    AskedLogits out;
    out.rows = asked.nonzero().squeeze(1);
    compat::CudaAutocast autocast(autocast_);
    out.logits = model->logits(hidden.reshape({-1, hidden.size(-1)}).index_select(0, out.rows));
    if (out.logits.scalar_type() != torch::kFloat64) out.logits = out.logits.to(torch::kFloat32);
    return out;
  }

  void synthetic(LanguageModel& model, const EvalTaskConfig& config, std::vector<Evaluation>& out) {
    double accuracy_sum = 0, loss_sum = 0;
    int64_t examples = 0, batches = 0;
    for (const auto& batch : held_out(config)) {
      const int64_t count = batch.inputs.size(0);
      auto on_device = to_device(batch, device_);
      const auto [rows, logits] = asked_logits(model, on_device);
      // Predictions [B, L]: the argmax where asked, −1 (never a token) elsewhere.
      auto predictions = torch::full({on_device.targets.numel()}, -1, on_device.targets.options())
                             .index_put_({rows}, logits.argmax(-1))
                             .view_as(on_device.targets);
      accuracy_sum += data::task_accuracy(predictions, on_device) * static_cast<double>(count);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, on_device.targets.reshape({-1}).index_select(0, rows),
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

Evaluator::Evaluator(const TrainConfig& c, const data::TokenizedCorpus* corpus, std::vector<EvalTaskConfig> tasks,
                     torch::Device device, bool autocast)
    : impl_(std::make_unique<Impl>(c, corpus, std::move(tasks), device, autocast)) {}
Evaluator::~Evaluator() = default;
std::vector<Evaluation> Evaluator::run(LanguageModel& model) { return impl_->run(model); }

}  // namespace mixlab
