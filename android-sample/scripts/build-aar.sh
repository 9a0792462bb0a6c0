#!/usr/bin/env bash
# Builds the core for every ABI, then the AAR and the bindings jar, and publishes both to
# mavenLocal (com.kuaige.onsite:onsite:0.1.0 and com.kuaige.onsite:onsite-bindings:0.1.0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
"$HERE/scripts/build-rust.sh"
cd "$HERE"
./gradlew :onsite:assembleRelease :bindings:jar publishToMavenLocal
ls -l onsite/build/outputs/aar/onsite-release.aar
