#!/usr/bin/env bash
# Builds the core for Android and generates the Kotlin bindings.
#   needs: Android NDK (ANDROID_NDK_HOME), rustup targets, cargo-ndk. The JPEG decoder
#   (mozjpeg-sys: libjpeg-turbo C sources) is compiled by the `cc` crate with the NDK clang
#   that cargo-ndk exports; no cmake or nasm is needed (ADR 0007).
#     rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#     cargo install cargo-ndk
# out: onsite/src/main/jniLibs/<abi>/libonsite_ffi.so, bindings/build/generated/uniffi/**.kt
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PROFILE=${PROFILE:-release}
cd "$ROOT"
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o "$HERE/onsite/src/main/jniLibs" \
  build -p onsite-ffi --profile "$PROFILE"
# Bindings come from the library's metadata (library mode); any one ABI's .so will do.
cargo build -p uniffi-bindgen --release
rm -rf "$HERE/bindings/build/generated/uniffi"
"$ROOT/target/release/uniffi-bindgen" generate --library "$HERE/onsite/src/main/jniLibs/arm64-v8a/libonsite_ffi.so" \
  --language kotlin --out-dir "$HERE/bindings/build/generated/uniffi"
ls -l "$HERE"/onsite/src/main/jniLibs/*/libonsite_ffi.so
