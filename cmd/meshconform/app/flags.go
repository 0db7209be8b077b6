package app

import (
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites/check"
)

// checkFlags are shared by every command that runs checks.
type checkFlags struct {
	suites           []string
	run              string
	labels           string
	skipLabels       string
	negativeControls bool
	junit            string
	summary          string
}

func (f *checkFlags) register(cmd *cobra.Command, defaultJUnit, defaultSummary string) {
	f.registerSelection(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.negativeControls, "negative-controls", false, "also run each check's negative control, which must fail")
	fl.StringVar(&f.junit, "junit", defaultJUnit, "write a JUnit XML report to this file (\"\" to skip)")
	fl.StringVar(&f.summary, "summary", defaultSummary, "write a Markdown summary to this file (\"\" to skip), e.g. $GITHUB_STEP_SUMMARY")
}

// registerSelection registers only the flags that select checks (for
// commands that list checks rather than run them).
func (f *checkFlags) registerSelection(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.suites, "suite", nil, "run only these suites (repeatable or comma-separated)")
	fl.StringVar(&f.run, "run", "", "run only checks whose name matches this regular expression")
	fl.StringVar(&f.labels, "labels", "", "run only checks with all these labels (k=v,k2=v2; every check has suite=<name>)")
	fl.StringVar(&f.skipLabels, "skip-labels", "", "skip checks with any of these labels (k=v,...)")
}

// filter parses the selection flags.
func (f *checkFlags) filter() (check.Filter, error) {
	var flt check.Filter
	if f.run != "" {
		re, err := regexp.Compile(f.run)
		if err != nil {
			return flt, fmt.Errorf("--run %q: %w", f.run, err)
		}
		flt.Run = re
	}
	flt.Suites = f.suites
	var err error
	if flt.Labels, err = check.ParseLabels(f.labels); err != nil {
		return flt, fmt.Errorf("--labels: %w", err)
	}
	if flt.SkipLabels, err = check.ParseLabels(f.skipLabels); err != nil {
		return flt, fmt.Errorf("--skip-labels: %w", err)
	}
	return flt, nil
}

// selectChecks applies the filter and rejects unknown suites and empty
// selections (a run of nothing must not look like a pass).
func (f *checkFlags) selectChecks(all []check.Check) ([]check.Check, error) {
	flt, err := f.filter()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, s := range check.Suites(all) {
		known[s] = true
	}
	for _, s := range f.suites {
		if !known[s] {
			return nil, fmt.Errorf("--suite %q: no such suite (have %v)", s, check.Suites(all))
		}
	}
	sel := check.Select(all, flt)
	if len(sel) == 0 {
		return nil, fmt.Errorf("no check matches the selection (--suite/--run/--labels/--skip-labels); `meshconform checks` lists them")
	}
	return sel, nil
}

// finish prints the table and details, writes the reports and returns the
// exit code the report implies.
func (f *checkFlags) finish(g *globals, r reports.Report) error {
	reports.WriteTable(g.stdout, r)
	reports.WriteDetails(g.stdout, r, g.verbose)
	var werr error
	if f.junit != "" {
		if err := reports.WriteJUnit(f.junit, r); err != nil {
			werr = err
		} else {
			fmt.Fprintf(g.stderr, "JUnit report: %s\n", f.junit)
		}
	}
	if f.summary != "" {
		if err := reports.WriteSummary(f.summary, r); err != nil {
			werr = err
		} else {
			fmt.Fprintf(g.stderr, "summary: %s\n", f.summary)
		}
	}
	if werr != nil {
		return badInput(werr)
	}
	return exitCode(r.ExitCode())
}

// setupFailed writes reports carrying one synthetic failed case (so CI
// never mistakes a run that did not happen for a pass) and returns err as
// exit code 2.
func (f *checkFlags) setupFailed(g *globals, r reports.Report, phase string, err error) error {
	r.SetupFailed(phase, err)
	if f.junit != "" {
		if werr := reports.WriteJUnit(f.junit, r); werr != nil {
			fmt.Fprintf(g.stderr, "meshconform: %v\n", werr)
		}
	}
	if f.summary != "" {
		if werr := reports.WriteSummary(f.summary, r); werr != nil {
			fmt.Fprintf(g.stderr, "meshconform: %v\n", werr)
		}
	}
	return badInput(err)
}

// progress prints a phase line with the elapsed time since start.
func progress(g *globals, start time.Time, format string, args ...any) {
	fmt.Fprintf(g.stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// fileExists reports whether path exists (for flag validation).
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
