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
// Setup is a list of phases (phases.go, one file per phase: phase_*.go),
// as kind's actions: each registers the undo of what it creates on the
// Env's undo stack the moment it exists, and Teardown pops the stack in
// reverse on a context that ignores cancellation (Ctrl-C), bounded by
// Config.TeardownTimeout; with Retain only the entries' keep functions run.
// Each phase reports a progress line with the elapsed time and its own wall
// time (Env.Phases). A failed phase returns a *PhaseError naming it,
// together with an Env to tear down. Another mode is another phase list.
//
// Leftovers: a run writes a marker (owner pid and host, fixtures run id,
// retained or not) under the temporary directory; the sweep phase removes
// the fixture containers of runs whose owner is gone and that were not
// retained, and clusters.Sweep does the same for kind clusters. Containers
// of `meshconform fixtures up` (no marker) are never touched.
//
// This package owns the orchestration of those phases, the progress
// printer and the leftover markers; the work itself belongs to clusters,
// clusters/istio, fixtures and suites/live. It must not exit the process;
// it prints only through the Printer it is given.
package e2e
