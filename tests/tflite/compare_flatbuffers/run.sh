#!/bin/sh
# Generates Rust code from the TFLite schema with flatc, then measures it against the importer's
# hand-written reader: lines of code, .text growth of a release binary, robustness over truncated and
# bit-flipped files, parse time.
#
# Usage: tests/tflite/compare_flatbuffers/run.sh SCHEMA.fbs [compare options, e.g. --flips 100000]
# Needs flatc 2.0.8 (Debian 12: apt-get install flatbuffers-compiler) and binutils' size.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 SCHEMA.fbs [--flips N] [--seed S]" >&2; exit 2; }
schema=$1
shift
[ -f "$schema" ] || { echo "error: schema $schema not found" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
command -v flatc >/dev/null || { echo "error: flatc not found (apt-get install flatbuffers-compiler)" >&2; exit 1; }

echo "== $(flatc --version), schema $schema"
mkdir -p "$here/generated"
# flatc 2.0.8 cannot parse attributes on enum values and union members, which newer schemas mark
# `(deprecated)`; dropping them there changes no generated layout.
sed -E 's/^([[:space:]]*[A-Za-z_0-9]+( = [0-9]+)?) \(deprecated\),/\1,/' "$schema" >"$here/generated/schema.fbs"
flatc --rust -o "$here/generated" "$here/generated/schema.fbs"

# Lines: all, and code (not blank, not a // comment), before any #[cfg(test)] module.
count() {
    awk '/^#\[cfg\(test\)\]/ { exit } { all++ } !/^[[:space:]]*(\/\/|$)/ { code++ }
         END { printf "%6d lines, %6d code lines", all, code }' "$@"
}
reader=$root/quantizer/src/import/tflite
echo "== lines"
echo "  hand-written schema.rs:             $(count "$reader/schema.rs")"
echo "  hand-written flatbuf.rs:            $(count "$reader/flatbuf.rs")"
echo "  hand-written total:                 $(cat "$reader/schema.rs" "$reader/flatbuf.rs" | count)"
echo "  generated schema_generated.rs:      $(count "$here/generated/schema_generated.rs")"

cd "$here"
CARGO_INCREMENTAL=0 cargo build --release --quiet
text() { size -A "target/release/$1" | awk '$1 == ".text" { print $2 }'; }
base=$(text size_base)
hand=$(text size_hand)
gen=$(text size_generated)
echo "== .text of release binaries (size -A): baseline $base bytes"
echo "  hand-written reader:         $hand bytes (+$((hand - base)))"
echo "  generated code + verifier:   $gen bytes (+$((gen - base)))"

echo "== robustness and speed"
models=$root/../shared/models/mlperf-tiny
# shellcheck disable=SC2046
target/release/compare-flatbuffers "$@" $(find "$root/tests" -name '*.tflite' | sort) \
    $( [ -d "$models" ] && find "$models" -name '*.tflite' | sort )
