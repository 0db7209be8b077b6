package selfcheck_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/findings/selfcheck"
	"github.com/meshconform/meshconform/suites/sim"
)

// sharedCases holds the project's one copy of ../shared/cases (see its
// README); testdata/ here holds only what is this package's own.
const sharedCases = "../../sim/testdata/cases"

// caseFile is testdata/name when this package has it, else the shared copy.
func caseFile(name string) string {
	if _, err := os.Stat(filepath.Join("testdata", name)); err == nil {
		return filepath.Join("testdata", name)
	}
	return filepath.Join(sharedCases, name)
}

// runCase loads NAME.yaml with NAME-expect.yaml, runs the
// expectations (they must pass: the verdicts are the case's) and then the
// self-checks.
func runCase(t *testing.T, config, expect string) []findings.Finding {
	t.Helper()
	objs, err := sim.LoadPaths([]string{caseFile(config + ".yaml")}, "default")
	if err != nil {
		t.Fatal(err)
	}
	l, err := expectations.Load(caseFile(expect+"-expect.yaml"), sim.IndexHosts(objs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Checks {
		l.Checks[i].Policy = l.Policy
	}
	env := suites.SimEnv()
	d, err := sim.New(sim.WithEnv(env), sim.WithObjects(objs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	for _, r := range check.RunAll(context.Background(), d, l.Checks, check.RunOptions{}) {
		if r.Status != check.Passed {
			t.Fatalf("expectation %s: %s: %s\n%s", r.Name, r.Status, r.Message, r.Trace())
		}
	}
	scs, err := d.Scenarios(l.Checks)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := selfcheck.Run(context.Background(), d, scs)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Logf("%s\n  %s", f, strings.Join(f.Trace, "\n  "))
	}
	return fs
}

func codes(fs []findings.Finding) string {
	var c []string
	for _, f := range fs {
		c = append(c, f.Code+" "+f.Object())
	}
	return strings.Join(c, ", ")
}

func TestShadowedTCP(t *testing.T) {
	fs := runCase(t, "shadowed-tcp", "shadowed-tcp")
	if got := codes(fs); got != "MC0001 ServiceEntry reports-db.finance" {
		t.Fatalf("findings %q, want exactly MC0001 on reports-db", got)
	}
	m := fs[0].Message
	for _, want := range []string{"outbound|5432||billing-db.internal", "finance/billing-db", "older entry", "0.0.0.0_5432"} {
		if !strings.Contains(m, want) {
			t.Errorf("message does not say %q: %s", want, m)
		}
	}
	if fs[0].Level != findings.Error || fs[0].Line != 10 {
		t.Errorf("level %s line %d, want Error at line 10 (the second document)", fs[0].Level, fs[0].Line)
	}
}

func TestWholePort(t *testing.T) {
	fs := runCase(t, "whole-port", "whole-port")
	if got := codes(fs); got != "MC0002 ServiceEntry ldap.identity" {
		t.Fatalf("findings %q, want exactly MC0002 on ldap", got)
	}
	if m := fs[0].Message; !strings.Contains(m, "under ALLOW_ANY") || !strings.Contains(m, "outbound|636||ldap.internal") {
		t.Errorf("message: %s", m)
	}
}

// The same entry with addresses (the fix) must yield nothing.
func TestWholePortFixed(t *testing.T) {
	if fs := runCase(t, "whole-port-fixed", "whole-port-fixed"); len(fs) != 0 {
		t.Fatalf("a correct config yields findings: %s", codes(fs))
	}
}

// Istio's other fix: the client's sidecar runs DNS capture, so the
// entry's listener moves to its auto-allocated address; nothing captures
// the port any more for that client.
func TestWholePortWithDNSCapture(t *testing.T) {
	if fs := runCase(t, "whole-port", "whole-port-dns"); len(fs) != 0 {
		t.Fatalf("with DNS capture: %s", codes(fs))
	}
}

// No self-check may fire on the built-in suites' manifests, which are
// correct configs.
func TestBuiltinSuitesYieldNothing(t *testing.T) {
	d, err := sim.New(sim.WithEnv(suites.SimEnv()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	scs, err := d.Scenarios(suites.All())
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 10 {
		t.Fatalf("only %d scenarios from the built-in suites", len(scs))
	}
	fs, err := selfcheck.Run(context.Background(), d, scs)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Errorf("%s\n  %s", f, strings.Join(f.Trace, "\n  "))
	}
}
