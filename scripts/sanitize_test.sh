#!/usr/bin/env bash
# The sanitizer stage of the tests (README, "Tests"): the C++ unit tests and the C-node under the sanitizers,
# each build in a directory of its own (CMake's DPOOL_SANITIZE), never the one `make build` installs into priv/.
#
#   address: AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included), built at -O0 in
#            _build/asan: the unit tests, then the Erlang suites against that C-node (the application env
#            cnode_executable, given to every node of the run through ERL_FLAGS).
#   thread:  ThreadSanitizer, built in _build/tsan: the unit tests. Not part of `make test`: the C-node's
#            pools, links and handshakes all run on one event loop; its only other threads are the writers
#            of its output (util/output_lines.hpp, spdlog's async logger), which the unit tests "[output]"
#            exercise, besides the tests' own (ei's side of test_handshake.cpp). `scripts/sanitize_test.sh
#            thread` after a change there.
#
# Usage: scripts/sanitize_test.sh [address|thread|build|build-cnode|build-unit|unit|suites]...   (none:
# address = build, unit, suites). `make test-sanitize` runs it alone; `make test` (scripts/test.sh) runs
# `suites` and `unit` as two stages, with DPOOL_SANITIZE_PREBUILT=1: `suites` once `build-cnode` has run in the
# background during the stages before it, `unit` beside it once `build-unit` has run.
# DPOOL_SANITIZE_SUITES: the Erlang suites to run, comma-separated names of test/erlang/ (e.g.
# distribute_pool_pool_SUITE,distribute_pool_faults_SUITE), or `all`. Default: every suite that drives C-node
# code the others do not: all but client (it plays the C-node itself and starts none), the suites of the
# library's own Erlang code (docs, names, admin, telemetry, registry), whose requests to the C-node the others
# make too (registry makes none),
# and deadline, which times the C-node's deadlines (its timers, health checks and waiters run in the pool,
# eviction and limits suites too) and is one of the longest.
#
# Every report fails the stage. The sanitizers write their reports to files (log_path) in a directory of the
# run, because the C-node is a port program of the test node: its stderr goes to the test node's logger, not
# to this output. The stage fails when the directory holds any report, and prints them.
set -uo pipefail
cd "$(dirname "$0")/.."

# The Erlang suites need an epmd: a private one unless the caller (scripts/test.sh) runs one already.
if [ -z "${ERL_EPMD_PORT:-}" ]; then
  case "$*" in
    build | build-cnode | build-unit) ;;
    *) exec scripts/with_epmd.sh "$0" "$@" ;;
  esac
fi

cookie=dpool_test
jobs=${DPOOL_SANITIZE_JOBS:-2}

say() { echo "--- sanitize: $*"; }

# Configures and builds the given targets of a sanitizer build directory (only what changed, when it exists).
build() {
  local dir=$1 sanitize=$2
  shift 2
  # -O0: the instrumented build compiles in half the time of -O1 (the stage's largest cost), and the tests
  # spend their time waiting on sockets and nodes, not computing. -g1 (line tables, a quarter faster to build
  # than -g): file and line in the reports. NDEBUG as in the shipped build. _GLIBCXX_ASSERTIONS: libstdc++
  # checks indexes and preconditions (operator[], front() of an empty container), which ASan misses inside a
  # container's capacity. The layers and the unit tests are unity builds by default (DPOOL_UNITY,
  # DPOOL_UNITY_TESTS), which halves the compile time, the longest step of CI; every other target is one file.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1 -DNDEBUG" \
    -DCMAKE_CXX_FLAGS="-D_GLIBCXX_ASSERTIONS" -DBUILD_TESTING=ON -DDPOOL_WERROR=ON \
    -DDPOOL_SANITIZE="$sanitize" >/dev/null || return 1
  local start=$SECONDS
  if ! nice cmake --build "$dir" -j "$jobs" --target "$@" >"$dir/build.log" 2>&1; then
    tail -n 100 "$dir/build.log"
    return 1
  fi
  say "built $* in $((SECONDS - start)) s"
}

# A fresh, empty directory $1/$2 for the reports of one run (the unit tests' in unit, the suites' in ct).
report_dir() {
  rm -rf "${1:?}/${2:?}" && mkdir -p "$1/$2"
}

# Fails, printing each report, when the directory holds any.
check_reports() {
  local dir=$1 what=$2
  local reports=()
  mapfile -t reports < <(find "$dir" -type f -size +0 | sort)
  if [ ${#reports[@]} -eq 0 ]; then
    say "$what: no sanitizer report"
    return 0
  fi
  say "$what: ${#reports[@]} sanitizer report(s):"
  local report
  for report in "${reports[@]}"; do
    echo "===== $report"
    head -n 200 "$report"
  done
  return 1
}

# Runs one unit-test binary of a build directory (at most 10 minutes); its output goes to a file, shown when it
# fails.
unit_tests() {
  local log=$1/$2.log
  if timeout -k 10 600 "$1/$2" >"$log" 2>&1; then
    tail -n 2 "$log"
  else
    tail -n 100 "$log"
    return 1
  fi
}

# Waits until no process runs the binary $1 (C-nodes of the suites exit on stdin EOF after their node, and
# write their leak report then); fails, naming them, if some still run after 30 s, and kills those by pid.
wait_exited() {
  local exe
  exe=$(realpath "$1")
  local pids=()
  for _ in $(seq 1 300); do
    pids=()
    local proc
    for proc in /proc/[0-9]*; do
      if [ "$(readlink "$proc/exe" 2>/dev/null)" = "$exe" ]; then
        pids+=("${proc#/proc/}")
      fi
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  say "C-node(s) of the suites still running 30 s after them (killed now): ${pids[*]}"
  kill -9 "${pids[@]}" 2>/dev/null
  return 1
}

asan_dir=_build/asan

# Builds the targets $2... with ASan + UBSan; $1 says what they are.
address_build_of() {
  say "address: building $1 with ASan + UBSan in $asan_dir"
  shift
  build "$asan_dir" address,undefined "$@"
}
address_build() { address_build_of "the C-node and the unit tests" dpool_cnode dpool_unit_tests; }
# The parts of address_build, for scripts/test.sh, which builds the C-node first so that the suites can start
# while the unit tests are still being built.
address_build_cnode() { address_build_of "the C-node" dpool_cnode; }
address_build_unit() { address_build_of "the unit tests" dpool_unit_tests; }

# halt_on_error: the first report ends the process, with an exit status (not abort(): a test binary's
# SIGABRT handler, or a report from a thread other than main, can hang the process instead of ending it).
asan_options=halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1
ubsan_options=halt_on_error=1:print_stacktrace=1

address() {
  address_build || return 1
  local status=0
  DPOOL_SANITIZE_PREBUILT=1 address_unit || status=1
  DPOOL_SANITIZE_PREBUILT=1 address_suites || status=1
  return $status
}

# The unit tests under ASan + UBSan (built first, unless DPOOL_SANITIZE_PREBUILT=1 says a build that is over
# made them: scripts/test.sh, whose background job builds in the same directory).
address_unit() {
  local dir=$asan_dir status=0
  [ "${DPOOL_SANITIZE_PREBUILT:-0}" = 1 ] || address_build_unit || return 1
  local reports=$PWD/$dir/reports
  report_dir "$reports" unit
  say "address: unit tests"
  ASAN_OPTIONS=$asan_options:log_path=$reports/unit/asan UBSAN_OPTIONS=$ubsan_options:log_path=$reports/unit/ubsan \
    unit_tests "$dir" dpool_unit_tests || status=1
  check_reports "$reports/unit" "address: unit tests" || status=1
  return $status
}

# The Erlang suites against the C-node built with ASan + UBSan (built first, unless DPOOL_SANITIZE_PREBUILT=1).
address_suites() {
  local dir=$asan_dir status=0
  [ "${DPOOL_SANITIZE_PREBUILT:-0}" = 1 ] || address_build_cnode || return 1
  local reports=$PWD/$dir/reports
  report_dir "$reports" ct
  local names=() name paths=""
  case ${DPOOL_SANITIZE_SUITES:-} in
    all) names=(test/erlang/*_SUITE.erl) ;;
    "") mapfile -t names < <(ls test/erlang/*_SUITE.erl |
           grep -Ev '/distribute_pool_(client|docs|names|admin|telemetry|deadline|registry)_SUITE\.erl$') ;;
    *) IFS=, read -ra names <<<"$DPOOL_SANITIZE_SUITES" ;;
  esac
  for name in "${names[@]}"; do
    name=$(basename "$name" .erl)
    paths+=${paths:+,}test/erlang/$name
  done
  say "address: Erlang suites against $dir/dpool_cnode: ${paths//test\/erlang\//}"
  # Every node of the run (this one, peers, the nodes of the suites) gets the instrumented C-node, and
  # DPOOL_TEST_SANITIZER tells the suites. Smaller amounts (dpool_ct_helper:do_scaled/2,3): 100,000 messages in
  # the million-message case, the instrumented C-node being five times slower at it; 2,000 pools in the churn
  # case, not 10,000; 10 pools of 100 at once, not 500; a flood of 50,000 checkouts, not 200,000; 8,000 calls in
  # the deadline-queue case, not 20,000. And (dpool_ct_helper:do_sanitized/0) the churn case and the limits
  # suite's floods leave out their RSS bounds; the address-space and descriptor-limit cases are skipped.
  ERL_FLAGS="${ERL_FLAGS:-} -distribute_pool cnode_executable '\"$PWD/$dir/dpool_cnode\"'" \
    ASAN_OPTIONS=$asan_options:log_path=$reports/ct/asan UBSAN_OPTIONS=$ubsan_options:log_path=$reports/ct/ubsan \
    DPOOL_TEST_SANITIZER=address \
    rebar3 ct --name "distribute_pool_ct@127.0.0.1" --setcookie "$cookie" --logdir "$dir/ct_logs" \
    --suite "$paths" || status=1
  wait_exited "$dir/dpool_cnode" || status=1
  check_reports "$reports/ct" "address: Erlang suites" || status=1
  return $status
}

thread() {
  local dir=_build/tsan status=0
  say "thread: building the unit tests with TSan in $dir"
  build "$dir" thread dpool_unit_tests || return 1
  local reports=$PWD/$dir/reports
  report_dir "$reports" unit
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$reports/unit/tsan
  say "thread: unit tests"
  unit_tests "$dir" dpool_unit_tests || status=1
  check_reports "$reports/unit" "thread: unit tests" || status=1
  return $status
}

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(address)
failed=()
for tool in "${tools[@]}"; do
  case $tool in
    address | thread) run=$tool ;;
    build) run=address_build ;;
    build-cnode) run=address_build_cnode ;;
    build-unit) run=address_build_unit ;;
    unit) run=address_unit ;;
    suites) run=address_suites ;;
    *) echo "usage: $0 [address|thread|build|build-cnode|build-unit|unit|suites]..." >&2; exit 2 ;;
  esac
  start=$SECONDS
  if (set -uo pipefail; "$run"); then
    say "$tool: passed in $((SECONDS - start)) s"
  else
    say "$tool: FAILED in $((SECONDS - start)) s"
    failed+=("$tool")
  fi
done
[ ${#failed[@]} -eq 0 ] || { say "FAILED: ${failed[*]}"; exit 1; }
