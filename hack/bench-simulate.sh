#!/usr/bin/env bash
# Benchmark `meshconform simulate` end to end (parse + Istio validation +
# config generation + simulation + Istio's analyzers + self-checks +
# reports) on N ServiceEntries x N expectations (hack/genbench), for each
# size, RUNS times. Prints a Markdown table: wall, peak RSS and the
# breakdown the CLI prints.
# Usage: hack/bench-simulate.sh [SIZE...]   (default 1000; RUNS=3 by default)
#        hack/bench-simulate.sh 1000 4000 10000 20000
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1000)
RUNS=${RUNS:-3}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
go build -o "$TMP/meshconform" ./cmd/meshconform
echo "| entries × expectations | run | wall | peak RSS | breakdown |"
echo "|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
  go run ./hack/genbench --out "$TMP/in-$n" --entries "$n" --expectations "$n"
  for run in $(seq 1 "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$TMP/time" "$TMP/meshconform" simulate -f "$TMP/in-$n/istio" \
      --expectations "$TMP/in-$n/expectations.yaml" --junit "$TMP/junit.xml" >"$TMP/out" 2>"$TMP/err" || {
      cat "$TMP/err"; tail -20 "$TMP/out"; exit 1; }
    read -r wall rss <"$TMP/time"
    # "[  1.2s] simulated N checks: 1 configs generated in X, 10 proxy configs in Y (Z wall, concurrent), N calls in W"
    sim=$(grep -o 'simulated .*' "$TMP/err" | sed 's/^simulated [0-9]* checks: //' | head -1)
    self=$(grep -o 'self-checks: .*' "$TMP/err" | sed 's/self-checks: //' | head -1)
    ana=$(grep -o "Istio's analyzers: .*" "$TMP/err" | sed "s/Istio's analyzers: //" | head -1)
    printf '| %s × %s | %d | %.2f s | %.0f MiB | %s; self-checks %s; analyzers %s; %s |\n' \
      "$n" "$n" "$run" "$wall" "$(echo "$rss/1024" | bc -l)" "$sim" "$self" "$ana" "$(tail -1 "$TMP/out")"
  done
done
