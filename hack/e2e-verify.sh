#!/usr/bin/env bash
# Verify the outcome of hack/e2e.sh (make e2e) for CI:
#   - reports/junit.xml has the expected shape (EXPECT=offline, the default on
#     machines without a registry: the masquerade suite passed for real and every
#     Istio-dependent check is "error: environment not ready: <reason naming the
#     image>"; EXPECT=all-pass: every check passed; EXPECT=local-istiod, for
#     MESHCONFORM_LOCAL_ISTIOD=1 runs: istiod Ready, every mesh check and each
#     negative control passed in the pushed-config tier, the traffic tier not
#     ready naming proxyv2, masquerade passed), see suites/e2e.VerifyJUnit;
#   - how many checks were observed in each tier (printed);
#   - the exit code matches (offline: 2, all-pass: 0);
#   - nothing of the run is left: no kind cluster of its name, no container of
#     its fixtures run id, no container of its cluster.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REPORTS=${REPORTS:-reports}
default=offline; [[ "${MESHCONFORM_LOCAL_ISTIOD:-}" == 1 ]] && default=local-istiod
EXPECT=${EXPECT:-$default}
fail=0
err() { echo "e2e-verify: $*" >&2; fail=1; }

[[ -f "$REPORTS/junit.xml" ]] || { echo "e2e-verify: $REPORTS/junit.xml missing: run make e2e first" >&2; exit 1; }

out=$(MESHCONFORM_JUNIT="$ROOT/$REPORTS/junit.xml" MESHCONFORM_EXPECT="$EXPECT" \
    go test ./suites/e2e -run '^TestJUnitFile$' -count=1 -v 2>&1) || { echo "$out" >&2; err "junit shape is not $EXPECT"; }
echo "$out" | sed -n 's/.*observed: /e2e-verify: observed: /p' | head -1

want=2; [[ "$EXPECT" == all-pass ]] && want=0
got=$(cat "$REPORTS/exit-code" 2>/dev/null || echo missing)
[[ "$got" == "$want" ]] || err "exit code $got, want $want"

prop() { sed -n "s/.*<property name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" "$REPORTS/junit.xml" | head -1; }
cluster=$(prop cluster.name)
runid=$(prop fixtures.runID)
if [[ -n "$cluster" ]] && docker ps -a --filter "label=io.x-k8s.kind.cluster=$cluster" --format '{{.Names}}' | grep -q .; then
  err "kind cluster $cluster is still there"
fi
if [[ -n "$runid" ]] && docker ps -a --filter "label=meshconform.dev/run-id=$runid" --format '{{.Names}}' | grep -q .; then
  err "containers of fixtures run $runid are still there: $(docker ps -a --filter "label=meshconform.dev/run-id=$runid" --format '{{.Names}}' | tr '\n' ' ')"
fi
[[ -n "$cluster" && -n "$runid" ]] || err "junit lacks the cluster.name / fixtures.runID properties (setup failed early?)"

if [[ $fail == 0 ]]; then
  echo "e2e-verify: OK ($EXPECT: shape, exit code $got, nothing left of cluster $cluster / fixtures $runid)"
fi
exit $fail
