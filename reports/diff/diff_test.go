package diff_test

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/reports/diff"
	"github.com/meshconform/meshconform/suites/check"
)

var blocked = check.Expectation{
	From: check.Source{Kind: check.MeshedPod, Namespace: "default", Labels: map[string]string{"app": "client"}},
	To:   check.Destination{Host: "blocked.external.test", Port: 80, Protocol: check.HTTP},
	Want: check.BlockedByMesh,
}

func obs(observed check.Outcome, cluster string) []check.Observation {
	return []check.Observation{{Step: "policy applied", Expect: blocked, Observed: observed, Cluster: cluster}}
}

func res(name string, s check.Status, msg string, o []check.Observation) check.Result {
	return check.Result{Name: name, Suite: "registry-only", Status: s, Message: msg, Observations: o, Duration: time.Millisecond}
}

// roundTrip writes r as meshconform writes it and reads it back.
func roundTrip(t *testing.T, name string, r reports.Report) *reports.Read {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := reports.WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	read, err := reports.ReadJUnit(path)
	if err != nil {
		t.Fatal(err)
	}
	return read
}

func before() reports.Report {
	return reports.Report{Tool: "test", Driver: "simulation", IstioVersion: "1.31", MeshPolicy: "REGISTRY_ONLY", Results: []check.Result{
		res("StillBlocked", check.Passed, "", obs(check.BlockedByMesh, "")),
		res("NowAllowed", check.Passed, "", obs(check.BlockedByMesh, "")),
		res("NowFixed", check.Failed, "expected BlockedByMesh, observed Allowed", obs(check.Allowed, "PassthroughCluster")),
		res("OtherCluster", check.Passed, "", obs(check.BlockedByMesh, "BlackHoleCluster")),
		res("Dropped", check.Passed, "", obs(check.BlockedByMesh, "")),
		res("NotReady", check.Error, check.ErrNotReady+": image a ErrImagePull", nil),
	}}
}

func after() reports.Report {
	r := before()
	r.IstioVersion = "1.32"
	r.Results = []check.Result{
		res("StillBlocked", check.Passed, "", obs(check.BlockedByMesh, "")),
		res("NowAllowed", check.Failed, "expected BlockedByMesh, observed Allowed", obs(check.Allowed, "PassthroughCluster")),
		res("NowFixed", check.Passed, "", obs(check.BlockedByMesh, "")),
		res("OtherCluster", check.Passed, "", obs(check.BlockedByMesh, "InboundPassthroughCluster")),
		res("NotReady", check.Error, check.ErrNotReady+": image b ErrImagePull", nil),
		res("Added", check.Failed, "expected BlockedByMesh, observed Allowed", obs(check.Allowed, "PassthroughCluster")),
	}
	return r
}

func TestDiffOfAReportWithItselfIsEmpty(t *testing.T) {
	r := roundTrip(t, "a.xml", before())
	d := diff.Compare(r, r)
	if len(d.Changes) != 0 || d.Unchanged != 6 {
		t.Fatalf("changes %+v, unchanged %d", d.Changes, d.Unchanged)
	}
	for _, f := range []diff.FailOn{diff.FailOnRegressed, diff.FailOnChanged} {
		if d.ExitCode(f) != 0 {
			t.Errorf("exit %d under %s", d.ExitCode(f), f)
		}
	}
	var b strings.Builder
	diff.WriteTable(&b, d, diff.FailOnRegressed)
	if !strings.Contains(b.String(), "no check changed; 6 unchanged") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestDiffTable(t *testing.T) {
	d := diff.Compare(roundTrip(t, "before.xml", before()), roundTrip(t, "after.xml", after()))
	got := map[string]diff.Change{}
	var order []string
	for _, c := range d.Changes {
		got[c.Check] = c
		order = append(order, string(c.Kind)+":"+c.Check)
	}
	want := "regressed:NowAllowed,regressed:Dropped,changed:OtherCluster,changed:NotReady,fixed:NowFixed,appeared:Added"
	if strings.Join(order, ",") != want {
		t.Fatalf("changes\n got %s\nwant %s", strings.Join(order, ","), want)
	}
	if d.Unchanged != 1 {
		t.Errorf("unchanged %d, want 1 (StillBlocked)", d.Unchanged)
	}
	o := got["NowAllowed"].Outcomes
	if len(o) != 1 || o[0].Before != "BlockedByMesh" || o[0].After != "Allowed via PassthroughCluster" ||
		!strings.Contains(o[0].Expectation, "blocked.external.test") {
		t.Errorf("NowAllowed outcomes: %+v", o)
	}
	if c := got["OtherCluster"]; len(c.Outcomes) != 1 || c.Outcomes[0].After != "BlockedByMesh via InboundPassthroughCluster" {
		t.Errorf("a changed cluster is a change: %+v", c)
	}
	if c := got["NotReady"]; !strings.Contains(c.ReasonBefore, "image a") || !strings.Contains(c.ReasonAfter, "image b") {
		t.Errorf("changed error reason: %+v", c)
	}
	if c := got["Dropped"]; c.Before != check.Passed || c.After != "" || !strings.Contains(c.Detail(), "gone") {
		t.Errorf("a passing check that is gone is a regression: %+v", c)
	}
	if d.ExitCode(diff.FailOnRegressed) != 1 || d.ExitCode(diff.FailOnChanged) != 1 {
		t.Errorf("exit codes %d %d", d.ExitCode(diff.FailOnRegressed), d.ExitCode(diff.FailOnChanged))
	}
	if len(d.PropertyChanges()) != 1 || d.PropertyChanges()[0] != "istio.version: 1.31 → 1.32" {
		t.Errorf("property changes: %v", d.PropertyChanges())
	}

	var b strings.Builder
	diff.WriteTable(&b, d, diff.FailOnRegressed)
	for _, w := range []string{"istio.version: 1.31 → 1.32", "regressed  registry-only  NowAllowed", "BlockedByMesh → Allowed via PassthroughCluster",
		"1 unchanged", "2 regressed, 2 changed, 1 fixed, 1 appeared, 0 disappeared", "gate failed: 2 change(s)"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, b.String())
		}
	}
	md := diff.Markdown(d, diff.FailOnRegressed)
	for _, w := range []string{"❌ meshconform diff", "| ❌ regressed | registry-only | `NowAllowed` |", "outbound" + "", "| fixed | registry-only | `NowFixed` |"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}

	// JUnit: one testcase per change; failures only for what fails the gate.
	path := filepath.Join(t.TempDir(), "diff.xml")
	if err := reports.WriteDocument(path, diff.JUnit(d, diff.FailOnRegressed)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var doc reports.Testsuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 6 || doc.Failures != 2 {
		t.Errorf("diff JUnit: tests %d failures %d, want 6 and 2\n%s", doc.Tests, doc.Failures, data)
	}
	// The diff's own JUnit is not a run report.
	if _, err := reports.ReadJUnit(path); err == nil || !strings.Contains(err.Error(), "meshconform diff --junit") {
		t.Errorf("reading the diff's JUnit as a report: %v", err)
	}
}

// Without regressions the default gate passes and --fail-on changed fails.
func TestFailOn(t *testing.T) {
	a := after()
	a.Results = append([]check.Result{}, a.Results...)
	a.Results[1] = res("NowAllowed", check.Passed, "", obs(check.BlockedByMesh, ""))
	b := before()
	b.Results = b.Results[:4] // nothing passing disappears
	d := diff.Compare(roundTrip(t, "b.xml", b), roundTrip(t, "a.xml", a))
	if d.Count(diff.Regressed) != 0 || len(d.Changes) == 0 {
		t.Fatalf("changes: %+v", d.Changes)
	}
	if d.ExitCode(diff.FailOnRegressed) != 0 || d.ExitCode(diff.FailOnChanged) != 1 {
		t.Errorf("exit codes %d %d, want 0 1", d.ExitCode(diff.FailOnRegressed), d.ExitCode(diff.FailOnChanged))
	}
	if _, err := diff.ParseFailOn("everything"); err == nil {
		t.Error("--fail-on everything accepted")
	}
}

func TestReadRejectsWhatIsNotAMeshconformReport(t *testing.T) {
	good, err := os.ReadFile(writeGood(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"empty", "", []string{"x.xml:1:", "empty file"}},
		{"not XML", "hello\nworld <", []string{"x.xml:2:", "not well-formed XML"}},
		{"truncated", string(good[:len(good)/2]), []string{"x.xml:", "not well-formed XML", "truncated"}},
		{"go test JUnit", `<?xml version="1.0"?>` + "\n" + `<testsuites tests="1"><testsuite name="pkg" tests="1" failures="0" errors="0" id="0" time="0"><testcase name="TestX" classname="pkg"></testcase></testsuite></testsuites>`,
			[]string{"x.xml:2:", "is not a meshconform report", "fix: pass a JUnit file written by `meshconform simulate"}},
		{"other root", "<report/>", []string{"x.xml:1:", "root element <report>"}},
		{"bad status", strings.Replace(string(good), `value="Passed"`, `value="Fine"`, 1), []string{"x.xml:", `meshconform.status="Fine"`}},
		{"status contradicts", strings.Replace(string(good), `value="Passed"`, `value="Failed"`, 1), []string{"contradicts"}},
		{"no meshconform properties", `<testsuites name="meshconform"><testsuite name="s" tests="1" failures="0" errors="0" id="0" time="0"><testcase name="A" classname="c"></testcase></testsuite></testsuites>`,
			[]string{"x.xml:1:", "no meshconform.driver property"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reports.ParseJUnit("x.xml", []byte(tc.text))
			var ie *check.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want an input error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	t.Run("duplicate check", func(t *testing.T) {
		s := string(good)
		i := strings.Index(s, "<testcase ")
		j := strings.Index(s, "</testcase>") + len("</testcase>")
		dup := s[:j] + "\n" + s[i:j] + s[j:]
		_, err := reports.ParseJUnit("x.xml", []byte(dup))
		if err == nil || !strings.Contains(err.Error(), "appears twice (first at line") {
			t.Fatalf("duplicate: %v", err)
		}
	})
}

func writeGood(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "good.xml")
	if err := reports.WriteJUnit(path, before()); err != nil {
		t.Fatal(err)
	}
	return path
}
