package istio

import (
	"errors"
	"fmt"
	"github.com/meshconform/meshconform/internal/timeouts"

	"github.com/meshconform/meshconform/clusters"
)

// DefaultHub is where Istio's release images live.
const DefaultHub = "docker.io/istio"

// DefaultTag is the Istio image release installed by default:
// <DefaultHub>/pilot:1.31.0 and proxyv2:1.31.0. Which is which:
//
//   - the pinned istio.io/istio module (go.mod, ModuleVersion:
//     v0.0.0-20260827124520-eed52ebb66ad) is a development snapshot of the
//     1.31 line, not a release commit: its VERSION file says 1.31, its
//     go.mod requires istio.io/api v1.31.0-rc.0.0.20260824…, its profiles
//     default to registry.istio.io/testing:latest and operator/version still
//     says 1.30.0. Istio tags are not semver, so the proxy only serves
//     pseudo-versions. The install's charts and profiles come from it.
//   - the images are the 1.31.0 release, the same minor as the charts
//     (a unit test checks DefaultTag against the module's VERSION file).
//
// Reports carry both (properties istio.module and istio.tag), and hub and
// tag are always set on the install.
const DefaultTag = "1.31.0"

// Default NodePorts of the ingress gateway service.
const (
	DefaultHTTPSNodePort = 31443
	DefaultHTTPNodePort  = 31080
)

// Outbound traffic policies.
const (
	AllowAny     = "ALLOW_ANY"
	RegistryOnly = "REGISTRY_ONLY"
)

// NotReadyError is clusters.NotReadyError: "environment not ready: <reason>".
type NotReadyError = clusters.NotReadyError

// Timeouts bounds every wait of this package: see timeouts.Istio for each
// bound, its default and the condition it waits for. Zero fields take the
// defaults.
type Timeouts = timeouts.Istio

// DefaultTimeouts returns the defaults (timeouts.DefaultIstio).
func DefaultTimeouts() Timeouts { return timeouts.DefaultIstio() }

type config struct {
	hub, tag      string
	policy        string
	httpsNodePort int
	httpNodePort  int
	noGateway     bool
	neverPull     bool
	// istiodNS/istiodName: the control plane Attach attaches to.
	istiodNS, istiodName string
	timeouts             Timeouts
}

// Option configures Install and Attach.
type Option func(*config)

// WithHub sets the image hub (default docker.io/istio).
func WithHub(hub string) Option { return func(c *config) { c.hub = hub } }

// WithTag sets the image tag (default DefaultTag).
func WithTag(tag string) Option { return func(c *config) { c.tag = tag } }

// WithOutboundPolicy sets meshConfig.outboundTrafficPolicy.mode at install
// (ALLOW_ANY, Istio's default, or REGISTRY_ONLY).
func WithOutboundPolicy(policy string) Option { return func(c *config) { c.policy = policy } }

// WithIngressNodePorts sets the NodePorts of the ingress gateway's 443 and
// 80 ports (defaults 31443 and 31080).
func WithIngressNodePorts(https, http int) Option {
	return func(c *config) { c.httpsNodePort, c.httpNodePort = https, http }
}

// WithoutIngressGateway installs the control plane alone (istiod, no
// ingress gateway): Install then waits for istiod only. For a control
// plane whose data plane image (proxyv2) cannot be had, e.g. the local
// istiod.
func WithoutIngressGateway() Option { return func(c *config) { c.noGateway = true } }

// WithControlPlane makes Attach use the istiod Deployment namespace/name
// (default istio-system/istiod), e.g. a revision's istiod-1-31 found by
// its istio.io/rev label; its pods are then found by that Deployment's own
// selector.
func WithControlPlane(namespace, name string) Option {
	return func(c *config) { c.istiodNS, c.istiodName = namespace, name }
}

// WithNeverPull sets Istio's values.global.imagePullPolicy to Never, which
// istiod's and the gateway's Deployments and the sidecar injection
// template use: the kubelet then runs only images already on the nodes
// and reports a missing one as ErrImageNeverPull at once, without any DNS
// lookup or connection to a registry (for machines without one, and for
// images such as a locally built istiod that exist nowhere else).
func WithNeverPull() Option { return func(c *config) { c.neverPull = true } }

// WithTimeouts overrides timeouts; zero fields keep their defaults.
func WithTimeouts(t Timeouts) Option { return func(c *config) { c.timeouts = t } }

func newConfig(opts ...Option) (*config, error) {
	c := &config{hub: DefaultHub, tag: DefaultTag, policy: AllowAny, httpsNodePort: DefaultHTTPSNodePort, httpNodePort: DefaultHTTPNodePort}
	for _, o := range opts {
		o(c)
	}
	c.timeouts = c.timeouts.WithDefaults()
	var errs []error
	if c.hub == "" || c.tag == "" {
		errs = append(errs, errors.New("istio hub and tag must not be empty: pass --istio-hub and --istio-tag or leave them unset for the defaults"))
	}
	if _, err := parsePolicy(c.policy); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []int{c.httpsNodePort, c.httpNodePort} {
		if p < 30000 || p > 32767 {
			errs = append(errs, fmt.Errorf("ingress nodePort %d: use a port in Kubernetes' NodePort range 30000-32767", p))
		}
	}
	if c.httpsNodePort == c.httpNodePort {
		errs = append(errs, fmt.Errorf("ingress nodePorts must differ (both %d)", c.httpsNodePort))
	}
	if err := c.timeouts.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func parsePolicy(p string) (string, error) {
	switch p {
	case AllowAny, RegistryOnly:
		return p, nil
	}
	return "", fmt.Errorf("outbound traffic policy %q: use ALLOW_ANY or REGISTRY_ONLY", p)
}
