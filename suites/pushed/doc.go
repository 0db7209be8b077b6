// Package pushed is the pushed-config tier of the live run: for every
// source of a mesh check it obtains the Envoy config the mesh gives that
// workload and judges each expectation with Istio's simulator
// (pilot/pkg/simulation) on that config, as package sim does on a
// generated one. The config comes from (Source):
//
//   - the workload's own Envoy when its sidecar (or gateway proxy) runs and
//     is ready: GET /config_dump on the admin port 15000 through a client-go
//     port-forward (RBAC: create pods/portforward in its namespace), read
//     with istioctl's config_dump wrapper, active listeners only
//     (SidecarDump, SnapshotFromConfigDump);
//   - else istiod over xDS (plaintext port 15010 through a port-forward,
//     never by dialing a pod or node IP), identifying as the workload (node
//     id sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local, its namespace,
//     labels and IP; the ingress gateway as a router; each user source as
//     its own probe pod, WithSourcePods) (Watch).
//
// It owns both sources, the Driver (policy switch and manifests applied
// through Istio's validating webhook, each waited for on the pushed config
// — pushed on the stream, or polled in config_dump — with the propagation
// time reported), the proxy's sync status as istiod reports it
// (istio.io/debug/syncz over istiod's TLS port with a service account
// token, as `istioctl proxy-status`), and the comparison with the traffic
// tier (Disagreements: finding MC0004 with that sync status). It must not
// send traffic nor pass a traffic check: its results are reported as
// "<suite> (pushed config)", apart from the traffic tier's.
package pushed
