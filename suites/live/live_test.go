package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/internal/ipmasq"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live/probe"
)

// These tests cover the orchestration that needs Istio and a cluster to
// run for real: preflight, classification with the control pod,
// convergence, policy switching, the masquerade setup and cleanup. The
// cluster, mesh, probes, routes and SQL are fakes of this package's own
// interfaces; the probe itself is tested against real sockets in
// suites/live/probe.

const (
	controlIP = "10.244.0.7"
	clientIP  = "10.244.0.8"
	nodeIP    = "172.18.0.2"
	echoIP    = "172.18.0.5"
	mysqlIP   = "172.18.0.6"
)

type fakeCluster struct {
	mu         sync.Mutex
	client     kubernetes.Interface
	calls      []string
	applied    map[string]bool // object names currently applied
	masqConfig string
	cniMasq    bool
	ipMasqErr  error
	applyErr   map[string]error // by pod name substring
}

func newFakeCluster() *fakeCluster {
	pod := func(name, ip string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DefaultNamespace},
			Spec:       corev1.PodSpec{NodeName: "meshconform-control-plane"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, HostIP: nodeIP},
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"},
		Data: map[string]string{"ClusterConfiguration": "networking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/16\n"}}
	return &fakeCluster{client: fake.NewClientset(pod(ControlPod, controlIP), pod(ClientPod, clientIP), cm), applied: map[string]bool{}, cniMasq: true}
}

func (f *fakeCluster) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeCluster) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeCluster) Client() kubernetes.Interface { return f.client }
func (f *fakeCluster) Exec(ctx context.Context, ns, pod, container string, cmd ...string) ([]byte, []byte, error) {
	return nil, nil, errors.New("fake cluster: no exec (the prober is faked)")
}
func (f *fakeCluster) Apply(ctx context.Context, ns, yaml string) ([]clusters.Object, error) {
	objs, err := clusters.DecodeYAML(yaml)
	if err != nil {
		return nil, err
	}
	var out []clusters.Object
	for _, u := range objs {
		for sub, e := range f.applyErr {
			if strings.Contains(u.GetName(), sub) {
				return out, e
			}
		}
		f.record("apply %s/%s", u.GetKind(), u.GetName())
		f.mu.Lock()
		f.applied[u.GetName()] = true
		f.mu.Unlock()
		out = append(out, clusters.Object{Name: u.GetName(), Namespace: ns})
	}
	return out, nil
}
func (f *fakeCluster) Delete(ctx context.Context, objs []clusters.Object) error {
	for _, o := range objs {
		f.record("delete %s", o.Name)
		f.mu.Lock()
		delete(f.applied, o.Name)
		f.mu.Unlock()
	}
	return nil
}
func (f *fakeCluster) isApplied(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied[name]
}
func (f *fakeCluster) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	f.record("namespace %s %v", name, labels)
	return nil
}
func (f *fakeCluster) WaitPods(ctx context.Context, ns, selector, what string, timeout time.Duration) error {
	f.record("wait %s", selector)
	return nil
}
func (f *fakeCluster) Nodes(ctx context.Context) ([]clusters.Node, error) {
	return []clusters.Node{{Name: "meshconform-control-plane", InternalIP: nodeIP, PodCIDR: "10.244.0.0/24"}}, nil
}
func (f *fakeCluster) PodCIDRs(ctx context.Context) ([]string, error) {
	return []string{"10.244.0.0/24"}, nil
}
func (f *fakeCluster) EnsureIPMasqAgent(ctx context.Context, image string) (func(context.Context) error, error) {
	f.record("ensure-ip-masq-agent %s", image)
	return func(context.Context) error { return nil }, f.ipMasqErr
}
func (f *fakeCluster) DisableCNIMasquerade(ctx context.Context) (func(context.Context) error, error) {
	f.record("disable-cni-masq")
	f.mu.Lock()
	f.cniMasq = false
	f.mu.Unlock()
	return func(context.Context) error {
		f.record("restore-cni-masq")
		f.mu.Lock()
		f.cniMasq = true
		f.mu.Unlock()
		return nil
	}, nil
}
func (f *fakeCluster) SetIPMasqConfig(ctx context.Context, config string) error {
	f.record("set-ip-masq-config %q", config)
	f.mu.Lock()
	f.masqConfig = config
	f.mu.Unlock()
	return nil
}
func (f *fakeCluster) WaitIPMasqRules(ctx context.Context, want []string) error {
	f.record("wait-ip-masq-rules %v", want)
	return nil
}

type fakeMesh struct {
	mu        sync.Mutex
	policy    string
	sets      []string
	restores  int
	preflight error
}

func (m *fakeMesh) Version() string { return "1.31.0" }
func (m *fakeMesh) Preflight(ctx context.Context, ns, sel string) error {
	return m.preflight
}
func (m *fakeMesh) OutboundPolicy(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy, nil
}
func (m *fakeMesh) SetOutboundPolicy(ctx context.Context, p string, waitFor ...string) (func(context.Context) error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.policy
	m.policy = p
	m.sets = append(m.sets, p+" wait "+strings.Join(waitFor, ","))
	return func(context.Context) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.policy = prev
		m.restores++
		return nil
	}, nil
}
func (m *fakeMesh) IngressAddress(ctx context.Context) (string, int, error) {
	return "127.0.0.1", 40443, nil
}
func (m *fakeMesh) CreateTLSSecret(ctx context.Context, name string, c, k []byte) error { return nil }
func (m *fakeMesh) current() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy
}

// fakeProber answers with a function of the pod and request.
type fakeProber struct {
	mu     sync.Mutex
	answer func(pod string, q probe.Request) probe.Result
	calls  []string
}

func (p *fakeProber) Probe(ctx context.Context, pod string, q probe.Request) (probe.Result, error) {
	r := p.answer(pod, q)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf("%s %s %s:%d", pod, q.Protocol, q.Address, q.Port))
	if r.Protocol == "" {
		r.Protocol = q.Protocol
	}
	return r, nil
}

func (p *fakeProber) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

type fakeRouter struct {
	mu     sync.Mutex
	routes map[route]bool
	log    []string
}

func (r *fakeRouter) AddRoute(ctx context.Context, rt route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[rt] = true
	r.log = append(r.log, "add "+rt.String())
	return nil
}
func (r *fakeRouter) DelRoute(ctx context.Context, rt route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, rt)
	r.log = append(r.log, "del "+rt.String())
	return nil
}
func (r *fakeRouter) has() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.routes) > 0
}

type fakeAdmin struct {
	mu    sync.Mutex
	stmts []string
}

func (a *fakeAdmin) Exec(ctx context.Context, stmt string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stmts = append(a.stmts, stmt)
	return nil
}
func (a *fakeAdmin) Close() error { return nil }

type env struct {
	cl     *fakeCluster
	mesh   *fakeMesh
	prober *fakeProber
	router *fakeRouter
	admin  *fakeAdmin
	d      *Driver
}

func endpoints() map[string]fixtures.Endpoint {
	return map[string]fixtures.Endpoint{
		"echo":  {Name: "echo", Host: fixtures.EchoHost, IP: echoIP, Ports: map[string]int{"http": 80, "https": 443, "tcp": 9000}},
		"mysql": {Name: "mysql", Host: fixtures.MySQLHost, IP: mysqlIP, Ports: map[string]int{"mysql": 3306}},
	}
}

func newEnv(t *testing.T, mesh Mesh, meshErr error, answer func(pod string, q probe.Request) probe.Result, extra ...Option) *env {
	t.Helper()
	e := &env{cl: newFakeCluster(), prober: &fakeProber{answer: answer}, router: &fakeRouter{routes: map[route]bool{}}, admin: &fakeAdmin{}}
	if m, ok := mesh.(*fakeMesh); ok {
		e.mesh = m
	}
	opts := []Option{
		withClusterAPI(e.cl), WithMesh(mesh, meshErr), WithEndpoints(endpoints()), WithAgentImage("meshconform/agent:abc"),
		WithCA([]byte("-----BEGIN CERTIFICATE-----\n")), WithMySQL("root:pw@tcp(127.0.0.1:3306)/test", "bookinfo", "s3cret"),
		WithEchoContainer("meshconform-mc-1-echo"), WithHelperImage("kind-node:test"), WithIPMasqAgentImage("ip-masq:test"),
		WithTimeouts(Timeouts{Converge: 2 * time.Second, Settled: time.Second, Poll: time.Millisecond, Consecutive: 3}),
		func(c *config) { c.prober, c.router, c.admin = e.prober, e.router, e.admin },
	}
	d, err := New(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return e
}

func allowed(src string) probe.Result {
	return probe.Result{Outcome: probe.Allowed, Kind: probe.KindAnswered, Detail: "answered", SourceIP: src}
}

func blocked() probe.Result {
	return probe.Result{Outcome: probe.BlockedByMesh, Kind: probe.KindHTTPStatus, Detail: "HTTP 502 with server: envoy", HTTPStatus: 502, Server: "envoy"}
}

func unreachable() probe.Result {
	return probe.Result{Outcome: probe.Unreachable, Kind: probe.KindTimeout, Detail: "no answer in time"}
}

func meshedHTTP(want check.Outcome) check.Expectation {
	return check.Expectation{From: check.Source{Kind: check.MeshedPod}, To: check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP}, Want: want}
}

func negate(c *check.Check) {
	for i := range c.Steps {
		for j := range c.Steps[i].Expect {
			e := &c.Steps[i].Expect[j]
			if e.Want == check.Allowed {
				e.Want = check.BlockedByMesh
			} else {
				e.Want = check.Allowed
			}
		}
	}
}

func registryOnlyCheck() check.Check {
	return check.Check{
		Name: "UnregisteredHTTPBlocked", Suite: "registry-only", Description: "unregistered HTTP gets 502",
		Policy: check.RegistryOnly, Requires: []check.Requirement{check.NeedsIstio, check.NeedsSidecar},
		Steps:           []check.Step{{Name: "blocked", Expect: []check.Expectation{meshedHTTP(check.BlockedByMesh)}}},
		NegativeControl: check.Mutation{Description: "expect Allowed", Mutate: negate},
	}
}

func TestMeshChecksAreNotReadyWithoutIstio(t *testing.T) {
	installErr := fmt.Errorf("install istio: %w", &clusters.NotReadyError{Reason: "istiod: pod istio-system/istiod-1 container discovery: image docker.io/istio/pilot:1.31.0 cannot be pulled (ErrImagePull)"})
	e := newEnv(t, nil, installErr, func(pod string, q probe.Request) probe.Result { return allowed(controlIP) })
	r := e.d.Run(context.Background(), registryOnlyCheck())
	if r.Status != check.Error {
		t.Fatalf("status %s, want Error", r.Status)
	}
	want := "environment not ready: install istio: istiod: pod istio-system/istiod-1 container discovery: image docker.io/istio/pilot:1.31.0 cannot be pulled (ErrImagePull)"
	if r.Message != want {
		t.Fatalf("message\n got %q\nwant %q", r.Message, want)
	}
	if n := e.prober.count(""); n != 0 {
		t.Errorf("a not-ready check must not probe; %d probes", n)
	}
	// The meshed client pod is not even created (the injection webhook is down).
	if e.cl.count("apply Pod/"+ClientPod) != 0 {
		t.Error("client pod created without a mesh")
	}
	if e.cl.count("apply Pod/"+ControlPod) != 1 {
		t.Error("control pod not created")
	}
	// Negative controls of a not-ready check stay errors: never passes.
	rs := check.RunAll(context.Background(), e.d, []check.Check{registryOnlyCheck()}, check.RunOptions{NegativeControls: true})
	for _, r := range rs {
		if r.Status != check.Error || !strings.HasPrefix(r.Message, check.ErrNotReady+": ") {
			t.Errorf("%s: %s %q", r.Name, r.Status, r.Message)
		}
	}
}

func TestSidecarNotReadyIsReported(t *testing.T) {
	m := &fakeMesh{policy: "ALLOW_ANY", preflight: &clusters.NotReadyError{Reason: "pod meshconform/client has no istio-proxy container (sidecar not injected)"}}
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result { return blocked() })
	r := e.d.Run(context.Background(), registryOnlyCheck())
	if r.Status != check.Error || r.Message != "environment not ready: pod meshconform/client has no istio-proxy container (sidecar not injected)" {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
}

func TestBlockedWithEvidenceAndControl(t *testing.T) {
	m := &fakeMesh{policy: "ALLOW_ANY"}
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod == ClientPod && m.current() == "REGISTRY_ONLY" {
			return blocked()
		}
		return allowed(nodeIP)
	})
	r := e.d.Run(context.Background(), registryOnlyCheck())
	if r.Status != check.Passed {
		t.Fatalf("%s: %s\n%s", r.Status, r.Message, r.Trace())
	}
	o := r.Observations[0]
	if !strings.Contains(o.Evidence, "502") {
		t.Errorf("evidence %q lacks the 502", o.Evidence)
	}
	if !slices.ContainsFunc(o.Trace, func(s string) bool { return strings.HasPrefix(s, "control (no sidecar): ") }) {
		t.Errorf("no control probe in trace:\n%s", r.Trace())
	}
	if len(m.sets) != 1 || m.sets[0] != "REGISTRY_ONLY wait meshconform/client" {
		t.Errorf("policy switches %v", m.sets)
	}
	// The negative control must fail for real: the same observation against
	// the flipped expectation.
	neg := check.RunAll(context.Background(), e.d, []check.Check{registryOnlyCheck()}, check.RunOptions{NegativeControls: true})
	if len(neg) != 2 || neg[1].Status != check.Passed || !neg[1].NegativeControl {
		t.Fatalf("negative control: %+v", neg[len(neg)-1])
	}
}

func TestInconclusiveWhenControlFailsToo(t *testing.T) {
	m := &fakeMesh{policy: "REGISTRY_ONLY"}
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod == ClientPod {
			return blocked()
		}
		return unreachable()
	})
	r := e.d.Run(context.Background(), registryOnlyCheck())
	if r.Status != check.Error || !strings.Contains(r.Message, "target not reachable even from outside the mesh") {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
	if r.Observations[0].Observed != check.Inconclusive {
		t.Fatalf("observed %s", r.Observations[0].Observed)
	}
}

// serviceEntryCheck applies an entry (Allowed), deletes it (blocked again).
func serviceEntryCheck() check.Check {
	return check.Check{
		Name: "HTTPEntryUnblocks", Suite: "serviceentry", Description: "entry unblocks", Policy: check.RegistryOnly,
		Steps: []check.Step{
			{Name: "applied", Apply: []check.Manifest{{Name: "entry", Text: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: echo-http\nspec:\n  hosts: [\"{{host \"echo\"}}\"]\n"}},
				Expect: []check.Expectation{meshedHTTP(check.Allowed)}},
			{Name: "deleted", Delete: []string{"entry"}, Expect: []check.Expectation{meshedHTTP(check.BlockedByMesh)}},
		},
		NegativeControl: check.Mutation{Description: "flip", Mutate: negate},
	}
}

func TestConvergenceMeasuresPropagation(t *testing.T) {
	m := &fakeMesh{policy: "ALLOW_ANY"}
	var e *env
	lag := 0 // observations until the entry takes effect
	e = newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod != ClientPod || m.current() == "ALLOW_ANY" {
			return allowed(nodeIP)
		}
		// The sidecar sees the entry only after a few observations.
		if e.cl.isApplied("echo-http") {
			lag++
			if lag > 4 {
				return allowed(clientIP)
			}
			return blocked()
		}
		lag = 0
		return blocked()
	})
	r := e.d.Run(context.Background(), serviceEntryCheck())
	if r.Status != check.Passed {
		t.Fatalf("%s: %s\n%s", r.Status, r.Message, r.Trace())
	}
	if r.Observations[0].Converged <= 0 {
		t.Errorf("propagation time not recorded: %v", r.Observations[0].Converged)
	}
	if e.cl.isApplied("echo-http") {
		t.Error("manifest still applied after the check")
	}
	if e.cl.count("delete echo-http") != 1 {
		t.Errorf("deletes: %v", e.cl.calls)
	}
}

func TestNeverConvergingFailsWithLastObservation(t *testing.T) {
	m := &fakeMesh{policy: "REGISTRY_ONLY"}
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod == ClientPod {
			return blocked()
		}
		return allowed(nodeIP)
	})
	r := e.d.Run(context.Background(), serviceEntryCheck())
	if r.Status != check.Failed {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
	o := r.Observations[0]
	if o.Observed != check.BlockedByMesh || !slices.ContainsFunc(o.Trace, func(s string) bool { return strings.Contains(s, "did not converge") }) {
		t.Fatalf("last observation %s, trace:\n%s", o.Observed, strings.Join(o.Trace, "\n"))
	}
	// After a failed step the next is observed once, not waited out.
	if !slices.ContainsFunc(r.Observations[1].Trace, func(s string) bool { return strings.Contains(s, "observed once") }) {
		t.Errorf("second step trace:\n%s", strings.Join(r.Observations[1].Trace, "\n"))
	}
	if e.cl.isApplied("echo-http") {
		t.Error("manifest still applied after a failed check")
	}
}

func TestFlappingNeverPasses(t *testing.T) {
	m := &fakeMesh{policy: "REGISTRY_ONLY"}
	n := 0
	var mu sync.Mutex
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod != ClientPod {
			return allowed(nodeIP)
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 0 {
			return blocked()
		}
		return allowed(clientIP)
	})
	c := registryOnlyCheck()
	r := e.d.Run(context.Background(), c)
	if r.Status == check.Passed {
		t.Fatalf("a flapping observation passed:\n%s", r.Trace())
	}
}

func TestPolicyKeptAcrossChecksAndRestored(t *testing.T) {
	m := &fakeMesh{policy: "ALLOW_ANY"}
	e := newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		if pod == ClientPod && m.current() == "REGISTRY_ONLY" {
			return blocked()
		}
		return allowed(nodeIP)
	})
	allowAny := registryOnlyCheck()
	allowAny.Name, allowAny.Policy = "BaselineAllowAny", check.AllowAny
	allowAny.Steps = []check.Step{{Name: "baseline", Expect: []check.Expectation{meshedHTTP(check.Allowed)}}}
	for _, c := range []check.Check{registryOnlyCheck(), registryOnlyCheck(), allowAny, registryOnlyCheck()} {
		if r := e.d.Run(context.Background(), c); r.Status != check.Passed {
			t.Fatalf("%s: %s %s", c.Name, r.Status, r.Message)
		}
	}
	// REGISTRY_ONLY set twice (the second time after restoring ALLOW_ANY),
	// never re-set while already in place.
	if len(m.sets) != 2 || m.restores != 1 {
		t.Fatalf("sets %v, restores %d", m.sets, m.restores)
	}
	if err := e.d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.current() != "ALLOW_ANY" || m.restores != 2 {
		t.Fatalf("after Close: policy %s, restores %d", m.current(), m.restores)
	}
}

// masqueradeCheck: with config nonMasq=[podCIDR] the echo target sees the
// node IP; with the defaults (172.16/12 not masqueraded) and no return
// route the connection fails; with a return route it sees the pod IP.
func masqueradeChecks() []check.Check {
	plain := func(want check.Outcome, as check.SourceIdentity) check.Expectation {
		return check.Expectation{From: check.Source{Kind: check.PlainPod}, To: check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP}, Want: want, WantSourceIP: as}
	}
	mk := func(name, cfg string, rr bool, e check.Expectation) check.Check {
		return check.Check{Name: name, Suite: "masquerade", Description: name, Masquerade: &check.Masquerade{Config: cfg, ReturnRoute: rr},
			Requires: []check.Requirement{check.NeedsIPMasqAgent},
			Steps:    []check.Step{{Name: "probe", Expect: []check.Expectation{e}}},
			NegativeControl: check.Mutation{Description: "swap config", Mutate: func(c *check.Check) {
				if c.Masquerade.Config == "" {
					c.Masquerade.Config = "nonMasqueradeCIDRs: [{{var \"podCIDR\"}}]\n"
				} else {
					c.Masquerade.Config = ""
				}
			}}}
	}
	return []check.Check{
		mk("OutsideNonMasqSeenAsNode", "nonMasqueradeCIDRs: [{{var \"podCIDR\"}}]\n", false, plain(check.Allowed, check.NodeIP)),
		mk("InsideNonMasqNoRouteFails", "", false, plain(check.Unreachable, "")),
		mk("InsideNonMasqWithRouteSeenAsPod", "", true, plain(check.Allowed, check.PodIP)),
	}
}

// masqNetwork answers like the kind network would under the fake
// cluster's masquerade state and the router's return routes.
func masqNetwork(e **env) func(pod string, q probe.Request) probe.Result {
	return func(pod string, q probe.Request) probe.Result {
		env := *e
		env.cl.mu.Lock()
		cfg, cni := env.cl.masqConfig, env.cl.cniMasq
		env.cl.mu.Unlock()
		src := controlIP
		masq := cni
		if !cni {
			want, _ := ipmasq.Parse(cfg, ipmasq.Options{})
			masq = !slices.Contains(want.RuleCIDRs(), "172.16.0.0/12")
		}
		if masq {
			return allowed(nodeIP)
		}
		if env.router.has() {
			return allowed(src)
		}
		return unreachable()
	}
}

func TestMasqueradeOrchestration(t *testing.T) {
	var e *env
	e = newEnv(t, nil, errors.New("Istio is not installed in this run"), masqNetwork(&e))
	rs := check.RunAll(context.Background(), e.d, masqueradeChecks(), check.RunOptions{NegativeControls: true})
	for _, r := range rs {
		if r.Status != check.Passed {
			t.Errorf("%s: %s: %s\n%s", r.Name, r.Status, r.Message, r.Trace())
		}
	}
	if len(rs) != 6 {
		t.Fatalf("%d results", len(rs))
	}
	if rs[0].Observations[0].SeenAs != check.NodeIP || rs[4].Observations[0].SeenAs != check.PodIP {
		t.Errorf("seen as %s / %s", rs[0].Observations[0].SeenAs, rs[4].Observations[0].SeenAs)
	}
	if n := e.cl.count("ensure-ip-masq-agent ip-masq:test"); n != 1 {
		t.Errorf("agent ensured %d times", n)
	}
	if n := e.cl.count("disable-cni-masq"); n != 1 {
		t.Errorf("CNI masquerade disabled %d times", n)
	}
	if n := e.cl.count("wait-ip-masq-rules [169.254.0.0/16 10.244.0.0/16]"); n < 1 {
		t.Errorf("rules for the pod CIDR never awaited: %v", e.cl.calls)
	}
	if e.router.has() {
		t.Error("return route left behind")
	}
	if !slices.Contains(e.router.log, "add 10.244.0.0/24 via 172.18.0.2 in container meshconform-mc-1-echo") {
		t.Errorf("routes: %v", e.router.log)
	}
	// A later check that is not about masquerading gets CNI masquerade back.
	m := registryOnlyCheck()
	m.Policy, m.Requires = "", nil
	m.Steps[0].Expect[0].From.Kind = check.PlainPod
	m.Steps[0].Expect[0].Want = check.Allowed
	if r := e.d.Run(context.Background(), m); r.Status != check.Passed {
		t.Fatalf("%s %s", r.Status, r.Message)
	}
	if e.cl.count("restore-cni-masq") != 1 {
		t.Errorf("CNI masquerade not restored: %v", e.cl.calls)
	}
}

func TestMasqueradeAgentNotReady(t *testing.T) {
	var e *env
	e = newEnv(t, nil, nil, masqNetwork(&e))
	e.cl.ipMasqErr = &clusters.NotReadyError{Reason: "daemonset kube-system/ip-masq-agent: image registry.k8s.io/networking/ip-masq-agent:v2.9.3 cannot be pulled"}
	r := e.d.Run(context.Background(), masqueradeChecks()[0])
	if r.Status != check.Error || !strings.HasPrefix(r.Message, "environment not ready: ip-masq-agent: ") || !strings.Contains(r.Message, "ip-masq-agent:v2.9.3") {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
}

func TestAdminSQLAndRating(t *testing.T) {
	m := &fakeMesh{policy: "REGISTRY_ONLY"}
	var e *env
	e = newEnv(t, m, nil, func(pod string, q probe.Request) probe.Result {
		r := allowed("")
		// The database returns what the admin last set.
		e.admin.mu.Lock()
		last := e.admin.stmts[len(e.admin.stmts)-1]
		e.admin.mu.Unlock()
		r.Rows = []string{"1," + last[strings.LastIndex(last, "=")+1:]}
		return r
	})
	c := check.Check{Name: "ExternalDBRead", Suite: "tcp-cidr", Description: "reads the rating", Policy: check.RegistryOnly,
		Steps: []check.Step{{Name: "read", AdminSQL: []string{"UPDATE test.ratings SET Rating={{var \"rating\"}} WHERE ReviewID=1 AND Rating={{var \"rating\"}}"},
			Expect: []check.Expectation{{To: check.Destination{Target: "mysql", Port: 3306, Protocol: check.MySQL}, Want: check.Allowed,
				Query: "SELECT * FROM test.ratings WHERE ReviewID=1", WantRows: []string{"1,{{var \"rating\"}}"}}}}},
		NegativeControl: check.Mutation{Description: "x", Mutate: negate}}
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 5; i++ {
		r := e.d.Run(context.Background(), c)
		if r.Status != check.Passed {
			t.Fatalf("%s %s\n%s", r.Status, r.Message, r.Trace())
		}
		rating := e.d.vars["rating"]
		if rating == prev || rating == "5" && i == 0 {
			t.Errorf("rating %s repeats the previous value %q", rating, prev)
		}
		prev = rating
		seen[rating] = true
	}
	if len(e.admin.stmts) != 5 {
		t.Errorf("admin statements %v", e.admin.stmts)
	}
}

func TestProbeArgsNeverCarryThePassword(t *testing.T) {
	e := newEnv(t, &fakeMesh{policy: "ALLOW_ANY"}, nil, func(string, probe.Request) probe.Result { return allowed("") })
	q, _ := e.d.request(check.Expectation{To: check.Destination{Target: "mysql", Address: mysqlIP, Port: 3306, Protocol: check.MySQL}, Query: "SELECT 1"})
	args := strings.Join(probeArgs(q, true), " ")
	if strings.Contains(args, "s3cret") || q.MySQLPassword != "" {
		t.Fatalf("password in pod probe request: %s", args)
	}
	if !strings.Contains(args, "--mysql-password-env "+passwordEnv) || !strings.Contains(args, "--mysql-user bookinfo") {
		t.Fatalf("args %s", args)
	}
	y, err := e.d.podsYAML(true)
	if err != nil {
		t.Fatal(err)
	}
	// The password is only in the Secret.
	if strings.Count(y, "s3cret") != 1 || !strings.Contains(y, "stringData:\n  password: \"s3cret\"") {
		t.Fatalf("pods YAML:\n%s", y)
	}
	if _, err := clusters.DecodeYAML(y); err != nil {
		t.Fatalf("pods YAML does not decode: %v", err)
	}
	// gRPC: TLS with SNI and the CA, plaintext without SNI.
	tlsQ, _ := e.d.request(check.Expectation{To: check.Destination{Host: fixtures.IngressHost, Address: "10.0.0.1", Port: 443, Protocol: check.GRPCS}})
	if a := strings.Join(probeArgs(tlsQ, true), " "); !strings.Contains(a, "--ca "+caFileInPod) || strings.Contains(a, "--plaintext") {
		t.Errorf("grpc tls args %s", a)
	}
	plainQ, _ := e.d.request(check.Expectation{To: check.Destination{Host: fixtures.IngressHost, Address: "10.0.0.1", Port: 443, Protocol: check.GRPC}})
	if a := strings.Join(probeArgs(plainQ, true), " "); !strings.Contains(a, "--plaintext") || strings.Contains(a, "--ca") {
		t.Errorf("grpc plaintext args %s", a)
	}
}

func TestOutsideUsesHostAddress(t *testing.T) {
	e := newEnv(t, &fakeMesh{policy: "ALLOW_ANY"}, nil, func(string, probe.Request) probe.Result { return allowed("") })
	if err := e.d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := check.Check{Name: "IngressGRPC", Suite: "ingress", Description: "x", Steps: []check.Step{{Name: "call", Expect: []check.Expectation{{
		From: check.Source{Kind: check.Outside}, To: check.Destination{Target: "ingress", Port: 443, Protocol: check.GRPCS, SNI: "{{var \"ingressHost\"}}"}, Want: check.Allowed}}}},
		NegativeControl: check.Mutation{Description: "x", Mutate: negate}}
	r := e.d.Run(context.Background(), c)
	if r.Status != check.Passed {
		t.Fatalf("%s %s", r.Status, r.Message)
	}
	if n := e.prober.count(" GRPCS 127.0.0.1:40443"); n == 0 {
		t.Fatalf("outside probe did not go to the published port: %v", e.prober.calls)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New()
	if err == nil || !strings.Contains(err.Error(), "WithCluster") || !strings.Contains(err.Error(), "WithAgentImage") || !strings.Contains(err.Error(), "WithMesh") {
		t.Fatalf("err %v", err)
	}
	_, err = New(withClusterAPI(newFakeCluster()), WithAgentImage("x"), WithMesh(nil, nil), WithTimeouts(Timeouts{Attempt: 10 * time.Second, Exec: 5 * time.Second}))
	if err == nil || !strings.Contains(err.Error(), "live.exec (5s) must be at least 4x live.attempt (10s)") {
		t.Fatalf("err %v", err)
	}
}
