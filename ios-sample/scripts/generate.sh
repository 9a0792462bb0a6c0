#!/usr/bin/env bash
# Generates the Swift bindings from the built library into the package's Sources.
#   usage: scripts/generate.sh [path/to/libonsite_ffi.(so|dylib|a)]
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=${1:-$ROOT/target/debug/libonsite_ffi.so}
OUT=$(mktemp -d)
"$ROOT/target/debug/uniffi-bindgen" generate --no-format --library "$LIB" --language swift --out-dir "$OUT" >/dev/null
cp "$OUT/Onsite.swift" "$HERE/Sources/Onsite/Onsite.swift"
cp "$OUT/OnsiteFFI.h" "$HERE/Sources/OnsiteFFI/OnsiteFFI.h"
cp "$OUT/OnsiteFFI.modulemap" "$HERE/Sources/OnsiteFFI/module.modulemap"
rm -rf "$OUT"
