package istio

import (
	"errors"
	"fmt"
	"time"

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

// Timeouts bounds every wait of this package; zero fields take defaults.
type Timeouts struct {
	// Ready bounds istiod and the ingress gateway becoming ready after
	// install (default 3m).
	Ready time.Duration
	// Preflight bounds waiting for a client pod's sidecar (default 2m).
	Preflight time.Duration
	// ProxyConfig bounds WaitProxyPolicy (default 2m).
	ProxyConfig time.Duration
	// ImagePullGrace is how long a pod problem (image pull failure, crash
	// loop, pod creation rejected) may persist before a wait stops with the
	// reason (default 20s).
	ImagePullGrace time.Duration
	// Poll is the interval between observations (default 1s).
	Poll time.Duration
}

// DefaultTimeouts returns the defaults documented on Timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{Ready: 3 * time.Minute, Preflight: 2 * time.Minute, ProxyConfig: 2 * time.Minute, ImagePullGrace: 20 * time.Second, Poll: time.Second}
}

func (t Timeouts) merged() Timeouts {
	d := DefaultTimeouts()
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	return Timeouts{Ready: pick(t.Ready, d.Ready), Preflight: pick(t.Preflight, d.Preflight), ProxyConfig: pick(t.ProxyConfig, d.ProxyConfig),
		ImagePullGrace: pick(t.ImagePullGrace, d.ImagePullGrace), Poll: pick(t.Poll, d.Poll)}
}

type config struct {
	hub, tag      string
	policy        string
	httpsNodePort int
	httpNodePort  int
	noGateway     bool
	timeouts      Timeouts
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

// WithTimeouts overrides timeouts; zero fields keep their defaults.
func WithTimeouts(t Timeouts) Option { return func(c *config) { c.timeouts = t } }

func newConfig(opts ...Option) (*config, error) {
	c := &config{hub: DefaultHub, tag: DefaultTag, policy: AllowAny, httpsNodePort: DefaultHTTPSNodePort, httpNodePort: DefaultHTTPNodePort}
	for _, o := range opts {
		o(c)
	}
	c.timeouts = c.timeouts.merged()
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
	for name, v := range map[string]time.Duration{"Ready": c.timeouts.Ready, "Preflight": c.timeouts.Preflight, "ProxyConfig": c.timeouts.ProxyConfig, "ImagePullGrace": c.timeouts.ImagePullGrace, "Poll": c.timeouts.Poll} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("timeout %s is negative (%v): use a positive duration or 0 for the default", name, v))
		}
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
