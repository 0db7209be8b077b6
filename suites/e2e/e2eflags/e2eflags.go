// Package e2eflags lets a test binary accept, and ignore, the flags of
// sigs.k8s.io/e2e-framework, so that
//
//	go test ./suites/... -args --labels suite=masquerade
//
// filters the e2e-framework tests of package suites while the unit tests
// of every other package under suites/ still run (without it their test
// binaries stop at "flag provided but not defined: -labels"). Import it for
// its side effect from one _test.go file of each test package under
// suites/, except package suites itself, whose TestMain parses the real
// flags:
//
//	import _ "github.com/meshconform/meshconform/suites/e2e/e2eflags"
//
// It owns nothing else and must not be imported by non-test code.
package e2eflags

import "flag"

// The flag names and kinds of e2e-framework v0.7.0 (pkg/flags).
var (
	stringFlags = []string{"feature", "assess", "kubeconfig", "namespace", "labels", "skip-labels",
		"skip-features", "skip-assessment", "context", "feature-gates"}
	boolFlags = []string{"parallel", "dry-run", "fail-fast", "disable-graceful-teardown"}
)

func init() {
	for _, n := range stringFlags {
		if flag.Lookup(n) == nil {
			flag.String(n, "", "ignored here: an e2e-framework flag for package suites")
		}
	}
	for _, n := range boolFlags {
		if flag.Lookup(n) == nil {
			flag.Bool(n, false, "ignored here: an e2e-framework flag for package suites")
		}
	}
}
