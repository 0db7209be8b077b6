package live

import (
	"context"
	"errors"
	"fmt"
	"github.com/meshconform/meshconform/internal/timeouts"
	"io"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/check"
)

// DefaultNamespace holds the probe pods and the checks' manifests.
const DefaultNamespace = "meshconform"

// Names of what the driver creates in the namespace and in istio-system.
const (
	ClientPod        = "client"  // meshed probe pod (app=client)
	ControlPod       = "control" // probe pod without sidecar (app=control)
	ProbeContainer   = "probe"
	ProxyContainer   = "istio-proxy"
	mysqlSecret      = "meshconform-mysql"
	caConfigMap      = "meshconform-ca"
	caMountDir       = "/etc/meshconform"
	caFileInPod      = caMountDir + "/ca.crt"
	passwordEnv      = "MESHCONFORM_MYSQL_PASSWORD"
	IngressTLSSecret = "meshconform-ingress-cert" // default credentialName of the ingress Gateway (variables "tlsSecret", "caSecret")
)

// Timeouts bounds the driver: see timeouts.Live for each bound, its
// default and the condition it waits for. Zero fields take the defaults.
type Timeouts = timeouts.Live

// DefaultTimeouts returns the defaults (timeouts.DefaultLive).
func DefaultTimeouts() Timeouts { return timeouts.DefaultLive() }

// Cluster is what the driver needs from the cluster; *clusters.Cluster
// implements it (the interface lets tests fake it).
type Cluster interface {
	Client() kubernetes.Interface
	Exec(ctx context.Context, namespace, pod, container string, cmd ...string) (stdout, stderr []byte, err error)
	Apply(ctx context.Context, namespace string, yaml string) ([]clusters.Object, error)
	Delete(ctx context.Context, objs []clusters.Object) error
	EnsureNamespace(ctx context.Context, name string, labels map[string]string) error
	WaitPods(ctx context.Context, namespace, selector, what string, timeout time.Duration) error
	Nodes(ctx context.Context) ([]clusters.Node, error)
	PodCIDRs(ctx context.Context) ([]string, error)
	EnsureIPMasqAgent(ctx context.Context, image string) (func(context.Context) error, error)
	DisableCNIMasquerade(ctx context.Context) (func(context.Context) error, error)
	SetIPMasqConfig(ctx context.Context, config string) error
	WaitIPMasqRules(ctx context.Context, wantCIDRs []string) error
}

var _ Cluster = (*clusters.Cluster)(nil)

// Mesh is what the driver needs from Istio; suites/live/istiomesh adapts
// *istio.Mesh (package clusters/istio) to it, so this package does not
// build Istio.
type Mesh interface {
	// Version is the installed Istio version.
	Version() string
	// Preflight returns a *clusters.NotReadyError unless istiod is ready
	// and the pods matching selector have a ready sidecar.
	Preflight(ctx context.Context, namespace, selector string) error
	// OutboundPolicy is the mesh-wide outboundTrafficPolicy.mode.
	OutboundPolicy(ctx context.Context) (string, error)
	// SetOutboundPolicy switches the mode and waits until the sidecars of
	// waitFor (namespace/name) have it; restore puts the previous mode back.
	SetOutboundPolicy(ctx context.Context, policy string, waitFor ...string) (restore func(context.Context) error, err error)
	// IngressAddress is where the host reaches the gateway's port 443.
	IngressAddress(ctx context.Context) (host string, port int, err error)
	// CreateTLSSecret creates the credentialName secret of the gateway.
	CreateTLSSecret(ctx context.Context, name string, certPEM, keyPEM []byte) error
}

// Option configures New.
type Option func(*config)

type config struct {
	cluster        Cluster
	mesh           Mesh
	meshErr        error
	meshSet        bool
	endpoints      map[string]fixtures.Endpoint
	adminDSN       string
	bookinfoUser   string
	bookinfoPass   string
	agentImage     string
	caPEM          []byte
	ingressCert    []byte
	ingressKey     []byte
	echoContainer  string
	helperImage    string
	ipMasqImage    string
	namespace      string
	injection      map[string]string
	timeouts       Timeouts
	log            *slog.Logger
	prober         prober
	router         router
	admin          sqlAdmin
	ingressEPFixed *fixtures.Endpoint
	envBuilder     EnvBuilder
	clock          clock
	// sourceNamespaces: where source probe pods may be created besides
	// the driver's namespace (sources.go).
	sourceNamespaces []string
	// ipMasqExisting: masquerade checks observe the cluster's own
	// ip-masq-agent with ipMasqConfig, never changing anything.
	ipMasqExisting bool
}

// clock is the time source of convergence (the change's time, each
// observation's, the poll interval); tests inject one to measure
// propagation exactly.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WithSourceNamespaces names the namespaces, besides the driver's own,
// where the driver may create the probe pods of user sources (an
// expectation's `source: {namespace, labels}`): namespaces the harness
// created for the run, or ones the user named explicitly
// (--source-namespace). A source in any other namespace is "environment
// not ready" saying so; the driver never creates or labels a namespace.
func WithSourceNamespaces(names ...string) Option {
	return func(o *config) { o.sourceNamespaces = append(o.sourceNamespaces, names...) }
}

// WithExistingIPMasqAgent makes masquerade checks observe the cluster's
// own ip-masq-agent as it is (an attached cluster): the driver never
// installs the agent, writes its ConfigMap, switches the CNI's
// masquerading or adds return routes. It reads (get, never list or
// write) ConfigMap kube-system/ip-masq-agent, key "config", once, to
// explain observations in traces and in IPMasqNote; a check's own
// Masquerade.Config is ignored.
func WithExistingIPMasqAgent() Option { return func(o *config) { o.ipMasqExisting = true } }

// EnvBuilder renders the environment checks are resolved with from the
// endpoints and the driver's variables (suites.Env adds the suites' own
// endpoints and defaults, e.g. "blocked" and "tlsSecret").
type EnvBuilder func(endpoints map[string]fixtures.Endpoint, vars map[string]string) check.Env

// WithInjectionLabels are the probe namespace's labels that make Istio
// inject the meshed client pod (default istio-injection=enabled; a
// revisioned control plane needs istio.io/rev=<revision>).
func WithInjectionLabels(l map[string]string) Option {
	return func(o *config) { o.injection = maps.Clone(l) }
}

// WithEnvBuilder sets how check environments are built (default: the
// endpoints and variables as they are). The namespace is always the
// driver's.
func WithEnvBuilder(b EnvBuilder) Option { return func(o *config) { o.envBuilder = b } }

// WithCluster sets the cluster (required).
func WithCluster(c *clusters.Cluster) Option {
	return func(o *config) {
		if c != nil {
			o.cluster = c
		}
	}
}

// withClusterAPI sets any Cluster implementation (tests).
func withClusterAPI(c Cluster) Option { return func(o *config) { o.cluster = c } }

// WithMesh sets Istio: m as installed (nil if not installed) and the
// error its installation returned. With a nil mesh or a non-nil error,
// every check that needs istio, a sidecar or the gateway is an Error
// "environment not ready: <reason>".
func WithMesh(m Mesh, installErr error) Option {
	return func(o *config) {
		if m != nil && reflect.ValueOf(m).Kind() == reflect.Pointer && reflect.ValueOf(m).IsNil() {
			m = nil
		}
		o.mesh, o.meshErr, o.meshSet = m, installErr, true
	}
}

// WithEndpoints sets the fixture endpoints by name ("echo", "mysql",
// "greeter"); "ingress" is added by the driver when the gateway is ready.
func WithEndpoints(eps map[string]fixtures.Endpoint) Option {
	return func(o *config) {
		o.endpoints = map[string]fixtures.Endpoint{}
		for k, v := range eps {
			o.endpoints[k] = v
		}
	}
}

// WithMySQL sets the admin DSN (reachable from the host; used for the
// steps' AdminSQL) and the least-privilege user the probes log in as. The
// password only ever goes into a Kubernetes Secret and the probe's
// environment: never argv, logs or reports.
func WithMySQL(adminDSN, bookinfoUser, bookinfoPassword string) Option {
	return func(o *config) { o.adminDSN, o.bookinfoUser, o.bookinfoPass = adminDSN, bookinfoUser, bookinfoPassword }
}

// WithAgentImage sets the probe image (meshconform/agent:<hash>, loaded
// into the nodes; required).
func WithAgentImage(ref string) Option { return func(o *config) { o.agentImage = ref } }

// WithCA sets the run's CA certificate (PEM), mounted into the probe pods
// to verify the fixtures' and the gateway's certificates.
func WithCA(pem []byte) Option { return func(o *config) { o.caPEM = append([]byte(nil), pem...) } }

// WithIngressCert sets the ingress gateway's serving certificate and key
// for fixtures.IngressHost (signed by the run's CA); the driver puts them
// in the Secret named by the variable "caSecret" when the mesh is ready.
func WithIngressCert(certPEM, keyPEM []byte) Option {
	return func(o *config) { o.ingressCert, o.ingressKey = certPEM, keyPEM }
}

// WithEchoContainer names the echo fixture's Docker container, whose
// network namespace gets the masquerade checks' return route.
func WithEchoContainer(nameOrID string) Option { return func(o *config) { o.echoContainer = nameOrID } }

// WithHelperImage is a local image with iproute2 (`ip`), run in the echo
// container's network namespace to add the return route (default: the
// image of the cluster's kind node containers, read with docker inspect:
// it is always in the local Docker engine, whoever created the cluster).
func WithHelperImage(ref string) Option { return func(o *config) { o.helperImage = ref } }

// WithIPMasqAgentImage sets the ip-masq-agent image (default env
// IP_MASQ_AGENT_IMAGE, else upstream's).
func WithIPMasqAgentImage(ref string) Option { return func(o *config) { o.ipMasqImage = ref } }

// WithNamespace sets the namespace of the probe pods and manifests
// (default "meshconform").
func WithNamespace(ns string) Option { return func(o *config) { o.namespace = ns } }

// WithTimeouts overrides bounds; zero fields keep their defaults.
func WithTimeouts(t Timeouts) Option { return func(o *config) { o.timeouts = t } }

// WithLogger sets the logger: Info for progress, Debug for every
// observation (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *config) { o.log = l } }

func newConfig(opts ...Option) (*config, error) {
	o := &config{namespace: DefaultNamespace}
	for _, opt := range opts {
		opt(o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ipMasqImage == "" {
		o.ipMasqImage = os.Getenv("IP_MASQ_AGENT_IMAGE")
	}
	o.timeouts = o.timeouts.WithDefaults()
	var errs []error
	if o.cluster == nil {
		errs = append(errs, errors.New("no cluster: pass WithCluster"))
	}
	if o.agentImage == "" {
		errs = append(errs, errors.New("no agent image: pass WithAgentImage (the meshconform/agent image loaded into the nodes)"))
	}
	if !o.meshSet {
		errs = append(errs, errors.New("no mesh: pass WithMesh(mesh, installErr), WithMesh(nil, err) when Istio could not be installed"))
	}
	if o.mesh == nil && o.meshErr == nil && o.meshSet {
		o.meshErr = errors.New("Istio is not installed in this run")
	}
	if o.namespace == "" {
		errs = append(errs, errors.New("empty namespace: pass WithNamespace(name) or leave it out"))
	}
	if (len(o.ingressCert) == 0) != (len(o.ingressKey) == 0) {
		errs = append(errs, errors.New("ingress certificate without key (or key without certificate): pass both to WithIngressCert"))
	}
	if o.adminDSN != "" && o.bookinfoUser == "" {
		errs = append(errs, errors.New("MySQL admin DSN without the least-privilege user: pass WithMySQL(adminDSN, user, password)"))
	}
	if err := o.timeouts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new live driver: %w", err)
	}
	return o, nil
}
