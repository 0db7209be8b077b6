package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// --kubeconfig/--context/--revision without --from-cluster would be
// silently ignored: refuse them.
func TestSimulateClusterFlagsNeedFromCluster(t *testing.T) {
	code, _, errs := runCLI(t, "simulate", "--context", "prod")
	if code != ExitBadInput || !strings.Contains(errs, "add --from-cluster") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}

// An unreadable kubeconfig is bad input (exit 2) and still produces a
// report with the synthetic failed setup case.
func TestSimulateFromClusterBadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	kc := write(t, dir, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
	junit := filepath.Join(dir, "junit.xml")
	code, _, errs := runCLI(t, "simulate", "--from-cluster", "--kubeconfig", kc, "--context", "prod", "--junit", junit)
	if code != ExitBadInput || !strings.Contains(errs, "prod") || !strings.Contains(errs, "fix: pass --kubeconfig FILE and --context NAME") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if !fileExists(junit) {
		t.Errorf("no JUnit report written for the failed setup")
	}
}

// Each way a --from-cluster read fails gets the fix for that cause.
func TestFromClusterFix(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "networking.istio.io", Resource: "serviceentries"}, "", errors.New("no RBAC"))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read cluster kind-x: list serviceentries: %w", forbidden), "clusters/manifests/meshconform-reader.yaml"},
		{errors.New("load kubeconfig: context \"prod\" does not exist"), "pass --kubeconfig FILE"},
		{errors.New("the cluster runs several istiod revisions (1-30, 1-31): pick one with --revision"), "pass --revision"},
		{errors.New("read cluster kind-x: Get \"https://127.0.0.1:1/api\": dial tcp 127.0.0.1:1: connect: connection refused"), "did not answer"},
		{errors.New("encode ServiceEntry a/b: boom"), ""},
	} {
		got := fromClusterFix(tc.err)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%v: fix %q, want one containing %q", tc.err, got, tc.want)
		}
	}
}
