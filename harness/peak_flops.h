#pragma once
// The dense matrix-product rate a device reaches, measured, so that training can report its
// model FLOPs utilisation:
//
//   MFU = (model FLOPs of a step / step time) / peak,   peak = 2n³ / t(C = A·B),  A, B: [n, n]
//
// model FLOPs are 3 × cost().flops of the step's batch (harness/train_config.h); the product is
// timed in the training precision (bf16 on CUDA, n = 8192; float32 on the CPU, n = 512), the
// median of 5 after 2 warm-ups, once per process and device.  A measured peak, not a data-sheet
// one: on an H200 it reads 737-790 TFLOP/s in bf16 (docs/PERF.md).

#include "harness/device.h"

namespace mixlab {

// FLOP/s of the n×n matrix product on `device` in its dtype (cached after the first call).
double measured_peak_flops(const Device& device);

}  // namespace mixlab
