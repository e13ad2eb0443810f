#!/usr/bin/env bash
# Runs every test of the project against a private epmd (scripts/with_epmd.sh): the C++ unit tests, Dialyzer
# and xref of the Erlang application (any warning fails), the Erlang Common Test suites (real nodes, real
# sockets on 127.0.0.1), the Elixir script, the Gleam suite, the consumer projects, each fuzz target briefly,
# and the sanitizer stage (scripts/sanitize_test.sh).
# Called by `make test` after the build; exits non-zero if any stage fails, after running them all.
set -uo pipefail
cd "$(dirname "$0")/.."

cookie=dpool_test
failed=()
timings=()

stage() {
  local name=$1
  shift
  echo
  echo "=== $name"
  local start=$SECONDS
  local result=passed
  if ! "$@"; then
    result=FAILED
    failed+=("$name")
  fi
  echo "=== $name: $result in $((SECONDS - start)) s"
  timings+=("$(printf '%6d s  %-6s  %s' $((SECONDS - start)) "$result" "$name")")
}

# Starts a command in the background (Dialyzer and xref, which need one core and no nodes, beside the stages
# that follow; later the sanitizer unit tests beside the sanitizer suites); its output waits in a file. `stage
# NAME joined` then waits for it, prints that output, and passes or fails as it did (the stage's time is what
# was left of it then). One at a time.
start_beside() {
  rm -f _build/beside.status
  (("$@") >_build/beside.log 2>&1; echo $? >_build/beside.status) &
  beside=$!
}
joined() {
  wait "$beside"
  cat _build/beside.log
  return "$(cat _build/beside.status 2>/dev/null || echo 1)"
}

run_all() {
  # One background job, at the lowest priority, builds what the last stages need (about 6 minutes of both
  # cores) with the CPU the stages before them leave: from the start, since the unit tests, Dialyzer and xref
  # use one core, and the Erlang suites mostly wait on nodes and sockets. First the sanitizer build of the
  # C-node, then of the unit tests (during the sanitizer stage's suites, which wait likewise), then the fuzz
  # targets, built and run for 5 s each. Each sanitizer stage waits for its build's mark, the fuzz stage for
  # the whole job.
  rm -f _build/sanitize_cnode.status _build/sanitize_build.status
  (nice -n 19 scripts/sanitize_test.sh build-cnode >_build/sanitize_build.log 2>&1
   echo $? >_build/sanitize_cnode.status
   nice -n 19 scripts/sanitize_test.sh build-unit >>_build/sanitize_build.log 2>&1
   echo $? >_build/sanitize_build.status
   nice -n 19 scripts/fuzz.sh build >_build/fuzz_run.log 2>&1 &&
     FUZZ_NICE=19 scripts/fuzz.sh run 5 >>_build/fuzz_run.log 2>&1) &
  background=$!
  start_beside bash -c 'rebar3 dialyzer && rebar3 xref'
  stage "C++ unit tests (Catch2 binary, then ctest: layer checks, corpus replays)" cpp_tests
  # The C-node again, from a copy of the repository: its compiles come from ccache (`make build` filled it).
  stage "As a dependency (rebar3, Mix and Gleam consumer projects)" scripts/dep_test.sh
  stage "Dialyzer and xref (0 warnings; run beside the two stages above)" joined
  # Its output is kept, so that the failed cases can be named again at the end (CI shows only the tail).
  stage "Erlang suites (rebar3 ct)" bash -c 'rebar3 ct --name "distribute_pool_ct@127.0.0.1" --setcookie "$cookie" \
    2>&1 | tee _build/ct_output.log; exit "${PIPESTATUS[0]}"'
  stage "Elixir script" elixir --name "elixir_smoke@127.0.0.1" --cookie "$cookie" \
    -pa _build/default/lib/distribute_pool/ebin test/elixir/smoke.exs
  stage "Gleam suite" env GLEAM_TEST_ERL_FLAGS="-name distribute_gleam_test@127.0.0.1 -setcookie $cookie" \
    scripts/gleam_test.sh
  # The unit tests (one core, once their build is done) beside the suites, which mostly wait on nodes; niced, so
  # that the suites' nodes come first.
  start_beside nice -n 10 bash -c 'sanitizers _build/sanitize_build.status unit'
  stage "Sanitizers (ASan + UBSan): Erlang suites" sanitizers _build/sanitize_cnode.status suites
  stage "Sanitizers (ASan + UBSan): C++ unit tests (run beside the stage above)" joined
  stage "Fuzz targets (clang, libFuzzer: 5 s each)" fuzz_targets
  # CI shows only the tail of the output: what each stage took, and why CT cases failed, go last.
  echo
  echo "Stages (wall time; the sanitizer and fuzz builds run beside the first stages):"
  printf '%s\n' "${timings[@]}"
  if [ ${#failed[@]} -ne 0 ]; then
    echo
    if [[ " ${failed[*]} " == *"Erlang suites (rebar3 ct)"* ]] && [ -f _build/ct_output.log ]; then
      echo
      echo "Common Test cases that failed, with their reasons:"
      grep -aE -A12 "%%% .*==> " _build/ct_output.log | tail -80
    fi
    echo "FAILED: ${failed[*]}"
    return 1
  fi
  echo
  echo "all test stages passed"
}

# The C++ unit tests: the Catch2 binary once (every case in one process, 4 times faster than ctest's process per
# case), then what else ctest has (label `unit` excluded: those cases). Both run whatever the first gives. The
# binary's report is printed whole when a case failed, else its summary (what the cases print on stderr, e.g.
# the usage errors of the options' cases, stays in _build/cmake/dpool_unit_tests.stderr). It runs in the build
# directory, as ctest runs it: built file by file (-DDPOOL_UNITY_TESTS=OFF) under ccache (CCACHE_BASEDIR), the
# compiler sees the test files by relative paths, and the case that reads docs/PROTOCOL.md finds it from there.
cpp_tests() {
  local status=0 out=_build/cmake/dpool_unit_tests
  if (cd _build/cmake && timeout -k 10 600 ./dpool_unit_tests) >"$out.log" 2>"$out.stderr"; then
    tail -n 2 "$out.log"
  else
    cat "$out.log"
    echo "--- its standard error, last lines:"
    tail -n 40 "$out.stderr"
    status=1
  fi
  ctest --test-dir _build/cmake --output-on-failure --timeout 300 -LE '^unit$' || status=1
  # ctest's own entry per case (label `unit`, for a developer's `ctest -L unit`) names the case Catch2 runs only
  # when CMake did not split the name: a ';' in it is CMake's list separator.
  local cases entries
  cases=$(cd _build/cmake && ./dpool_unit_tests --list-test-names-only 2>/dev/null | grep -c .)
  entries=$(ctest --test-dir _build/cmake -N -L '^unit$' | grep -c 'Test *#')
  if [ "$cases" != "$entries" ]; then
    echo "ctest has $entries unit entries for $cases Catch2 cases: a case name with a ';' is split by CMake"
    status=1
  fi
  return $status
}

# A sanitizer stage ($2: suites or unit) runs once the background job (started by run_all) has written the
# mark $1 of its build: its exit status. After a good build the stage does not build again (the job may be
# building in the same directory); after a failed one it does, fails again, and prints why. The fuzz stage
# prints what the rest of that job did.
sanitizers() {
  local mark=$1 part=$2 waited=0
  while [ ! -s "$mark" ] && [ $waited -lt 3600 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  if [ "$(cat "$mark" 2>/dev/null)" = 0 ]; then
    DPOOL_SANITIZE_PREBUILT=1 scripts/sanitize_test.sh "$part"
  else
    scripts/sanitize_test.sh "$part"
  fi
}
fuzz_targets() {
  local status=0
  wait "$background" || status=$?
  grep -v '^\[\|^gmake\|^-- ' _build/fuzz_run.log
  return $status
}

export -f stage start_beside joined run_all cpp_tests sanitizers fuzz_targets
export cookie
scripts/with_epmd.sh bash -c 'failed=(); timings=(); run_all'
