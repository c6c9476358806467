#!/usr/bin/env bash
# Builds the mamba_ssm selective-scan peer: mamba_ssm's scan kernels (bf16 forward, bf16 real
# backward) and scan_shim.cu, this folder's C entry point, into one shared library with the CUDA
# runtime linked in, loaded by bench/peers/mamba_ssm_scan.py with ctypes.  Build it here (nvcc,
# about 5 minutes on 2 cores) and carry it to the device in .devicedeps/ (ignored, carried):
#
#   git --git-dir=MIRROR_OF_state-spaces/mamba archive HEAD csrc/selective_scan | tar -x -C /tmp/mamba-src
#   bench/peers/mamba_ssm/build.sh /tmp/mamba-src/csrc/selective_scan .devicedeps/mamba_ssm
#
# SRC: mamba_ssm's csrc/selective_scan folder (Apache-2.0; not part of this repository).
# The kernels include c10's header-only BFloat16 / Half / complex and ATen's Atomic.cuh:
# MIXLAB_TORCH_INCLUDE (default /usr/include, Debian's libtorch-dev) names where they are;
# c10/cuda/CUDAException.h is replaced by a two-macro header (no libc10_cuda to link).
# Architecture: MIXLAB_MAMBA_SSM_ARCH (default 90: H100 / H200).
set -euo pipefail
SRC="${1:?usage: bench/peers/mamba_ssm/build.sh MAMBA_SSM_SELECTIVE_SCAN_DIR OUT_DIR}"
OUT="${2:?usage: bench/peers/mamba_ssm/build.sh MAMBA_SSM_SELECTIVE_SCAN_DIR OUT_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
ARCH="${MIXLAB_MAMBA_SSM_ARCH:-90}"
for f in selective_scan.h selective_scan_fwd_bf16.cu selective_scan_bwd_bf16_real.cu; do
  [[ -f $SRC/$f ]] || { echo "build.sh: $SRC/$f is missing (SRC must be mamba_ssm's csrc/selective_scan)" >&2; exit 2; }
done
mkdir -p "$OUT/obj" "$OUT/shim/c10/cuda"
cat >"$OUT/shim/c10/cuda/CUDAException.h" <<'H'
#pragma once
// Stands in for c10's header: the two macros the scan kernels use, without libc10_cuda.
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#define C10_CUDA_CHECK(EXPR) do { cudaError_t e_ = (EXPR); if (e_ != cudaSuccess) { \
  std::fprintf(stderr, "mamba_ssm peer: %s\n", cudaGetErrorString(e_)); std::abort(); } } while (0)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() C10_CUDA_CHECK(cudaGetLastError())
H
FLAGS=(-O3 -std=c++17 -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__
       -U__CUDA_NO_BFLOAT16_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__
       -U__CUDA_NO_BFLOAT162_OPERATORS__ -U__CUDA_NO_BFLOAT162_CONVERSIONS__
       --expt-relaxed-constexpr --expt-extended-lambda --use_fast_math -Xcompiler -fPIC
       -gencode "arch=compute_$ARCH,code=sm_$ARCH"
       -I"$OUT/shim" -I"${MIXLAB_TORCH_INCLUDE:-/usr/include}" -I"$SRC")
pids=()
for f in "$SRC/selective_scan_fwd_bf16.cu" "$SRC/selective_scan_bwd_bf16_real.cu" "$HERE/scan_shim.cu"; do
  "$NVCC" "${FLAGS[@]}" -c "$f" -o "$OUT/obj/$(basename "$f" .cu).o" 2>"$OUT/obj/$(basename "$f" .cu).log" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { tail -n 20 "$OUT"/obj/*.log >&2; exit 1; }; done
"$NVCC" -shared -cudart static -gencode "arch=compute_$ARCH,code=sm_$ARCH" "$OUT"/obj/*.o -o "$OUT/libmamba_ssm_scan.so"
rm -rf "$OUT/obj" "$OUT/shim"
strip --strip-unneeded "$OUT/libmamba_ssm_scan.so"
# The device tool carries at most 64 MiB with the tree: keep only the 1.6 MB .xz, which
# bench/peers/mamba_ssm_scan.py unpacks into /tmp on first use.
xz -T0 -9 -f "$OUT/libmamba_ssm_scan.so"
echo "built $OUT/libmamba_ssm_scan.so.xz ($(du -h "$OUT/libmamba_ssm_scan.so.xz" | cut -f1))"
