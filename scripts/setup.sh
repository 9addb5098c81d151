#!/usr/bin/env bash
# Install what Drover needs and is missing on this machine; quick when nothing is.
#  - Debian packages: promtool (prometheus), busybox-static (test image), build tools,
#    chromium + chromium-driver (the dashboards' headless browser tests), haproxy, nginx and
#    wrk (the gateway's benchmark baselines and load), python3-aiosmtpd (a real SMTP server for
#    Alertman's tests), prometheus-alertmanager (amtool, against Alertman's Alertmanager API;
#    Alertmanager 0.25 itself for tests/alertman/side_by_side.py)
#  - tansu, the embedded Kafka-protocol broker, into $DROVER_TOOLS (outside the clone)
#  - Python's confluent-kafka (benchmark baseline and third-party client tests) and marathon
#    (a third-party Marathon client the scheduler's tests drive), selenium (browser tests)
# The Docker engine must already be running (it is on this machine kind).
set -euo pipefail
TOOLS="${DROVER_TOOLS:-$HOME/.cache/drover/tools}"
TANSU_VERSION=0.6.0
say() { echo "==> $*" >&2; }

# --- Debian packages ---------------------------------------------------------------------
need=()
for pkg in prometheus busybox-static gcc g++ make perl pkg-config python3 curl \
  chromium chromium-driver fonts-dejavu-core haproxy nginx wrk \
  python3-aiosmtpd prometheus-alertmanager; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- Rust tools --------------------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# --- the embedded broker -----------------------------------------------------------------
if ! "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  say "installing tansu $TANSU_VERSION (the embedded Kafka broker) into $TOOLS — once; about 15 minutes on 2 cores"
  mkdir -p "$TOOLS"
  cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features libsql \
    --root "$TOOLS" --target-dir "${DROVER_TANSU_TARGET:-$HOME/.cache/drover/tansu-target}"
fi

# --- Python client for baselines ---------------------------------------------------------
if ! python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
  say "installing Python confluent-kafka"
  python3 -m pip install --quiet --disable-pip-version-check confluent-kafka \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages confluent-kafka
fi
if ! python3 -c 'import marathon' >/dev/null 2>&1; then
  say "installing Python marathon (third-party Marathon client for the scheduler's tests)"
  python3 -m pip install --quiet --disable-pip-version-check marathon \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages marathon
fi

if ! python3 -c 'import selenium' >/dev/null 2>&1; then
  say "installing Python selenium (drives chromium in the dashboards' browser tests)"
  python3 -m pip install --quiet --disable-pip-version-check selenium \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages selenium
fi

# --- Docker ------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  echo "error: the Docker engine is not reachable (docker info failed): start dockerd, or check DOCKER_HOST" >&2
  exit 1
fi
say "setup complete"
