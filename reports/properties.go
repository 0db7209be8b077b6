package reports

import (
	"fmt"
	"strconv"

	"github.com/meshconform/meshconform/suites/check"
)

// Testcase property names: the machine-readable record of a check that
// `meshconform diff` compares. Every testcase meshconform writes has
// PropStatus; a check with observations has, for each expectation i
// (0-based, in the check's order), ExpectProp(i, field) for the fields
// below. Values are plain strings; a field that does not apply is absent.
const (
	// PropStatus is the verdict: Passed, Failed, Error or Skipped.
	PropStatus = "meshconform.status"
	// PropNegativeControl is "true" on the run of a check's negative control.
	PropNegativeControl = "meshconform.negativeControl"

	// ExpectName identifies the expectation within its check: step, source
	// and destination ("[config applied] meshed(app=web,ns=shop) ->
	// 192.0.2.80:80/HTTP"); stable across runs of the same check.
	ExpectName = "name"
	// ExpectWant is the expected outcome (Allowed, BlockedByMesh,
	// Unreachable; with "(NodeIP)"/"(PodIP)" when the source identity is
	// expected too).
	ExpectWant = "want"
	// ExpectObserved is the observed outcome ("" when nothing could be
	// observed, then ExpectError says why).
	ExpectObserved = "observed"
	// ExpectCluster is the Envoy cluster reached, where known.
	ExpectCluster = "cluster"
	// ExpectSeenAs is how the destination saw the client (NodeIP, PodIP).
	ExpectSeenAs = "seenAs"
	// ExpectError is why the observation could not be made.
	ExpectError = "error"
	// ExpectFailure is how a failed connection failed (timeout, refused, ...).
	ExpectFailure = "failure"
	// ExpectJudged lists the facets of the expectation that were judged
	// ("outcome,cluster"; check.Facet names), ExpectNotJudged those it asks
	// for that this tier cannot observe ("rows,sqlError"); absent when none.
	ExpectJudged    = "judged"
	ExpectNotJudged = "notJudged"
	// ExpectFlippedFrom, on a negative control, is the original expectation
	// its mutation declares flipped (ExpectWant is then the declared outcome).
	ExpectFlippedFrom = "flippedFrom"
)

// ExpectProp is the property name of expectation i's field:
// "expect.<i>.<field>".
func ExpectProp(i int, field string) string { return "expect." + strconv.Itoa(i) + "." + field }

// ExpectationName is the ExpectName value of an observation.
func ExpectationName(o check.Observation) string {
	return fmt.Sprintf("[%s] %s -> %s", o.Step, o.Expect.From, o.Expect.To)
}

// CaseProperties are the testcase properties of res, in order.
func CaseProperties(res check.Result) [][2]string {
	out := [][2]string{{PropStatus, string(res.Status)}}
	if res.NegativeControl {
		out = append(out, [2]string{PropNegativeControl, "true"})
	}
	for i, o := range res.Observations {
		want := string(o.Expect.Want)
		if o.Expect.WantSourceIP != "" {
			want += "(" + string(o.Expect.WantSourceIP) + ")"
		}
		out = append(out,
			[2]string{ExpectProp(i, ExpectName), clean(ExpectationName(o))},
			[2]string{ExpectProp(i, ExpectWant), want},
			[2]string{ExpectProp(i, ExpectObserved), string(o.Observed)})
		failure := ""
		if o.Observed != check.Allowed {
			failure = o.Failure
		}
		for _, f := range [][2]string{{ExpectCluster, o.Cluster}, {ExpectSeenAs, string(o.SeenAs)}, {ExpectFailure, failure},
			{ExpectJudged, check.JoinFacets(o.Judged())}, {ExpectNotJudged, check.JoinFacets(o.NotJudged())},
			{ExpectFlippedFrom, o.Expect.FlippedFrom}, {ExpectError, o.Err}} {
			if f[1] != "" {
				out = append(out, [2]string{ExpectProp(i, f[0]), clean(f[1])})
			}
		}
	}
	return out
}
