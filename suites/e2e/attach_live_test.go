package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/internal/livetest"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
)

// Env of the child process of TestLiveAttach's crash step.
const (
	envAttachChild  = "MESHCONFORM_ATTACH_CHILD_KUBECONFIG"
	envAttachImage  = "MESHCONFORM_ATTACH_CHILD_IMAGE"
	attachLiveName  = "meshconform-attach-live"
	attachLiveNS    = "mc-attach"
	attachCrashNS   = "mc-attach-crash"
	attachLeaseSecs = 4 * time.Second
)

// TestLiveAttach shows attach mode on a kind cluster with Istio installed
// by an admin (the local istiod; no Envoy here, so the sidecar and the
// gateway never become ready), run with a ServiceAccount that has exactly
// clusters/manifests/meshconform-attach.yaml:
//
//   - with one permission taken away, the run stops in the preflight,
//     names it, and creates nothing;
//   - with the shipped role it completes (checks run or are skipped with
//     the reason), and a dump of every object outside its namespaces
//     (CoreDNS, kube-system and istio-system included) is the same after
//     the run as before it;
//   - an attach run killed with SIGKILL after creating its namespaces is
//     swept, by label and expired Lease, by the next run.
func TestLiveAttach(t *testing.T) {
	livetest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	cl, err := clusters.Setup(ctx, clusters.WithName(attachLiveName), clusters.WithLogger(log), clusters.WithStateDir(t.TempDir()))
	if cl != nil {
		t.Cleanup(func() {
			if err := cl.Teardown(context.Background()); err != nil {
				t.Errorf("delete kind cluster: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("create kind cluster: %v", err)
	}
	t.Logf("MEASURE kind cluster %.1fs", time.Since(start).Seconds())

	// The admin's part: Istio (local istiod), the agent image on the nodes
	// (what `kind load docker-image` does), the ServiceAccount.
	start = time.Now()
	p := NewPrinter(testWriter{t}, time.Now(), false)
	istiod, err := images.Istiod(ctx, images.WithLogger(p))
	if err != nil {
		t.Fatalf("istiod image: %v", err)
	}
	agent, err := images.Agent(ctx, images.WithLogger(p))
	if err != nil {
		t.Fatalf("agent image: %v", err)
	}
	for _, ref := range []string{istiod.Ref, agent} {
		if err := cl.LoadImage(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	_, ierr := istio.Install(ctx, cl, istio.WithHub(istiod.Hub), istio.WithTag(istiod.Tag))
	if ierr != nil && !clusters.IsNotReady(ierr) {
		t.Fatalf("install Istio: %v", ierr)
	}
	t.Logf("MEASURE Istio installed (local istiod) in %.1fs; data plane: %v", time.Since(start).Seconds(), ierr)

	role := readAttachRole(t)
	full := serviceAccountKubeconfig(t, cl, "meshconform-attach", role)
	short := role.DeepCopy()
	short.Rules = slices.DeleteFunc(short.Rules, func(r rbacv1.PolicyRule) bool { return slices.Equal(r.Resources, []string{"pods/exec"}) })
	if len(short.Rules) != len(role.Rules)-1 {
		t.Fatalf("the shipped role has no rule for pods/exec alone")
	}
	lacking := serviceAccountKubeconfig(t, cl, "meshconform-attach-noexec", short)
	dyn, disc := dynamicClients(t, cl)
	skip := []string{attachLiveNS, FixturesNamespace(attachLiveNS), attachCrashNS, FixturesNamespace(attachCrashNS)}
	before := dump(t, dyn, disc, skip)

	t.Run("MissingPermissionStopsBeforeAnyChange", func(t *testing.T) {
		env, err := Setup(ctx, Config{Kubeconfig: lacking, InstallIstio: true, AgentImage: agent, Namespace: attachLiveNS, Printer: NewPrinter(testWriter{t}, time.Now(), true)})
		terr := env.Teardown(ctx)
		var ae *AccessError
		var pe *PhaseError
		if !errors.As(err, &pe) || pe.Phase != PhasePreflight || !errors.As(err, &ae) {
			t.Fatalf("Setup = %v, want a preflight AccessError", err)
		}
		if terr != nil {
			t.Errorf("teardown: %v", terr)
		}
		for _, m := range ae.Missing {
			if !strings.HasPrefix(m, "create pods/exec in namespace ") {
				t.Errorf("listed %q, which the role grants", m)
			}
		}
		if len(ae.Missing) != 2 {
			t.Errorf("missing %q, want create pods/exec in both namespaces", ae.Missing)
		}
		if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, attachLiveNS, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace %s after a failed preflight: %v", attachLiveNS, err)
		}
	})

	t.Run("CompletesAndChangesNothingElse", func(t *testing.T) {
		start := time.Now()
		pr := NewPrinter(testWriter{t}, time.Now(), true)
		env, err := Setup(ctx, Config{Kubeconfig: full, InstallIstio: true, AgentImage: agent, Namespace: attachLiveNS, Printer: pr})
		if err != nil {
			_ = env.Teardown(ctx)
			t.Fatalf("Setup: %v", err)
		}
		if env.Policy.Mode != "ALLOW_ANY" || env.Revision != "default" {
			t.Errorf("found policy %+v, revision %q; want ALLOW_ANY from the installed mesh config, revision default", env.Policy, env.Revision)
		}
		run, skipped := env.SkipNotApplicable(suites.All(), true)
		results := append(skipped, check.RunAll(ctx, env.Driver, run, check.RunOptions{NegativeControls: true})...)
		for _, r := range results {
			t.Logf("%s %s/%s: %s", r.Status, r.Suite, r.Name, firstLine(r.Message))
			if r.Status == check.Passed || r.Status == check.Failed {
				continue
			}
			// Here no sidecar can start (no proxyv2): the mesh checks that
			// can run say so; everything else is skipped with the reason.
			if r.Status == check.Error && !strings.HasPrefix(r.Message, check.ErrNotReady) {
				t.Errorf("%s: %s", r.Name, r.Message)
			}
		}
		if err := env.Teardown(ctx); err != nil {
			t.Fatalf("teardown: %v", err)
		}
		for _, ph := range env.Phases() {
			t.Logf("MEASURE phase %-10s %6.1fs  %s", ph.Name, ph.Elapsed.Seconds(), ph.Detail)
		}
		t.Logf("MEASURE attach run (setup, %d results, teardown) %.1fs", len(results), time.Since(start).Seconds())
		after := dump(t, dyn, disc, skip)
		compareDumps(t, before, after)
	})

	t.Run("CrashedRunIsSwept", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAttachChild$", "-test.v")
		cmd.Env = append(os.Environ(), envAttachChild+"="+full, envAttachImage+"="+agent)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once its namespaces and Lease exist.
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := cl.Client().CoordinationV1().Leases(FixturesNamespace(attachCrashNS)).Get(ctx, LeaseName, metav1.GetOptions{})
			return err == nil, nil
		})
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if err != nil {
			t.Fatalf("the child run never created its namespaces: %v\n%s", err, out.String())
		}
		for _, ns := range []string{attachCrashNS, FixturesNamespace(attachCrashNS)} {
			if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				t.Fatalf("after SIGKILL: namespace %s: %v", ns, err)
			}
		}
		// While its Lease is valid nobody sweeps it...
		env, err := Setup(ctx, Config{Kubeconfig: full, AgentImage: agent, Namespace: attachLiveNS, LeaseDuration: attachLeaseSecs, Printer: NewPrinter(testWriter{t}, time.Now(), true)})
		if err != nil {
			_ = env.Teardown(ctx)
			t.Fatal(err)
		}
		if err := env.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, attachCrashNS, metav1.GetOptions{}); err != nil {
			t.Errorf("a run swept namespace %s whose Lease had not expired: %v", attachCrashNS, err)
		}
		// ...once it expired (twice its duration without renewal), the next run does.
		time.Sleep(2*attachLeaseSecs + time.Second)
		sw := time.Now()
		env, err = Setup(ctx, Config{Kubeconfig: full, AgentImage: agent, Namespace: attachLiveNS, LeaseDuration: attachLeaseSecs, Printer: NewPrinter(testWriter{t}, time.Now(), true)})
		terr := env.Teardown(ctx)
		if err != nil || terr != nil {
			t.Fatalf("Setup %v, teardown %v", err, terr)
		}
		swept := ""
		for _, ph := range env.Phases() {
			if ph.Name == PhaseSweep {
				swept = ph.Detail
				t.Logf("MEASURE sweep of the crashed run %.1fs (run total %.1fs): %s", ph.Elapsed.Seconds(), time.Since(sw).Seconds(), ph.Detail)
			}
		}
		for _, ns := range []string{attachCrashNS, FixturesNamespace(attachCrashNS)} {
			if !strings.Contains(swept, ns) {
				t.Errorf("sweep %q does not name %s", swept, ns)
			}
			if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("namespace %s of the killed run still there: %v", ns, err)
			}
		}
		compareDumps(t, before, dump(t, dyn, disc, skip))
	})
}

// TestAttachChild is the attach run TestLiveAttach kills: it sets up and
// waits to be killed. It does nothing unless started by that test.
func TestAttachChild(t *testing.T) {
	kc := os.Getenv(envAttachChild)
	if kc == "" {
		t.Skip("only run as TestLiveAttach's child process")
	}
	_, err := Setup(context.Background(), Config{Kubeconfig: kc, AgentImage: os.Getenv(envAttachImage), Namespace: attachCrashNS,
		LeaseDuration: attachLeaseSecs, Printer: NewPrinter(os.Stderr, time.Now(), true)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Minute)
}

// serviceAccountKubeconfig creates ServiceAccount name bound (by a
// ClusterRoleBinding) to a copy of role named name, and writes a
// kubeconfig that authenticates with its token only.
func serviceAccountKubeconfig(t *testing.T, cl *clusters.Cluster, name string, role *rbacv1.ClusterRole) string {
	t.Helper()
	ctx := context.Background()
	kc := cl.Client()
	role = role.DeepCopy()
	role.Name = name
	if _, err := kc.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}}}
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tok, err := kc.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin := cl.RESTConfig()
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		if ca, err = os.ReadFile(admin.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kind"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "kind", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func dynamicClients(t *testing.T, cl *clusters.Cluster) (dynamic.Interface, discovery.DiscoveryInterface) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cl.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cl.Dynamic(), dc
}

// changesByThemselves are resources whose objects change without anyone
// acting on the cluster (events, controllers' leader and node leases).
var changesByThemselves = map[string]bool{"events": true, "events.events.k8s.io": true, "leases.coordination.k8s.io": true}

// dump renders every listable object outside skipNS as canonical JSON by
// "resource ns/name", without the fields that change by themselves:
// resourceVersion, managedFields, generation, status, and the leader
// annotation of client-go's ConfigMap lock (changesByThemselves lists the
// resources left out whole).
func dump(t *testing.T, dyn dynamic.Interface, disc discovery.DiscoveryInterface, skipNS []string) map[string]string {
	t.Helper()
	ctx := context.Background()
	lists, err := discovery.ServerPreferredResources(disc)
	if err != nil && len(lists) == 0 {
		t.Fatalf("discovery: %v", err)
	}
	out := map[string]string{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			key := r.Name
			if gv.Group != "" {
				key += "." + gv.Group
			}
			if changesByThemselves[key] {
				continue
			}
			ul, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Logf("dump: list %s: %v", key, err)
				continue
			}
			for _, u := range ul.Items {
				if slices.Contains(skipNS, u.GetNamespace()) || (key == "namespaces" && slices.Contains(skipNS, u.GetName())) {
					continue
				}
				out[key+" "+u.GetNamespace()+"/"+u.GetName()] = canonical(u)
			}
		}
	}
	return out
}

func canonical(u unstructured.Unstructured) string {
	o := u.DeepCopy().Object
	unstructured.RemoveNestedField(o, "status")
	for _, f := range []string{"resourceVersion", "managedFields", "generation"} {
		unstructured.RemoveNestedField(o, "metadata", f)
	}
	// A leader-election record (client-go's ConfigMap lock, which istiod
	// renews every few seconds) changes by itself, like a Lease.
	unstructured.RemoveNestedField(o, "metadata", "annotations", "control-plane.alpha.kubernetes.io/leader")
	if a, ok := o["metadata"].(map[string]any)["annotations"].(map[string]any); ok && len(a) == 0 {
		unstructured.RemoveNestedField(o, "metadata", "annotations")
	}
	b, _ := json.Marshal(o)
	return string(b)
}

func compareDumps(t *testing.T, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range before {
		switch w, ok := after[k]; {
		case !ok:
			diffs = append(diffs, "gone: "+k)
		case w != v:
			diffs = append(diffs, fmt.Sprintf("changed: %s\n  before %s\n  after  %s", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "new: "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%d objects outside the run's namespaces differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	t.Logf("MEASURE compared %d objects outside the run's namespaces (every listable resource but %v): %d differ", len(before), mapsKeys(changesByThemselves), len(diffs))
}

// testWriter sends a Printer's or logger's lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
