package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	junit := filepath.Join(dir, "junit.xml")
	for _, args := range [][]string{
		{"run", "--suite", "nope", "--junit", junit},
		{"run", "--run", "[", "--junit", junit},
		{"run", "--labels", "novalue", "--junit", junit},
		{"run", "--run", "NoSuchCheck", "--junit", junit},
		// Attach-mode flags without an existing cluster.
		{"run", "--agent-image", "registry.example/agent:v1", "--junit", junit},
		{"run", "--revision", "1-31", "--junit", junit},
	} {
		code, _, errs := runCLI(t, args...)
		if code != ExitBadInput {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	if _, err := os.Stat(junit); err == nil {
		t.Error("bad input wrote a report")
	}
}

// A setup that fails (here: the cluster phase, on a kubeconfig that does
// not exist) still writes JUnit with one synthetic failed case naming the
// phase, and exits 2.
func TestRunSetupFailureWritesJUnit(t *testing.T) {
	dir := t.TempDir()
	junit, summary := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "summary.md")
	code, out, errs := runCLI(t, "run", "--suite", "masquerade", "--kubeconfig", filepath.Join(dir, "missing-kubeconfig"),
		"--junit", junit, "--summary", summary)
	if code != ExitBadInput {
		t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatalf("no JUnit after a failed setup: %v\n%s", err, errs)
	}
	x := string(b)
	for _, want := range []string{`name="Setup"`, "setup failed in phase cluster", "missing-kubeconfig", "not a pass"} {
		if !strings.Contains(x, want) {
			t.Errorf("JUnit lacks %q:\n%s", want, x)
		}
	}
	if _, err := os.Stat(summary); err != nil {
		t.Errorf("no summary: %v", err)
	}
	if !strings.Contains(errs, "cluster: FAILED") {
		t.Errorf("progress does not name the failed phase:\n%s", errs)
	}
}
