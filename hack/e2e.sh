#!/usr/bin/env bash
# make e2e: build meshconform and run every suite live with defaults:
# a kind cluster with Istio, the fixtures outside the mesh, real traffic,
# reports/junit.xml and reports/summary.md, and nothing left behind.
#
# Images come from the environment (eval "$(../shared/testenv/env)" on
# machines without a registry): KIND_NODE_IMAGE, MYSQL_IMAGE,
# IP_MASQ_AGENT_IMAGE; ISTIO_HUB / ISTIO_TAG override Istio's images;
# MESHCONFORM_NO_PULL=1 never pulls (only what the host's Docker has).
# MESHCONFORM_LOCAL_ISTIOD=1 builds istiod from the pinned module (--local-istiod);
# MESHCONFORM_NEGATIVE_CONTROLS=1 also runs every negative control (--negative-controls).
# Extra arguments go to `meshconform run` (e.g. hack/e2e.sh --suite masquerade -v).
# The exit code is meshconform's (0 passed, 1 a check failed, 2 an error), also
# written to reports/exit-code for hack/e2e-verify.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPORTS=${REPORTS:-reports}
mkdir -p bin "$REPORTS"
rm -f "$REPORTS/exit-code"

start=$(date +%s)
echo "e2e: building bin/meshconform"
go build -o bin/meshconform ./cmd/meshconform

args=(run --junit "$REPORTS/junit.xml" --summary "$REPORTS/summary.md")
[[ -n "${KIND_NODE_IMAGE:-}" ]] && args+=(--node-image "$KIND_NODE_IMAGE")
[[ -n "${MYSQL_IMAGE:-}" ]] && args+=(--mysql-image "$MYSQL_IMAGE")
[[ -n "${IP_MASQ_AGENT_IMAGE:-}" ]] && args+=(--ip-masq-agent-image "$IP_MASQ_AGENT_IMAGE")
[[ -n "${ISTIO_HUB:-}" ]] && args+=(--istio-hub "$ISTIO_HUB")
[[ -n "${ISTIO_TAG:-}" ]] && args+=(--istio-tag "$ISTIO_TAG")
[[ -n "${MESHCONFORM_NO_PULL:-}" ]] && args+=(--no-pull)   # use only images already in the host's Docker
[[ "${MESHCONFORM_LOCAL_ISTIOD:-}" == 1 ]] && args+=(--local-istiod)
[[ "${MESHCONFORM_NEGATIVE_CONTROLS:-}" == 1 ]] && args+=(--negative-controls)   # each check's control must fail too

rc=0
bin/meshconform "${args[@]}" "$@" || rc=$?
echo "$rc" > "$REPORTS/exit-code"
echo "e2e: meshconform run exited $rc after $(( $(date +%s) - start ))s; reports in $REPORTS/"
exit "$rc"
