package reports

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/suites/check"
)

func sample() Report {
	exp := check.Expectation{To: check.Destination{Host: "blocked.external.test", Port: 80, Protocol: check.HTTP}, Want: check.BlockedByMesh}
	return Report{
		Tool: "test", Driver: "simulation", IstioVersion: "1.31", MeshPolicy: "REGISTRY_ONLY",
		Started: time.Unix(1700000000, 0),
		Results: []check.Result{
			{Name: "UnregisteredHTTPBlocked", Suite: "registry-only", Status: check.Passed, Duration: 1500 * time.Millisecond,
				Observations: []check.Observation{{Step: "s", Expect: exp, Observed: check.BlockedByMesh, Trace: []string{"listener 0.0.0.0_80"}}}},
			{Name: "UnregisteredTLSBlocked", Suite: "registry-only", Status: check.Failed, Message: "expected BlockedByMesh, observed Allowed\nmore <&> \x00",
				Observations: []check.Observation{{Step: "s", Expect: exp, Observed: check.Allowed, Cluster: "PassthroughCluster", Observable: check.ConfigFacets}}},
			{Name: "MySQLViaCIDR", Suite: "tcp-cidr", Status: check.Error, Message: check.ErrNotReady + ": istio-proxy image docker.io/istio/proxyv2:1.31.1 ErrImagePull"},
			{Name: "Masq", Suite: "masquerade", Status: check.Skipped, Message: "filtered by --labels"},
		},
	}
}

func parse(t *testing.T, path string) junit.Testsuites {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse back %s: %v\n%s", path, err, data)
	}
	return doc
}

func TestJUnitRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "junit.xml")
	if err := WriteJUnit(path, sample()); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, path)
	if doc.Tests != 4 || doc.Failures != 1 || doc.Errors != 1 || doc.Skipped != 1 {
		t.Fatalf("totals: tests=%d failures=%d errors=%d skipped=%d", doc.Tests, doc.Failures, doc.Errors, doc.Skipped)
	}
	if len(doc.Suites) != 3 || doc.Suites[0].Name != "registry-only" || doc.Suites[2].Name != "masquerade" {
		t.Fatalf("suites: %+v", doc.Suites)
	}
	props := map[string]string{}
	for _, p := range *doc.Suites[0].Properties {
		props[p.Name] = p.Value
	}
	for k, v := range map[string]string{"istio.version": "1.31", "mesh.outboundTrafficPolicy": "REGISTRY_ONLY", "meshconform.version": "test", "meshconform.driver": "simulation"} {
		if props[k] != v {
			t.Errorf("property %s = %q, want %q", k, props[k], v)
		}
	}
	rs := doc.Suites[0].Testcases
	if rs[0].Name != "UnregisteredHTTPBlocked" || rs[0].Time != "1.500" || rs[0].Failure != nil {
		t.Errorf("passed case: %+v", rs[0])
	}
	if rs[1].Failure == nil || !strings.Contains(rs[1].Failure.Data, "PassthroughCluster") {
		t.Errorf("failure must carry the trace: %+v", rs[1].Failure)
	}
	if e := doc.Suites[1].Testcases[0].Error; e == nil || e.Type != "EnvironmentNotReady" || !strings.Contains(e.Message, "proxyv2") {
		t.Errorf("not-ready case: %+v", e)
	}
	if s := doc.Suites[2].Testcases[0].Skipped; s == nil || s.Message != "filtered by --labels" {
		t.Errorf("skip reason: %+v", s)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".junit.xml.tmp-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestSetupFailureStillReports(t *testing.T) {
	r := Report{Tool: "test", Driver: "live"}
	r.SetupFailed("cluster", errors.New("create kind cluster: boom"))
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, path)
	if doc.Tests != 1 || doc.Failures != 1 {
		t.Fatalf("want one synthetic failure, got %+v", doc)
	}
	tc := doc.Suites[0].Testcases[0]
	if tc.Name != SetupCase || !strings.Contains(tc.Failure.Data, "boom") || !strings.Contains(tc.Failure.Message, "cluster") {
		t.Fatalf("synthetic case: %+v", tc)
	}
	if r.ExitCode() != 2 {
		t.Fatalf("exit code %d, want 2", r.ExitCode())
	}
	if !strings.Contains(Summary(r), "Setup failed in phase `cluster`") {
		t.Fatalf("summary: %s", Summary(r))
	}
}

func TestAtomicWriteKeepsOldFileOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeAtomic(path, func(f *os.File) error {
		f.WriteString("half")
		return errors.New("disk full")
	})
	if err == nil {
		t.Fatal("want error")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("old file changed: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary file left: %v", entries)
	}
}

func TestSummaryAndTable(t *testing.T) {
	r := sample()
	s := Summary(r)
	for _, want := range []string{"1 passed, 1 failed, 1 errors, 1 skipped", "`UnregisteredTLSBlocked`", "istio.version `1.31`", "<details>"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	var b strings.Builder
	WriteTable(&b, r)
	if !strings.Contains(b.String(), "UnregisteredHTTPBlocked") || !strings.Contains(b.String(), "BlockedByMesh") {
		t.Errorf("table:\n%s", b.String())
	}
	if r.ExitCode() != 2 {
		t.Errorf("exit code %d", r.ExitCode())
	}
}

// TestReadBack: what WriteJUnit writes, ReadJUnit reads back: statuses,
// reasons and every expectation's want, observed outcome and cluster.
func TestReadBack(t *testing.T) {
	r := sample()
	r.Results = append(r.Results, check.Result{Name: "UnregisteredHTTPBlocked/NegativeControl", Suite: "registry-only", Status: check.Passed, NegativeControl: true})
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJUnit(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Properties["istio.version"] != "1.31" || got.Properties["meshconform.driver"] != "simulation" {
		t.Errorf("run properties: %v", got.Properties)
	}
	if len(got.Cases) != 5 {
		t.Fatalf("cases: %+v", got.Cases)
	}
	byKey := map[string]Case{}
	for _, c := range got.Cases {
		byKey[c.Key()] = c
	}
	tls := byKey["registry-only/UnregisteredTLSBlocked"]
	if tls.Status != check.Failed || tls.Type != "CheckFailed" || tls.Reason != "expected BlockedByMesh, observed Allowed" || tls.Line == 0 {
		t.Errorf("failed case: %+v", tls)
	}
	want := ExpectationRecord{Name: "[s] meshed(ns=) -> blocked.external.test:80/HTTP", Want: "BlockedByMesh", Observed: "Allowed", Cluster: "PassthroughCluster"}
	if len(tls.Expectations) != 1 || tls.Expectations[0].Want != want.Want || tls.Expectations[0].Observed != want.Observed ||
		tls.Expectations[0].Cluster != want.Cluster || !strings.Contains(tls.Expectations[0].Name, "blocked.external.test") {
		t.Errorf("expectations: %+v", tls.Expectations)
	}
	if e := tls.Expectations[0]; e.Judged != "outcome" || e.NotJudged != "" {
		t.Errorf("facets: %+v", e)
	}
	// Facets a tier cannot observe are named in the properties, in the
	// trace and in the failure text.
	rows := check.Expectation{To: check.Destination{Address: "172.18.0.20", Port: 3306, Protocol: check.MySQL}, Want: check.Allowed,
		WantCluster: "outbound|3306||mysql.external.test", WantRows: []string{"1,5"}}
	traffic := check.Result{Name: "Rows", Suite: "tcp-cidr", Observations: []check.Observation{{Step: "s", Expect: rows, Observed: check.Allowed,
		Rows: []string{"1,4"}, Observable: check.TrafficFacets}}}
	traffic.Judge()
	props := map[string]string{}
	for _, p := range CaseProperties(traffic) {
		props[p[0]] = p[1]
	}
	if props["expect.0.judged"] != "outcome,rows" || props["expect.0.notJudged"] != "cluster" {
		t.Errorf("properties %v", props)
	}
	if !strings.Contains(traffic.Message, "expected rows [1,5], got [1,4] (not observed: cluster)") || !strings.Contains(traffic.Trace(), "judged: outcome, rows; not observed: cluster") {
		t.Errorf("message %q trace %s", traffic.Message, traffic.Trace())
	}
	if c := byKey["tcp-cidr/MySQLViaCIDR"]; c.Status != check.Error || c.Type != "EnvironmentNotReady" || !strings.Contains(c.Reason, "proxyv2") {
		t.Errorf("error case: %+v", c)
	}
	if c := byKey["masquerade/Masq"]; c.Status != check.Skipped || c.Reason != "filtered by --labels" {
		t.Errorf("skipped case: %+v", c)
	}
	if c := byKey["registry-only/UnregisteredHTTPBlocked/NegativeControl"]; !c.NegativeControl || c.Status != check.Passed {
		t.Errorf("negative control: %+v", c)
	}
	// A setup failure reads back as its synthetic case.
	s := Report{Tool: "test", Driver: "live"}
	s.SetupFailed("cluster", errors.New("boom"))
	if err := WriteJUnit(path, s); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadJUnit(path); err != nil || len(got.Cases) != 1 || got.Cases[0].Key() != SetupSuite+"/"+SetupCase || got.Cases[0].Status != check.Failed {
		t.Errorf("setup failure read back: %+v, %v", got, err)
	}
}
