#pragma once
// Single-query attention over the slots of a static decode cache (attention/kv_cache.h,
// attend_to_prefix), one step of one token per sequence at position t:
//
//   o[b,h] = Σ_{j < count, j ≤ ⌊t/divisor⌋} softmax_j(q[b,h]·k[b,h,j] / √d_h) v[b,h,j]
//
// Plain C++ launcher (no LibTorch), so the .cu compiles with nvcc alone; slot_attention_binding.cpp
// checks shapes and dtypes and calls it.  The reference is attend_to_prefix's own composed path
// (the mask written out, compat::masked_attention); tests/test_cuda_kernels.cpp compares the two.
//
// Split over the slots (flash-decoding): block (split, bh) reduces slots
// [split·chunk, (split+1)·chunk) to a partial (m, l, acc[d_h]) in float32 (m the running maximum
// of the log2-domain scores, l = Σ 2^(s−m), acc = Σ 2^(s−m) v), and a second kernel merges the
// splits of each (b, h).  t is read on the device (a CUDA graph replays one step at every position)
// and slots past ⌊t/divisor⌋ are not read, so a step reads only the slots it attends to (a static
// cache's span holds up to twice as many).

#include <cstdint>

namespace mixlab::cuda::detail {

enum class SlotElement { bf16, fp16, fp32 };

struct SlotAttentionShape {
  SlotElement element = SlotElement::bf16;
  int batch_heads = 0;   // B·H
  int capacity = 0;      // C: slots per (b, h) row of the cache
  int count = 0;         // slots [0, count) are candidates
  long long divisor = 1; // slots j ≤ ⌊t / divisor⌋ are attended to
  int head_dim = 0;      // 64 or 128
  int splits = 0;        // from slot_attention_splits()
  int chunk = 0;         // slots per split
  float scale = 0.f;     // usually head_dim^-1/2
};

bool slot_attention_supported(int head_dim);
// Fills splits and chunk for shape.count.
void slot_attention_splits(SlotAttentionShape& shape);

// q [BH, d_h]; keys, values [BH, C, d_h] (contiguous); position: t, one int64 on the device;
// partial: scratch [BH, splits, d_h + 2] float32; out [BH, d_h] in the element type.
void slot_attention(const SlotAttentionShape& shape, const void* q, const void* keys, const void* values,
                    const int64_t* position, float* partial, void* out, void* stream);

}  // namespace mixlab::cuda::detail
