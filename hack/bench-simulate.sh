#!/usr/bin/env bash
# Benchmark: 1,000 expectations against 1,000 ServiceEntries, end to end
# through `meshconform simulate` (parse + Istio validation + config
# generation + simulation + reports). Prints wall time, the driver's
# breakdown and peak RSS. Usage: hack/bench-simulate.sh [ENTRIES] [EXPECTATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000} M=${2:-1000}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
go build -o "$TMP/meshconform" ./cmd/meshconform
go run ./hack/genbench --out "$TMP/in" --entries "$N" --expectations "$M"
for run in 1 2 3; do
  /usr/bin/time -f '%e %M' -o "$TMP/time" "$TMP/meshconform" simulate -f "$TMP/in/istio" \
    --expectations "$TMP/in/expectations.yaml" --junit "$TMP/junit.xml" >"$TMP/out" 2>"$TMP/err" || {
    cat "$TMP/err" "$TMP/out" | tail -20; exit 1; }
  read -r wall rss <"$TMP/time"
  tail -1 "$TMP/out"
  grep 'simulated' "$TMP/err" | sed 's/^/  /'
  awk -v w="$wall" -v r="$rss" -v m="$M" 'BEGIN { printf "  run '"$run"': wall %.2f s, %.2f ms per expectation end to end, peak RSS %.0f MiB\n", w, w*1000/m, r/1024 }'
done
