#!/usr/bin/env bash
# The fuzz targets of test/fuzz/ (README, "Fuzzing"), built with clang, libFuzzer, ASan and UBSan in
# _build/fuzz (CMake option DPOOL_FUZZ).
#
#   scripts/fuzz.sh build                 builds them
#   scripts/fuzz.sh [run] [SECONDS] [NAME...]
#                                         builds them, then runs each (or those named) for SECONDS (default
#                                         $FUZZ_SECONDS, else 60) from its committed corpus, one after the other,
#                                         and prints a table: executions, executions per second, coverage
#                                         (libFuzzer's cov: edges, ft: features) and new inputs found.
#
# New inputs go to a scratch directory, not into test/fuzz/corpus/ (scripts/fuzz_corpus.sh renews that). A
# crash, a sanitizer finding, a failed check of a target, a leak, a timeout or an allocation over the limit
# fails the run; libFuzzer's input for it is saved as test/fuzz/crashes/<name>-<kind>-<hash>, which must then
# become a regression input (test/fuzz/regressions/<name>/, replayed by ctest) with the fix. FUZZ_NICE (default
# 10) is the niceness the fuzzers run at.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${FUZZ_BUILD_DIR:-_build/fuzz}

build() {
  if ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz: clang++ not found (scripts/ensure_deps.sh installs clang and libfuzzer-14-dev)" >&2
    exit 1
  fi
  # -O1 -g1 (line tables: file and line in the reports): the optimisation libFuzzer's documentation builds its
  # targets with, and about a fifth less compile time than RelWithDebInfo's -O2 -g. File by file
  # (DPOOL_UNITY=OFF), and the top layer too, which no fuzz target needs: the one build of `make test` that
  # compiles each source of c_src/ on its own, so that one that leans on what another of its batch declares
  # (cmake/unity.cmake) fails here.
  CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DDPOOL_FUZZ=ON -DBUILD_TESTING=OFF -DDPOOL_UNITY=OFF \
    >/dev/null
  cmake --build "$build_dir" --target dpool_fuzzers dpool_cnode_lib -j 2
}

targets() {
  local dir
  for dir in test/fuzz/corpus/*/; do
    basename "$dir"
  done
}

# Runs one target; prints its row of the table, or FAILED and libFuzzer's report.
run_one() {
  local name=$1 seconds=$2 scratch=$3
  local log="$scratch/$name.log"
  local inputs=("test/fuzz/corpus/$name")
  if [ -d "test/fuzz/regressions/$name" ]; then
    inputs+=("test/fuzz/regressions/$name")
  fi
  mkdir -p "$scratch/$name" test/fuzz/crashes
  local status=0
  nice -n "${FUZZ_NICE:-10}" "$build_dir/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="test/fuzz/crashes/$name-" \
    "$scratch/$name" "${inputs[@]}" >"$log" 2>&1 || status=$?
  local execs rate cov ft added
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$status" -ne 0 ]; then
    printf '%-14s FAILED (exit %s); libFuzzer said:\n' "$name" "$status"
    grep -E 'ERROR|SUMMARY|fuzz check failed|Test unit written|runtime error' "$log" | head -20 || tail -20 "$log"
    return 1
  fi
  printf '%-14s %8s %12s %10s %6s %6s %6s\n' "$name" "${seconds}s" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${added:-?}"
}

command=run
if [ "${1:-}" = build ] || [ "${1:-}" = run ]; then
  command=$1
  shift
fi
build
if [ "$command" = build ]; then
  exit 0
fi

seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  mapfile -t names < <(targets)
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo
printf '%-14s %8s %12s %10s %6s %6s %6s\n' target time execs execs/s cov ft new
failed=()
for name in "${names[@]}"; do
  run_one "$name" "$seconds" "$scratch" || failed+=("$name")
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in test/fuzz/crashes/)"
  exit 1
fi
echo "fuzz: ${#names[@]} targets, no crash"
