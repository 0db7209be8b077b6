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
)

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
	if mode != ExpectOffline && mode != ExpectAllPass && mode != ExpectMasquerade {
		return fmt.Errorf("verify junit: mode %q: use %s, %s or %s", mode, ExpectOffline, ExpectAllPass, ExpectMasquerade)
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	seen := map[string]int{}
	for _, ts := range doc.Suites {
		if ts.Name == reports.SetupSuite {
			for _, tc := range ts.Testcases {
				if tc.Failure != nil {
					bad("setup failed: %s: %s", tc.Failure.Message, firstLine(tc.Failure.Data))
				}
			}
			continue
		}
		for _, tc := range ts.Testcases {
			seen[ts.Name]++
			status, msg, typ := caseStatus(tc)
			id := ts.Name + "/" + tc.Name
			switch {
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
