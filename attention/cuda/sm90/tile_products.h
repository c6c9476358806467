#pragma once
// One 64 x 64 tile of attention's two products on Hopper's wgmma (wgmma.cuh), the inner step of
// the sm90 attention kernels, as its own kernel so that each piece they rely on is tested alone:
//
//   S = Q Kᵀ            Q, K: [64 x 64] bf16, both K-major swizzled tiles (SS product), float32 S
//   O = bf16(S) V       S from the accumulator registers as the A operand (RS product),
//                       V: [64 keys x 64] bf16, an MN-major swizzled tile; float32 O
//   R = Qᵀ K            both operands MN-major from shared memory (the same Q and K tiles read
//                       transposed: the backward's dQ = dS K has this form); float32 R
//
// The reference is the same two products in float64 (tests/test_sm90_tile_products.cpp).
// Plain C++ launcher (no LibTorch); tile_products_binding.cpp checks the tensors.

namespace mixlab::cuda::sm90 {

// q, k, v: [64, 64] bf16, row-major, contiguous; s, o, r: [64, 64] float32.  One block of one
// warpgroup.
void tile_products(const void* q, const void* k, const void* v, float* s, float* o, float* r, void* stream);

}  // namespace mixlab::cuda::sm90
