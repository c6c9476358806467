#!/usr/bin/env bash
# Fills .devicedeps/ (ignored; carried to the GPU machine with `carry: [".devicedeps"]`) with what
# a device call needs and the lent machine lacks, from this machine:
#   sqlite3.h, sqlite3ext.h   the SQLite headers (libsqlite3-dev; the GPU image has only the library)
#   commit                    the short commit of HEAD, stamped on every row (scripts/device_call.sh)
# and, given mamba_ssm's csrc/selective_scan folder, the mamba_ssm scan peer's library
# (bench/peers/mamba_ssm/build.sh, about 5 minutes of nvcc on 2 cores).  Run it in a fresh
# checkout, and again after each commit (the stamp).
#   Usage: scripts/device_deps.sh [MAMBA_SSM_SELECTIVE_SCAN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.devicedeps"
mkdir -p "$DEPS"
if [[ ! -f /usr/include/sqlite3.h ]]; then
  echo "device_deps.sh: /usr/include/sqlite3.h is missing; installing libsqlite3-dev" >&2
  apt-get install -y -qq libsqlite3-dev >/dev/null
fi
cp /usr/include/sqlite3.h /usr/include/sqlite3ext.h "$DEPS/"
git -C "$ROOT" rev-parse --short HEAD >"$DEPS/commit"
echo "device_deps.sh: $DEPS has sqlite3.h, sqlite3ext.h, commit $(cat "$DEPS/commit")"
if [[ $# -ge 1 ]]; then
  "$ROOT/bench/peers/mamba_ssm/build.sh" "$1" "$DEPS/mamba_ssm"
elif [[ ! -d $DEPS/mamba_ssm ]]; then
  echo "device_deps.sh: no mamba_ssm peer library (only the --mamba-scans peers need it): pass" \
       "mamba_ssm's csrc/selective_scan folder to build it" >&2
fi
