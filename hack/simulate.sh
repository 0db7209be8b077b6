#!/usr/bin/env bash
# The five built-in suites (and their negative controls) against Istio's own
# config generator and traffic simulator; no cluster needed.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./cmd/meshconform simulate --negative-controls --junit reports/simulate-junit.xml --summary reports/simulate-summary.md "$@"
