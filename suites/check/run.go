package check

import (
	"context"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Driver observes checks: simulation or live.
type Driver interface {
	// Name is "simulation" or "live".
	Name() string
	// Run observes one check and returns its result; it must not panic
	// on bad environments but return an Error result saying why.
	Run(ctx context.Context, c Check) Result
}

// Filter selects checks by name regexp, suite and labels.
type Filter struct {
	// Run matches check names (like go test -run); nil matches all.
	Run *regexp.Regexp
	// Suites, if non-empty, keeps only these suites.
	Suites []string
	// Labels must all match (key=value).
	Labels map[string]string
	// SkipLabels: a check matching any of them is skipped.
	SkipLabels map[string]string
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label selector %q: want key=value[,key=value]", s)
		}
		out[k] = v
	}
	return out, nil
}

// Match reports whether c is selected.
func (f Filter) Match(c Check) bool {
	if f.Run != nil && !f.Run.MatchString(c.Name) {
		return false
	}
	if len(f.Suites) > 0 {
		ok := false
		for _, s := range f.Suites {
			if s == c.Suite {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	labels := c.AllLabels()
	for k, v := range f.Labels {
		if labels[k] != v {
			return false
		}
	}
	for k, v := range f.SkipLabels {
		if labels[k] == v {
			return false
		}
	}
	return true
}

// Select returns the matching checks, in list order.
func Select(checks []Check, f Filter) []Check {
	var out []Check
	for _, c := range checks {
		if f.Match(c) {
			out = append(out, c)
		}
	}
	return out
}

// Suites returns the distinct suite names in list order.
func Suites(checks []Check) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range checks {
		if !seen[c.Suite] {
			seen[c.Suite] = true
			out = append(out, c.Suite)
		}
	}
	return out
}

// RunOptions tune RunAll.
type RunOptions struct {
	// NegativeControls also runs every check's negative control.
	NegativeControls bool
	// OnResult is called after each result (progress output).
	OnResult func(Result)
}

// RunAll runs checks with d in order. A panicking driver yields an Error
// result for that check and the run goes on. A cancelled context marks
// the remaining checks Skipped with the reason.
func RunAll(ctx context.Context, d Driver, checks []Check, o RunOptions) []Result {
	var out []Result
	emit := func(r Result) {
		out = append(out, r)
		if o.OnResult != nil {
			o.OnResult(r)
		}
	}
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			r := NewResult(c)
			r.Status, r.Message = Skipped, "run interrupted: "+err.Error()
			emit(r)
			continue
		}
		emit(runOne(ctx, d, c, nil))
		if o.NegativeControls && c.NegativeControl.Mutate != nil {
			orig := c
			emit(runOne(ctx, d, c.Negated(), &orig))
		}
	}
	return out
}

// runOne runs c; for a negative control, orig is the check it was made
// from and the result becomes the control's verdict (JudgeNegativeControl).
func runOne(ctx context.Context, d Driver, c Check, orig *Check) (r Result) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			r = NewResult(c)
			r.Status = Error
			r.Message = fmt.Sprintf("%s driver panicked: %v\n%s", d.Name(), p, debug.Stack())
		}
		r.Duration = time.Since(start)
		if orig != nil {
			r = JudgeNegativeControl(*orig, r)
		}
	}()
	return d.Run(ctx, c)
}

// JudgeNegativeControl turns the result of orig.Negated() into the
// negative control's verdict. The control passes only when the broken
// check observed exactly what orig's Mutation.Flips declare (each flipped
// expectation observed with the declared outcome) and every other
// expectation as orig wants it. An observed outcome other than the
// declared one, an expectation the mutation should not have changed, a
// timeout (no convergence) or a missing observation make it Failed with
// what was observed instead; an Error or Skipped result stays one: a
// check that could not run says nothing about its property.
func JudgeNegativeControl(orig Check, r Result) Result {
	r.NegativeControl = true
	switch r.Status {
	case Error, Skipped:
		return r
	}
	if want := orig.ExpectationCount(); len(r.Observations) != want {
		r.Status = Error
		r.Message = fmt.Sprintf("negative control (%s): the broken check made %d observations for %d expectations", orig.NegativeControl.Description, len(r.Observations), want)
		return r
	}
	var flipped, other, seen []string
	for _, o := range r.Observations {
		m := o.Mismatch()
		switch {
		case m == "" && o.Expect.FlippedFrom != "":
			seen = append(seen, fmt.Sprintf("[%s] %s: wants %s, observed %s as declared", o.Step, o.Expect.From.String()+" -> "+o.Expect.To.String(), o.Expect.FlippedFrom, summarizeObserved(o)))
		case m == "":
		case o.Expect.FlippedFrom != "":
			flipped = append(flipped, failLine(o, m))
		default:
			other = append(other, failLine(o, m)+" — the mutation does not declare a change here")
		}
	}
	if len(flipped) == 0 && len(other) == 0 {
		r.Status = Passed
		r.Message = "the broken check failed as declared (" + orig.NegativeControl.Description + "):\n" + strings.Join(seen, "\n")
		return r
	}
	r.Status = Failed
	r.Message = "the broken check did not fail as declared (" + orig.NegativeControl.Description + "):\n" + strings.Join(append(flipped, other...), "\n")
	return r
}

// summarizeObserved is an observation's outcome with the source address
// or failure kind its expectation asks about: "Allowed(NodeIP)",
// "Unreachable(timeout)".
func summarizeObserved(o Observation) string {
	s := string(o.Observed)
	switch {
	case o.Expect.WantSourceIP != "" && o.SeenAs != "":
		s += "(" + string(o.SeenAs) + ")"
	case o.Expect.WantFailure != "" && o.Failure != "":
		s += "(" + o.Failure + ")"
	}
	return s
}

// Counts tallies statuses.
func Counts(rs []Result) map[Status]int {
	m := map[Status]int{}
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}

// ExitCode is 0 when everything passed or was skipped, 1 when a check
// failed, 2 when a check errored (bad environment).
func ExitCode(rs []Result) int {
	c := Counts(rs)
	switch {
	case c[Error] > 0:
		return 2
	case c[Failed] > 0:
		return 1
	}
	return 0
}

// SortedLabels renders labels as k=v,... sorted.
func SortedLabels(m map[string]string) string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}
