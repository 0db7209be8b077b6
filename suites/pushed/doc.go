// Package pushed is the pushed-config tier of the live run: for every
// source of a mesh check it obtains the Envoy config istiod pushes to that
// workload — over xDS (plaintext port 15010 through a client-go
// port-forward, never by dialing a pod or node IP), identifying as the
// workload (node id sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local, its
// namespace, labels and IP; the ingress gateway as a router; each user
// source as its own probe pod, WithSourcePods) — and judges
// each expectation with Istio's simulator (pilot/pkg/simulation) on that
// config, as package sim does on a generated one.
//
// It owns the xDS watch (Watch: one SotW ADS stream, CDS and LDS wildcard,
// RDS for the route configs the listeners name, every response ACKed) and
// the Driver (policy switch and manifests applied through Istio's
// validating webhook, each waited for on the pushed config, with the
// propagation time reported). It must not send traffic nor pass a traffic
// check: its results are reported as "<suite> (pushed config)", apart from
// the traffic tier's.
package pushed
