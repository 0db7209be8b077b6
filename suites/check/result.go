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
	SeenAs   SourceIdentity
	SourceIP string
	// Rows returned by a MySQL query, columns joined by ",".
	Rows []string
	// SQLError is the MySQL server error number the query failed with.
	SQLError int
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
	// PathOnly is set by drivers that observe the network path but not
	// the application (the simulation): rows and SQL errors are then not
	// judged, and the trace says so.
	PathOnly bool
}

// Mismatch returns "" when the observation meets the expectation, or why not.
func (o Observation) Mismatch() string {
	e := o.Expect
	var why []string
	if o.Err != "" {
		why = append(why, o.Err)
	}
	if o.Observed != e.Want {
		why = append(why, fmt.Sprintf("expected %s, observed %s", e.Want, o.Observed))
	}
	if o.Observed == e.Want && e.WantCluster != "" && o.Cluster != "" && o.Cluster != e.WantCluster {
		why = append(why, fmt.Sprintf("expected cluster %s, reached %s", e.WantCluster, o.Cluster))
	}
	if o.Observed == e.Want && e.WantSourceIP != "" && o.SeenAs != e.WantSourceIP {
		seen := string(o.SeenAs)
		if seen == "" {
			seen = "unknown"
		}
		why = append(why, strings.TrimSpace(fmt.Sprintf("expected the destination to see the %s, it saw %s %s", e.WantSourceIP, seen, o.SourceIP)))
	}
	if o.PathOnly {
		return strings.Join(why, "; ")
	}
	if o.Observed == e.Want && len(e.WantRows) > 0 && strings.Join(o.Rows, ";") != strings.Join(e.WantRows, ";") {
		why = append(why, fmt.Sprintf("expected rows %v, got %v", e.WantRows, o.Rows))
	}
	if o.Observed == e.Want && e.WantSQLError != 0 && o.SQLError != e.WantSQLError {
		why = append(why, fmt.Sprintf("expected MySQL error %d, got %d", e.WantSQLError, o.SQLError))
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
			w := string(e.Want)
			if e.WantSourceIP != "" {
				w += "(" + string(e.WantSourceIP) + ")"
			}
			want = append(want, w)
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
			fails = append(fails, fmt.Sprintf("[%s] %s: %s", o.Step, o.Expect, m))
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

// Trace renders every observation's trace for a report.
func (r Result) Trace() string {
	var b strings.Builder
	for _, o := range r.Observations {
		fmt.Fprintf(&b, "[%s] %s\n  observed: %s", o.Step, o.Expect, o.Observed)
		if o.Cluster != "" {
			fmt.Fprintf(&b, " (cluster %s)", o.Cluster)
		}
		if o.SourceIP != "" {
			fmt.Fprintf(&b, " (seen as %s %s)", o.SeenAs, o.SourceIP)
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
	return summarize(r.Observations, func(o Observation) string {
		s := string(o.Expect.Want)
		if o.Expect.WantSourceIP != "" {
			s += "(" + string(o.Expect.WantSourceIP) + ")"
		}
		return s
	})
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
		if o.SeenAs != "" {
			s += "(" + string(o.SeenAs) + ")"
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
