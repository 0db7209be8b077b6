// Package live is the live driver: it observes a check.Check with real
// traffic in a real cluster, where the simulation driver (suites/sim) asks
// Istio's config generator. The same Check values serve both.
//
// Per check, Run
//
//  1. preflights what the check needs (istiod, a meshed client pod with a
//     ready sidecar, the ingress gateway, ip-masq-agent); anything missing
//     makes the check an Error whose message starts "environment not
//     ready: " with the precise reason: never a pass, never a policy failure;
//  2. renders the check with check.Env (fixture endpoints, namespace and the
//     variables agentImage, podCIDR, otherIP, rating, caSecret, ingressHost);
//  3. switches outboundTrafficPolicy if the check has one (kept across
//     checks, restored by Close), or sets up ip-masq-agent and the echo
//     target's return route for a masquerade check;
//  4. per step applies manifests (registering their deletion at once),
//     deletes named ones, runs the admin SQL from the host, then observes
//     every expectation until it has matched N consecutive times or the
//     convergence bound passes, recording the propagation time (Converged)
//     or, when it never converges, the last observation: a check never
//     passes without having observed.
//
// Observations come from the probe (suites/live/probe): run by exec in the
// pod "client" (meshed) or "control" (sidecar.istio.io/inject: "false") of
// the namespace, in a source's own probe pod (a user expectation's source:
// exactly its labels, in its namespace, sources.go), or in-process for
// sources outside the cluster. A meshed
// observation that is not Allowed is repeated from the control pod: if that
// fails too the target itself is down and the observation is Inconclusive
// (the check errors). The mesh's own account of a verdict (the config
// istiod pushed to the workload, judged by Istio's simulator) is the
// pushed-config tier's, package pushed, reported apart.
//
// This package owns the driver, the probe pods and their exec, the
// convergence logic and the return routes it adds to the echo container.
// It must not import Istio (the mesh is reached through the Mesh
// interface; suites/live/istiomesh adapts clusters/istio), must not print
// (it logs through the slog.Logger it is given) and must never put the
// database password anywhere but a Kubernetes Secret and the probe's
// environment.
package live
