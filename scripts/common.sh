#!/usr/bin/env bash
# Shared by quickstart.sh and test.sh: install what is missing (Debian 12), configure, build.
set -euo pipefail

MIXLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MIXLAB_BUILD_DIR:-$MIXLAB_ROOT/build}"

# Debian packages mixlab needs.  libopenblas0-pthread: without it LibTorch's matrix products on
# the CPU run ~30x slower.  libgloo-dev: the headers of the Gloo library LibTorch links, for
# data-parallel training on the CPU (harness/distributed.cpp).
MIXLAB_PACKAGES=(build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread libgloo-dev libcli11-dev nlohmann-json3-dev libeigen3-dev
  libsqlite3-dev sqlite3 libbenchmark-dev libgtest-dev libsentencepiece-dev gnuplot-nox)

# install_missing [extra packages...]
install_missing() {
  local missing=()
  for package in "${MIXLAB_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "mixlab: installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

configure_and_build() {
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/mixlab-ccache}"
  export CCACHE_BASEDIR="$MIXLAB_ROOT"
  export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S "$MIXLAB_ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}
