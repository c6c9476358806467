#pragma once
// The kernel benchmark's op table (issue 14): every op and shape that `mixlab kernel_bench` times,
// with what its FLOP or byte count is made of.  bench/peers reads the same table
// (`mixlab kernel_bench --list-ops`, JSON), so both sides time the same shapes and divide by the
// same counts.
//
//   causal, swa, scout   attention, bf16, [1, batch_heads, N, head_dim] with batch_heads·N = 2^20
//                        (the GPU stays full at every N); kept_pairs = the (query, key) pairs the
//                        mask keeps per head, from the mixer's own formula (attention/swa.h,
//                        attention/checkpoint_attention.h); FLOPs 4·d per kept pair forward, 3.5×
//                        that forward + backward
//   scan                 the selective scan, batch 8, E = 2048 channels, n = 16 states, bf16
//                        activations; the bandwidth floor's bytes: forward reads u, Δ, z, B, C and
//                        writes y; backward reads u, Δ, z, B, C, dy and writes du, dΔ, dz, dB, dC
//   scan_narrow          the same at batch 1, E = 1536 (a d_model 768 Mamba at batch 1)

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::cli {

struct KernelShape {
  std::string op;
  int64_t n = 0, head_dim = 0, batch_heads = 0;  // scan: head_dim = states, batch_heads = batch·channels
  int64_t window = 0, segment = 0;               // swa's W, scout's S
  int64_t batch = 0, channels = 0, states = 0;   // scan
  double kept_pairs = 0;                         // attention, per head
  double fwd_flops = 0, fwdbwd_flops = 0;        // attention
  double fwd_bytes = 0, fwdbwd_bytes = 0;        // scan: the floor's bytes
};

constexpr int64_t kAttentionTokens = int64_t{1} << 20;  // batch_heads · N of every attention shape
constexpr int64_t kWindow = 1024, kSegment = 10;

// The ops named (a subset of causal, swa, scout, scan, scan_narrow; an unknown name throws
// std::invalid_argument naming the valid ones) at N = 1k, 4k, 16k, 64k (quick: 1k, 16k).
std::vector<KernelShape> kernel_shapes(const std::vector<std::string>& ops, bool quick);

nlohmann::json to_json(const KernelShape& shape);

}  // namespace mixlab::cli
