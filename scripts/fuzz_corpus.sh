#!/usr/bin/env bash
# Renews the seed corpora of the fuzz targets (test/fuzz/corpus/<name>/) from real traffic: runs
# distribute_pool_fuzz_corpus_SUITE (a C-node recording its links with --record-packets while real callers send
# every request and a real target answers; dpool_fuzz_split splits the links per target), then keeps, per
# target, the recorded inputs that add coverage (libFuzzer's -merge=1) in place of the old corpus.
# Needs `make build` (the C-node, dpool_fuzz_split) first; builds the fuzz targets itself.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fuzz.sh build
recorded=$(mktemp -d)
trap 'rm -rf "$recorded"' EXIT
DPOOL_FUZZ_CORPUS_OUT="$recorded" scripts/with_epmd.sh rebar3 ct --name distribute_pool_ct@127.0.0.1 \
  --setcookie dpool_test --suite test/erlang/distribute_pool_fuzz_corpus_SUITE

for dir in "$recorded"/*/; do
  name=$(basename "$dir")
  corpus="test/fuzz/corpus/$name"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  "${FUZZ_BUILD_DIR:-_build/fuzz}/fuzz_$name" -merge=1 "$corpus" "$dir" 2>"$recorded/$name.merge.log"
  echo "$name: $(find "$dir" -type f | wc -l) recorded, $(find "$corpus" -type f | wc -l) kept" \
    "($(du -sk "$corpus" | cut -f1) KiB)"
done
