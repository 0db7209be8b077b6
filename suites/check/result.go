package check

import (
	"fmt"
	"strings"
	"time"
)

// Status is a check's verdict.
type Status string

// Statuses, as JUnit reports them: Failed is a failure, Error an error.
const (
	Passed  Status = "Passed"
	Failed  Status = "Failed"
	Error   Status = "Error"
	Skipped Status = "Skipped"
)

// ErrNotReady prefixes the message of checks whose environment lacks what
// they need: they are errors, never passes and never policy failures.
const ErrNotReady = "environment not ready"

// Observation is what a driver saw for one expectation.
type Observation struct {
	Step   string
	Expect Expectation
	// Observed is the classified outcome.
	Observed Outcome
	// Cluster is the Envoy cluster reached, where known.
	Cluster string
	// SeenAs and SourceIP: how the destination saw the client.
	SeenAs   SourceAddress
	SourceIP string
	// Rows returned by a MySQL query, columns joined by ",".
	Rows []string
	// SQLError is the MySQL server error number the query failed with.
	SQLError int
	// Failure is how a failed connection failed, as the probe classifies
	// it ("timeout", "refused", "no-route", "dns", ...; FailureTimeout).
	Failure string
	// Trace is the path through the proxy config or the probe's steps.
	Trace []string
	// Evidence supports the verdict (status line, Envoy stat, errno).
	Evidence string
	// Elapsed is how long the observation took.
	Elapsed time.Duration
	// Converged is how long the preceding change took to take effect
	// (policy propagation), measured by the live driver.
	Converged time.Duration
	// Err is set when the observation itself could not be made.
	Err string
	// Observable lists the facets the driver could observe for this
	// expectation (the config tiers see the outcome and the Envoy
	// cluster, the traffic tier the outcome, source address, rows, SQL
	// errors and failure kind); nil means every facet. A facet the
	// expectation asks for but the driver cannot observe is not judged,
	// and reports say "not observed: <facet>" (NotJudged).
	Observable []Facet
}

// Facets a driver of Envoy config (the simulation, the pushed-config
// tier) observes, and those a traffic driver observes.
var (
	ConfigFacets  = []Facet{FacetOutcome, FacetCluster}
	TrafficFacets = []Facet{FacetOutcome, FacetSeenAs, FacetRows, FacetSQLError, FacetFailure}
)

func (o Observation) observable(f Facet) bool {
	if o.Observable == nil {
		return true
	}
	for _, x := range o.Observable {
		if x == f {
			return true
		}
	}
	return false
}

// Judged lists the facets of the expectation that were judged: asked for
// and observable.
func (o Observation) Judged() []Facet {
	var out []Facet
	for _, f := range o.Expect.Facets() {
		if o.observable(f) {
			out = append(out, f)
		}
	}
	return out
}

// NotJudged lists the facets the expectation asks for that the driver
// could not observe.
func (o Observation) NotJudged() []Facet {
	var out []Facet
	for _, f := range o.Expect.Facets() {
		if !o.observable(f) {
			out = append(out, f)
		}
	}
	return out
}

// JoinFacets renders facets as "outcome,cluster".
func JoinFacets(fs []Facet) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

// Mismatch returns "" when the observation meets the expectation, or why
// not. Only the judged facets count; the others are reported as not
// observed, never as met.
func (o Observation) Mismatch() string {
	e := o.Expect
	var why []string
	if o.Err != "" {
		why = append(why, o.Err)
	}
	if o.Observed != e.Want {
		w := string(e.Want)
		if e.FlippedFrom != "" {
			w += " (the negative control's declared flip of " + e.FlippedFrom + ")"
		}
		why = append(why, fmt.Sprintf("expected %s, observed %s", w, o.Observed))
		return strings.Join(why, "; ")
	}
	judged := map[Facet]bool{}
	for _, f := range o.Judged() {
		judged[f] = true
	}
	if judged[FacetCluster] && o.Cluster != e.WantCluster {
		reached := o.Cluster
		if reached == "" {
			reached = "no cluster"
		}
		why = append(why, fmt.Sprintf("expected cluster %s, reached %s", e.WantCluster, reached))
	}
	if judged[FacetSeenAs] && o.SeenAs != e.WantSourceIP {
		seen := string(o.SeenAs)
		if seen == "" {
			seen = "unknown"
		}
		why = append(why, strings.TrimSpace(fmt.Sprintf("expected the destination to see the %s, it saw %s %s", e.WantSourceIP, seen, o.SourceIP)))
	}
	if judged[FacetRows] && strings.Join(o.Rows, ";") != strings.Join(e.WantRows, ";") {
		why = append(why, fmt.Sprintf("expected rows %v, got %v", e.WantRows, o.Rows))
	}
	if judged[FacetSQLError] && o.SQLError != e.WantSQLError {
		why = append(why, fmt.Sprintf("expected MySQL error %d, got %d", e.WantSQLError, o.SQLError))
	}
	if judged[FacetFailure] && o.Failure != e.WantFailure {
		got := o.Failure
		if got == "" {
			got = "unknown"
		}
		why = append(why, fmt.Sprintf("expected the connection to fail by %s, it failed by %s", e.WantFailure, got))
	}
	return strings.Join(why, "; ")
}

// Result is a check's verdict with its observations.
type Result struct {
	Name        string
	Suite       string
	Description string
	Labels      map[string]string
	Status      Status
	// Message explains Failed, Error and Skipped.
	Message      string
	Observations []Observation
	Duration     time.Duration
	// NegativeControl marks the run of a check's negative control: it
	// passes when the broken check failed.
	NegativeControl bool
	// Want summarises what the check expects, even when nothing could be
	// observed (errors, skips).
	Want string
}

// NewResult starts a result for c.
func NewResult(c Check) Result {
	var want []string
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			want = append(want, e.WantString())
		}
	}
	return Result{Name: c.Name, Suite: c.Suite, Description: c.Description, Labels: c.AllLabels(), Want: strings.Join(want, ",")}
}

// Judge sets Status and Message from the observations (unless already an
// error or skip).
func (r *Result) Judge() {
	if r.Status == Error || r.Status == Skipped {
		return
	}
	var fails []string
	for _, o := range r.Observations {
		if m := o.Mismatch(); m != "" {
			fails = append(fails, failLine(o, m))
		}
	}
	if len(r.Observations) == 0 {
		r.Status, r.Message = Error, "no observation was made"
		return
	}
	if len(fails) > 0 {
		r.Status, r.Message = Failed, strings.Join(fails, "\n")
		return
	}
	r.Status, r.Message = Passed, ""
}

// failLine is one failed expectation in a Failed message; facets that
// were not observed are named, so a failure never reads as complete.
func failLine(o Observation, mismatch string) string {
	s := fmt.Sprintf("[%s] %s: %s", o.Step, o.Expect, mismatch)
	if nj := o.NotJudged(); len(nj) > 0 {
		s += " (not observed: " + strings.ReplaceAll(JoinFacets(nj), ",", ", ") + ")"
	}
	return s
}

// Trace renders every observation's trace for a report.
func (r Result) Trace() string {
	var b strings.Builder
	for _, o := range r.Observations {
		fmt.Fprintf(&b, "[%s] %s\n  observed: %s", o.Step, o.Expect, o.Observed)
		if o.Cluster != "" {
			fmt.Fprintf(&b, " (cluster %s)", o.Cluster)
		}
		switch {
		case o.SourceIP != "" && o.SeenAs != "":
			fmt.Fprintf(&b, " (seen as %s %s)", o.SeenAs, o.SourceIP)
		case o.SourceIP != "":
			fmt.Fprintf(&b, " (the target saw %s)", o.SourceIP)
		}
		if o.Failure != "" && o.Observed != Allowed {
			fmt.Fprintf(&b, " (failed by %s)", o.Failure)
		}
		b.WriteString("\n")
		if o.Expect.FlippedFrom != "" {
			fmt.Fprintf(&b, "  negative control: the check wants %s; its mutation declares %s instead\n", o.Expect.FlippedFrom, o.Expect.WantString())
		}
		fmt.Fprintf(&b, "  judged: %s", strings.ReplaceAll(JoinFacets(o.Judged()), ",", ", "))
		if nj := o.NotJudged(); len(nj) > 0 {
			fmt.Fprintf(&b, "; not observed: %s", strings.ReplaceAll(JoinFacets(nj), ",", ", "))
		}
		b.WriteString("\n")
		for _, t := range o.Trace {
			fmt.Fprintf(&b, "  %s\n", t)
		}
		if o.Evidence != "" {
			fmt.Fprintf(&b, "  evidence: %s\n", o.Evidence)
		}
		if o.Err != "" {
			fmt.Fprintf(&b, "  error: %s\n", o.Err)
		}
	}
	return b.String()
}

// Expected summarises the check's expectations for a table.
func (r Result) Expected() string {
	if r.Want != "" {
		return r.Want
	}
	return summarize(r.Observations, func(o Observation) string { return o.Expect.WantString() })
}

// ObservedSummary summarises what was observed for a table.
func (r Result) ObservedSummary() string {
	if r.Status == Error || r.Status == Skipped {
		if len(r.Observations) == 0 {
			return "-"
		}
	}
	return summarize(r.Observations, func(o Observation) string {
		s := string(o.Observed)
		if s == "" {
			s = "?"
		}
		switch {
		case o.SeenAs != "":
			s += "(" + string(o.SeenAs) + ")"
		case o.Failure != "" && o.Expect.WantFailure != "":
			s += "(" + o.Failure + ")"
		}
		return s
	})
}

func summarize(obs []Observation, f func(Observation) string) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, f(o))
	}
	return strings.Join(parts, ",")
}
