package istio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/internal/podstatus"
)

// TestDefaultTagMatchesModule checks DefaultTag against the VERSION file
// of the istio.io/istio module this binary was built with.
func TestDefaultTagMatchesModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Skipf("cannot locate the istio.io/istio module: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "VERSION"))
	if err != nil {
		t.Skipf("istio module source not readable (%v)", err)
	}
	minor := strings.TrimSpace(string(b))
	if !strings.HasPrefix(DefaultTag, minor+".") {
		t.Errorf("DefaultTag %s does not match the module's VERSION %s", DefaultTag, minor)
	}
}

func TestRenderIOP(t *testing.T) {
	cfg, err := newConfig(WithHub("example.com/istio"), WithTag("1.31.0"), WithOutboundPolicy(RegistryOnly))
	if err != nil {
		t.Fatal(err)
	}
	s, err := renderIOP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var iop map[string]any
	if err := yaml.Unmarshal([]byte(s), &iop); err != nil {
		t.Fatalf("IOP is not YAML: %v\n%s", err, s)
	}
	for _, want := range []string{"profile: minimal", "hub: example.com/istio", "tag: 1.31.0", "mode: REGISTRY_ONLY", "type: NodePort", "nodePort: 31443", "port: 443", "enabled: true"} {
		if !strings.Contains(s, want) {
			t.Errorf("IOP lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, "enabled: true") {
		t.Errorf("the ingress gateway is not enabled by default:\n%s", s)
	}
	cp, _ := newConfig(WithoutIngressGateway())
	if s, _ := renderIOP(cp); !strings.Contains(s, "enabled: false") || strings.Contains(s, "enabled: true") {
		t.Errorf("WithoutIngressGateway: the gateway is still enabled:\n%s", s)
	}
	for _, bad := range [][]Option{{WithOutboundPolicy("ALLOW")}, {WithTag("")}, {WithIngressNodePorts(443, 31080)}, {WithIngressNodePorts(31443, 31443)}} {
		if _, err := newConfig(bad...); err == nil {
			t.Errorf("options %v accepted", bad)
		}
	}
}

func TestMeshPolicyEdit(t *testing.T) {
	mesh := `# managed by istioctl
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
enablePrometheusMerge: true
outboundTrafficPolicy:
  mode: ALLOW_ANY
rootNamespace: istio-system
`
	rOnly := RegistryOnly
	next, err := setMeshPolicy(mesh, &rOnly)
	if err != nil {
		t.Fatal(err)
	}
	if mode, set, _ := meshPolicy(next); mode != RegistryOnly || !set {
		t.Errorf("mode %q set=%v in\n%s", mode, set, next)
	}
	for _, keep := range []string{"# managed by istioctl", "discoveryAddress: istiod.istio-system.svc:15012", "enablePrometheusMerge: true", "rootNamespace: istio-system"} {
		if !strings.Contains(next, keep) {
			t.Errorf("lost %q:\n%s", keep, next)
		}
	}
	if strings.Index(next, "outboundTrafficPolicy") > strings.Index(next, "rootNamespace") {
		t.Errorf("key order changed:\n%s", next)
	}
	// Unset: the key is added; removing it again leaves no empty map.
	added, _ := setMeshPolicy("rootNamespace: istio-system\n", &rOnly)
	if mode, _, _ := meshPolicy(added); mode != RegistryOnly {
		t.Errorf("add: %s", added)
	}
	removed, _ := setMeshPolicy(added, nil)
	if strings.Contains(removed, "outboundTrafficPolicy") {
		t.Errorf("remove: %s", removed)
	}
	if _, err := setMeshPolicy("- a\n- b\n", &rOnly); err == nil {
		t.Error("a non-mapping mesh config must fail")
	}
}

// listenerDump is the virtualOutbound listener Istio's generator builds
// under the policy whose catch-all is catchAll, as Envoy serves
// config_dump?resource=dynamic_listeners (testdata, checked against the
// generator by TestGoldenConfigDumps).
func listenerDump(t *testing.T, catchAll string) []byte {
	t.Helper()
	policy := map[string]string{PassthroughCluster: AllowAny, BlackHoleCluster: RegistryOnly}[catchAll]
	b, err := os.ReadFile(filepath.Join("testdata", "listeners_"+policy+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutboundCatchAllCluster(t *testing.T) {
	for _, want := range []string{PassthroughCluster, BlackHoleCluster} {
		got, err := OutboundCatchAllCluster(listenerDump(t, want))
		if err != nil || got != want {
			t.Errorf("got %q, %v; want %s", got, err, want)
		}
	}
	// A chain renamed is not the catch-all: no guess from another chain.
	renamed := strings.ReplaceAll(string(listenerDump(t, PassthroughCluster)), `"virtualOutbound-catchall-tcp"`, `"x"`)
	if got, err := OutboundCatchAllCluster([]byte(renamed)); err == nil || !strings.Contains(err.Error(), "no catch-all TCP filter chain") {
		t.Errorf("renamed chain: %q %v", got, err)
	}
	// Only a warming copy (not serving yet): no active listener.
	warmingOnly := strings.ReplaceAll(string(listenerDump(t, BlackHoleCluster)), `"active_state"`, `"warming_state"`)
	if got, err := OutboundCatchAllCluster([]byte(warmingOnly)); err == nil || !strings.Contains(err.Error(), "no active virtualOutbound listener") {
		t.Errorf("warming only: %q %v", got, err)
	}
	if _, err := OutboundCatchAllCluster([]byte(`{"configs":[]}`)); err == nil || !strings.Contains(err.Error(), "no active virtualOutbound listener") {
		t.Errorf("empty dump: %v", err)
	}
	if _, err := OutboundCatchAllCluster([]byte(`not json`)); err == nil {
		t.Error("broken dump accepted")
	}
}

// fakeMesh builds a Mesh over a fake clientset.
func fakeMesh(t *testing.T, mode clusters.Mode, objs ...runtime.Object) (*Mesh, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	cl, err := clusters.ForClient(client, mode)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := newConfig(WithTimeouts(Timeouts{Poll: time.Millisecond, ImagePullGrace: time.Nanosecond, Preflight: time.Minute, ProxyConfig: time.Minute}))
	return &Mesh{cl: cl, cfg: cfg, log: cl.Logger(), version: cfg.tag, trackers: map[string]*podstatus.Tracker{}}, client
}

func pod(ns, name string, labels map[string]string, containers []corev1.Container, statuses []corev1.ContainerStatus, ready bool) *corev1.Pod {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: containers},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: statuses,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: cond}}},
	}
}

func running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func pulling(name, image string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", image)}}}
}

var (
	readyIstiod = pod(Namespace, "istiod-1", map[string]string{"app": "istiod"}, []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0"}}, []corev1.ContainerStatus{running("discovery")}, true)
	injectedNS  = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"istio-injection": "enabled"}}}
	plainNS     = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}
	clientLbl   = map[string]string{"app": "client"}
	appAndProxy = []corev1.Container{{Name: "app", Image: "testenv/tools:v1"}, {Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.31.0"}}
)

func TestPreflightReasons(t *testing.T) {
	one := int32(1)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "client-5c", Namespace: "app"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: clientLbl}}}}
	webhookEvent := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "ev", Namespace: "app"},
		InvolvedObject: corev1.ObjectReference{Kind: "ReplicaSet", Name: "client-5c", Namespace: "app"}, Reason: "FailedCreate", Type: corev1.EventTypeWarning,
		Message: `Error creating: Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": no endpoints available for service "istiod"`}

	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want []string // substrings of the reason; nil = ready
	}{
		{
			name: "istiod image cannot be pulled",
			objs: []runtime.Object{pod(Namespace, "istiod-1", map[string]string{"app": "istiod"}, []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0"}},
				[]corev1.ContainerStatus{pulling("discovery", "docker.io/istio/pilot:1.31.0")}, false)},
			want: []string{"environment not ready: istiod: pod istio-system/istiod-1 container discovery: image docker.io/istio/pilot:1.31.0 cannot be pulled (ImagePullBackOff)"},
		},
		{
			name: "no istiod at all",
			objs: nil,
			want: []string{"istiod", "no pod matching app=istiod"},
		},
		{
			name: "client pod rejected by the injection webhook",
			objs: []runtime.Object{readyIstiod, injectedNS, rs, webhookEvent},
			want: []string{"client pods app=client in app", "replicaset app/client-5c cannot create pods (FailedCreate)", "no endpoints available for service", "injection webhook is served by istiod"},
		},
		{
			name: "sidecar not injected",
			objs: []runtime.Object{readyIstiod, plainNS, pod("plain", "client-1", clientLbl, []corev1.Container{{Name: "app"}}, []corev1.ContainerStatus{running("app")}, true)},
			want: []string{"pod plain/client-1: sidecar not injected", "namespace plain is not labelled istio-injection=enabled"},
		},
		{
			name: "proxy image cannot be pulled",
			objs: []runtime.Object{readyIstiod, injectedNS, pod("app", "client-1", clientLbl, appAndProxy,
				[]corev1.ContainerStatus{running("app"), pulling("istio-proxy", "docker.io/istio/proxyv2:1.31.0")}, false)},
			want: []string{"pod app/client-1 container istio-proxy: image docker.io/istio/proxyv2:1.31.0 cannot be pulled (ImagePullBackOff)"},
		},
		{
			name: "ready",
			objs: []runtime.Object{readyIstiod, injectedNS, pod("app", "client-1", clientLbl, appAndProxy, []corev1.ContainerStatus{running("app"), running("istio-proxy")}, true)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := fakeMesh(t, clusters.Created, tc.objs...)
			ns := "app"
			if strings.Contains(tc.name, "not injected") {
				ns = "plain"
			}
			// "no istiod" only ends by timeout: keep it short.
			if tc.objs == nil {
				m.cfg.timeouts.Preflight = 50 * time.Millisecond
			}
			err := m.Preflight(context.Background(), ns, "app=client")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want ready, got %v", err)
				}
				return
			}
			var nre *NotReadyError
			if !errors.As(err, &nre) {
				t.Fatalf("want a *NotReadyError, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reason lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestWaitProxyPolicy(t *testing.T) {
	p := pod("app", "client-1", clientLbl, appAndProxy, []corev1.ContainerStatus{running("app"), running("istio-proxy")}, true)
	m, _ := fakeMesh(t, clusters.Created, p)
	var calls atomic.Int32
	old := proxyExec
	t.Cleanup(func() { proxyExec = old })
	proxyExec = func(_ context.Context, _ *Mesh, ns, name string, cmd ...string) ([]byte, error) {
		if ns != "app" || name != "client-1" || strings.Join(cmd, " ") != "pilot-agent request GET config_dump?resource=dynamic_listeners" {
			return nil, fmt.Errorf("unexpected exec %s/%s %v", ns, name, cmd)
		}
		// The new policy arrives at the third look.
		if calls.Add(1) < 3 {
			return listenerDump(t, PassthroughCluster), nil
		}
		return listenerDump(t, BlackHoleCluster), nil
	}
	if err := m.WaitProxyPolicy(context.Background(), "app", "client-1", RegistryOnly); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("config_dump read %d times, want 3", calls.Load())
	}
	if err := m.WaitProxyPolicy(context.Background(), "app", "client-1", "DENY"); err == nil {
		t.Error("unknown policy accepted")
	}

	// A pod without sidecar is an environment problem, not a timeout.
	m2, _ := fakeMesh(t, clusters.Created, pod("plain", "c", clientLbl, []corev1.Container{{Name: "app"}}, []corev1.ContainerStatus{running("app")}, true))
	if err := m2.WaitProxyPolicy(context.Background(), "plain", "c", AllowAny); !clusters.IsNotReady(err) {
		t.Errorf("no sidecar: %v", err)
	}
}

func TestSetOutboundPolicyAndRestore(t *testing.T) {
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: meshConfigMap, Namespace: Namespace},
		Data: map[string]string{"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\nrootNamespace: istio-system\n"}}
	m, client := fakeMesh(t, clusters.Reused, cm)
	if got, _ := m.OutboundPolicy(ctx); got != AllowAny {
		t.Errorf("default policy %q", got)
	}
	restore, err := m.SetOutboundPolicy(ctx, RegistryOnly)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.OutboundPolicy(ctx); got != RegistryOnly {
		t.Errorf("after set: %q", got)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := client.CoreV1().ConfigMaps(Namespace).Get(ctx, meshConfigMap, metav1.GetOptions{})
	if strings.Contains(after.Data["mesh"], "outboundTrafficPolicy") || !strings.Contains(after.Data["mesh"], "discoveryAddress") {
		t.Errorf("not restored:\n%s", after.Data["mesh"])
	}

	// Existing clusters: the mesh-wide policy is not changed.
	m2, _ := fakeMesh(t, clusters.Existing, cm.DeepCopy())
	if _, err := m2.SetOutboundPolicy(ctx, RegistryOnly); err == nil || !strings.Contains(err.Error(), "existing cluster") {
		t.Errorf("existing: %v", err)
	}
}

func TestIngressAddress(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: gatewayService, Namespace: Namespace}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Name: "http2", Port: 80, NodePort: 31080}, {Name: "https", Port: 443, NodePort: 31443}}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "n"}, {Type: corev1.NodeInternalIP, Address: "172.18.0.2"}}}}
	// A created cluster without its kind nodes (no published port to read):
	// not ready, and never the node's own address.
	m, _ := fakeMesh(t, clusters.Created, svc.DeepCopy(), node)
	host, port, err := m.IngressAddress(context.Background())
	if err == nil || !clusters.IsNotReady(err) || host == "172.18.0.2" {
		t.Errorf("created without published port: got %s:%d %v, want not ready", host, port, err)
	}
	// An existing cluster: the LoadBalancer address, else not ready.
	m, _ = fakeMesh(t, clusters.Existing, svc.DeepCopy(), node)
	if host, port, err := m.IngressAddress(context.Background()); err == nil || !clusters.IsNotReady(err) || host != "" {
		t.Errorf("existing without LB: got %s:%d %v, want not ready", host, port, err)
	}
	lb := svc.DeepCopy()
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}
	m, _ = fakeMesh(t, clusters.Existing, lb, node)
	if host, port, err := m.IngressAddress(context.Background()); err != nil || host != "192.0.2.10" || port != 443 {
		t.Errorf("existing with LB: got %s:%d %v", host, port, err)
	}
}

func TestAttachVersion(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: Namespace}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "gcr.io/istio-release/pilot:1.30.2"}}}}}}
	client := fake.NewClientset(d)
	cl, _ := clusters.ForClient(client, clusters.Existing)
	m, err := Attach(context.Background(), cl)
	if err != nil || m.Version() != "1.30.2" || m.Hub() != "" {
		t.Errorf("attach: %v %v", m, err)
	}
	if _, err := Install(context.Background(), cl); err == nil || !strings.Contains(err.Error(), "Attach") {
		t.Errorf("install on an existing cluster: %v", err)
	}
	empty, _ := clusters.ForClient(fake.NewClientset(), clusters.Existing)
	if _, err := Attach(context.Background(), empty); err == nil {
		t.Error("attach without istiod accepted")
	}
}

// Attach finds a revisioned control plane where it runs and judges
// readiness by that Deployment's pods only: istiod-1-31's Ready pod makes
// it ready, a Ready pod of another revision does not.
func TestAttachRevisionedControlPlane(t *testing.T) {
	sel := map[string]string{"app": "istiod", "istio.io/rev": "1-31"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-1-31", Name: "istiod-1-31", Labels: sel},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0"}}}}}}
	other := pod("istio-1-31", "istiod-1-30-x", map[string]string{"app": "istiod", "istio.io/rev": "1-30"}, nil, nil, true)
	client := fake.NewClientset(dep, other)
	cl, err := clusters.ForClient(client, clusters.Existing)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Attach(ctx, cl); err == nil || !strings.Contains(err.Error(), "istio-system/istiod") {
		t.Fatalf("default control plane: %v, want istio-system/istiod not found", err)
	}
	m, err := Attach(ctx, cl, WithControlPlane("istio-1-31", "istiod-1-31"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "1.31.0" {
		t.Errorf("version %q", m.Version())
	}
	if _, _, err := m.IstiodReadySince(ctx); !clusters.IsNotReady(err) || !strings.Contains(err.Error(), "istio.io/rev=1-31") {
		t.Fatalf("only another revision's pod is Ready: %v", err)
	}
	if _, err := client.CoreV1().Pods("istio-1-31").Create(ctx, pod("istio-1-31", "istiod-1-31-y", sel, nil, nil, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, p, err := m.IstiodReadySince(ctx); err != nil || p != "istiod-1-31-y" {
		t.Fatalf("revision's pod Ready: pod %q, %v", p, err)
	}
}
