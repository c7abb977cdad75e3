#!/bin/sh
# Regenerates the seed inputs of fuzz/corpus/<target>/ (files named seed-*) from the hex test
# vectors in zmtp-spec/vectors/. The seeds are written by an ignored test of
# tests/fuzz_corpus.rs, so they use the same hex parser and the same input layout as the
# ferromq::fuzzing entry points. Run from anywhere; commit the result.
set -eu
cd "$(dirname "$0")/.."
rm -f fuzz/corpus/*/seed-*
cargo test --test fuzz_corpus -- --ignored --exact seed_corpus
for dir in fuzz/corpus/*/; do
    printf '%s: %s files\n' "$dir" "$(ls "$dir" | wc -l)"
done
