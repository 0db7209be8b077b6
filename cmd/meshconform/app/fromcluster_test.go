package app

import (
	"path/filepath"
	"strings"
	"testing"
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
	if code != ExitBadInput || !strings.Contains(errs, "prod") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if !fileExists(junit) {
		t.Errorf("no JUnit report written for the failed setup")
	}
}
