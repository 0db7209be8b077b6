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
