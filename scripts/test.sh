#!/usr/bin/env bash
# Install what is missing, build, and run every test.   Usage: ./scripts/test.sh [ctest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_missing
configure_and_build
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
