#include "harness/static_decoder.h"

#include "harness/cuda_graph.h"

#include <algorithm>
#include <stdexcept>

namespace mixlab {

StaticDecoder::StaticDecoder(LanguageModel model, int64_t batch, int64_t capacity, const torch::TensorOptions& options,
                             bool use_graphs, int warmup)
    : model_(std::move(model)), capacity_(capacity) {
  if (!model_->has_static_step())
    throw std::invalid_argument("static decoding: a sublayer of this model has no static_step() "
                                "(or the model uses SCONE or block routing)");
  if (capacity < 1) throw std::invalid_argument("static decoding: capacity must be >= 1, got " + std::to_string(capacity));
  const auto device = options.device();
  states_ = model_->static_states(batch, capacity, options);
  device_position_ = torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(device));
  tokens_ = torch::zeros({batch}, torch::TensorOptions().dtype(torch::kLong).device(device));
  logits_ = torch::zeros({batch, model_->config().vocab_size}, options);
  if (use_graphs && device.is_cuda()) {
    for (int64_t span = span_at(0);; span = span_at(span)) {  // every span a position below capacity reads
      // Warm-ups decode positions 0 .. warmup−1 (inside the capacity); the capture starts from 0.
      auto graph = std::make_unique<CapturedCall>([this, span] { run_step(span); },
                                                  static_cast<int>(std::min<int64_t>(warmup, capacity_)),
                                                  [this] { device_position_.zero_(); });
      if (!graph->captured()) {
        // Out of memory is the point's result (an `oom` row), not a reason to decode eagerly.
        if (graph->why_not().find("out of memory") != std::string::npos)
          throw std::runtime_error("static decoding: out of memory while capturing the step for span " +
                                   std::to_string(span) + ": " + graph->why_not());
        why_not_ = graph->why_not();
        graphs_.clear();
        break;
      }
      graphs_[span] = std::move(graph);
      if (span == capacity_) break;
    }
    if (!graphs_.empty()) execution_ = "cuda_graph";
  }
  reset(tokens_.clone());  // the warm-ups decoded at position 0
}

StaticDecoder::~StaticDecoder() = default;

int64_t StaticDecoder::span_at(int64_t position) const {
  int64_t span = kMinSpan;
  while (span <= position) span *= 2;
  return std::min(span, capacity_);
}

void StaticDecoder::reset(const torch::Tensor& first_tokens) {
  torch::NoGradGuard no_grad;
  for (auto& state : states_)
    for (auto& [name, tensor] : state.tensors) tensor.zero_();
  device_position_.zero_();
  tokens_.copy_(first_tokens);
  position_ = 0;
}

void StaticDecoder::seek(int64_t position) {
  if (position < 0 || position >= capacity_)
    throw std::out_of_range("static decoding: seek(" + std::to_string(position) + ") outside [0, " +
                            std::to_string(capacity_) + ")");
  device_position_.fill_(position);
  position_ = position;
}

void StaticDecoder::prefill(const torch::Tensor& prompt) {
  const int64_t n = prompt.size(1);
  if (prompt.dim() != 2 || prompt.size(0) != tokens_.size(0) || n < 1 || n > capacity_)
    throw std::invalid_argument("static decoding: a prompt must be [" + std::to_string(tokens_.size(0)) +
                                ", N] with 1 <= N <= " + std::to_string(capacity_) + " (the capacity)");
  reset(tokens_);
  torch::NoGradGuard no_grad;
  logits_.copy_(model_->static_prefill(prompt, states_));
  tokens_.copy_(logits_.argmax(-1));
  device_position_.fill_(n);
  position_ = n;
}

void StaticDecoder::run_step(int64_t span) {
  torch::NoGradGuard no_grad;
  auto logits = model_->static_step(tokens_, states_, StepPosition{device_position_, span});  // [B, vocab]
  logits_.copy_(logits);
  tokens_.copy_(logits.argmax(-1));
  device_position_.add_(1);
}

void StaticDecoder::step() {
  if (position_ >= capacity_)
    throw std::out_of_range("static decoding: the state holds " + std::to_string(capacity_) +
                            " tokens; reset() before decoding more");
  const int64_t span = span_at(position_);
  if (auto graph = graphs_.find(span); graph != graphs_.end())
    graph->second->replay();
  else
    run_step(span);
  ++position_;
}

int64_t StaticDecoder::state_bytes() const {
  int64_t total = 0;
  for (const auto& state : states_) total += state.bytes();
  return total;
}

}  // namespace mixlab
