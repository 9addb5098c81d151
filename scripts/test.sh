#!/usr/bin/env bash
# The whole test suite: format and lint checks, then every unit and integration test with
# nextest (integration tests use the real broker, the real Docker engine and test images,
# which tests/images/build.sh builds on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}"
say() { echo "==> $*" >&2; }

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
say "building"
cargo build --workspace --all-targets --quiet
say "building test images"
bash tests/images/build.sh
profile=default
[ "${CI:-}" = "true" ] && profile=ci
say "running tests (nextest profile $profile)"
cargo nextest run --workspace --profile "$profile" "$@"
