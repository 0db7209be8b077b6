#!/usr/bin/env bash
# make test: lint, then every test of every package.
# Tests that need Docker, MariaDB or kind take their images and settings from
# ../shared/testenv/env when it is there (TESTENV overrides the path); they skip
# with a reason when Docker is missing, and fail instead when CI=true.
# Packages run one at a time (-p 1): several of them create kind clusters or
# containers, and this machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTENV=${TESTENV:-../shared/testenv}
if [ -x "$TESTENV/env" ]; then eval "$("$TESTENV/env")"; fi
hack/lint.sh
exec go test -p 1 -count=1 -timeout 60m "$@" ./...
