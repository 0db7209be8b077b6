// Package check defines what a conformance check is and how its result is
// recorded, independently of how the traffic is observed.
//
// A Check states what is expected: from which source workload, to which
// destination, over which protocol, with which outcome, under which mesh
// policy and with which manifests applied. A Driver decides how that is
// observed: the simulation driver (suites/sim) asks Istio's own config
// generator and traffic simulator, the live driver (suites/live) sends real
// traffic from probe pods. The same Check values serve both.
//
// This package owns the vocabulary (Outcome, Protocol, Source, Destination,
// Expectation, Step, Check, Result), manifest templating and the runner
// that applies a Driver to a filtered list of checks. It must not import
// Istio, Kubernetes or Docker code.
package check
