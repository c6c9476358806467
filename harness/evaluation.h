#pragma once
// Evaluation of a training run: on the corpus, validation loss, bits per byte, perplexity and
// the loss by position bucket; on each synthetic task, accuracy (Zoology's, at the asked
// positions) and masked loss on its held-out split; each row with the inference-state bytes of
// one sequence (cost().state_bytes), so that accuracy can be read against state size.

#include "data/corpus.h"
#include "harness/model.h"
#include "harness/train_config.h"

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct Evaluation {
  std::string task, metric;
  double value;
  std::optional<int64_t> seq_len, bucket;
  std::string extra_json = "{}";
};

class Evaluator {
 public:
  // corpus: null when the run trains on a synthetic task; tasks: the held-out sets to evaluate.
  Evaluator(const TrainConfig& config, const data::TokenizedCorpus* corpus, std::vector<EvalTaskConfig> tasks,
            torch::Device device, bool autocast);
  ~Evaluator();
  std::vector<Evaluation> run(LanguageModel& model);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixlab
