#!/usr/bin/env bash
# Install what is missing (Debian 12), build, and run the quickstart sweep on the CPU:
# the four core schemes at small width over a short sequence-length ladder, about two minutes
# on 2 cores.  Results: results/quickstart.db (and results/quickstart-report when `mixlab report`
# is built in).   Usage: ./scripts/quickstart.sh [extra `mixlab sweep` arguments, e.g. --force]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_missing
configure_and_build
cd "$MIXLAB_ROOT"
MIXLAB="$BUILD_DIR/mixlab"
mkdir -p results
"$MIXLAB" sweep experiments/quickstart.json --device cpu --db results/quickstart.db "$@"
"$MIXLAB" show --db results/quickstart.db --sweep quickstart
# `mixlab report --help` alone cannot tell: an unknown subcommand name falls through to the
# top-level --help, so look for `report` among the listed subcommands.
if "$MIXLAB" --help 2>/dev/null | grep -qE '^[[:space:]]+report([[:space:]]|$)' && "$MIXLAB" report --help >/dev/null 2>&1; then
  "$MIXLAB" report --db results/quickstart.db --out results/quickstart-report
  echo "report: results/quickstart-report"
else
  echo "mixlab report is not built in this checkout; skipping the report (the database is results/quickstart.db)"
fi
