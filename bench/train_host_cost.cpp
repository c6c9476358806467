// The host's share of one training step on a fixed synthetic set (issue 13: is a replayed
// Zoology-sized step bound by the host?).  Per optimiser step the training loop
// (harness/train.cpp) makes the batch on the host — gathers its rows from the fixed set
// (harness/training_data.h), finds the positions with a target (harness/loss_inputs.h) — and
// writes one train_log row (harness/store.h), while the GPU runs the previous step.  These time
// each part alone, at the Zoology shapes of experiments/train-step-bench.json:
//
//   ./build/mixlab_bench --benchmark_filter='TrainHost'
//
// Args: (seq_len, batch, num_kv_pairs).  The fixed set is 20,000 examples (the training loop's
// sets are 16,000-100,000; the gather's cost does not depend on the set's size).

#include "harness/loss_inputs.h"
#include "harness/store.h"
#include "harness/training_data.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>

namespace {

mixlab::TrainConfig zoology_config(const benchmark::State& state) {
  mixlab::TrainConfig c;
  c.source = "mqar";
  c.seq_len = state.range(0);
  c.batch_size = state.range(1);
  c.train_examples = 20000;
  c.task.task = "mqar";
  c.task.seq_len = c.seq_len;
  c.task.vocab = 8192;
  c.task.num_kv_pairs = state.range(2);
  c.task.random_non_queries = false;
  return c;
}

void BM_TrainHostBatchFromFixedSet(benchmark::State& state) {
  const auto config = zoology_config(state);
  const auto stream = mixlab::make_training_stream(config, nullptr, config.task);
  int64_t step = 1;
  stream->batch(step, 0);  // the set is made on first use
  for (auto _ : state) benchmark::DoNotOptimize(stream->batch(++step, 0));
}
BENCHMARK(BM_TrainHostBatchFromFixedSet)->Args({64, 512, 4})->Args({512, 128, 64})->Unit(benchmark::kMicrosecond);

void BM_TrainHostLossRows(benchmark::State& state) {
  const auto config = zoology_config(state);
  const auto stream = mixlab::make_training_stream(config, nullptr, config.task);
  const auto batch = stream->batch(1, 0);
  for (auto _ : state) benchmark::DoNotOptimize(mixlab::loss_inputs(batch));
}
BENCHMARK(BM_TrainHostLossRows)->Args({64, 512, 4})->Args({512, 128, 64})->Unit(benchmark::kMicrosecond);

void BM_TrainHostTrainLogRow(benchmark::State& state) {
  const auto path = std::filesystem::temp_directory_path() / "mixlab_bench_train_log.db";
  std::filesystem::remove(path);
  {
    mixlab::Store store(path.string());
    const auto records = store.training_records("bench-point");
    int64_t step = 0;
    for (auto _ : state) {
      ++step;
      records->log_step(step, step * 32768, step * 1e9, 1.0, 1e-3, 1e6, step * 1e-3);
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}
BENCHMARK(BM_TrainHostTrainLogRow)->Unit(benchmark::kMicrosecond);

}  // namespace
