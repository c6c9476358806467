#pragma once
// What a run trains on, batch by batch: windows of the corpus, an endless stream of fresh
// synthetic examples, or epochs over a fixed set of them.
//
//   data        a synthetic task is an endless stream of fresh examples, or with data.examples
//               N the fixed set of examples 0..N−1 of the training split, read once per epoch
//               in an order shuffled per epoch (the last incomplete batch is dropped)
//   determinism batch (s, m) comes from the data seed and (s, m) alone: a resumed run reads what
//               the uninterrupted one would have

#include "data/corpus.h"
#include "data/synthetic.h"
#include "harness/train_config.h"

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace mixlab {

class TrainingStream {
 public:
  virtual ~TrainingStream() = default;
  // Micro-batch `micro` of optimiser step `step`: a function of (seed, step, micro) alone.
  virtual data::Batch batch(int64_t step, int64_t micro) const = 0;
};

// corpus (non-null): random windows of its training split; else the synthetic `task`, as a
// fixed set when train.data.examples is set, as an endless stream otherwise.
std::unique_ptr<TrainingStream> make_training_stream(const TrainConfig& config, const data::TokenizedCorpus* corpus,
                                                     const data::TaskSpec& task);

// Windows of seq_len + 1 tokens from a token split: inputs the first seq_len, targets the next.
// starts: [B] window starts; returns inputs, targets [B, seq_len] int64 and an all-true mask.
data::Batch corpus_windows(const data::TokenSplit& split, const std::vector<int64_t>& starts, int64_t seq_len);

data::Batch to_device(const data::Batch& batch, const torch::Device& device);

}  // namespace mixlab
