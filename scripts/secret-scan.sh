#!/usr/bin/env bash
# The suite-wide secret scan (issue 21): no token or password in any log or event the test
# suite produced. Usage: scripts/secret-scan.sh [DIR]   (default $DROVER_TEST_LOGS)
#
# DIR is what the tests kept (tests/src/secrets.rs): every drover process's stdout and stderr,
# the embedded brokers' logs and small record stores (every record of drover.events.v1),
# events the tests read, and secrets.txt, the secrets the tests made or handed to Drover
# (NAME<TAB>SECRET per line). Each secret is looked for in every other file, and so is the
# last 24 characters of a long one (a token cut in a message). A find fails the scan with the
# file and the secret's name; the secret itself is never printed (nor put on a command line).
# No DIR, or no secret registered: nothing to check, exit 0.
set -euo pipefail
dir="${1:-${DROVER_TEST_LOGS:-}}"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "secret scan: no kept logs (DROVER_TEST_LOGS unset or not a directory): skipped" >&2
  exit 0
fi
secrets="$dir/secrets.txt"
if [ ! -s "$secrets" ]; then
  echo "secret scan: no secret registered in $dir: nothing to look for" >&2
  exit 0
fi

files=$(find "$dir" -type f ! -name secrets.txt | wc -l)
bytes=$(find "$dir" -type f ! -name secrets.txt -printf '%s\n' | awk '{s += $1} END {print s + 0}')
found=0
checked=0
# Each distinct secret once (tests register the same one in several runs).
while IFS=$'\t' read -r name secret; do
  [ -n "${secret:-}" ] || continue
  checked=$((checked + 1))
  patterns=("$secret")
  [ "${#secret}" -ge 40 ] && patterns+=("${secret: -24}")
  for i in "${!patterns[@]}"; do
    what="\"$name\""
    [ "$i" -gt 0 ] && what="the last 24 characters of \"$name\""
    # The pattern goes to grep on a file descriptor, not in its arguments (ps would show it).
    while IFS= read -r -d '' f; do
      echo "secret scan: FAILED: $what appears in ${f#"$dir"/}" >&2
      found=1
    done < <(grep -rlZaF --exclude=secrets.txt -f <(printf '%s\n' "${patterns[$i]}") "$dir" || true)
  done
done < <(sort -t $'\t' -k2,2 -u "$secrets")

if [ "$found" -ne 0 ]; then
  echo "secret scan: a registered secret is in what the suite kept in $dir (see above)" >&2
  exit 1
fi
echo "secret scan: $checked secrets, none in $files kept files ($((bytes / 1024)) KiB) in $dir" >&2
