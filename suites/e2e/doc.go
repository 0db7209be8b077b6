// Package e2e sets up and tears down the live environment that both
// `meshconform run` and the e2e-framework tests (suites/e2e_test.go) run
// the checks in, phase by phase. On a kind cluster it creates or reuses
// (kindPhases):
//
//	sweep     leftovers of crashed runs (kind clusters, fixture containers)
//	cluster   kind cluster created or reused
//	image     the agent image built locally           } in parallel with
//	fixtures  echo, MySQL and greeter outside the mesh } the cluster
//	load      agent image (and ip-masq-agent's) loaded into the nodes
//	dns       the fixtures' names resolvable from pods (CoreDNS)
//	istio     Istio installed (a NotReadyError is not fatal: checks that
//	          need the mesh become "environment not ready")
//	pods      the live driver's probe pods
//
// On an existing cluster (Config.Kubeconfig/Context: attach mode,
// attachPhases) it changes only namespaces it creates:
//
//	cluster     the kubeconfig's cluster, never created or deleted
//	preflight   a SelfSubjectAccessReview for every rule of AttachRules
//	            (shipped as clusters/manifests/meshconform-attach.yaml);
//	            a missing permission stops the run before any change
//	sweep       namespaces of crashed attach runs, by label and expired Lease
//	istio       Istio as installed, read only: revision, injection label,
//	            effective outbound policy (mesh config + root Sidecar)
//	image       --agent-image (pushed; fixtures/images.PushAgent)
//	namespaces  the probe namespace and <ns>-fixtures, labelled, each with
//	            the run's coordination.k8s.io Lease, renewed until Teardown
//	fixtures    the echo target as a bare pod outside the mesh, by pod IP
//	pods        the live driver's probe pods
//
// Built-in checks that would need a change the run does not own (CoreDNS,
// ip-masq-agent, the mesh-wide policy, a shared gateway, fixtures it does
// not run there) are Skipped with the reason before anything runs
// (Env.NotApplicable); objects of Istio's exported kinds get
// exportTo ["."] (clusters.Apply in existing mode).
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
// Leftovers of kind runs: a run writes a marker (owner pid and host, fixtures run id,
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
