// The evaluation of a synthetic task (harness/evaluation.h) runs the head only at the asked
// positions; its reference is the definition over the full logits [B, L, vocab]: Zoology's
// accuracy (data::task_accuracy of the logits) and cross entropy with ignore_index, per batch.

#include "harness/config.h"
#include "harness/evaluation.h"
#include "harness/train_config.h"

#include <gtest/gtest.h>

using namespace mixlab;

namespace MIXLAB_UNITY_ID {

LanguageModel mqar_model() {
  torch::manual_seed(11);
  LanguageModel model(parse_model_config({{"vocab_size", 16}, {"d_model", 32}, {"n_heads", 2}, {"n_layers", 2},
                                          {"pattern", json::array({"attention", "mlp"})},
                                          {"init_std", 1.0}},  // large weights: the argmax varies
                                         "test"));
  model->to(torch::kFloat64);
  return model;
}

EvalTaskConfig mqar_task(bool random_non_queries) {
  EvalTaskConfig task;
  task.spec.task = "mqar";
  task.spec.seq_len = 32;
  task.spec.vocab = 16;  // values from 8 tokens: an untrained model is right about 1 time in 16
  task.spec.num_kv_pairs = 4;
  task.spec.random_non_queries = random_non_queries;
  task.examples = 40;  // three batches of 16, the last one short; 160 queries
  return task;
}

// The reference: full logits, batch by batch, over the same held-out examples.
std::pair<double, double> full_logits_reference(LanguageModel& model, const TrainConfig& c, const EvalTaskConfig& task) {
  torch::NoGradGuard no_grad;
  model->eval();
  data::SyntheticTask generator(task.spec);
  double accuracy_sum = 0, loss_sum = 0;
  int64_t batches = 0;
  for (int64_t first = 0; first < task.examples; first += c.batch_size) {
    const int64_t count = std::min(c.batch_size, task.examples - first);
    const auto batch = generator.batch(c.seed, /*split=*/1, first, count);
    const auto logits = model->forward(batch.inputs);  // [B, L, vocab]
    accuracy_sum += data::task_accuracy(logits, batch) * static_cast<double>(count);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}),
                    torch::nn::functional::CrossEntropyFuncOptions().ignore_index(data::kIgnore))
                    .item<double>();
    ++batches;
  }
  model->train();
  return {accuracy_sum / static_cast<double>(task.examples), loss_sum / static_cast<double>(batches)};
}

double metric(const std::vector<Evaluation>& rows, const std::string& name) {
  for (const auto& row : rows)
    if (row.metric == name) return row.value;
  ADD_FAILURE() << "no row '" << name << "'";
  return 0;
}


TEST(Evaluation, SyntheticAccuracyAndLossEqualTheFullLogitsDefinition) {
  for (bool random_non_queries : {false, true}) {
    auto model = mqar_model();
    TrainConfig c;
    c.batch_size = 16;
    c.seed = 3;
    const auto task = mqar_task(random_non_queries);
    Evaluator evaluator(c, nullptr, {task}, torch::kCPU, /*autocast=*/false);
    const auto rows = evaluator.run(model);
    const auto [accuracy, loss] = full_logits_reference(model, c, task);
    EXPECT_NEAR(metric(rows, "accuracy"), accuracy, 1e-12) << "random_non_queries " << random_non_queries;
    EXPECT_NEAR(metric(rows, "loss"), loss, 1e-9) << "random_non_queries " << random_non_queries;
    // Real numbers, not zeros: about 10 of 160 answers right by chance (P(none) ≈ e^-10).
    EXPECT_GT(accuracy, 0.0);
    EXPECT_GT(loss, 1.0);
  }
}

}  // namespace
