#!/usr/bin/env bash
# `make demo`: the embedded default. A private epmd, the demo node (which starts the application and so the
# C-node, and a plain target node), then everything is stopped again.
set -euo pipefail
cd "$(dirname "$0")/.."
cookie="demo_$RANDOM$RANDOM"
scripts/with_epmd.sh erl -noshell -name "dpool_demo@127.0.0.1" -setcookie "$cookie" \
  -pa _build/default/lib/distribute_pool/ebin -s distribute_pool_demo main
