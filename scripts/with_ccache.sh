#!/usr/bin/env bash
# Runs a command with the ccache settings of this repository's builds: the cache in _build/ccache, paths under
# this directory taken relative to it (CCACHE_BASEDIR), and the build directory left out of the hash
# (CCACHE_NOHASHDIR), so that a copy of the repository under _build (the dependency stage of `make test`,
# scripts/dep_test.sh) compiles with the same hashes as `make build` here and gets its objects.
root=$(cd "$(dirname "$0")/.." && pwd)
exec env CCACHE_DIR="$root/_build/ccache" CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true "$@"
