package e2e

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites/check"
)

func result(suite, name string, st check.Status, msg string) check.Result {
	return check.Result{Name: name, Suite: suite, Status: st, Message: msg}
}

const notReady = "environment not ready: install istio: istiod: pod istio-system/istiod-x container discovery: image docker.io/istio/pilot:1.31.0 cannot be pulled (ErrImagePull)"

func offlineReport() reports.Report {
	var rs []check.Result
	for _, s := range Suites[:4] {
		rs = append(rs, result(s, "A"+strings.ReplaceAll(s, "-", ""), check.Error, notReady))
	}
	for _, n := range []string{"OutsideNonMasqSeenAsNode", "InsideNonMasqNoRouteFails", "InsideNonMasqWithRouteSeenAsPod"} {
		rs = append(rs, result("masquerade", n, check.Passed, ""))
	}
	return reports.Report{Tool: "test", Driver: "live", Results: rs, Properties: map[string]string{"fixtures.runID": "mc-1"}}
}

func roundTrip(t *testing.T, r reports.Report) junit.Testsuites {
	t.Helper()
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := reports.WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestVerifyOfflineShape(t *testing.T) {
	if err := VerifyDoc(roundTrip(t, offlineReport()), ExpectOffline); err != nil {
		t.Fatalf("the expected shape is rejected:\n%v", err)
	}
	if p := Property(roundTrip(t, offlineReport()), "fixtures.runID"); p != "mc-1" {
		t.Errorf("property %q", p)
	}
	for name, mutate := range map[string]func(*reports.Report){
		"a masquerade check failed": func(r *reports.Report) { r.Results[5].Status, r.Results[5].Message = check.Failed, "x" },
		"a mesh check passed":       func(r *reports.Report) { r.Results[0].Status, r.Results[0].Message = check.Passed, "" },
		"a mesh check failed":       func(r *reports.Report) { r.Results[1].Status = check.Failed },
		"reason without image": func(r *reports.Report) {
			r.Results[2].Message = "environment not ready: istiod not rolled out"
		},
		"a suite missing":   func(r *reports.Report) { r.Results = r.Results[1:] },
		"setup failed":      func(r *reports.Report) { r.SetupFailed("cluster", os.ErrNotExist) },
		"masquerade short":  func(r *reports.Report) { r.Results = r.Results[:5] },
		"masquerade errors": func(r *reports.Report) { r.Results[6].Status, r.Results[6].Message = check.Error, notReady },
	} {
		r := offlineReport()
		mutate(&r)
		if err := VerifyDoc(roundTrip(t, r), ExpectOffline); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if err := VerifyDoc(roundTrip(t, offlineReport()), ExpectAllPass); err == nil {
		t.Error("offline shape accepted as all-pass")
	}
}

func TestVerifyMasqueradeShape(t *testing.T) {
	masq := func() reports.Report {
		r := offlineReport()
		r.Results = r.Results[4:]
		r.Properties = map[string]string{"cluster.mode": "created", "cluster.podNetwork": "meshconform-ptp"}
		return r
	}
	if err := VerifyDoc(roundTrip(t, masq()), ExpectMasquerade); err != nil {
		t.Fatalf("the expected shape is rejected:\n%v", err)
	}
	for name, mutate := range map[string]func(*reports.Report){
		"on the node image's CNI": func(r *reports.Report) { delete(r.Properties, "cluster.podNetwork") },
		"a check failed":          func(r *reports.Report) { r.Results[0].Status, r.Results[0].Message = check.Failed, "x" },
		"another suite reported":  func(r *reports.Report) { r.Results = append(r.Results, result("ingress", "X", check.Passed, "")) },
	} {
		r := masq()
		mutate(&r)
		if err := VerifyDoc(roundTrip(t, r), ExpectMasquerade); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestJUnitFile verifies a real run's report: set MESHCONFORM_JUNIT (and
// MESHCONFORM_EXPECT, default offline). hack/e2e-verify.sh runs it.
func TestJUnitFile(t *testing.T) {
	path := os.Getenv("MESHCONFORM_JUNIT")
	if path == "" {
		t.Skip("set MESHCONFORM_JUNIT to a report of `make e2e` to verify it")
	}
	mode := os.Getenv("MESHCONFORM_EXPECT")
	if mode == "" {
		mode = ExpectOffline
	}
	if b, err := os.ReadFile(path); err == nil {
		var doc junit.Testsuites
		if xml.Unmarshal(b, &doc) == nil {
			t.Logf("observed: %s", TallyDoc(doc))
		}
	}
	if err := VerifyJUnit(path, mode); err != nil {
		t.Fatalf("%s does not have the %s shape:\n%v", path, mode, err)
	}
}

func TestFrameworkSelect(t *testing.T) {
	all := []check.Check{
		{Name: "A", Suite: "masquerade", Labels: map[string]string{"speed": "slow"}},
		{Name: "B", Suite: "registry-only"},
		{Name: "C", Suite: "masquerade"},
	}
	names := func(cs []check.Check) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(FrameworkSelect(all, map[string][]string{"suite": {"masquerade"}}, nil, nil, nil)); got != "A,C" {
		t.Errorf("labels: %s", got)
	}
	if got := names(FrameworkSelect(all, nil, map[string][]string{"speed": {"slow"}}, nil, nil)); got != "B,C" {
		t.Errorf("skip labels: %s", got)
	}
	if got := names(FrameworkSelect(all, nil, nil, regexp.MustCompile("^[AB]$"), regexp.MustCompile("B"))); got != "A" {
		t.Errorf("regexps: %s", got)
	}
}

const notReadyProxy = "environment not ready: install istio: ingress gateway: pod istio-system/istio-ingressgateway-x container istio-proxy: image meshconform/proxyv2:0123456789ab cannot be pulled (ErrImagePull)"

// localIstiodReport is the shape of a --local-istiod run: traffic tier not
// ready naming proxyv2, every mesh check and its negative control passed on
// the pushed config, masquerade passed.
func localIstiodReport() reports.Report {
	r := offlineReport()
	for i := range r.Results[:4] {
		r.Results[i].Message = notReadyProxy
	}
	for _, s := range Suites[:4] {
		n := "A" + strings.ReplaceAll(s, "-", "")
		r.Results = append(r.Results,
			result(s+pushedSuffix, n, check.Passed, ""),
			result(s+pushedSuffix, n+"/NegativeControl", check.Passed, "the broken check failed as it must"))
	}
	r.Properties["istio.localIstiod"] = "meshconform/pilot:0123456789ab"
	r.Properties["phase.istiod-ready.seconds"] = "25.0"
	r.Properties["istio.webhook"] = `admission webhook "validation.istio.io" denied the request: configuration is invalid: invalid host 192.0.2.7`
	return r
}

func TestVerifyLocalIstiodShape(t *testing.T) {
	if err := VerifyDoc(roundTrip(t, localIstiodReport()), ExpectLocalIstiod); err != nil {
		t.Fatalf("the expected shape is rejected:\n%v", err)
	}
	if got := TallyDoc(roundTrip(t, localIstiodReport())).String(); got != "traffic tier: 3 passed, 4 error; pushed-config tier: 8 passed (of which 4 negative controls)" {
		t.Errorf("tally %q", got)
	}
	last := func(r *reports.Report) *check.Result { return &r.Results[len(r.Results)-1] }
	for name, mutate := range map[string]func(*reports.Report){
		"a negative control did not fail": func(r *reports.Report) { last(r).Status, last(r).Message = check.Failed, "still passes" },
		"a pushed check failed": func(r *reports.Report) {
			r.Results[7].Status, r.Results[7].Message = check.Failed, "expected BlockedByMesh"
		},
		"a pushed check errored":         func(r *reports.Report) { r.Results[7].Status, r.Results[7].Message = check.Error, "timeout" },
		"a negative control missing":     func(r *reports.Report) { r.Results = r.Results[:len(r.Results)-1] },
		"a pushed suite missing":         func(r *reports.Report) { r.Results = r.Results[:len(r.Results)-2] },
		"traffic reason without proxyv2": func(r *reports.Report) { r.Results[0].Message = notReady },
		"a traffic mesh check passed":    func(r *reports.Report) { r.Results[0].Status, r.Results[0].Message = check.Passed, "" },
		"no local istiod":                func(r *reports.Report) { delete(r.Properties, "istio.localIstiod") },
		"webhook not shown":              func(r *reports.Report) { delete(r.Properties, "istio.webhook") },
	} {
		r := localIstiodReport()
		mutate(&r)
		if err := VerifyDoc(roundTrip(t, r), ExpectLocalIstiod); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := VerifyDoc(roundTrip(t, localIstiodReport()), ExpectOffline); err == nil {
		t.Error("a report with pushed-config results accepted as offline")
	}
}
