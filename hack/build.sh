#!/usr/bin/env bash
# Build the CLI and the agent (probe, greeter, echo) into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
v=$(git describe --always --dirty 2>/dev/null || echo dev)
go build -ldflags "-X github.com/meshconform/meshconform/cmd/meshconform/app.Version=$v" -o bin/meshconform ./cmd/meshconform
CGO_ENABLED=0 go build -o bin/meshconform-agent ./cmd/meshconform-agent
echo "bin/meshconform bin/meshconform-agent ($v)"
