#!/usr/bin/env bash
# Benchmarks whose figures are in README: simulation at scale, fixtures start.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTENV=${TESTENV:-../shared/testenv}
if [ -x "$TESTENV/env" ]; then eval "$("$TESTENV/env")"; fi
echo "== simulate: 1,000 expectations x 1,000 ServiceEntries"
hack/bench-simulate.sh 1000 1000
echo "== fixtures: all three ready, in parallel (warm image)"
go test -run '^$' -bench BenchmarkUp -benchtime 5x ./fixtures/set/
