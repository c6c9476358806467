#include "harness/train_log.h"

#include <algorithm>

namespace mixlab {

std::string duration_text(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(0.0, seconds));
  char text[32];
  std::snprintf(text, sizeof text, "%d:%02d:%02d", static_cast<int>(s / 3600), static_cast<int>(s / 60 % 60),
                static_cast<int>(s % 60));
  return text;
}

TrainLog::TrainLog(std::FILE* out, bool terminal, int64_t total_steps, int64_t step_tokens, int64_t every)
    : out_(out), terminal_(terminal), total_steps_(total_steps), step_tokens_(step_tokens),
      every_(every > 0 ? every : std::max<int64_t>(1, total_steps / 20)) {}

void TrainLog::resumed(int64_t step, const std::string& file) {
  first_step_ = last_line_step_ = step;
  std::fprintf(out_, "  resumed from step %lld/%lld (%s)\n", static_cast<long long>(step),
               static_cast<long long>(total_steps_), file.c_str());
  std::fflush(out_);
}

void TrainLog::step(int64_t step, double loss, double lr, double session_seconds, double elapsed_seconds) {
  const bool last = step == total_steps_;
  // Off a terminal: a line when `step` is the first step seen in a new multiple of every_ (the
  // multiple itself when every step is recorded; the next recorded one with train.curve_every).
  const bool crossed = step / every_ > last_line_step_ / every_;
  if (terminal_ ? !(last || session_seconds - last_draw_ > 0.5) : !(last || crossed)) return;
  last_draw_ = session_seconds;
  last_line_step_ = step;
  const int64_t done = step - first_step_;
  const double seconds = std::max(session_seconds, 1e-9);
  const double eta = seconds / std::max<int64_t>(done, 1) * static_cast<double>(total_steps_ - step);
  const double tokens_per_s = done * step_tokens_ / seconds;
  char mfu[32] = "";
  if (mfu_per_token_per_s_ > 0) std::snprintf(mfu, sizeof mfu, "  MFU %.1f%%", 100.0 * tokens_per_s * mfu_per_token_per_s_);
  if (terminal_) {
    std::fprintf(out_, "\r  step %lld/%lld  loss %.4f  %.0f tok/s%s  ETA %s   %s", static_cast<long long>(step),
                 static_cast<long long>(total_steps_), loss, tokens_per_s, mfu, duration_text(eta).c_str(),
                 last ? "\n" : "");
  } else {
    std::fprintf(out_, "  train step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s%s  elapsed %s  ETA %s\n",
                 static_cast<long long>(step), static_cast<long long>(total_steps_), loss, lr, tokens_per_s, mfu,
                 duration_text(elapsed_seconds).c_str(), duration_text(eta).c_str());
  }
  std::fflush(out_);
}

void TrainLog::evaluation(int64_t step, const std::map<std::string, double>& values) {
  if (terminal_ && step != total_steps_) std::fprintf(out_, "\n");  // below the redrawn progress line
  std::fprintf(out_, "  eval  step %lld/%lld ", static_cast<long long>(step), static_cast<long long>(total_steps_));
  for (const auto& [name, value] : values) std::fprintf(out_, " %s %.4f", name.c_str(), value);
  std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace mixlab
