#!/usr/bin/env bash
# Install what is missing, build, run every test, then the fuzz targets for a bounded time
# (scripts/fuzz.sh; MIXLAB_FUZZ_SECONDS per target, default 60, 0 skips; skipped without clang).
#   Usage: ./scripts/test.sh [ctest args]      (with -N only the tests are listed, no fuzzing)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_missing
configure_and_build
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
if [[ " $* " != *" -N "* ]]; then
  "$MIXLAB_ROOT/scripts/fuzz.sh"
fi
