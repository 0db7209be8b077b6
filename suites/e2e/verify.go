package e2e

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites"
)

// What a `make e2e` JUnit report must look like, for VerifyJUnit.
const (
	// ExpectOffline: a machine without a container registry (the test
	// environment of ../shared/testenv). The masquerade suite needs no
	// Istio and passes for real; every other check is an error
	// "environment not ready: <reason>" whose reason names the image that
	// could not be pulled. The run exits 2.
	ExpectOffline = "offline"
	// ExpectAllPass: a machine that can pull Istio: every check passes.
	ExpectAllPass = "all-pass"
	// ExpectMasquerade: a run of the masquerade suite alone (`--suite
	// masquerade`): its checks pass, on the harness's own pod network.
	ExpectMasquerade = "masquerade"
	// ExpectLocalIstiod: a machine without a registry running with
	// --local-istiod (MESHCONFORM_LOCAL_ISTIOD=1): istiod from the pinned
	// module is Ready; every mesh check passes in the pushed-config tier
	// ("<suite> (pushed config)") and so does each negative control there
	// (the broken check failed); the traffic tier reports every mesh check
	// "environment not ready" naming proxyv2; masquerade passes. Exit 2.
	ExpectLocalIstiod = "local-istiod"
)

// pushedSuffix is pushed.SuiteSuffix (not imported: verify stays free of
// Istio's packages).
const pushedSuffix = " (pushed config)"

// Tally counts what a report observed, per tier.
type Tally struct {
	// Traffic: cases of the traffic tier, by status.
	Traffic map[string]int
	// Pushed: cases of the pushed-config tier, by status; PushedControls
	// the negative controls among them.
	Pushed         map[string]int
	PushedControls int
}

func (t Tally) String() string {
	f := func(m map[string]int) string {
		var parts []string
		for _, k := range []string{"passed", "failed", "error", "skipped"} {
			if m[k] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
			}
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("traffic tier: %s; pushed-config tier: %s (of which %d negative controls)", f(t.Traffic), f(t.Pushed), t.PushedControls)
}

// TallyDoc counts the cases of a report per tier and status.
func TallyDoc(doc junit.Testsuites) Tally {
	t := Tally{Traffic: map[string]int{}, Pushed: map[string]int{}}
	for _, ts := range doc.Suites {
		if ts.Name == reports.SetupSuite {
			continue
		}
		for _, tc := range ts.Testcases {
			status, _, _ := caseStatus(tc)
			if strings.HasSuffix(ts.Name, pushedSuffix) {
				t.Pushed[status]++
				if strings.HasSuffix(tc.Name, "/NegativeControl") {
					t.PushedControls++
				}
			} else {
				t.Traffic[status]++
			}
		}
	}
	return t
}

// Suites are the five suites a full run reports.
var Suites = suites.Names

// VerifyJUnit checks the JUnit file of a full run against mode and
// returns every deviation, one per line, or nil.
func VerifyJUnit(path, mode string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("verify junit: %w", err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("verify junit %s: %w", path, err)
	}
	return VerifyDoc(doc, mode)
}

// VerifyDoc is VerifyJUnit for a parsed document.
func VerifyDoc(doc junit.Testsuites, mode string) error {
	if mode != ExpectOffline && mode != ExpectAllPass && mode != ExpectMasquerade && mode != ExpectLocalIstiod {
		return fmt.Errorf("verify junit: mode %q: use %s, %s, %s or %s", mode, ExpectOffline, ExpectAllPass, ExpectMasquerade, ExpectLocalIstiod)
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	seen := map[string]int{}
	controls := map[string]int{}
	for _, ts := range doc.Suites {
		if ts.Name == reports.SetupSuite {
			for _, tc := range ts.Testcases {
				if tc.Failure != nil {
					bad("setup failed: %s: %s", tc.Failure.Message, firstLine(tc.Failure.Data))
				}
			}
			continue
		}
		pushedTier := strings.HasSuffix(ts.Name, pushedSuffix)
		for _, tc := range ts.Testcases {
			seen[ts.Name]++
			if strings.HasSuffix(tc.Name, "/NegativeControl") {
				controls[ts.Name]++
			}
			status, msg, typ := caseStatus(tc)
			id := ts.Name + "/" + tc.Name
			switch {
			case pushedTier && mode != ExpectLocalIstiod && mode != ExpectAllPass:
				bad("%s: a pushed-config result in a %s run", id, mode)
			case pushedTier:
				// Checks pass on the pushed config; a negative control
				// passes only when its broken check failed there.
				if status != "passed" {
					bad("%s: %s (%s), want passed in the pushed-config tier: %s", id, status, typ, msg)
				}
			case mode == ExpectAllPass || ts.Name == "masquerade":
				if status != "passed" {
					bad("%s: %s (%s), want passed: %s", id, status, typ, msg)
				}
			default:
				if status != "error" || typ != "EnvironmentNotReady" {
					bad("%s: %s (%s), want error EnvironmentNotReady: %s", id, status, typ, msg)
					continue
				}
				if !strings.HasPrefix(msg, "environment not ready: ") {
					bad("%s: message %q does not start with \"environment not ready: \"", id, msg)
				}
				if !strings.Contains(msg, "image") {
					bad("%s: reason %q does not name the image that could not be pulled", id, msg)
				}
				if mode == ExpectLocalIstiod && !strings.Contains(msg, "proxyv2") {
					bad("%s: reason %q does not name proxyv2 (istiod is local; only the data plane is missing)", id, msg)
				}
			}
		}
	}
	want := Suites
	if mode == ExpectMasquerade {
		want = []string{"masquerade"}
		for s := range seen {
			if s != "masquerade" {
				bad("suite %s: not selected, but reported", s)
			}
		}
	}
	for _, s := range want {
		if seen[s] == 0 {
			bad("suite %s: no test case", s)
		}
	}
	// On a kind cluster the harness created, the masquerade checks run on
	// its own pod network (no CNI masquerade), not the node image's CNI.
	if seen["masquerade"] > 0 && Property(doc, "cluster.mode") == string(clusters.Created) &&
		Property(doc, "cluster.podNetwork") != clusters.PodNetworkName {
		bad("suite masquerade: cluster.podNetwork is %q, want %s (the harness's own pod network)", Property(doc, "cluster.podNetwork"), clusters.PodNetworkName)
	}
	if mode == ExpectLocalIstiod {
		for _, s := range Suites {
			if s == "masquerade" {
				continue
			}
			ps := s + pushedSuffix
			switch {
			case seen[ps] == 0:
				bad("suite %s: no test case (the pushed-config tier did not run: %s)", ps, Property(doc, "pushed.note"))
			case controls[ps]*2 != seen[ps]:
				bad("suite %s: %d cases but %d negative controls: every mesh check must have its negative control run there", ps, seen[ps], controls[ps])
			case seen[ps]-controls[ps] != seen[s]-controls[s]:
				// Checks, not cases: the traffic tier carries negative
				// controls too when the run asked for them.
				bad("suite %s: %d checks judged on pushed config, %d in the traffic tier", ps, seen[ps]-controls[ps], seen[s]-controls[s])
			}
		}
		if w := Property(doc, "istio.webhook"); !strings.Contains(w, "denied") || strings.HasPrefix(w, "FAILED") {
			bad("Istio's validating webhook was not shown to be in the path of ServiceEntries (property istio.webhook %q)", w)
		}
		if Property(doc, "istio.localIstiod") == "" || Property(doc, "phase.istiod-ready.seconds") == "" {
			bad("the report does not say that istiod from the local image became Ready (properties istio.localIstiod, phase.istiod-ready.seconds)")
		}
	}
	if seen["masquerade"] > 0 && seen["masquerade"] < 3 {
		bad("suite masquerade: %d test cases, want at least 3 (outside the CIDRs, inside without and with a return route)", seen["masquerade"])
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Strings(probs)
	return errors.New(strings.Join(slices.Compact(probs), "\n"))
}

func caseStatus(tc junit.Testcase) (status, msg, typ string) {
	switch {
	case tc.Error != nil:
		return "error", tc.Error.Message, tc.Error.Type
	case tc.Failure != nil:
		return "failed", tc.Failure.Message, tc.Failure.Type
	case tc.Skipped != nil:
		return "skipped", tc.Skipped.Message, ""
	}
	return "passed", "", ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// Property returns a property of the first test suite that has it.
func Property(doc junit.Testsuites, name string) string {
	for _, ts := range doc.Suites {
		if ts.Properties == nil {
			continue
		}
		for _, p := range *ts.Properties {
			if p.Name == name {
				return p.Value
			}
		}
	}
	return ""
}
