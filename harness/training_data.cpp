#include "harness/training_data.h"

#include "data/rng.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace mixlab {

data::Batch to_device(const data::Batch& batch, const torch::Device& device) {
  return {batch.inputs.to(device), batch.targets.to(device), batch.mask.to(device)};
}

data::Batch corpus_windows(const data::TokenSplit& split, const std::vector<int64_t>& starts, int64_t seq_len) {
  std::vector<torch::Tensor> rows;
  rows.reserve(starts.size());
  for (int64_t start : starts) rows.push_back(split.tokens.narrow(0, start, seq_len + 1));
  auto windows = torch::stack(rows).to(torch::kInt64);  // [B, L+1]
  auto targets = windows.narrow(1, 1, seq_len).contiguous();
  return {windows.narrow(1, 0, seq_len).contiguous(), targets, torch::ones_like(targets, torch::kBool)};
}

namespace {

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

}  // namespace

std::unique_ptr<TrainingStream> make_training_stream(const TrainConfig& c, const data::TokenizedCorpus* corpus,
                                                     const data::TaskSpec& task) {
  if (corpus) return std::make_unique<CorpusStream>(corpus->train, c);
  if (c.train_examples > 0) return std::make_unique<FixedSetStream>(task, c);
  return std::make_unique<TaskStream>(task, c);
}

}  // namespace mixlab
