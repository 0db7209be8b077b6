package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live/probe"
	"github.com/meshconform/meshconform/suites/masquerade"
)

// These tests cover the orchestration that needs Istio and a cluster to
// run for real: preflight, classification with the control pod,
// convergence, policy switching, the masquerade setup and cleanup. The
// cluster, mesh, probes, routes and SQL are fakes of this package's own
// interfaces: they test our orchestration, never a tier's verdict (the
// shipped checks are judged against the simulation in oracle_test.go);
// the probe itself is tested against real sockets in suites/live/probe.

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
	applied    map[string]bool   // "Kind/name" of the objects currently applied
	docs       map[string]string // "Kind/name" -> the manifest it came in (not the driver's pods)
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
	return &fakeCluster{client: fake.NewClientset(pod(ControlPod, controlIP), pod(ClientPod, clientIP), cm), applied: map[string]bool{}, docs: map[string]string{}, cniMasq: true}
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
	pods := false
	for _, u := range objs {
		pods = pods || u.GetKind() == "Pod"
	}
	for _, u := range objs {
		for sub, e := range f.applyErr {
			if strings.Contains(u.GetName(), sub) {
				return out, e
			}
		}
		f.record("apply %s/%s", u.GetKind(), u.GetName())
		key := u.GetKind() + "/" + u.GetName()
		f.mu.Lock()
		f.applied[key] = true
		if !pods {
			f.docs[key] = yaml
		}
		f.mu.Unlock()
		out = append(out, clusters.Object{GVK: u.GroupVersionKind(), Name: u.GetName(), Namespace: ns})
	}
	return out, nil
}
func (f *fakeCluster) Delete(ctx context.Context, objs []clusters.Object) error {
	for _, o := range objs {
		f.record("delete %s", o.Name)
		f.mu.Lock()
		delete(f.applied, o.GVK.Kind+"/"+o.Name)
		f.mu.Unlock()
	}
	return nil
}

// appliedCount is how many objects of the checks' manifests are applied.
func (f *fakeCluster) appliedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for name := range f.applied {
		if _, ok := f.docs[name]; ok {
			n++
		}
	}
	return n
}

func (f *fakeCluster) isApplied(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key := range f.applied {
		if strings.HasSuffix(key, "/"+name) {
			return true
		}
	}
	return false
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

type env struct {
	cl     *fakeCluster
	mesh   *fakeMesh
	prober *fakeProber
	router *fakeRouter
	db     *fakeDB
	oracle *oracle // set by newOracleEnv
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
	e := &env{cl: newFakeCluster(), prober: &fakeProber{answer: answer}, router: &fakeRouter{routes: map[route]bool{}}, db: newFakeDB()}
	if m, ok := mesh.(*fakeMesh); ok {
		e.mesh = m
	}
	opts := []Option{
		withClusterAPI(e.cl), WithMesh(mesh, meshErr), WithEndpoints(endpoints()), WithAgentImage("meshconform/agent:abc"),
		WithCA([]byte("-----BEGIN CERTIFICATE-----\n")), WithMySQL("root:pw@tcp(127.0.0.1:3306)/test", "bookinfo", "s3cret"),
		WithEchoContainer("meshconform-mc-1-echo"), WithHelperImage("kind-node:test"), WithIPMasqAgentImage("ip-masq:test"),
		WithTimeouts(Timeouts{Converge: 2 * time.Second, Settled: time.Second, Poll: time.Millisecond, Consecutive: 3}),
		func(c *config) { c.prober, c.router, c.admin = e.prober, e.router, e.db },
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

// noControl is the negative control of test checks that never run it.
var noControl = check.Mutation{Description: "not run by this test", Mutate: func(*check.Check) {}}

func registryOnlyCheck() check.Check {
	return check.Check{
		Name: "UnregisteredHTTPBlocked", Suite: "registry-only", Description: "unregistered HTTP gets 502",
		Policy: check.RegistryOnly, Requires: []check.Requirement{check.NeedsIstio, check.NeedsSidecar},
		Steps:           []check.Step{{Name: "blocked", Expect: []check.Expectation{meshedHTTP(check.BlockedByMesh)}}},
		NegativeControl: check.WithPolicy(check.AllowAny, check.Flip{Observed: check.Allowed}),
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

// TestBlockedWithControlProbe: a meshed block is repeated from the control
// pod, the policy is switched and awaited on the client; the Evidence is
// the probe's own detail (here the fake's), never Envoy counters.
func TestBlockedWithControlProbe(t *testing.T) {
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
	// The negative control runs under ALLOW_ANY and must observe its
	// declared flip (Allowed), after the policy switch back.
	neg := check.RunAll(context.Background(), e.d, []check.Check{registryOnlyCheck()}, check.RunOptions{NegativeControls: true})
	if len(neg) != 2 || neg[1].Status != check.Passed || !neg[1].NegativeControl || !strings.Contains(neg[1].Message, "wants BlockedByMesh, observed Allowed as declared") {
		t.Fatalf("negative control: %s %q", neg[1].Status, neg[1].Message)
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
		NegativeControl: noControl,
	}
}

// withFakeClock makes convergence time advance by exactly Poll per round.
func withFakeClock() Option {
	return func(c *config) { c.clock = &fakeClock{now: time.Unix(1700000000, 0)} }
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
	}, withFakeClock())
	r := e.d.Run(context.Background(), serviceEntryCheck())
	if r.Status != check.Passed {
		t.Fatalf("%s: %s\n%s", r.Status, r.Message, r.Trace())
	}
	// The entry took effect at the 5th observation, 4 polls after it was
	// applied: that is the propagation time, exactly.
	if got, want := r.Observations[0].Converged, 4*time.Millisecond; got != want {
		t.Errorf("propagation %v, want %v (4 polls)", got, want)
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
	}, withFakeClock())
	c := registryOnlyCheck()
	r := e.d.Run(context.Background(), c)
	// The clock advances one Poll per round: the step changed nothing, so
	// the bound is Settled (1 s) and the last of 1002 rounds (an even
	// probe: blocked) matched once.
	want := "[blocked] meshconform/pod(meshed) -> HTTP echo.external.test:80: BlockedByMesh: did not converge within 1s after the change (1002 rounds; 3 consecutive matching observations needed, last streak 1)"
	if r.Status != check.Failed || r.Message != want {
		t.Fatalf("%s\n got %q\nwant %q\n%s", r.Status, r.Message, want, r.Trace())
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

// TestMasqueradeOrchestration is an orchestration test: it runs the
// shipped masquerade checks with their own negative controls and asserts
// the order of what the driver does (agent once, CNI masquerade off once,
// each config set and its rules awaited before any probe, the return
// route added before the probe and removed after it, CNI masquerade back
// for the next check that is not about masquerading). The network's
// answers come from the simulation's model (oracle_test.go), not from a
// verdict of this test.
func TestMasqueradeOrchestration(t *testing.T) {
	e := newOracleEnv(t, nil, errors.New("Istio is not installed in this run"))
	var events []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, s)
	}
	ans := e.prober.answer
	e.prober.answer = func(pod string, q probe.Request) probe.Result {
		e.cl.mu.Lock()
		n := len(e.cl.calls)
		e.cl.mu.Unlock()
		e.router.mu.Lock()
		rl := len(e.router.log)
		e.router.mu.Unlock()
		where := pod
		if where == outsidePod {
			where = "outside"
		}
		note(fmt.Sprintf("probe %s after %d cluster calls, %d route changes", where, n, rl))
		return ans(pod, q)
	}
	rs := check.RunAll(context.Background(), e.d, masquerade.Checks(), check.RunOptions{NegativeControls: true})
	for _, r := range rs {
		if r.Status != check.Passed {
			t.Errorf("%s: %s: %s\n%s", r.Name, r.Status, r.Message, r.Trace())
		}
	}
	if len(rs) != 6 {
		t.Fatalf("%d results", len(rs))
	}
	var masqCalls []string
	for _, c := range e.cl.calls {
		if !strings.HasPrefix(c, "apply ") && !strings.HasPrefix(c, "wait app=") && !strings.HasPrefix(c, "namespace ") {
			masqCalls = append(masqCalls, c)
		}
	}
	pod := `nonMasqueradeCIDRs: [10.244.0.0/16]\nmasqLinkLocal: false\nresyncInterval: 10s\n`
	wantCalls := []string{
		"ensure-ip-masq-agent ip-masq:test",
		"disable-cni-masq",
		`set-ip-masq-config "` + pod + `"`, "wait-ip-masq-rules [169.254.0.0/16 10.244.0.0/16]", // UsesNodeIP
		`set-ip-masq-config ""`, "wait-ip-masq-rules [169.254.0.0/16 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16]", // its control
		// WithoutReturnRouteFails: defaults already in effect
		`set-ip-masq-config "` + pod + `"`, "wait-ip-masq-rules [169.254.0.0/16 10.244.0.0/16]", // its control
		`set-ip-masq-config ""`, "wait-ip-masq-rules [169.254.0.0/16 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16]", // WithReturnRoute
		`set-ip-masq-config "` + pod + `"`, "wait-ip-masq-rules [169.254.0.0/16 10.244.0.0/16]", // its control
	}
	if strings.Join(masqCalls, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("cluster calls\n got %q\nwant %q", masqCalls, wantCalls)
	}
	// Routes: added for the two return-route runs (UsesNodeIP's control,
	// WithReturnRoute and its control), each removed after its probes.
	route := "10.244.0.0/24 via 172.18.0.2 in container meshconform-mc-1-echo"
	wantRoutes := []string{"add " + route, "del " + route, "add " + route, "del " + route, "add " + route, "del " + route}
	if strings.Join(e.router.log, ",") != strings.Join(wantRoutes, ",") {
		t.Errorf("routes %v, want %v", e.router.log, wantRoutes)
	}
	// Every probe came after the config it observes was awaited: the
	// first probe after the agent, the CNI switch and the first rules.
	if len(events) == 0 || !strings.HasPrefix(events[0], "probe control after ") {
		t.Fatalf("events %v", events)
	}
	var first int
	fmt.Sscanf(strings.TrimPrefix(events[0], "probe control after "), "%d", &first)
	if first < 1 || !strings.HasPrefix(e.cl.calls[first-1], "wait-ip-masq-rules") {
		t.Errorf("first probe after %v", e.cl.calls[:first])
	}
	if e.router.has() {
		t.Error("return route left behind")
	}
	// A later check that is not about masquerading gets CNI masquerade back.
	m := registryOnlyCheck()
	m.Policy, m.Requires = "", nil
	m.Steps[0].Expect[0].From.Kind = check.PlainPod
	m.Steps[0].Expect[0].Want = check.Allowed
	if r := e.d.Run(context.Background(), m); r.Status != check.Passed {
		t.Fatalf("%s %s", r.Status, r.Message)
	}
	if e.cl.count("restore-cni-masq") != 1 || e.cl.calls[len(e.cl.calls)-1] != "restore-cni-masq" {
		t.Errorf("CNI masquerade not restored last: %v", e.cl.calls)
	}
}

func TestMasqueradeAgentNotReady(t *testing.T) {
	e := newOracleEnv(t, nil, nil)
	e.cl.ipMasqErr = &clusters.NotReadyError{Reason: "daemonset kube-system/ip-masq-agent: image registry.k8s.io/networking/ip-masq-agent:v2.9.3 cannot be pulled"}
	r := e.d.Run(context.Background(), masquerade.Checks()[0])
	want := "environment not ready: ip-masq-agent: daemonset kube-system/ip-masq-agent: image registry.k8s.io/networking/ip-masq-agent:v2.9.3 cannot be pulled"
	if r.Status != check.Error || r.Message != want {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
	if n := e.prober.count(""); n != 0 {
		t.Errorf("%d probes without an agent", n)
	}
}

func TestAdminSQLAndRating(t *testing.T) {
	c := shipped(t, "TCPServiceEntryAllowsMySQLByCIDR")
	e := newOracleEnv(t, &fakeMesh{policy: "REGISTRY_ONLY"}, nil)
	prev := strconv.Itoa(seededRating)
	for i := 0; i < 5; i++ {
		r := e.d.Run(context.Background(), c)
		if r.Status != check.Passed {
			t.Fatalf("%s %s\n%s", r.Status, r.Message, r.Trace())
		}
		rating := e.d.vars["rating"]
		if rating == prev {
			t.Errorf("run %d: rating %s repeats the previous value", i, rating)
		}
		if got := strconv.Itoa(e.db.rating(1)); got != rating {
			t.Errorf("run %d: database has rating %s, the check set %s", i, got, rating)
		}
		prev = rating
	}
	if len(e.db.stmts) != 5 {
		t.Errorf("admin statements %v", e.db.stmts)
	}
	// Negative case: no admin write, so the rating read is the previous one.
	noWrite := c.Clone()
	noWrite.Steps[0].AdminSQL = nil
	r := e.d.Run(context.Background(), noWrite)
	next := e.d.vars["rating"]
	want := fmt.Sprintf("expected rows [1,%s 2,4], got [1,%s 2,4]", next, prev)
	if r.Status != check.Failed || !strings.Contains(r.Message, want) {
		t.Fatalf("%s %q, want a failure containing %q", r.Status, r.Message, want)
	}
}

// shipped returns the shipped check named name.
func shipped(t *testing.T, name string) check.Check {
	t.Helper()
	for _, c := range suites.All() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no shipped check %s", name)
	return check.Check{}
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
		NegativeControl: noControl}
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
