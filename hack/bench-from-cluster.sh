#!/usr/bin/env bash
# Benchmark: `meshconform simulate --from-cluster` end to end against a kind
# cluster holding 1,000 ServiceEntries (hack/genbench), with 1,000
# expectations: read (paged lists, Istio validation) + config generation +
# simulation + reports. Prints wall time, the read time and peak RSS.
# Needs Docker, kind, kubectl and KIND_NODE_IMAGE (eval "$(../shared/testenv/env)").
# Usage: hack/bench-from-cluster.sh [ENTRIES] [EXPECTATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000} M=${2:-1000}
: "${KIND_NODE_IMAGE:?set KIND_NODE_IMAGE (eval \"\$(../shared/testenv/env)\")}"
NAME=mc-bench-fromcluster-$$
TMP=$(mktemp -d)
cleanup() { kind delete cluster --name "$NAME" >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
go build -o "$TMP/meshconform" ./cmd/meshconform
go run ./hack/genbench --out "$TMP/in" --entries "$N" --expectations "$M"
kind create cluster --name "$NAME" --image "$KIND_NODE_IMAGE" --kubeconfig "$TMP/kubeconfig" --wait 120s
export KUBECONFIG=$TMP/kubeconfig
CRDS="$(go list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts/base/files/crd-all.gen.yaml"
kubectl apply --server-side -f "$CRDS" >/dev/null
kubectl wait --for condition=established --timeout=60s crd/serviceentries.networking.istio.io >/dev/null
for ns in $(grep -ho 'namespace: [a-z0-9-]*' "$TMP"/in/istio/*.yaml | awk '{print $2}' | sort -u); do
  kubectl create namespace "$ns" >/dev/null 2>&1 || true
done
t0=$(date +%s.%N)
kubectl apply --server-side -f "$TMP/in/istio" >/dev/null
echo "loaded $N ServiceEntries into kind cluster $NAME in $(echo "$(date +%s.%N) - $t0" | bc) s"
for run in 1 2 3; do
  /usr/bin/time -v -o "$TMP/time" "$TMP/meshconform" simulate --from-cluster \
    --expectations "$TMP/in/expectations.yaml" --junit "$TMP/junit.xml" >"$TMP/out" 2>"$TMP/err" || {
    cat "$TMP/err" "$TMP/out" | tail -20; exit 1; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$TMP/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TMP/time")
  tail -1 "$TMP/out"
  grep -E 'read [0-9]+ objects|simulated' "$TMP/err" | sed 's/^/  /'
  echo "  run $run: wall $wall (m:ss), peak RSS $((rss / 1024)) MiB"
done
