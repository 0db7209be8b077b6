// Package reports renders check results: JUnit XML (one testsuite per
// suite, one testcase per check), a Markdown summary for CI step
// summaries, and a terminal table.
//
// Files are written atomically (temporary file in the same directory, then
// rename), so a reader never sees half a report. A run whose setup failed
// still gets a report: one synthetic failed test case that names the phase
// and the error. This package formats; it never decides verdicts.
package reports
