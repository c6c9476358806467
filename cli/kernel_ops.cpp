#include "cli/kernel_ops.h"

#include "attention/checkpoint_attention.h"
#include "attention/swa.h"

#include <algorithm>
#include <stdexcept>

namespace mixlab::cli {

namespace {

KernelShape attention_shape(const std::string& op, int64_t n, int64_t head_dim) {
  KernelShape s;
  s.op = op;
  s.n = n;
  s.head_dim = head_dim;
  s.batch_heads = std::max<int64_t>(1, kAttentionTokens / n);
  if (op == "swa") {
    s.window = kWindow;
    s.kept_pairs = sliding_window_pairs(n, kWindow);
  } else if (op == "scout") {
    s.segment = kSegment;
    s.kept_pairs = checkpoint_pairs(n, kSegment);
  } else {
    s.kept_pairs = sliding_window_pairs(n, n);  // causal: the window as long as the sequence
  }
  s.fwd_flops = 4.0 * static_cast<double>(head_dim) * s.kept_pairs * static_cast<double>(s.batch_heads);
  s.fwdbwd_flops = 3.5 * s.fwd_flops;
  return s;
}

// scan: batch 8, E = 2048 (fills the GPU with blocks of 32 channels); scan_narrow: batch 1, E = 1536,
// a d_model 768 Mamba at batch 1 (the whole-model benchmark's shape: 48 such blocks, so the
// kernels cut time into slices, mixers/cuda/selective_scan.cu).
KernelShape scan_shape(const std::string& op, int64_t n) {
  KernelShape s;
  s.op = op;
  s.n = n;
  s.batch = op == "scan" ? 8 : 1;
  s.channels = op == "scan" ? 2048 : 1536;
  s.states = 16;
  s.head_dim = s.states;
  s.batch_heads = s.batch * s.channels;
  const double activation = 2.0 * static_cast<double>(s.batch * s.channels * n);  // one [B, E, N] bf16
  const double projection = 2.0 * static_cast<double>(s.batch * s.states * n);    // one [B, n, N] bf16
  s.fwd_bytes = 4 * activation + 2 * projection;                // u, Δ, z, y; B, C
  s.fwdbwd_bytes = s.fwd_bytes + 7 * activation + 4 * projection;  // + u, Δ, z, dy, du, dΔ, dz; B, C, dB, dC
  return s;
}

}  // namespace

std::vector<KernelShape> kernel_shapes(const std::vector<std::string>& ops, bool quick) {
  static const std::vector<std::string> valid = {"causal", "swa", "scout", "scan", "scan_narrow"};
  for (const auto& op : ops)
    if (std::find(valid.begin(), valid.end(), op) == valid.end())
      throw std::invalid_argument("unknown op '" + op + "'; valid: causal, swa, scout, scan, scan_narrow");
  auto wanted = [&](const std::string& op) { return std::find(ops.begin(), ops.end(), op) != ops.end(); };
  const std::vector<int64_t> lengths = quick ? std::vector<int64_t>{1024, 16384}
                                             : std::vector<int64_t>{1024, 4096, 16384, 65536};
  std::vector<KernelShape> shapes;
  for (int64_t head_dim : {64, 128})
    for (int64_t n : lengths)
      for (const std::string op : {"causal", "swa", "scout"})
        if (wanted(op)) shapes.push_back(attention_shape(op, n, head_dim));
  for (const std::string op : {"scan", "scan_narrow"})
    if (wanted(op))
      for (int64_t n : lengths) shapes.push_back(scan_shape(op, n));
  return shapes;
}

nlohmann::json to_json(const KernelShape& s) {
  return {{"op", s.op},           {"N", s.n},
          {"head_dim", s.head_dim}, {"batch_heads", s.batch_heads},
          {"window", s.window},   {"segment", s.segment},
          {"batch", s.batch},     {"channels", s.channels},
          {"states", s.states},   {"kept_pairs", s.kept_pairs},
          {"fwd_flops", s.fwd_flops}, {"fwdbwd_flops", s.fwdbwd_flops},
          {"fwd_bytes", s.fwd_bytes}, {"fwdbwd_bytes", s.fwdbwd_bytes}};
}

}  // namespace mixlab::cli
