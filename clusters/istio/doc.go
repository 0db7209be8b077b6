// Package istio installs Istio into a cluster of package clusters and
// manages the mesh-wide settings the egress checks depend on.
//
// Install renders the charts embedded in the istio.io/istio module
// (istio.io/istio/manifests) with the install path `istioctl install` runs
// (operator/cmd/mesh.Install = operator/pkg/render.GenerateManifest +
// operator/pkg/install.Installer), profile minimal plus an ingress gateway
// exposed as a NodePort service (443 -> nodePort 31443 by default), so the
// host reaches it at NodeIP:31443. It calls those two steps directly rather
// than mesh.Install because mesh.Install's readiness wait cannot be
// cancelled (it polls on context.Background) and cannot tell a pull failure
// from slowness: it would hold Ctrl-C and wait out its whole timeout (twice:
// istiod, then the gateway) on machines that cannot pull Istio's images.
// Install applies with the installer's wait off and waits itself, stopping
// as soon as a pod problem persisted for the grace period, with a
// *NotReadyError that names the pod, container, image and registry message.
//
// Preflight is what a check that needs the mesh runs first: istiod ready,
// the client pod's istio-proxy injected and ready; otherwise a
// *NotReadyError with the precise reason, which the live driver reports as
// "error: environment not ready" (never a pass, never a policy failure).
//
// SetOutboundPolicy switches outboundTrafficPolicy the way operators do
// (the mesh key of ConfigMap istio-system/istio) and WaitProxyPolicy waits
// until a sidecar's Envoy has it: the virtualOutbound listener's catch-all
// TCP chain routes to PassthroughCluster (ALLOW_ANY) or BlackHoleCluster
// (REGISTRY_ONLY), read from the active listeners of the proxy's
// config_dump with istioctl's config_dump wrapper; nothing sleeps.
// WithoutIngressGateway installs the control plane alone (for a local
// istiod without a data plane image).
//
// This package must not print (it logs through the cluster's logger; Istio's
// own installer progress lines go to stderr as istioctl's do), must not
// exit, and in existing-cluster mode never installs Istio or changes its
// mesh-wide settings (use Attach).
package istio
