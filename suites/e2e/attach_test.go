package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pkg/config"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

const attachRole = "../../clusters/manifests/meshconform-attach.yaml"

func readAttachRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(attachRole)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("%s: %v", attachRole, err)
	}
	return &role
}

// TestShippedAttachRoleIsAttachRules: the ClusterRole users apply is the
// one the preflight reviews, rule for rule, and it writes nothing but its
// own namespaces' objects (no write verb on a cluster-wide read rule).
func TestShippedAttachRoleIsAttachRules(t *testing.T) {
	role := readAttachRole(t)
	want := AttachRules()
	if role.Name != "meshconform-attach" || len(role.Rules) != len(want) {
		t.Fatalf("%s: name %q with %d rules, want meshconform-attach with %d", attachRole, role.Name, len(role.Rules), len(want))
	}
	for i, r := range role.Rules {
		w := want[i]
		if !slices.Equal(r.APIGroups, w.APIGroups) || !slices.Equal(r.Resources, w.Resources) || !slices.Equal(r.Verbs, w.Verbs) {
			t.Errorf("rule %d = %v %v %v, want %v %v %v", i, r.APIGroups, r.Resources, r.Verbs, w.APIGroups, w.Resources, w.Verbs)
		}
	}
	for _, r := range AttachClusterRules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && !(slices.Equal(r.Resources, []string{"namespaces"}) && (v == "create" || v == "delete")) {
				t.Errorf("cluster-wide rule %v grants %q", r.Resources, v)
			}
		}
	}
}

// TestNotApplicableOnAttach: on an attached cluster the built-in checks
// that need a change the run does not own are skipped with the reason,
// decided before running; on a kind cluster nothing is skipped.
func TestNotApplicableOnAttach(t *testing.T) {
	all := suites.All()
	attached := &Env{cfg: Config{Kubeconfig: "x"}, Policy: EffectivePolicy{Mode: "ALLOW_ANY", Source: "Istio's default"},
		endpoints: map[string]fixtures.Endpoint{"echo": {Name: "echo", IP: "10.0.0.9", Ports: map[string]int{"http": 80, "tcp": 9000, "tcp-3306": 3306}}}}
	kind := &Env{}
	run, skipped := attached.SkipNotApplicable(all, true)
	if len(run) == 0 || len(skipped) == 0 {
		t.Fatalf("attached: %d run, %d skipped; want some of each", len(run), len(skipped))
	}
	reasons := map[string]string{}
	for _, r := range skipped {
		if r.Status != check.Skipped || !strings.HasPrefix(r.Message, "not applicable on an attached cluster: ") {
			t.Errorf("%s: %s %q", r.Name, r.Status, r.Message)
		}
		reasons[r.Suite+"/"+r.Name] = r.Message
	}
	for _, c := range all {
		why := attached.NotApplicable(c)
		switch {
		case c.Masquerade != nil && !strings.Contains(why, "ip-masq-agent"):
			t.Errorf("%s (masquerade) runs on an attached cluster: %q", c.Name, why)
		case c.Suite == "ingress" && !strings.Contains(why, "ingress gateway"):
			t.Errorf("%s (ingress) not skipped for the shared gateway: %q", c.Name, why)
		case c.Policy == check.RegistryOnly && why == "":
			t.Errorf("%s needs REGISTRY_ONLY but runs under ALLOW_ANY", c.Name)
		}
		if kind.NotApplicable(c) != "" {
			t.Errorf("kind cluster: %s skipped", c.Name)
		}
	}
	for _, c := range run {
		if c.Policy != "" && c.Policy != check.AllowAny {
			t.Errorf("%s runs under %s on an ALLOW_ANY cluster", c.Name, c.Policy)
		}
	}
	t.Logf("runnable on an attached ALLOW_ANY cluster: %d checks; skipped: %d results", len(run), len(skipped))
}

func TestLeaseExpired(t *testing.T) {
	now := time.Now()
	secs := int32(60)
	at := func(d time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(now.Add(-d)); return &m }
	for _, c := range []struct {
		renew *metav1.MicroTime
		want  bool
	}{{at(10 * time.Second), false}, {at(119 * time.Second), false}, {at(121 * time.Second), true}, {nil, true}} {
		if got := leaseExpired(c.renew, &secs, now); got != c.want {
			t.Errorf("renewed %v ago: expired %v, want %v", c.renew, got, c.want)
		}
	}
}

// TestEffectivePolicy: the revision's mesh config decides, unless a
// root-namespace Sidecar without workloadSelector says otherwise (the
// review's wrong-verdict case B4); a Sidecar elsewhere or with a selector
// does not count.
func TestEffectivePolicy(t *testing.T) {
	sidecar := func(ns string, mode networking.OutboundTrafficPolicy_Mode, selector bool) sim.Object {
		sc := &networking.Sidecar{OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: mode}}
		if selector {
			sc.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": "x"}}
		}
		return sim.Object{Kind: "Sidecar", Name: "default", Namespace: ns, Istio: &config.Config{Spec: sc}}
	}
	const regOnly = "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
	for _, c := range []struct {
		name, mesh string
		objs       []sim.Object
		want       string
		source     string
	}{
		{"Istio's default", "", nil, "ALLOW_ANY", "Istio's default"},
		{"mesh config", regOnly, nil, "REGISTRY_ONLY", "ConfigMap istio-system/istio-1-31"},
		{"root Sidecar wins", "", []sim.Object{sidecar("istio-system", networking.OutboundTrafficPolicy_REGISTRY_ONLY, false)}, "REGISTRY_ONLY", "Sidecar istio-system/default (root namespace)"},
		{"root Sidecar back to ALLOW_ANY", regOnly, []sim.Object{sidecar("istio-system", networking.OutboundTrafficPolicy_ALLOW_ANY, false)}, "ALLOW_ANY", "Sidecar istio-system/default (root namespace)"},
		{"Sidecar of another namespace", regOnly, []sim.Object{sidecar("team-a", networking.OutboundTrafficPolicy_ALLOW_ANY, false)}, "REGISTRY_ONLY", "ConfigMap istio-system/istio-1-31"},
		{"root Sidecar with a selector", regOnly, []sim.Object{sidecar("istio-system", networking.OutboundTrafficPolicy_ALLOW_ANY, true)}, "REGISTRY_ONLY", "ConfigMap istio-system/istio-1-31"},
		{"rootNamespace moved", "rootNamespace: mesh-root\n", []sim.Object{sidecar("mesh-root", networking.OutboundTrafficPolicy_REGISTRY_ONLY, false)}, "REGISTRY_ONLY", "Sidecar mesh-root/default (root namespace)"},
	} {
		snap := &fromcluster.Snapshot{MeshConfig: c.mesh, Objects: c.objs}
		if c.mesh != "" {
			snap.MeshConfigSource = "istio-system/istio-1-31"
		}
		got := effectivePolicy(snap)
		if got.Mode != c.want || got.Source != c.source {
			t.Errorf("%s: %+v, want %s from %s", c.name, got, c.want, c.source)
		}
	}
}
