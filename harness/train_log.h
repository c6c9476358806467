#pragma once
// What a training run prints while it runs (docs/training.md, "Progress and logs").
//
//   on a terminal      one line redrawn in place (\r) at most twice a second
//   off a terminal     (a Slurm log, a pipe) one line every `every` steps and at the last step
//                      (with train.curve_every, at the first recorded step past each multiple):
//                        train step 120/1000  loss 3.2101  lr 9.80e-04  4521 tok/s  elapsed 0:00:27  ETA 0:03:18
//                      and one line per evaluation:
//                        eval  step 120/1000  text/bits_per_byte 3.4120  text/loss 2.3651
//   either way         "resumed from step N/T (FILE)" when a checkpoint is picked up
//
// tokens/s is over this session (steps since the start or the resume); ETA = session time per
// step × steps left.  Everything goes to `out` (stderr in mixlab) and is flushed per line.

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace mixlab {

// "1:02:03"
std::string duration_text(double seconds);

class TrainLog {
 public:
  // every = 0: about 20 lines per run (total_steps / 20, at least 1).
  TrainLog(std::FILE* out, bool terminal, int64_t total_steps, int64_t step_tokens, int64_t every);

  void resumed(int64_t step, const std::string& file);
  // Step lines also show MFU = tokens/s · flops_per_token / peak_flops (harness/peak_flops.h).
  void show_mfu(double flops_per_token, double peak_flops) { mfu_per_token_per_s_ = flops_per_token / peak_flops; }
  // After optimiser step `step`; session_seconds since this session's first step began.
  void step(int64_t step, double loss, double lr, double session_seconds, double elapsed_seconds);
  // The step's headline evaluations, "task/metric" -> value.
  void evaluation(int64_t step, const std::map<std::string, double>& values);

  int64_t every() const { return every_; }

 private:
  std::FILE* out_;
  bool terminal_;
  int64_t total_steps_, step_tokens_, every_;
  int64_t first_step_ = 0;   // the step the session started after (the resume point)
  double last_draw_ = -1;    // session seconds of the last terminal redraw
  int64_t last_line_step_ = 0;  // off a terminal: the step of the last line
  double mfu_per_token_per_s_ = 0;  // 0: no MFU shown
};

}  // namespace mixlab
