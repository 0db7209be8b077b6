package fromcluster_test

// TestSameVerdictsFromClusterAndFiles puts objects into a real kind
// cluster (Istio's CRDs from the charts embedded in the istio module, no
// images) and compares, check by check, what the simulation concludes
// from the cluster's copy (read with a ServiceAccount bound to exactly
// clusters/manifests/meshconform-reader.yaml) and from the files. It needs
// Docker and KIND_NODE_IMAGE (eval "$(../shared/testenv/env)"); without
// them it skips, except under CI=true where it fails.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/meshconform/meshconform/internal/livetest"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
	istiomanifests "istio.io/istio/manifests"
	"istio.io/istio/pkg/config/mesh"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

const readerRole = "../../../clusters/manifests/meshconform-reader.yaml"

// meshText is the mesh config the fake control plane publishes; the file
// side gets the same text (as --mesh-config would give it).
const meshText = "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"

func needLive(t *testing.T) { t.Helper(); livetest.Need(t) }

// liveEnv is one kind cluster with Istio's CRDs, a fake istiod (a
// Deployment scaled to zero, so no image), its mesh ConfigMap and
// ip-masq-agent's ConfigMap.
type liveEnv struct {
	cl      *clusters.Cluster
	reader  *rest.Config // the ServiceAccount bound to meshconform-reader
	applied []clusters.Object
}

func setupLive(t *testing.T) *liveEnv {
	t.Helper()
	needLive(t)
	ctx := context.Background()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "mc-fromcluster-" + hex.EncodeToString(b)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := clusters.Setup(ctx, clusters.WithName(name), clusters.WithLogger(log), clusters.WithStateDir(t.TempDir()))
	if cl != nil {
		t.Cleanup(func() {
			if err := cl.Teardown(context.Background()); err != nil {
				t.Errorf("teardown kind cluster %s: %v", name, err)
			}
		})
	}
	if err != nil {
		t.Fatalf("create kind cluster: %v", err)
	}
	crds, err := fs.ReadFile(istiomanifests.BuiltinOrDir(""), "charts/base/files/crd-all.gen.yaml")
	if err != nil {
		t.Fatalf("embedded Istio CRDs: %v", err)
	}
	if _, err := cl.Apply(ctx, "", string(crds)); err != nil {
		t.Fatalf("install Istio CRDs: %v", err)
	}
	for _, ns := range []string{"istio-system", "kube-system"} {
		if err := cl.EnsureNamespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	zero := int32(0)
	istiod := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod-1-31", Namespace: "istio-system",
			Labels: map[string]string{"app": "istiod", "istio.io/rev": "1-31"}},
		Spec: appsv1.DeploymentSpec{Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "istiod"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0-distroless"}}}}},
	}
	if _, err := cl.Client().AppsV1().Deployments("istio-system").Create(ctx, istiod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-1-31", Namespace: "istio-system"}, Data: map[string]string{"mesh": meshText}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ip-masq-agent", Namespace: "kube-system"}, Data: map[string]string{"config": "nonMasqueradeCIDRs: [10.8.0.0/14]\n"}},
	} {
		if _, err := cl.Client().CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &liveEnv{cl: cl, reader: serviceAccountConfig(t, cl, "meshconform-reader", readRole(t))}
}

// readRole returns the shipped ClusterRole.
func readRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(readerRole)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("%s: %v", readerRole, err)
	}
	return &role
}

// serviceAccountConfig creates a ServiceAccount bound to role and returns
// a client config that authenticates with its token only.
func serviceAccountConfig(t *testing.T, cl *clusters.Cluster, name string, role *rbacv1.ClusterRole) *rest.Config {
	t.Helper()
	ctx := context.Background()
	kc := cl.Client()
	role = role.DeepCopy()
	role.Name = name
	if _, err := kc.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if _, err := kc.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}}}
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := kc.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin := cl.RESTConfig()
	return &rest.Config{Host: admin.Host, BearerToken: tok.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile}}
}

// sync makes the cluster hold exactly the read kinds among objs (other
// kinds, e.g. Deployments, are not applied: the simulation ignores them).
func (e *liveEnv) sync(t *testing.T, text string) {
	t.Helper()
	ctx := context.Background()
	if err := e.cl.Delete(ctx, e.applied); err != nil {
		t.Fatalf("delete previous objects: %v", err)
	}
	e.applied = nil
	us, err := clusters.DecodeYAML(text)
	if err != nil {
		t.Fatal(err)
	}
	var keep []*unstructured.Unstructured
	for _, u := range us {
		if slices.ContainsFunc(fromcluster.Kinds, func(k fromcluster.Kind) bool { return k.Kind == u.GetKind() }) {
			if u.GetNamespace() == "" {
				u.SetNamespace("default") // as sim.LoadPaths(..., "default") does
			}
			if err := e.cl.EnsureNamespace(ctx, u.GetNamespace(), nil); err != nil {
				t.Fatal(err)
			}
			keep = append(keep, u)
		}
	}
	e.applied, err = e.cl.ApplyObjects(ctx, "", keep)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func (e *liveEnv) read(t *testing.T) *fromcluster.Snapshot {
	t.Helper()
	snap, err := fromcluster.Read(context.Background(), fromcluster.WithRESTConfig(e.reader, "kind-test"), fromcluster.WithPageSize(2))
	if err != nil {
		t.Fatalf("read cluster: %v", err)
	}
	return snap
}

// verdicts runs checks on objs and renders each result as comparable lines.
func verdicts(t *testing.T, objs []sim.Object, mc *meshconfig.MeshConfig, checks []check.Check) []string {
	t.Helper()
	d, err := sim.New(sim.WithEnv(suites.SimEnv()), sim.WithMeshConfig(mc), sim.WithObjects(objs))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out []string
	for _, r := range check.RunAll(context.Background(), d, checks, check.RunOptions{}) {
		out = append(out, fmt.Sprintf("%s: %s %s", r.Name, r.Status, r.Message))
		for _, o := range r.Observations {
			out = append(out, fmt.Sprintf("  %s %s: observed %s cluster %q seen as %q err %q", o.Step, o.Expect.To, o.Observed, o.Cluster, o.SeenAs, o.Err))
		}
	}
	return out
}

func sameLines(t *testing.T, what string, fromFiles, fromCluster []string) {
	t.Helper()
	if len(fromFiles) == 0 {
		t.Errorf("%s: nothing was simulated", what)
	}
	if !slices.Equal(fromFiles, fromCluster) {
		t.Errorf("%s: verdicts differ\n-f:\n  %s\n--from-cluster:\n  %s", what,
			strings.Join(fromFiles, "\n  "), strings.Join(fromCluster, "\n  "))
	}
}

func mustMesh(t *testing.T, text string) *meshconfig.MeshConfig {
	t.Helper()
	mc, err := mesh.ApplyMeshConfigDefaults(text)
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func TestSameVerdictsFromClusterAndFiles(t *testing.T) {
	e := setupLive(t)
	ctx := context.Background()

	t.Run("ControlPlaneAndConfigMaps", func(t *testing.T) {
		snap := e.read(t)
		cp := snap.ControlPlane
		if cp == nil || cp.Revision != "1-31" || cp.Version != "1.31.0" || cp.Namespace != "istio-system" {
			t.Fatalf("control plane = %+v, want istio-system istiod revision 1-31 version 1.31.0", cp)
		}
		if snap.MeshConfig != meshText || snap.MeshConfigSource != "istio-system/istio-1-31" {
			t.Errorf("mesh config %q from %q, want %q from istio-system/istio-1-31", snap.MeshConfig, snap.MeshConfigSource, meshText)
		}
		if !snap.IPMasqFound || !strings.Contains(snap.IPMasqConfig, "10.8.0.0/14") {
			t.Errorf("ip-masq-agent config = %v %q", snap.IPMasqFound, snap.IPMasqConfig)
		}
	})

	t.Run("Cases", func(t *testing.T) {
		names, _ := filepath.Glob("../testdata/cases/*-expect.yaml")
		if len(names) < 5 {
			t.Fatalf("../testdata/cases holds %d cases, want the 5 of ../shared/cases", len(names))
		}
		for _, exp := range names {
			name := strings.TrimSuffix(filepath.Base(exp), "-expect.yaml")
			t.Run(name, func(t *testing.T) {
				path := filepath.Join("../testdata/cases", name+".yaml")
				text, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				files, err := sim.LoadPaths([]string{path}, "default")
				if err != nil {
					t.Fatal(err)
				}
				e.sync(t, string(text))
				snap := e.read(t)
				mc := mustMesh(t, snap.MeshConfig)
				run := func(objs []sim.Object) []string {
					l, err := expectations.Load(exp, sim.IndexHosts(objs))
					if err != nil {
						// A case the host check rejects must be rejected alike.
						return []string{"load: " + err.Error()}
					}
					var cs []check.Check
					for _, c := range l.Checks {
						if c.Masquerade == nil {
							c.Policy = l.Policy
							if c.Policy == "" {
								c.Policy = check.OutboundPolicy(mc.GetOutboundTrafficPolicy().GetMode().String())
							}
						}
						cs = append(cs, c)
					}
					return verdicts(t, objs, mc, cs)
				}
				sameLines(t, name, run(files), run(snap.Objects))
			})
		}
	})

	t.Run("BuiltinSuites", func(t *testing.T) {
		env := suites.SimEnv()
		mc := mustMesh(t, meshText)
		for _, c := range suites.All() {
			if c.Masquerade != nil {
				continue // no Istio objects: ip-masq-agent config only
			}
			rc, err := env.Resolve(c)
			if err != nil {
				t.Fatal(err)
			}
			state := map[string]string{}
			var order []string
			for i, step := range rc.Steps {
				for _, n := range step.Delete {
					delete(state, n)
					order = slices.DeleteFunc(order, func(s string) bool { return s == n })
				}
				for _, m := range step.Apply {
					state[m.Name] = m.Text
					order = append(order, m.Name)
				}
				var text []string
				var files []sim.Object
				for _, n := range order {
					objs, err := sim.ParseYAML(c.Name+"/"+n+".yaml", []byte(state[n]), env.Namespace)
					if err != nil {
						t.Fatal(err)
					}
					files = append(files, objs...)
					text = append(text, state[n])
				}
				// The objects without namespace go where the check puts them.
				e.sync(t, withNamespace(t, strings.Join(text, "\n---\n"), env.Namespace))
				snap := e.read(t)
				// The check's own manifests are now the base objects, so
				// the step is run alone, without applying anything.
				static := c.Clone()
				static.Steps = []check.Step{{Name: c.Steps[i].Name, Expect: c.Steps[i].Expect}}
				what := fmt.Sprintf("%s step %q", c.Name, step.Name)
				sameLines(t, what, verdicts(t, files, mc, []check.Check{static}), verdicts(t, snap.Objects, mc, []check.Check{static}))
			}
		}
	})

	t.Run("FilesWinOverCluster", func(t *testing.T) {
		e.sync(t, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec:\n  hosts: [api.example.org]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n")
		snap := e.read(t)
		files, err := sim.ParseYAML("change.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec:\n  hosts: [api.example.net]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"), "default")
		if err != nil {
			t.Fatal(err)
		}
		merged, replaced := fromcluster.Merge(snap.Objects, files)
		if !slices.Equal(replaced, []string{"ServiceEntry shop/api"}) {
			t.Errorf("replaced = %v", replaced)
		}
		h := sim.IndexHosts(merged)
		if !h.Declared("api.example.net", "shop") || h.Declared("api.example.org", "shop") {
			t.Errorf("merged objects do not carry the file's version of shop/api")
		}
	})

	t.Run("RevisionPick", func(t *testing.T) {
		zero := int32(0)
		canary := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod-canary", Namespace: "istio-system",
				Labels: map[string]string{"app": "istiod", "istio.io/rev": "canary"}},
			Spec: appsv1.DeploymentSpec{Replicas: &zero,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod", "istio.io/rev": "canary"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "istiod", "istio.io/rev": "canary"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.30.2"}}}}},
		}
		dc := e.cl.Client().AppsV1().Deployments("istio-system")
		if _, err := dc.Create(ctx, canary, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := dc.Delete(ctx, canary.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		}()
		_, err := fromcluster.Read(ctx, fromcluster.WithRESTConfig(e.reader, "kind-test"))
		if err == nil || !strings.Contains(err.Error(), "1-31, canary") || !strings.Contains(err.Error(), "--revision") {
			t.Fatalf("two revisions without --revision: err = %v, want both named and --revision suggested", err)
		}
		snap, err := fromcluster.Read(ctx, fromcluster.WithRESTConfig(e.reader, "kind-test"), fromcluster.WithRevision("canary"))
		if err != nil {
			t.Fatal(err)
		}
		if cp := snap.ControlPlane; cp.Revision != "canary" || cp.Version != "1.30.2" || snap.MeshConfigSource != "" {
			t.Errorf("--revision canary: control plane %+v, mesh config from %q (want none: istio-canary does not exist)", cp, snap.MeshConfigSource)
		}
	})

	// Negative control: without one of the rules the read must fail, so
	// the comparison above really ran with exactly the shipped role.
	t.Run("RoleIsNeeded", func(t *testing.T) {
		role := readRole(t)
		for i := range role.Rules {
			role.Rules[i].Resources = slices.DeleteFunc(slices.Clone(role.Rules[i].Resources), func(r string) bool { return r == "workloadentries" })
		}
		rc := serviceAccountConfig(t, e.cl, "meshconform-reader-short", role)
		_, err := fromcluster.Read(ctx, fromcluster.WithRESTConfig(rc, "kind-test"))
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "workloadentries") {
			t.Fatalf("read without workloadentries permission: err = %v, want forbidden on workloadentries", err)
		}
	})
}

func withNamespace(t *testing.T, text, ns string) string {
	t.Helper()
	us, err := clusters.DecodeYAML(text)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, u := range us {
		if u.GetNamespace() == "" {
			u.SetNamespace(ns)
		}
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "---\n")
}
