package pushed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/simulation"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pkg/config/schema/gvk"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/internal/timeouts"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
)

// SuiteSuffix is appended to a suite's name for its pushed-config results:
// JUnit then carries them as a testsuite of their own, "<suite> (pushed config)".
const SuiteSuffix = " (pushed config)"

// Names of the workloads the tier identifies as.
const (
	ClientPod       = "client" // the meshed probe pod of package live (app=client)
	gatewaySelector = "app=istio-ingressgateway"
	gatewayService  = "istio-ingressgateway"
	istiodSelector  = "app=istiod"
	xdsPort         = 15010 // istiod's plaintext xDS port
)

// Timeouts bound every wait of the tier: see timeouts.Pushed for each
// bound, its default and the condition it waits for. Zero fields take the
// defaults.
type Timeouts = timeouts.Pushed

// DefaultTimeouts returns the defaults (timeouts.DefaultPushed).
func DefaultTimeouts() Timeouts { return timeouts.DefaultPushed() }

// Driver observes mesh checks on the config istiod pushes: for each source
// it keeps an xDS stream identifying as that workload (the meshed client
// pod as a sidecar, the ingress gateway as a router), makes each check's
// changes in the cluster (through Istio's validating webhook), waits until
// the pushed config reflects them, and judges every expectation with
// Istio's simulator on that config. It never sends traffic: a verdict here
// says what the mesh told the proxy to do, not what the proxy did.
// Not safe for concurrent use.
type Driver struct {
	cl        *clusters.Cluster
	mesh      *istio.Mesh
	env       func() check.Env
	namespace string
	image     string
	to        Timeouts
	log       *slog.Logger

	setupDone bool
	setupErr  error
	stopFwd   func()
	addr      string
	watches   map[check.SourceKind]Source
	// Per-source identities (sources.go): the watch of each meshed source
	// that is not the client pod, by Source.Key, or why there is none.
	sources    map[string]*Watch
	sourceErrs map[string]error
	sourcePod  SourcePodFunc
	identify   func(context.Context, check.Source) (*Identity, error)
	dial       func(context.Context, Identity) (*Watch, error)
	portMap    map[int]int // gateway Service port → targetPort
	cleanups   []func(context.Context) error
	// Sync status (syncz.go): the port-forward to istiod's TLS port and a
	// connection per caller namespace.
	tlsAddr   string
	syncConns map[string]*grpc.ClientConn

	tlsName         string
	tlsCert, tlsKey []byte
	ingressHost     string
	gatewayIP       string

	policyOrig, policyCur string
	policyRestore         func(context.Context) error

	// Propagations are every change's apply → push-seen time, in order.
	Propagations []Propagation
}

// Propagation is how long one change took from the API server to the
// workload's xDS stream.
type Propagation struct {
	Check, Change string
	Workload      string
	Elapsed       time.Duration
}

// Option configures New.
type Option func(*Driver)

// WithTimeouts overrides timeouts; zero fields keep the defaults.
func WithTimeouts(t Timeouts) Option {
	return func(d *Driver) { d.to = t.WithDefaults() }
}

// WithLogger receives progress at Info and details at Debug.
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// WithAgentImage is the image of the client pod the tier creates when the
// live tier did not (its sidecar cannot start without proxyv2, but the pod
// gets its IP, labels and injection, which is all istiod needs).
func WithAgentImage(ref string) Option { return func(d *Driver) { d.image = ref } }

// WithIngress gives the ingress gateway's credentialName secret (created
// in istio-system as the live tier does: istiod pushes a gateway's TLS
// server only with its certificate) and the host the gateway publishes;
// the "ingress" target then renders to the gateway pod when the live tier
// has no ingress endpoint (no gateway running).
func WithIngress(secret, host string, certPEM, keyPEM []byte) Option {
	return func(d *Driver) { d.tlsName, d.ingressHost, d.tlsCert, d.tlsKey = secret, host, certPEM, keyPEM }
}

// New returns a pushed-config driver for mesh in cl. env renders checks
// (the live driver's Env, so both tiers judge the same addresses);
// namespace is the checks' namespace.
func New(cl *clusters.Cluster, mesh *istio.Mesh, namespace string, env func() check.Env, opts ...Option) (*Driver, error) {
	d := &Driver{cl: cl, mesh: mesh, env: env, namespace: namespace, to: DefaultTimeouts(), log: slog.New(slog.DiscardHandler),
		watches: map[check.SourceKind]Source{}, sources: map[string]*Watch{}, sourceErrs: map[string]error{}}
	d.identify = d.sourceIdentity
	d.dial = func(ctx context.Context, id Identity) (*Watch, error) { return Dial(ctx, d.addr, id) }
	for _, o := range opts {
		o(d)
	}
	switch {
	case cl == nil || mesh == nil:
		return nil, errors.New("pushed-config driver: needs a cluster and an installed mesh")
	case env == nil || namespace == "":
		return nil, errors.New("pushed-config driver: needs the checks' environment and namespace")
	}
	return d, nil
}

// Name implements check.Driver.
func (d *Driver) Name() string { return "pushed config" }

// Setup connects the xDS streams (Run calls it on first use).
func (d *Driver) Setup(ctx context.Context) error {
	if !d.setupDone {
		d.setupDone = true
		d.setupErr = d.setup(ctx)
	}
	return d.setupErr
}

func (d *Driver) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.to.Connect)
	defer cancel()
	_, pod, err := d.mesh.IstiodReadySince(ctx)
	if err != nil {
		return err
	}
	addr, stop, err := d.cl.PortForward(ctx, d.mesh.IstiodNamespace(), pod, xdsPort)
	if err != nil {
		return fmt.Errorf("port-forward to istiod %s:%d: %w", pod, xdsPort, err)
	}
	d.addr, d.stopFwd = addr, stop
	client, clientPod, err := d.clientIdentity(ctx)
	if err != nil {
		return err
	}
	gw, gwPod, err := d.gatewayIdentity(ctx)
	if err != nil {
		d.log.Warn("pushed config: no ingress gateway identity", "error", err)
	} else {
		d.gatewayIP = gw.IP
	}
	if d.tlsName != "" {
		if err := d.mesh.CreateTLSSecret(ctx, d.tlsName, d.tlsCert, d.tlsKey); err != nil {
			return err
		}
	}
	for _, w := range []struct {
		kind check.SourceKind
		id   *Identity
		pod  *corev1.Pod
	}{{check.MeshedPod, client, clientPod}, {check.Outside, gw, gwPod}} {
		if w.id == nil {
			continue
		}
		start := time.Now()
		src, err := d.source(ctx, *w.id, w.pod)
		if err != nil {
			return err
		}
		d.watches[w.kind] = src
		if _, err := src.Wait(ctx, "first config", func(Snapshot) bool { return true }); err != nil {
			return err
		}
		d.log.Info("pushed config received", "workload", w.id.String(), "from", src.Kind(), "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// source is where the workload's config is read: its own Envoy's
// config_dump when its sidecar (or gateway proxy) is running and ready,
// else an xDS stream to istiod identifying as the workload.
func (d *Driver) source(ctx context.Context, id Identity, pod *corev1.Pod) (Source, error) {
	if pod != nil && istio.SidecarReady(pod) {
		addr, stop, err := d.cl.PortForward(ctx, pod.Namespace, pod.Name, EnvoyAdminPort)
		if err != nil {
			return nil, fmt.Errorf("port-forward to the Envoy admin port of %s: %w", id, err)
		}
		return NewSidecarDump(ctx, id, addr, d.to.Poll, stop)
	}
	return Dial(context.WithoutCancel(ctx), d.addr, id)
}

// clientIdentity finds the meshed client pod (app=client), creating it
// when the live tier did not, and waits for its IP.
func (d *Driver) clientIdentity(ctx context.Context) (*Identity, *corev1.Pod, error) {
	pods := d.cl.Client().CoreV1().Pods(d.namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=" + ClientPod})
	if err != nil {
		return nil, nil, fmt.Errorf("find the client pod: %w", err)
	}
	if len(list.Items) == 0 {
		if d.image == "" {
			return nil, nil, errors.New("no client pod app=client and no agent image to create one: pass WithAgentImage")
		}
		y := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: probe
    image: %q
    imagePullPolicy: IfNotPresent
    args: ["sleep"]
`, ClientPod, d.namespace, ClientPod, d.image)
		objs, err := d.cl.Apply(ctx, d.namespace, y)
		d.cleanups = append(d.cleanups, func(ctx context.Context) error { return d.cl.Delete(ctx, objs) })
		if err != nil {
			return nil, nil, fmt.Errorf("create the client pod (through Istio's injection webhook): %w", err)
		}
	}
	p, err := d.podWithIP(ctx, d.namespace, "app="+ClientPod)
	if err != nil {
		return nil, nil, err
	}
	return &Identity{Namespace: p.Namespace, Pod: p.Name, IP: p.Status.PodIP, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName}, p, nil
}

// gatewayIdentity is the ingress gateway pod as a router, and the
// Service's port → targetPort map.
func (d *Driver) gatewayIdentity(ctx context.Context) (*Identity, *corev1.Pod, error) {
	p, err := d.podWithIP(ctx, istio.Namespace, gatewaySelector)
	if err != nil {
		return nil, nil, err
	}
	svc, err := d.cl.Client().CoreV1().Services(istio.Namespace).Get(ctx, gatewayService, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("gateway service: %w", err)
	}
	d.portMap = map[int]int{}
	for _, sp := range svc.Spec.Ports {
		if sp.TargetPort.IntValue() > 0 {
			d.portMap[int(sp.Port)] = sp.TargetPort.IntValue()
		}
	}
	return &Identity{Router: true, Namespace: p.Namespace, Pod: p.Name, IP: p.Status.PodIP, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName}, p, nil
}

func (d *Driver) podWithIP(ctx context.Context, ns, selector string) (*corev1.Pod, error) {
	for {
		list, err := d.cl.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("pods %s in %s: %w", selector, ns, err)
		}
		for i := range list.Items {
			if p := &list.Items[i]; p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, &clusters.NotReadyError{Reason: fmt.Sprintf("no pod %s in %s has an IP yet", selector, ns)}
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Close restores the mesh policy, ends the streams and the port-forward,
// and deletes what the tier created.
func (d *Driver) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if d.policyRestore != nil {
		errs = append(errs, d.policyRestore(ctx))
		d.policyRestore = nil
	}
	for _, w := range d.watches {
		w.Close()
	}
	d.watches = map[check.SourceKind]Source{}
	for _, w := range d.sources {
		w.Close()
	}
	d.sources = map[string]*Watch{}
	if d.stopFwd != nil {
		d.stopFwd()
		d.stopFwd = nil
	}
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		errs = append(errs, d.cleanups[i](ctx))
	}
	d.cleanups = nil
	d.syncConns, d.tlsAddr = nil, ""
	return errors.Join(errs...)
}

// Run implements check.Driver: the check's policy, then each step's
// changes, each waited for on the pushed config, then every expectation
// judged by Istio's simulator on the config pushed to its source.
func (d *Driver) Run(ctx context.Context, c check.Check) (res check.Result) {
	start := time.Now()
	res = check.NewResult(c)
	defer func() { res.Duration = time.Since(start) }()
	if err := d.Setup(ctx); err != nil {
		res.Status, res.Message = check.Error, check.ErrNotReady+": pushed config: "+strings.TrimPrefix(err.Error(), check.ErrNotReady+": ")
		return res
	}
	rc, err := d.renderEnv().Resolve(c)
	if err != nil {
		res.Status, res.Message = check.Error, "render check: "+err.Error()
		return res
	}
	if rc.Masquerade != nil {
		res.Status, res.Message = check.Skipped, "not a mesh check: nothing is pushed for it"
		return res
	}
	var policyTook time.Duration
	if rc.Policy != "" {
		if policyTook, err = d.switchPolicy(ctx, c.Name, string(rc.Policy)); err != nil {
			res.Status, res.Message = check.Error, err.Error()
			return res
		}
	}
	applied := map[string][]clusters.Object{}
	texts := map[string]string{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.to.Propagation)
		defer cancel()
		var left []string
		for name, objs := range applied {
			if err := d.cl.Delete(cctx, objs); err != nil {
				d.log.Warn("pushed config: cleanup", "check", c.Name, "error", err)
			}
			left = append(left, texts[name])
		}
		if len(left) > 0 {
			// Wait until the deletions are pushed, so the next check starts
			// from a config without them (before == nil: no push needed
			// for objects the tier cannot follow precisely).
			if _, err := d.waitChange(cctx, c.Name, "cleanup", nil, left, nil, nil); err != nil {
				d.log.Warn("pushed config: deletion not seen", "check", c.Name, "error", err)
			}
		}
	}()
	for i, step := range rc.Steps {
		var deleted, added []string
		before := d.snapshots()
		for _, name := range step.Delete {
			objs := applied[name]
			delete(applied, name)
			deleted = append(deleted, texts[name])
			if err := d.cl.Delete(ctx, objs); err != nil {
				res.Status, res.Message = check.Error, fmt.Sprintf("step %q: delete %s: %v", step.Name, name, err)
				return res
			}
		}
		for _, m := range step.Apply {
			objs, err := d.cl.Apply(ctx, d.namespace, m.Text)
			applied[m.Name], texts[m.Name] = objs, m.Text
			if err != nil {
				res.Status, res.Message = check.Error, fmt.Sprintf("step %q: apply %s (Istio's validating webhook answers here): %v", step.Name, m.Name, err)
				return res
			}
			added = append(added, m.Text)
		}
		took := time.Duration(0)
		if len(added)+len(deleted) > 0 {
			kinds := map[check.SourceKind]bool{}
			for _, e := range step.Expect {
				k := e.From.Kind
				if k == "" {
					k = check.MeshedPod
				}
				kinds[k] = true
			}
			if took, err = d.waitChange(ctx, c.Name, step.Name, added, deleted, before, kinds); err != nil {
				res.Status, res.Message = check.Error, fmt.Sprintf("step %q: %v", step.Name, err)
				return res
			}
		}
		if i == 0 && took < policyTook {
			took = policyTook
		}
		for _, e := range step.Expect {
			o := d.observe(ctx, step.Name, e)
			o.Converged = took
			res.Observations = append(res.Observations, o)
		}
	}
	for _, o := range res.Observations {
		if o.Observed == check.Inconclusive {
			res.Status, res.Message = check.Error, fmt.Sprintf("[%s] %s: %s", o.Step, o.Expect, o.Err)
			return res
		}
	}
	res.Judge()
	return res
}

// renderEnv is the checks' environment, with the "ingress" target at the
// gateway pod when the live tier has none (the simulated gateway call
// matches the gateway's listener by port; the address is only traced).
func (d *Driver) renderEnv() check.Env {
	env := d.env()
	if _, ok := env.Endpoints["ingress"]; !ok && d.gatewayIP != "" {
		eps := map[string]fixtures.Endpoint{}
		for k, v := range env.Endpoints {
			eps[k] = v
		}
		eps["ingress"] = fixtures.Endpoint{Name: "ingress", Host: d.ingressHost, IP: d.gatewayIP, Ports: map[string]int{"https": 443}}
		env.Endpoints = eps
	}
	return env
}

func (d *Driver) snapshots() map[check.SourceKind]Snapshot {
	out := map[check.SourceKind]Snapshot{}
	for k, w := range d.watches {
		out[k] = w.Snapshot()
	}
	return out
}

// observe judges one expectation on the config pushed to its source.
func (d *Driver) observe(ctx context.Context, step string, e check.Expectation) (o check.Observation) {
	start := time.Now()
	o = check.Observation{Step: step, Expect: e, Observable: check.ConfigFacets}
	defer func() {
		if p := recover(); p != nil {
			o.Observed, o.Err = check.Inconclusive, fmt.Sprintf("simulator panicked: %v", p)
		}
		o.Elapsed = time.Since(start)
	}()
	kind := e.From.Kind
	if kind == "" {
		kind = check.MeshedPod
	}
	if kind == check.PlainPod {
		o.Observed, o.Err = check.Inconclusive, "a pod without a sidecar gets no pushed config"
		return o
	}
	w := d.watches[kind]
	if kind == check.MeshedPod && !d.isClient(e.From) {
		var err error
		if w, err = d.sourceWatch(ctx, e.From); err != nil {
			o.Observed, o.Err = check.Inconclusive, "no xDS stream for source "+e.From.String()+": "+err.Error()
			return o
		}
	}
	if w == nil {
		o.Observed, o.Err = check.Inconclusive, "no xDS stream for a "+string(kind)+" source (its workload was not found)"
		return o
	}
	s := w.Snapshot()
	simu := &simulation.Simulation{Listeners: s.Listeners, Clusters: s.Clusters, Routes: s.Routes}
	var pm map[int]int
	if kind == check.Outside {
		pm = d.portMap
	}
	v, err := sim.Judge(simu, e.From, e.To, pm)
	if err != nil {
		o.Observed, o.Err = check.Inconclusive, err.Error()
		return o
	}
	o.Observed, o.Cluster, o.Evidence = v.Outcome, v.Cluster, v.Why
	o.Trace = append([]string{fmt.Sprintf("pushed config of %s (%s, CDS %s, LDS %s, %d listeners, %d clusters, %d route configs): %s",
		w.Identity(), w.Kind(), s.Versions[v3.ClusterType], s.Versions[v3.ListenerType], len(s.Listeners), len(s.Clusters), len(s.Routes), v.Call)}, v.Trace...)
	if v.Outcome == check.Inconclusive {
		o.Err = v.Why
	}
	return o
}

// switchPolicy sets the mesh-wide outbound policy (ConfigMap
// istio-system/istio, as operators do) and waits until the client's pushed
// catch-all cluster reflects it; it returns the propagation time.
func (d *Driver) switchPolicy(ctx context.Context, checkName, p string) (time.Duration, error) {
	if d.policyOrig == "" {
		cur, err := d.mesh.OutboundPolicy(ctx)
		if err != nil {
			return 0, fmt.Errorf("switch outbound policy: %w", err)
		}
		d.policyOrig, d.policyCur = cur, cur
	}
	want := map[string]string{istio.AllowAny: sim.PassthroughCluster, istio.RegistryOnly: sim.BlackHoleCluster}[p]
	w := d.watches[check.MeshedPod]
	if p != d.policyCur {
		if p == d.policyOrig && d.policyRestore != nil {
			if err := d.policyRestore(ctx); err != nil {
				return 0, fmt.Errorf("switch outbound policy back to %s: %w", p, err)
			}
			d.policyRestore = nil
		} else {
			restore, err := d.mesh.SetOutboundPolicy(ctx, p)
			if restore != nil {
				d.policyRestore = restore
			}
			if err != nil {
				return 0, fmt.Errorf("switch outbound policy to %s: %w", p, err)
			}
		}
		d.policyCur = p
	} else if w == nil || CatchAllCluster(w.Snapshot()) == want {
		return 0, nil
	}
	if w == nil {
		return 0, nil
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, d.to.Propagation)
	defer cancel()
	s, err := w.Wait(wctx, "outbound policy "+p+" (catch-all cluster "+want+")", func(s Snapshot) bool { return CatchAllCluster(s) == want })
	if err != nil {
		return 0, err
	}
	took := s.At.Sub(start)
	if took < 0 {
		took = 0
	}
	d.Propagations = append(d.Propagations, Propagation{Check: checkName, Change: "outboundTrafficPolicy " + p, Workload: w.Identity().String(), Elapsed: took})
	d.log.Info("pushed config: outbound policy propagated", "policy", p, "elapsed", took.Round(time.Millisecond))
	return took, nil
}

// CatchAllCluster is the cluster of the virtualOutbound listener's
// catch-all filter chain (PassthroughCluster under ALLOW_ANY,
// BlackHoleCluster under REGISTRY_ONLY), "" if not pushed.
func CatchAllCluster(s Snapshot) string { return istio.CatchAllCluster(s.Listeners) }

// waitChange waits until every watch shows the change: for a ServiceEntry
// its clusters (outbound|port||host) present after an apply and gone after
// a delete, on sidecars; for a Gateway its listener, on the gateway; for
// any other object a push newer than before. Only the watches of kinds
// (nil: all) are waited for. It records and returns the
// longest propagation time (change → push seen).
func (d *Driver) waitChange(ctx context.Context, checkName, step string, added, deleted []string, before map[check.SourceKind]Snapshot, kinds map[check.SourceKind]bool) (time.Duration, error) {
	start := time.Now()
	var longest time.Duration
	for kind, w := range d.watches {
		if kinds != nil && !kinds[kind] {
			continue // istiod pushes only to proxies a change affects
		}
		cond, what := d.changeCond(kind, added, deleted, before[kind])
		wctx, cancel := context.WithTimeout(ctx, d.to.Propagation)
		s, err := w.Wait(wctx, what, cond)
		cancel()
		if err != nil {
			return 0, err
		}
		took := s.At.Sub(start)
		if took < 0 {
			took = 0
		}
		longest = max(longest, took)
		d.Propagations = append(d.Propagations, Propagation{Check: checkName, Change: step, Workload: w.Identity().String(), Elapsed: took})
		d.log.Debug("pushed config: change propagated", "check", checkName, "step", step, "workload", w.Identity().String(), "elapsed", took)
	}
	return longest, nil
}

func (d *Driver) changeCond(kind check.SourceKind, added, deleted []string, before Snapshot) (func(Snapshot) bool, string) {
	var present, absent []string // cluster names
	var listeners, noListeners []string
	other := false
	collect := func(texts []string, add bool) {
		for _, t := range texts {
			objs, err := sim.ParseYAML("manifest.yaml", []byte(t), d.namespace)
			if err != nil {
				other = true
				continue
			}
			for _, o := range objs {
				switch {
				case o.Istio != nil && o.Istio.GroupVersionKind == gvk.ServiceEntry && kind == check.MeshedPod:
					se, ok := o.Istio.Spec.(*networking.ServiceEntry)
					if !ok {
						other = true
						continue
					}
					for _, h := range se.GetHosts() {
						for _, p := range se.GetPorts() {
							name := fmt.Sprintf("outbound|%d||%s", p.GetNumber(), h)
							if add {
								present = append(present, name)
							} else {
								absent = append(absent, name)
							}
						}
					}
				case o.Istio != nil && o.Istio.GroupVersionKind == gvk.Gateway && kind == check.Outside:
					gw, ok := o.Istio.Spec.(*networking.Gateway)
					if !ok {
						other = true
						continue
					}
					for _, s := range gw.GetServers() {
						port := int(s.GetPort().GetNumber())
						if t, ok := d.portMap[port]; ok {
							port = t
						}
						name := fmt.Sprintf("0.0.0.0_%d", port)
						if add {
							listeners = append(listeners, name)
						} else {
							noListeners = append(noListeners, name)
						}
					}
				case o.Ignored:
				default:
					other = true
				}
			}
		}
	}
	collect(added, true)
	collect(deleted, false)
	var what []string
	if len(present) > 0 {
		what = append(what, "clusters "+strings.Join(present, ", ")+" pushed")
	}
	if len(absent) > 0 {
		what = append(what, "clusters "+strings.Join(absent, ", ")+" withdrawn")
	}
	if len(listeners) > 0 {
		what = append(what, "listeners "+strings.Join(listeners, ", ")+" pushed")
	}
	if len(noListeners) > 0 {
		what = append(what, "listeners "+strings.Join(noListeners, ", ")+" withdrawn")
	}
	newPush := other || len(what) == 0
	if newPush {
		what = append(what, "a push newer than the change")
	}
	hasListener := func(s Snapshot, name string) bool {
		for _, l := range s.Listeners {
			if l.GetName() == name {
				return true
			}
		}
		return false
	}
	return func(s Snapshot) bool {
		for _, n := range present {
			if !s.HasCluster(n) {
				return false
			}
		}
		for _, n := range absent {
			if s.HasCluster(n) {
				return false
			}
		}
		for _, n := range listeners {
			if !hasListener(s, n) {
				return false
			}
		}
		for _, n := range noListeners {
			if hasListener(s, n) {
				return false
			}
		}
		if newPush && before.Seq > 0 && s.Versions[v3.ClusterType] == before.Versions[v3.ClusterType] && s.Versions[v3.ListenerType] == before.Versions[v3.ListenerType] {
			return false
		}
		return true
	}, strings.Join(what, "; ")
}
