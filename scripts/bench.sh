#!/usr/bin/env bash
# `make bench` (docs/BENCHMARKS.md): the Google Benchmark micro-benchmark of the pool core, then every figure
# measured on real nodes by bench/dpool_bench.erl against a private epmd (scripts/with_epmd.sh), then the plot.
# Writes _build/bench/results/latest.json, latest.png and latest_rss.png (untracked: a run changes no tracked
# file). The copies in bench/results/ are the published ones, which docs/BENCHMARKS.md shows: copy a run there
# when the docs are updated from it. Called after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."

results=_build/bench/results
tmp=$results/tmp
mkdir -p "$tmp" _build/bench/ebin
rm -f "$tmp"/*

scripts/ensure_deps.sh gnuplot-nox || echo "bench: gnuplot-nox could not be installed; the plot will be skipped"

echo "== pool_core_ops, packet_normalize_ns: Google Benchmark (bench/pool_core_bench.cpp)"
if cmake --build _build/cmake --target pool_core_bench -j 2 >"$tmp/pool_core_build.log" 2>&1; then
  _build/cmake/pool_core_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$tmp/pool_core.csv" --benchmark_out_format=csv
else
  echo "bench: pool_core_bench was not built (is libbenchmark-dev installed?); see $tmp/pool_core_build.log"
fi

# The TLS figures make their certificates as the TLS suite does (openssl CLI).
erlc +warn_missing_spec -o _build/bench/ebin bench/dpool_bench.erl test/erlang/dpool_tls_certs.erl
cookie="bench_$RANDOM$RANDOM"
lib_paths=()
for dir in _build/default/lib/*/ebin; do
  lib_paths+=(-pa "$dir")
done
scripts/with_epmd.sh erl -noshell -name "dpool_bench@127.0.0.1" -setcookie "$cookie" -kernel net_ticktime 8 \
  "${lib_paths[@]}" -pa _build/bench/ebin -run dpool_bench main "$results" "$tmp/pool_core.csv"

if command -v gnuplot >/dev/null 2>&1; then
  gnuplot -e "dir='$results'" bench/plot.gp && echo "wrote $results/latest.png (and latest_rss.png after scale)"
else
  echo "bench: no gnuplot, so no plot ($results/latest.json has every figure)"
fi
