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
# What the tests keep for the secret scan (tests/src/secrets.rs): a fresh directory per run;
# the last 3 runs' are kept.
if [ -z "${DROVER_TEST_LOGS:-}" ]; then
  logs_root="$CARGO_TARGET_DIR/test-logs"
  export DROVER_TEST_LOGS="$logs_root/$(date -u +%Y%m%dT%H%M%SZ)-$$"
  mkdir -p "$logs_root"
  find "$logs_root" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | tail -n +3 \
    | cut -d' ' -f2- | while IFS= read -r old; do rm -rf -- "$old"; done
fi
mkdir -p "$DROVER_TEST_LOGS"
say "running tests (nextest profile $profile; logs kept in $DROVER_TEST_LOGS)"
status=0
cargo nextest run --workspace --profile "$profile" "$@" || status=$?
say "secret scan of the kept logs and events (scripts/secret-scan.sh)"
scripts/secret-scan.sh "$DROVER_TEST_LOGS" || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
