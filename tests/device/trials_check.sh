#!/usr/bin/env bash
# The decode trials' kernels (MIXLAB_PROJECTED_STEP, MIXLAB_SLOT_CLUSTER_MERGE: docs/gpu.md) checked
# against float64 references without LibTorch, and with --time timed against the kernels they
# replace: nvcc builds each check in seconds, so this fits a device call too short for the build.
# Usage (repository root, a Hopper GPU): tests/device/trials_check.sh [--time]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
flags=(-std=c++17 -arch=sm_90a -I. --expt-relaxed-constexpr --use_fast_math)
bin="$(mktemp -d)"
nvcc "${flags[@]}" tests/device/projected_state_update_check.cu mixers/cuda/projected_state_update.cu \
  mixers/cuda/decode_step.cu core/cuda/skinny_linear.cu -o "$bin/projected_state_update_check" &
nvcc "${flags[@]}" tests/device/slot_attention_check.cu attention/cuda/slot_attention.cu \
  -o "$bin/slot_attention_check" &
wait -n && wait -n  # both builds must succeed (set -e)
status=0
"$bin/projected_state_update_check" "$@" || status=1
"$bin/slot_attention_check" "$@" || status=1
exit $status
