package app

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/reports"
)

// simulateReport runs the registry-only suite through Istio's generator
// with extra args and returns the JUnit path.
func simulateReport(t *testing.T, dir, name string, wantExit int, args ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	code, out, errs := runCLI(t, append([]string{"simulate", "--suite", "registry-only", "--junit", path}, args...)...)
	if code != wantExit {
		t.Fatalf("simulate %v: exit %d, want %d\n%s\n%s", args, code, wantExit, out, errs)
	}
	return path
}

// TestDiffGatesAPolicyChange: real reports from the simulation of the
// registry-only suite, with each check's own policy and then with the
// mesh switched to ALLOW_ANY, where REGISTRY_ONLY's blocks become
// passthrough. The diff names the outcome that changed and fails the gate.
func TestDiffGatesAPolicyChange(t *testing.T) {
	dir := t.TempDir()
	before := simulateReport(t, dir, "before.xml", 0)
	after := simulateReport(t, dir, "after.xml", 1, "--outbound-traffic-policy", "ALLOW_ANY")

	// The report carries the observed outcome per expectation.
	data, err := os.ReadFile(after)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`<property name="meshconform.status" value="Failed">`, `<property name="expect.0.want" value="BlockedByMesh">`,
		`<property name="expect.0.observed" value="Allowed">`, `<property name="expect.0.cluster" value="PassthroughCluster">`} {
		if !strings.Contains(string(data), w) {
			t.Errorf("report lacks %s", w)
		}
	}

	t.Run("regression fails the gate", func(t *testing.T) {
		summary, junit := filepath.Join(dir, "diff.md"), filepath.Join(dir, "diff.xml")
		code, out, errs := runCLI(t, "diff", before, after, "--summary", summary, "--junit", junit)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
		}
		for _, w := range []string{"regressed  registry-only  RegistryOnlyBlocksUnregisteredHTTP  Passed  Failed",
			"BlockedByMesh via BlackHoleCluster → Allowed via PassthroughCluster", "mesh.outboundTrafficPolicy: per check → ALLOW_ANY",
			"3 regressed, 0 changed, 0 fixed, 0 appeared, 0 disappeared; 1 unchanged"} {
			if !strings.Contains(out, w) {
				t.Errorf("table lacks %q:\n%s", w, out)
			}
		}
		md, err := os.ReadFile(summary)
		if err != nil || !strings.Contains(string(md), "| ❌ regressed | registry-only | `RegistryOnlyBlocksUnregisteredTLS` |") {
			t.Errorf("summary (%v):\n%s", err, md)
		}
		b, err := os.ReadFile(junit)
		if err != nil {
			t.Fatal(err)
		}
		var doc reports.Testsuites
		if err := xml.Unmarshal(b, &doc); err != nil || doc.Tests != 3 || doc.Failures != 3 {
			t.Errorf("diff JUnit (%v): tests %d failures %d, want 3 and 3\n%s", err, doc.Tests, doc.Failures, b)
		}
	})
	t.Run("a fix passes the default gate, not --fail-on changed", func(t *testing.T) {
		code, out, _ := runCLI(t, "diff", after, before)
		if code != 0 || !strings.Contains(out, "fixed") {
			t.Fatalf("exit %d, want 0\n%s", code, out)
		}
		if code, out, _ := runCLI(t, "diff", after, before, "--fail-on", "changed"); code != 1 {
			t.Fatalf("--fail-on changed: exit %d, want 1\n%s", code, out)
		}
	})
	t.Run("a report against itself is empty", func(t *testing.T) {
		code, out, errs := runCLI(t, "diff", before, before, "--fail-on", "changed")
		if code != 0 || !strings.Contains(out, "no check changed; 4 unchanged") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
	})
}

func TestDiffBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.xml")
	if err := reports.WriteJUnit(good, reports.Report{Tool: "test", Driver: "simulation", SetupError: os.ErrNotExist, SetupPhase: "input"}); err != nil {
		t.Fatal(err)
	}
	gotest := write(t, dir, "gotest.xml", "<?xml version=\"1.0\"?>\n<testsuites tests=\"1\">\n<testsuite name=\"pkg\" tests=\"1\" failures=\"0\" errors=\"0\" id=\"0\" time=\"0\"><testcase name=\"TestX\" classname=\"pkg\"></testcase></testsuite></testsuites>\n")
	notXML := write(t, dir, "log.xml", "PASS\nok  \tpkg\t0.1s\n<")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing file", []string{good, filepath.Join(dir, "nope.xml")}, []string{"nope.xml: cannot read"}},
		{"not XML", []string{notXML, good}, []string{"log.xml:3: not well-formed XML", "fix:"}},
		{"not meshconform", []string{good, gotest}, []string{"gotest.xml:2:", "not a meshconform report", "fix:"}},
		{"bad --fail-on", []string{good, good, "--fail-on", "any"}, []string{`--fail-on "any"`}},
		{"one report", []string{good}, []string{"accepts 2 arg(s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			summary := filepath.Join(dir, tc.name+".md")
			code, out, errs := runCLI(t, append(append([]string{"diff"}, tc.args...), "--summary", summary)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if _, err := os.Stat(summary); err == nil {
				t.Errorf("bad input must write nothing, %s exists", summary)
			}
		})
	}
}
