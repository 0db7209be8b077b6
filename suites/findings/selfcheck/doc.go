// Package selfcheck finds, without any expectation written for them, the
// egress gotchas operators hit, by simulating calls through the Envoy
// config Istio's own generator builds (suites/sim):
//
//   - MC0001 ShadowedServiceEntry: a call to an entry's own host and port
//     reaches another entry's cluster (the older entry owns the listener);
//   - MC0002 WholePortCapture: an entry receives calls to addresses it does
//     not declare (a TCP entry without addresses, or any entry matched
//     without SNI/Host), under the mesh's policy and under ALLOW_ANY;
//   - MC0003 EnvoyWouldReject: the generated listeners or clusters fail
//     the validation Istio's own tests apply (pilot/test/xdstest): Envoy
//     would NACK the config and pods would never become ready.
//
// Every finding carries the trace of the simulated call that proves it and
// can be suppressed like an analyzer message. It owns choosing the calls
// and judging their results; config generation and simulation are
// suites/sim's. It must not fire on a correct config: tests run it over
// the built-in suites' manifests and known-good cases.
package selfcheck
