#!/usr/bin/env bash
# `make demo`: the embedded default. A private epmd, the demo node (which starts the application and so the
# C-node, and a plain target node), then everything is stopped again. The demo (examples/) is no part of the
# application: it is compiled here, into _build/examples/ebin, against the application `make build` built.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p _build/examples/ebin
erlc +warn_missing_spec +warnings_as_errors -pa _build/default/lib/distribute_pool/ebin \
  -o _build/examples/ebin examples/distribute_pool_demo.erl
cookie="demo_$RANDOM$RANDOM"
scripts/with_epmd.sh erl -noshell -name "dpool_demo@127.0.0.1" -setcookie "$cookie" \
  -pa _build/default/lib/distribute_pool/ebin -pa _build/examples/ebin -s distribute_pool_demo main
