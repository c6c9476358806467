#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/: the spec reader and the safetensors reader) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/, and run each for a bounded
# time from the seed corpus in tests/fuzz/corpus/.  A finding (crash, sanitizer report, leak,
# uncaught exception) fails the script and leaves the input in build-fuzz/findings/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default: $MIXLAB_FUZZ_SECONDS, else 60; 0 skips)
#
# Without clang (or its libFuzzer runtime) it says so and exits 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds="${1:-${MIXLAB_FUZZ_SECONDS:-60}}"
if [[ "$seconds" == 0 ]]; then
  echo "fuzz: skipped (0 seconds per target)"
  exit 0
fi
clang="${MIXLAB_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}"
if [[ -z "$clang" ]]; then
  echo "fuzz: skipped: clang++ is not installed (Debian: apt-get install clang) — the fuzz targets need libFuzzer"
  exit 0
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/probe.cpp"
if ! "$clang" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>/dev/null; then
  echo "fuzz: skipped: $clang cannot build with -fsanitize=fuzzer (libFuzzer runtime missing)"
  exit 0
fi

FUZZ_DIR="${MIXLAB_FUZZ_BUILD_DIR:-$MIXLAB_ROOT/build-fuzz}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/mixlab-ccache}"
if [[ ! -f "$FUZZ_DIR/build.ninja" ]]; then
  cmake -S "$MIXLAB_ROOT/tests/fuzz" -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$clang" >/dev/null
fi
cmake --build "$FUZZ_DIR" -j "${MIXLAB_FUZZ_JOBS:-$(nproc)}"

mkdir -p "$FUZZ_DIR/findings"
# fuzz_safetensors writes each input to a file: in memory when /dev/shm is there (~25x faster).
[[ -z "${TMPDIR:-}" && -w /dev/shm ]] && export TMPDIR=/dev/shm
# LibTorch keeps global state alive at exit by design; only leaks in our code matter, and the
# targets allocate nothing that outlives one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
for target in fuzz_spec fuzz_safetensors; do
  corpus="$FUZZ_DIR/corpus/$target"          # grows run by run; seeded from the repository
  mkdir -p "$corpus"
  echo "fuzz: $target for $seconds s"
  "$FUZZ_DIR/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$FUZZ_DIR/findings/$target-" -print_final_stats=1 \
    "$corpus" "$MIXLAB_ROOT/tests/fuzz/corpus/$target" 2>"$FUZZ_DIR/$target.log" ||
    { tail -40 "$FUZZ_DIR/$target.log"; echo "fuzz: $target found a problem (input in $FUZZ_DIR/findings/)"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$FUZZ_DIR/$target.log" | sed "s/^/fuzz: $target /"
done
