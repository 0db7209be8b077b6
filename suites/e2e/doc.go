// Package e2e sets up and tears down the live environment that both
// `meshconform run` and the e2e-framework tests (suites/e2e_test.go) run
// the checks in, phase by phase:
//
//	sweep     leftovers of crashed runs (kind clusters, fixture containers)
//	cluster   kind cluster created or reused (or an existing one attached)
//	image     the agent image built locally           } in parallel with
//	fixtures  echo, MySQL and greeter outside the mesh } the cluster
//	load      agent image (and ip-masq-agent's) loaded into the nodes
//	dns       the fixtures' names resolvable from pods (CoreDNS)
//	istio     Istio installed (a NotReadyError is not fatal: checks that
//	          need the mesh become "environment not ready")
//	pods      the live driver's probe pods
//
// and Teardown in reverse order on a context that ignores cancellation
// (Ctrl-C), unless Retain. Each phase reports a progress line with the
// elapsed time and its own wall time (Env.Phases). A failed phase returns
// a *PhaseError naming it, together with an Env to tear down.
//
// Leftovers: a run writes a marker (owner pid and host, fixtures run id,
// retained or not) under the temporary directory; the sweep phase removes
// the fixture containers of runs whose owner is gone and that were not
// retained, and clusters.Sweep does the same for kind clusters. Containers
// of `meshconform fixtures up` (no marker) are never touched.
//
// A user's expectations file (`run --expectations`, expectations.go) runs
// in the same environment: RunExpectations prepares the sources'
// namespaces, applies the -f objects for the run (each deletion registered
// at its apply) and observes the file's checks with the live driver and,
// when istiod is Ready, the pushed-config tier, one identity per source.
//
// This package owns the orchestration of those phases, the progress
// printer and the leftover markers; the work itself belongs to clusters,
// clusters/istio, fixtures and suites/live. It must not exit the process;
// it prints only through the Printer it is given.
package e2e
