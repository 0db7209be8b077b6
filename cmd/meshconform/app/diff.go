package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/reports/diff"
)

type diffOptions struct {
	summary string
	junit   string
	failOn  string
}

func newDiffCmd(g *globals) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff BEFORE.xml AFTER.xml",
		Short: "Compare two meshconform JUnit reports: the gate for Istio upgrades and policy changes",
		Long: `diff compares two JUnit reports written by meshconform (simulate or run, any
mix) check by check: status changes (passed → failed and back), observed
outcome changes per expectation (e.g. BlockedByMesh → Allowed, or another
cluster reached), checks that appeared or disappeared, changed error reasons.

A check is "regressed" when it passed in BEFORE and does not pass in AFTER
(failed, errored, skipped, or gone). --fail-on regressed (the default) exits
1 on a regression; --fail-on changed exits 1 on any change.

Exit codes: 0 the gate passes, 1 it fails, 2 a report is unreadable or was
not written by meshconform.`,
		Example: `  meshconform simulate --junit before.xml            # current Istio / base policy
  meshconform simulate --junit after.xml             # candidate Istio / changed policy
  meshconform diff before.xml after.xml --summary "$GITHUB_STEP_SUMMARY" --junit diff.xml`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(g, args[0], args[1])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.summary, "summary", "", "write the comparison as Markdown to this file, e.g. $GITHUB_STEP_SUMMARY")
	fl.StringVar(&o.junit, "junit", "", "write a JUnit file with one test case per changed check (failures: the changes that fail the gate)")
	fl.StringVar(&o.failOn, "fail-on", string(diff.FailOnRegressed), "what fails the gate: regressed (something that passed no longer passes) or changed (any change)")
	return cmd
}

func (o *diffOptions) run(g *globals, beforePath, afterPath string) error {
	failOn, err := diff.ParseFailOn(o.failOn)
	if err != nil {
		return badInput(err)
	}
	before, err := reports.ReadJUnit(beforePath)
	if err != nil {
		return badInput(err)
	}
	after, err := reports.ReadJUnit(afterPath)
	if err != nil {
		return badInput(err)
	}
	d := diff.Compare(before, after)
	diff.WriteTable(g.stdout, d, failOn)
	if o.summary != "" {
		if err := reports.WriteMarkdown(o.summary, diff.Markdown(d, failOn)); err != nil {
			return badInput(err)
		}
		fmt.Fprintf(g.stderr, "summary: %s\n", o.summary)
	}
	if o.junit != "" {
		if err := reports.WriteDocument(o.junit, diff.JUnit(d, failOn)); err != nil {
			return badInput(err)
		}
		fmt.Fprintf(g.stderr, "JUnit report: %s\n", o.junit)
	}
	return exitCode(d.ExitCode(failOn))
}
