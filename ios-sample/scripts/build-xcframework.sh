#!/usr/bin/env bash
# Builds OnsiteFFI.xcframework (static library + C header + module map) for iOS devices,
# the iOS simulator (arm64 + x86_64) and macOS, and regenerates the Swift bindings. macOS only.
#   needs: Xcode, rustup targets aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin
#   The JPEG decoder (mozjpeg-sys: libjpeg-turbo C sources) is compiled by the `cc` crate with
#   Xcode's clang for each target; no cmake or nasm is needed (ADR 0007).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin; do
  cargo build -p onsite-ffi --release --target "$t"
done
cargo build -p uniffi-bindgen
"$HERE/scripts/generate.sh" "$ROOT/target/aarch64-apple-darwin/release/libonsite_ffi.dylib"
HEADERS=$(mktemp -d)
cp "$HERE/Sources/OnsiteFFI/OnsiteFFI.h" "$HEADERS/"
cp "$HERE/Sources/OnsiteFFI/module.modulemap" "$HEADERS/module.modulemap"
mkdir -p target/ios-sim
lipo -create target/aarch64-apple-ios-sim/release/libonsite_ffi.a target/x86_64-apple-ios/release/libonsite_ffi.a \
  -output target/ios-sim/libonsite_ffi.a
rm -rf "$HERE/OnsiteFFI.xcframework"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libonsite_ffi.a -headers "$HEADERS" \
  -library target/ios-sim/libonsite_ffi.a -headers "$HEADERS" \
  -library target/aarch64-apple-darwin/release/libonsite_ffi.a -headers "$HEADERS" \
  -output "$HERE/OnsiteFFI.xcframework"
echo "built $HERE/OnsiteFFI.xcframework"
