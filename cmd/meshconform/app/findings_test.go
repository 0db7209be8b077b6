package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cases = "../../../suites/sim/testdata/cases/"

func simulateCase(t *testing.T, name string, extra ...string) (int, string, string, string) {
	t.Helper()
	junit := filepath.Join(t.TempDir(), "junit.xml")
	args := append([]string{"simulate", "-f", cases + name + ".yaml", "--expectations", cases + name + "-expect.yaml", "--junit", junit}, extra...)
	code, out, errs := runCLI(t, args...)
	data, _ := os.ReadFile(junit)
	return code, out, errs, string(data)
}

// The shadowed entry is an Error: it fails the run by default (as an
// analyzer Error fails istioctl analyze), and not once suppressed.
func TestSimulateFindingsShadowed(t *testing.T) {
	code, out, errs, junit := simulateCase(t, "shadowed-tcp")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"[MC0001]", "ServiceEntry reports-db.finance", "shadowed-tcp.yaml:10", "[IST0134]", "listener 0.0.0.0_5432"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`<testsuite name="self-checks"`, `<testsuite name="analysis"`, `name="MC0001 ServiceEntry reports-db.finance"`, `type="MC0001"`} {
		if !strings.Contains(junit, want) {
			t.Errorf("JUnit lacks %q:\n%s", want, junit)
		}
	}
	if code, out, errs, _ := simulateCase(t, "shadowed-tcp", "--suppress", "MC0001=ServiceEntry reports-db.*", "--suppress", "IST0134=ServiceEntry *"); code != 0 || strings.Contains(out, "[MC0001]") || strings.Contains(out, "[IST0134]") || strings.Contains(errs, "matched no finding") {
		t.Errorf("suppressed (a self-check and an analyzer message): exit %d\n%s\n%s", code, out, errs)
	}
	// A typo in a suppression is said, and hides nothing.
	if code, out, errs, _ := simulateCase(t, "shadowed-tcp", "--suppress", "MC0001=ServiceEntry reprots-db.*"); code != 1 || !strings.Contains(out, "[MC0001]") ||
		!strings.Contains(errs, `warning: --suppress "MC0001=ServiceEntry reprots-db.*" matched no finding`) {
		t.Errorf("typo: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, _, _ := simulateCase(t, "shadowed-tcp", "--fail-on", "none"); code != 0 {
		t.Errorf("--fail-on none: exit %d", code)
	}
}

// Whole-port capture is a Warning: reported, failing only with
// --fail-on warning.
func TestSimulateFindingsWholePort(t *testing.T) {
	code, out, _, _ := simulateCase(t, "whole-port")
	if code != 0 || !strings.Contains(out, "[MC0002]") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if code, _, _, _ := simulateCase(t, "whole-port", "--fail-on", "warning"); code != 1 {
		t.Fatalf("--fail-on warning: exit %d, want 1", code)
	}
	code, out, _, _ = simulateCase(t, "whole-port-fixed", "--fail-on", "info")
	if code != 0 || !strings.Contains(out, "findings: 0 errors, 0 warnings, 0 info") {
		t.Fatalf("the fixed entry: exit %d\n%s", code, out)
	}
}

func TestSimulateFindingsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--fail-on", "fatal"}, {"--suppress", "MC0001"}} {
		if code, _, errs, junit := simulateCase(t, "whole-port", args...); code != 2 || !strings.Contains(errs, args[0]) || !strings.Contains(junit, "Setup") {
			t.Errorf("%v: exit %d, want 2 naming the flag and a Setup case\n%s", args, code, errs)
		}
	}
}
