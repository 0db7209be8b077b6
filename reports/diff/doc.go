// Package diff compares two meshconform reports (JUnit files read back
// with reports.ReadJUnit): the upgrade and policy-change gate.
//
// Checks are matched by suite and name; expectations within a check by
// their recorded name (step, source, destination). A check's change is
// one Kind: Regressed (passed before, does not pass now, including when it
// is gone), Fixed, Changed (same pass/no-pass side, but the status, an
// observed outcome, the cluster reached or the reason differs), Appeared
// or Disappeared. Rendering: a terminal table, Markdown, and a JUnit
// document with one testcase per changed check.
//
// It owns the comparison and its rendering; it does not run checks, and
// it never decides verdicts of its own beyond what the two reports hold.
package diff
