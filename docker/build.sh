#!/usr/bin/env bash
# Builds the release image `ecommesh:latest` (FROM scratch, static binary).
# Usage: docker/build.sh [tag [cargo features]]
#   docker/build.sh                                  # the shipped image
#   docker/build.sh ecommesh:broken test-hooks       # the chaos suite's broken build only
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-ecommesh:latest}"
features="${2:-}"
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target "$target" -p ecommesh --bin ecommesh ${features:+--features "$features"}
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "target/$target/release/ecommesh" "$context/ecommesh"
strip "$context/ecommesh" 2>/dev/null || true
mkdir "$context/data"
docker build -q -f docker/Dockerfile -t "$tag" "$context"
docker image ls "$tag" --format '{{.Repository}}:{{.Tag}} {{.Size}}'
