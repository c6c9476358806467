// A C entry point to mamba_ssm's selective-scan kernels (github.com/state-spaces/mamba,
// csrc/selective_scan, Apache-2.0), so that bench/peers can time the reference implementation
// of Mamba-1's scan as a peer without building the whole PyTorch extension on the device.  Only
// the case mixlab's scan computes: bf16 activations, float32 A (real), B and C varying with time
// in one group, D, the SiLU(z) gate and the Δ bias with softplus:
//   Δ = softplus(δ + b_δ);  h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t;  out_t = (C_t·h_t + D u_t) SiLU(z_t)
// The kernels' sources are not in this repository: bench/peers/mamba_ssm/build.sh compiles them
// from a checkout beside this file into one shared library (.devicedeps/mamba_ssm/).
//
// Layouts (contiguous): u, δ, z, out, out_z, dout, du, dδ, dz: [batch, dim, seqlen] bf16;
// A, dA: [dim, dstate] float; B, C: [batch, 1, dstate, seqlen] bf16; dB, dC: the same in float;
// D, dD, b_δ, db_δ: [dim] float; x (the chunk states the forward leaves for the backward):
// [batch, dim, chunks, 2·dstate] float, chunks = mamba_ssm_chunks(seqlen).

#include <cuda_runtime.h>

#include <cstring>

#include <c10/util/BFloat16.h>

#include "selective_scan.h"

template <typename input_t, typename weight_t>
void selective_scan_fwd_cuda(SSMParamsBase& params, cudaStream_t stream);
template <typename input_t, typename weight_t>
void selective_scan_bwd_cuda(SSMParamsBwd& params, cudaStream_t stream);

namespace {

struct Forward {
  void *u, *delta, *A, *B, *C, *D, *z, *delta_bias, *out, *out_z, *x;
};

// The sizes, pointers and element strides of the forward's tensors, laid out as above.
void fill_forward(SSMParamsBase& p, int batch, int dim, int seqlen, int dstate, const Forward& f) {
  std::memset(&p, 0, sizeof(p));
  p.batch = batch;
  p.dim = dim;
  p.seqlen = seqlen;
  p.dstate = dstate;
  p.n_groups = 1;
  p.n_chunks = (seqlen + 2047) / 2048;
  p.dim_ngroups_ratio = dim;
  p.is_variable_B = p.is_variable_C = true;
  p.delta_softplus = true;
  p.u_ptr = f.u; p.delta_ptr = f.delta; p.A_ptr = f.A; p.B_ptr = f.B; p.C_ptr = f.C; p.D_ptr = f.D;
  p.z_ptr = f.z; p.delta_bias_ptr = f.delta_bias; p.out_ptr = f.out; p.out_z_ptr = f.out_z; p.x_ptr = f.x;
  const uint64_t row = seqlen, sequence = static_cast<uint64_t>(dim) * seqlen, states = static_cast<uint64_t>(dstate) * seqlen;
  p.A_d_stride = dstate;
  p.A_dstate_stride = 1;
  p.B_batch_stride = p.C_batch_stride = states;
  p.B_group_stride = p.C_group_stride = states;
  p.B_dstate_stride = p.C_dstate_stride = row;
  p.u_batch_stride = p.delta_batch_stride = p.z_batch_stride = p.out_batch_stride = p.out_z_batch_stride = sequence;
  p.u_d_stride = p.delta_d_stride = p.z_d_stride = p.out_d_stride = p.out_z_d_stride = row;
}

}  // namespace

extern "C" {

int mamba_ssm_chunks(int seqlen) { return (seqlen + 2047) / 2048; }

// out = y (before the gate), out_z = y · SiLU(z): the scan's output; x: the chunk states.
int mamba_ssm_forward_bf16(int batch, int dim, int seqlen, int dstate, void* u, void* delta, void* A, void* B,
                           void* C, void* D, void* z, void* delta_bias, void* out, void* out_z, void* x,
                           void* stream) {
  SSMParamsBase params;
  fill_forward(params, batch, dim, seqlen, dstate, Forward{u, delta, A, B, C, D, z, delta_bias, out, out_z, x});
  selective_scan_fwd_cuda<at::BFloat16, float>(params, static_cast<cudaStream_t>(stream));
  return static_cast<int>(cudaGetLastError());
}

// The gradients of out_z: du, dδ, dz written; dA, dB, dC, dD, db_δ accumulated (pass zeros).
int mamba_ssm_backward_bf16(int batch, int dim, int seqlen, int dstate, void* u, void* delta, void* A, void* B,
                            void* C, void* D, void* z, void* delta_bias, void* out, void* x, void* dout, void* du,
                            void* ddelta, void* dA, void* dB, void* dC, void* dD, void* dz, void* ddelta_bias,
                            void* stream) {
  SSMParamsBwd params;
  fill_forward(params, batch, dim, seqlen, dstate, Forward{u, delta, A, B, C, D, z, delta_bias, out, nullptr, x});
  const uint64_t row = seqlen, sequence = static_cast<uint64_t>(dim) * seqlen, states = static_cast<uint64_t>(dstate) * seqlen;
  params.dout_ptr = dout; params.du_ptr = du; params.ddelta_ptr = ddelta; params.dz_ptr = dz;
  params.dA_ptr = dA; params.dB_ptr = dB; params.dC_ptr = dC; params.dD_ptr = dD; params.ddelta_bias_ptr = ddelta_bias;
  params.dout_batch_stride = params.du_batch_stride = params.ddelta_batch_stride = params.dz_batch_stride = sequence;
  params.dout_d_stride = params.du_d_stride = params.ddelta_d_stride = params.dz_d_stride = row;
  params.dA_d_stride = dstate;
  params.dA_dstate_stride = 1;
  params.dB_batch_stride = params.dC_batch_stride = states;
  params.dB_group_stride = params.dC_group_stride = states;
  params.dB_dstate_stride = params.dC_dstate_stride = row;
  selective_scan_bwd_cuda<at::BFloat16, float>(params, static_cast<cudaStream_t>(stream));
  return static_cast<int>(cudaGetLastError());
}

}  // extern "C"
