package reports

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshconform/meshconform/suites/check"
)

// Summary renders the Markdown summary (for $GITHUB_STEP_SUMMARY).
func Summary(r Report) string {
	var b strings.Builder
	c := check.Counts(r.Results)
	icon := "✅"
	switch r.ExitCode() {
	case 1:
		icon = "❌"
	case 2:
		icon = "⚠️"
	}
	fmt.Fprintf(&b, "## %s meshconform (%s)\n\n", icon, r.Driver)
	fmt.Fprintf(&b, "%d passed, %d failed, %d errors, %d skipped", c[check.Passed], c[check.Failed], c[check.Error], c[check.Skipped])
	for _, p := range r.properties() {
		if p[0] == "istio.version" || p[0] == "mesh.outboundTrafficPolicy" {
			fmt.Fprintf(&b, " · %s `%s`", p[0], p[1])
		}
	}
	b.WriteString("\n\n")
	if r.SetupError != nil {
		fmt.Fprintf(&b, "**Setup failed in phase `%s`:** %s\n\nNo check was run; this is not a pass.\n\n", r.SetupPhase, mdEscape(r.SetupError.Error()))
	}
	if len(r.Results) > 0 {
		b.WriteString("| | suite | check | expected | observed | time |\n|---|---|---|---|---|---|\n")
		for _, res := range r.Results {
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s |\n", statusIcon(res.Status), res.Suite, res.Name,
				mdEscape(res.Expected()), mdEscape(res.ObservedSummary()), round(res.Duration))
		}
		var details []check.Result
		for _, res := range r.Results {
			if res.Status == check.Failed || res.Status == check.Error || res.Status == check.Skipped {
				details = append(details, res)
			}
		}
		if len(details) > 0 {
			b.WriteString("\n### Not passed\n\n")
			for _, res := range details {
				fmt.Fprintf(&b, "<details><summary>%s <code>%s</code>: %s</summary>\n\n```\n%s\n%s```\n</details>\n\n",
					statusIcon(res.Status), res.Name, mdEscape(firstLine(res.Message)), res.Message, res.Trace())
			}
		}
	}
	b.WriteString(FindingsSummary(r))
	return b.String()
}

// WriteSummary writes the Markdown summary to path atomically.
func WriteSummary(path string, r Report) error {
	return writeAtomic(path, func(f *os.File) error {
		_, err := f.WriteString(Summary(r))
		return err
	})
}

// WriteTable prints the human table: check, expected, observed, time.
func WriteTable(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSUITE\tCHECK\tEXPECTED\tOBSERVED\tTIME")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", res.Status, res.Suite, res.Name, res.Expected(), res.ObservedSummary(), round(res.Duration))
	}
	tw.Flush()
	c := check.Counts(r.Results)
	if r.SetupError != nil {
		fmt.Fprintf(w, "setup failed in phase %s: %v\n", r.SetupPhase, r.SetupError)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d errors, %d skipped\n", c[check.Passed], c[check.Failed], c[check.Error], c[check.Skipped])
}

// WriteDetails prints the message and trace of every check that did not
// pass (and of all checks when verbose).
func WriteDetails(w io.Writer, r Report, verbose bool) {
	for _, res := range r.Results {
		if res.Status == check.Passed && !verbose {
			continue
		}
		fmt.Fprintf(w, "--- %s %s (%s)\n", res.Status, res.Name, res.Suite)
		if res.Message != "" {
			fmt.Fprintf(w, "%s\n", indent(res.Message))
		}
		fmt.Fprint(w, res.Trace())
	}
	WriteFindings(w, r, verbose)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func statusIcon(s check.Status) string {
	switch s {
	case check.Passed:
		return "✅"
	case check.Failed:
		return "❌"
	case check.Error:
		return "⚠️"
	}
	return "⏭️"
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
