package diff

import (
	"fmt"
	"sort"
	"strings"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites/check"
)

// Kind is how a check changed between the two reports.
type Kind string

// Kinds, in the order tables list them.
const (
	// Regressed: passed before, and now failed, errored, was skipped or is
	// gone (dropping a passing check must not slip through a gate).
	Regressed Kind = "regressed"
	// Changed: on the same side of pass/no-pass, but the status, an
	// observed outcome, the cluster reached or the reason differs.
	Changed Kind = "changed"
	// Fixed: did not pass before, passes now.
	Fixed Kind = "fixed"
	// Appeared: only in the second report.
	Appeared Kind = "appeared"
	// Disappeared: only in the first report, where it had not passed.
	Disappeared Kind = "disappeared"
)

// Kinds lists every Kind in table order.
var Kinds = []Kind{Regressed, Changed, Fixed, Appeared, Disappeared}

func (k Kind) rank() int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// FailOn says which changes fail the gate.
type FailOn string

// FailOn values.
const (
	// FailOnRegressed fails when something that passed no longer passes.
	FailOnRegressed FailOn = "regressed"
	// FailOnChanged fails on any change at all.
	FailOnChanged FailOn = "changed"
)

// ParseFailOn parses a --fail-on value.
func ParseFailOn(s string) (FailOn, error) {
	switch FailOn(s) {
	case FailOnRegressed, FailOnChanged:
		return FailOn(s), nil
	}
	return "", fmt.Errorf("--fail-on %q: use regressed or changed", s)
}

// Fails reports whether a change of kind k fails the gate under f.
func (f FailOn) Fails(k Kind) bool {
	if f == FailOnChanged {
		return true
	}
	return k == Regressed
}

// Outcome is one expectation whose observation changed. Before and After
// render the observation ("Allowed via outbound|80||x", "BlockedByMesh",
// "absent" when the expectation is not in that report).
type Outcome struct {
	Expectation   string
	Before, After string
}

// Change is one check that differs.
type Change struct {
	Kind         Kind
	Suite, Check string
	// Before and After are the statuses; "" when absent from that report.
	Before, After check.Status
	// Outcomes are the expectations whose observation changed.
	Outcomes []Outcome
	// ReasonBefore and ReasonAfter are the failure/error/skip reasons
	// (first lines), set when they differ.
	ReasonBefore, ReasonAfter string
}

// Detail renders the outcome changes, or else the reason change, on one
// line.
func (c Change) Detail() string {
	var parts []string
	if c.Before == "" {
		parts = append(parts, "new check")
	}
	if c.After == "" {
		parts = append(parts, "check is gone")
	}
	for _, o := range c.Outcomes {
		parts = append(parts, fmt.Sprintf("%s: %s → %s", o.Expectation, o.Before, o.After))
	}
	// A failure's reason restates the outcome change: shown only when no
	// outcome changed (errors, skips, reports without expectations).
	if c.ReasonBefore != c.ReasonAfter && len(c.Outcomes) == 0 {
		switch {
		case c.ReasonBefore == "":
			parts = append(parts, "reason: "+c.ReasonAfter)
		case c.ReasonAfter == "":
			parts = append(parts, "was: "+c.ReasonBefore)
		default:
			parts = append(parts, fmt.Sprintf("reason: %s → %s", c.ReasonBefore, c.ReasonAfter))
		}
	}
	return strings.Join(parts, "; ")
}

// Diff is the comparison of two reports.
type Diff struct {
	Before, After *reports.Read
	// Changes, regressions first, then in report order.
	Changes []Change
	// Unchanged counts the checks present and identical in both.
	Unchanged int
}

// Compare compares before with after.
func Compare(before, after *reports.Read) Diff {
	d := Diff{Before: before, After: after}
	old := map[string]reports.Case{}
	for _, c := range before.Cases {
		old[c.Key()] = c
	}
	now := map[string]bool{}
	for _, a := range after.Cases {
		now[a.Key()] = true
		b, ok := old[a.Key()]
		if !ok {
			d.Changes = append(d.Changes, Change{Kind: Appeared, Suite: a.Suite, Check: a.Name, After: a.Status, ReasonAfter: a.Reason})
			continue
		}
		if ch, changed := compareCase(b, a); changed {
			d.Changes = append(d.Changes, ch)
		} else {
			d.Unchanged++
		}
	}
	for _, b := range before.Cases {
		if now[b.Key()] {
			continue
		}
		k := Disappeared
		if b.Status == check.Passed {
			k = Regressed
		}
		d.Changes = append(d.Changes, Change{Kind: k, Suite: b.Suite, Check: b.Name, Before: b.Status, ReasonBefore: b.Reason})
	}
	sort.SliceStable(d.Changes, func(i, j int) bool { return d.Changes[i].Kind.rank() < d.Changes[j].Kind.rank() })
	return d
}

func compareCase(b, a reports.Case) (Change, bool) {
	ch := Change{Suite: a.Suite, Check: a.Name, Before: b.Status, After: a.Status}
	if b.Reason != a.Reason {
		ch.ReasonBefore, ch.ReasonAfter = b.Reason, a.Reason
	}
	ch.Outcomes = compareExpectations(b.Expectations, a.Expectations)
	bp, ap := b.Status == check.Passed, a.Status == check.Passed
	switch {
	case bp && !ap:
		ch.Kind = Regressed
	case !bp && ap:
		ch.Kind = Fixed
	case b.Status != a.Status || len(ch.Outcomes) > 0 || b.Reason != a.Reason || b.Type != a.Type:
		ch.Kind = Changed
	default:
		return ch, false
	}
	return ch, true
}

// compareExpectations matches expectations by name (the n-th of equal
// names with the n-th) and returns those whose observation differs.
func compareExpectations(before, after []reports.ExpectationRecord) []Outcome {
	key := func(list []reports.ExpectationRecord) ([]string, map[string]reports.ExpectationRecord) {
		n := map[string]int{}
		var order []string
		m := map[string]reports.ExpectationRecord{}
		for _, e := range list {
			n[e.Name]++
			k := e.Name
			if n[e.Name] > 1 {
				k = fmt.Sprintf("%s #%d", e.Name, n[e.Name])
			}
			order = append(order, k)
			m[k] = e
		}
		return order, m
	}
	bo, bm := key(before)
	ao, am := key(after)
	var out []Outcome
	for _, k := range ao {
		a := am[k]
		b, ok := bm[k]
		if !ok {
			out = append(out, Outcome{Expectation: k, Before: "absent", After: render(a)})
			continue
		}
		if render(a) != render(b) {
			out = append(out, Outcome{Expectation: k, Before: render(b), After: render(a)})
		}
	}
	for _, k := range bo {
		if _, ok := am[k]; !ok {
			out = append(out, Outcome{Expectation: k, Before: render(bm[k]), After: "absent"})
		}
	}
	return out
}

// render is an observation as a table shows it.
func render(e reports.ExpectationRecord) string {
	s := e.Observed
	if s == "" {
		s = "nothing observed"
	}
	if e.SeenAs != "" {
		s += " as " + e.SeenAs
	}
	if e.Cluster != "" {
		s += " via " + e.Cluster
	}
	if e.Error != "" {
		s += " (" + e.Error + ")"
	}
	return s
}

// Count is the number of changes of kind k.
func (d Diff) Count(k Kind) int {
	n := 0
	for _, c := range d.Changes {
		if c.Kind == k {
			n++
		}
	}
	return n
}

// Failing are the changes that fail the gate under f.
func (d Diff) Failing(f FailOn) []Change {
	var out []Change
	for _, c := range d.Changes {
		if f.Fails(c.Kind) {
			out = append(out, c)
		}
	}
	return out
}

// ExitCode is 1 when a change fails the gate under f, else 0.
func (d Diff) ExitCode(f FailOn) int {
	if len(d.Failing(f)) > 0 {
		return 1
	}
	return 0
}

// Counts renders "1 regressed, 0 changed, ...; 17 unchanged".
func (d Diff) Counts() string {
	var parts []string
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%d %s", d.Count(k), k))
	}
	return strings.Join(parts, ", ") + fmt.Sprintf("; %d unchanged", d.Unchanged)
}

// runProps are the run properties shown side by side.
var runProps = []string{"meshconform.driver", "istio.version", "mesh.outboundTrafficPolicy", "meshconform.version"}

// PropertyChanges lists the run properties that differ, "name: a → b".
func (d Diff) PropertyChanges() []string {
	keys := map[string]bool{}
	for k := range d.Before.Properties {
		keys[k] = true
	}
	for k := range d.After.Properties {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		if b, a := d.Before.Properties[k], d.After.Properties[k]; a != b {
			out = append(out, fmt.Sprintf("%s: %s → %s", k, orDash(b), orDash(a)))
		}
	}
	return out
}

func describe(r *reports.Read) string {
	var parts []string
	for _, k := range runProps {
		if v := r.Properties[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return fmt.Sprintf("%s (%d checks; %s)", r.File, len(r.Cases), strings.Join(parts, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
