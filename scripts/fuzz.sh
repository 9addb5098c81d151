#!/usr/bin/env bash
# cargo-fuzz on the decoders of what clients and producers send Drover (fuzz/, its own
# workspace; auth/README.md "Fuzzing" has the targets and the last results).
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60); default: all
# Installs cargo-fuzz into $DROVER_TOOLS when missing. The toolchain is stable: cargo fuzz is
# run with RUSTC_BOOTSTRAP=1 (it passes -Z flags) and `-s none` (no sanitizer: ASan needs a
# nightly std; Rust code is memory-safe here, so what the fuzzer looks for is panics, aborts,
# 5xx answers, timeouts and runaway memory). The alertman target builds with the fuzz crate's
# `alertman` feature (polars and tantivy: a long first build).
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${DROVER_TOOLS:-$HOME/.cache/drover/tools}"
export PATH="$TOOLS/bin:$PATH"
# The fuzz build's flags differ from the workspace's: a target dir of its own, outside the clone.
export CARGO_TARGET_DIR="${DROVER_FUZZ_TARGET:-$HOME/.cache/drover/fuzz-target}"
export RUSTC_BOOTSTRAP=1
say() { echo "==> $*" >&2; }

secs="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(kafka_records time_spec auth_guard scheduler_api search_params autoscaler_policy alertman_api)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz into $TOOLS"
  cargo install cargo-fuzz --locked --root "$TOOLS"
fi

failed=()
for t in "${targets[@]}"; do
  features=()
  [ "$t" = alertman_api ] && features=(--features alertman)
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
  say "fuzzing $t for ${secs}s"
  log="fuzz/artifacts/$t.log"
  mkdir -p fuzz/artifacts
  set +e
  cargo fuzz run -s none --fuzz-dir fuzz "${features[@]}" "$t" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)|panicked at' "$log" >&2 || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    tail -n 30 "$log" >&2
    say "$t: FAILED (exit $rc; full output in $log)"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes or failures in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: ${secs}s each, no crash" >&2
