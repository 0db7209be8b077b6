package diff

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/reports"
)

// WriteTable prints the comparison for a terminal: the two reports, the
// run properties that differ, one row per changed check and the counts.
func WriteTable(w io.Writer, d Diff, f FailOn) {
	fmt.Fprintf(w, "before: %s\nafter:  %s\n", describe(d.Before), describe(d.After))
	for _, p := range d.PropertyChanges() {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if len(d.Changes) == 0 {
		fmt.Fprintf(w, "no check changed; %d unchanged\n", d.Unchanged)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE\tSUITE\tCHECK\tBEFORE\tAFTER\tDETAIL")
	for _, c := range d.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, c.Suite, c.Check, orDash(string(c.Before)), orDash(string(c.After)), c.Detail())
	}
	tw.Flush()
	fmt.Fprintln(w, d.Counts())
	if n := len(d.Failing(f)); n > 0 {
		fmt.Fprintf(w, "gate failed: %d change(s) fail under --fail-on %s\n", n, f)
	}
}

// Markdown renders the comparison for a CI step summary.
func Markdown(d Diff, f FailOn) string {
	var b strings.Builder
	icon, verdict := "✅", "no change fails the gate"
	if n := len(d.Failing(f)); n > 0 {
		icon, verdict = "❌", fmt.Sprintf("%d change(s) fail the gate (--fail-on %s)", n, f)
	}
	fmt.Fprintf(&b, "## %s meshconform diff: %s\n\n", icon, verdict)
	fmt.Fprintf(&b, "- before: `%s`\n- after: `%s`\n", md(describe(d.Before)), md(describe(d.After)))
	for _, p := range d.PropertyChanges() {
		fmt.Fprintf(&b, "- %s\n", md(p))
	}
	fmt.Fprintf(&b, "\n%s\n\n", d.Counts())
	if len(d.Changes) == 0 {
		return b.String()
	}
	b.WriteString("| change | suite | check | before | after | detail |\n|---|---|---|---|---|---|\n")
	for _, c := range d.Changes {
		mark := ""
		if f.Fails(c.Kind) {
			mark = "❌ "
		}
		fmt.Fprintf(&b, "| %s%s | %s | `%s` | %s | %s | %s |\n", mark, c.Kind, md(c.Suite), c.Check,
			orDash(string(c.Before)), orDash(string(c.After)), md(c.Detail()))
	}
	return b.String()
}

// JUnit renders one testcase per changed check (suite "diff", classname
// meshconform.diff.<suite>): a failure for the changes that fail the gate
// under f, a passing case with the detail in system-out for the others.
// The document is named "meshconform-diff" so that it is never taken for
// a run report.
func JUnit(d Diff, f FailOn) reports.Testsuites {
	doc := reports.Testsuites{Name: reports.DocumentName + "-diff"}
	ts := reports.Testsuite{Name: "diff", Package: "meshconform.diff", Time: "0.000"}
	ts.AddProperty("diff.before", d.Before.File)
	ts.AddProperty("diff.after", d.After.File)
	ts.AddProperty("diff.failOn", string(f))
	for _, c := range d.Changes {
		tc := reports.Testcase{Name: c.Check, Classname: "meshconform.diff." + c.Suite, Time: "0.000"}
		tc.AddProperty("diff.change", string(c.Kind))
		tc.AddProperty("diff.before", string(c.Before))
		tc.AddProperty("diff.after", string(c.After))
		text := fmt.Sprintf("%s: %s → %s\n%s\n", c.Kind, orDash(string(c.Before)), orDash(string(c.After)), strings.ReplaceAll(c.Detail(), "; ", "\n"))
		if f.Fails(c.Kind) {
			tc.Failure = &junit.Result{Message: fmt.Sprintf("%s: %s → %s", c.Kind, orDash(string(c.Before)), orDash(string(c.After))), Type: "Verdict" + title(string(c.Kind)), Data: text}
		} else {
			tc.SystemOut = &junit.Output{Data: text}
		}
		ts.AddTestcase(tc)
	}
	doc.AddSuite(ts)
	return doc
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func md(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
