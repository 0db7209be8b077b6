package reports

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/suites/findings"
)

// findingSuites returns one JUnit testsuite per finding source that ran
// (analysis, self-checks): one test case per finding at Warning or above,
// failing when the finding's level reaches r.FailOn.
func findingSuites(r Report, props [][2]string) []Testsuite {
	var out []Testsuite
	for _, src := range findings.Sources {
		if !r.FindingSources[src] {
			continue
		}
		ts := Testsuite{Name: src, Package: "meshconform." + src}
		if !r.Started.IsZero() {
			ts.Timestamp = r.Started.Format(time.RFC3339)
		}
		for _, p := range props {
			ts.AddProperty(p[0], p[1])
		}
		ts.AddProperty("findings.failOn", string(r.FailOn))
		names := map[string]int{}
		for _, f := range r.Findings {
			if f.Source != src || !f.Level.AtLeast(findings.Warning) {
				continue
			}
			name := caseName(f)
			if n := names[name]; n > 0 {
				// The same code on the same object twice (two ports, two
				// sources): keep case names unique, as report readers
				// (meshconform diff) key checks by suite and name.
				names[name]++
				name = fmt.Sprintf("%s #%d", name, n+1)
			} else {
				names[name] = 1
			}
			tc := Testcase{Name: name, Classname: "meshconform." + src, Time: "0.000"}
			text := clean(findingText(f))
			if findings.Fails(f, r.FailOn) {
				tc.Failure = &junit.Result{Message: clean(f.String()), Type: f.Code, Data: text}
			} else {
				tc.SystemOut = &junit.Output{Data: text}
			}
			ts.AddTestcase(tc)
		}
		ts.Time = "0.000"
		out = append(out, ts)
	}
	return out
}

// caseName is "CODE Kind name.namespace" (or "CODE file:line" without an object).
func caseName(f findings.Finding) string {
	if o := f.Object(); o != "" {
		return f.Code + " " + o
	}
	if w := f.Where(); w != "" {
		return f.Code + " " + w
	}
	return f.Code
}

// findingText is the full text of a finding: the message line, its
// documentation and the trace.
func findingText(f findings.Finding) string {
	var b strings.Builder
	b.WriteString(f.String() + "\n")
	if f.DocURL != "" {
		b.WriteString("docs: " + f.DocURL + "\n")
	}
	for _, t := range f.Trace {
		b.WriteString("  " + t + "\n")
	}
	return b.String()
}

// findingsFail reports whether the findings fail the run.
func (r Report) findingsFail() bool { return findings.AnyFails(r.Findings, r.FailOn) }

// FindingsSummary renders the Markdown section of the findings ("" when
// neither analyzers nor self-checks ran).
func FindingsSummary(r Report) string {
	if len(r.FindingSources) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Findings (Istio's analyzers and self-checks; `--fail-on %s`)\n\n", strings.ToLower(string(r.FailOn)))
	if len(r.Findings) == 0 {
		b.WriteString("None.\n\n")
		return b.String()
	}
	b.WriteString("| | level | code | object | where | message |\n|---|---|---|---|---|---|\n")
	for _, f := range r.Findings {
		icon := "ℹ️"
		if findings.Fails(f, r.FailOn) {
			icon = "❌"
		} else if f.Level == findings.Warning {
			icon = "⚠️"
		}
		code := f.Code
		if f.DocURL != "" {
			code = fmt.Sprintf("[%s](%s)", f.Code, f.DocURL)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", icon, f.Level, code, mdEscape(f.Object()), mdEscape(f.Where()), mdEscape(f.Message))
	}
	b.WriteString("\n")
	for _, f := range r.Findings {
		if len(f.Trace) == 0 {
			continue
		}
		fmt.Fprintf(&b, "<details><summary>%s %s: trace</summary>\n\n```\n%s```\n</details>\n\n", f.Code, mdEscape(f.Object()), strings.Join(f.Trace, "\n")+"\n")
	}
	return b.String()
}

// WriteFindings prints the terminal section of the findings (nothing when
// neither analyzers nor self-checks ran).
func WriteFindings(w io.Writer, r Report, verbose bool) {
	if len(r.FindingSources) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFINDINGS (--fail-on %s)\n", strings.ToLower(string(r.FailOn)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Findings {
		mark := " "
		if findings.Fails(f, r.FailOn) {
			mark = "✗"
		}
		fmt.Fprintf(tw, "%s\t%s\t[%s]\t%s\t%s\n", mark, f.Level, f.Code, f.Object(), f.Where())
	}
	tw.Flush()
	for _, f := range r.Findings {
		fmt.Fprintf(w, "--- %s %s\n  %s\n", f.Code, f.Object(), f.Message)
		if f.DocURL != "" {
			fmt.Fprintf(w, "  docs: %s\n", f.DocURL)
		}
		if verbose || f.Source == findings.SelfCheck {
			for _, t := range f.Trace {
				fmt.Fprintf(w, "    %s\n", t)
			}
		}
	}
	var n [3]int
	for _, f := range r.Findings {
		switch f.Level {
		case findings.Error:
			n[0]++
		case findings.Warning:
			n[1]++
		default:
			n[2]++
		}
	}
	fmt.Fprintf(w, "findings: %d errors, %d warnings, %d info\n", n[0], n[1], n[2])
}
