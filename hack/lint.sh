#!/usr/bin/env bash
# gofmt (must list nothing) and go vet.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(gofmt -l $(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go'))
if [ -n "$bad" ]; then echo "gofmt -w needed:"; echo "$bad"; exit 1; fi
go vet ./...
