package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites/findings"
)

func findingReport(failOn findings.Level) Report {
	return Report{
		Driver: "simulation", FailOn: failOn,
		FindingSources: map[string]bool{findings.Analysis: true, findings.SelfCheck: true},
		Findings: []findings.Finding{
			{Source: findings.SelfCheck, Code: "MC0002", Level: findings.Warning, Kind: "ServiceEntry", ObjectName: "ldap", Namespace: "identity",
				File: "whole-port.yaml", Line: 2, Message: "captures every address on port 636", Trace: []string{"listener 0.0.0.0_636"}},
			{Source: findings.Analysis, Code: "IST0102", Level: findings.Info, Kind: "Namespace", ObjectName: "identity", Message: "not injected"},
		},
	}
}

func TestFindingsJUnitAndExitCode(t *testing.T) {
	r := findingReport(findings.Error)
	if r.ExitCode() != 0 {
		t.Fatalf("a Warning with --fail-on error: exit %d, want 0", r.ExitCode())
	}
	doc := JUnit(r)
	var names []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
		for _, tc := range s.Testcases {
			if tc.Failure != nil {
				t.Errorf("%s failed under --fail-on error", tc.Name)
			}
		}
	}
	if strings.Join(names, ",") != "analysis,self-checks" {
		t.Fatalf("suites %v", names)
	}
	if n := len(doc.Suites[0].Testcases); n != 0 {
		t.Errorf("an Info message became %d test cases; only Warning and above are cases", n)
	}
	if tc := doc.Suites[1].Testcases[0]; tc.Name != "MC0002 ServiceEntry ldap.identity" {
		t.Errorf("case name %q", tc.Name)
	}

	r = findingReport(findings.Warning)
	if r.ExitCode() != 1 {
		t.Fatalf("a Warning with --fail-on warning: exit %d, want 1", r.ExitCode())
	}
	if tc := JUnit(r).Suites[1].Testcases[0]; tc.Failure == nil || !strings.Contains(tc.Failure.Data, "listener 0.0.0.0_636") {
		t.Errorf("failure %+v, want the trace", tc.Failure)
	}
	var out bytes.Buffer
	WriteFindings(&out, r, false)
	for _, want := range []string{"[MC0002]", "whole-port.yaml:2", "findings: 0 errors, 1 warnings, 1 info"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("terminal section lacks %q:\n%s", want, out.String())
		}
	}
	if s := Summary(r); !strings.Contains(s, "### Findings") || !strings.Contains(s, "MC0002") {
		t.Errorf("summary:\n%s", s)
	}
}
