package fromcluster_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

// The shipped ClusterRole grants exactly what the code declares it needs.
func TestShippedRoleIsRules(t *testing.T) {
	role := readRole(t)
	if role.Name != "meshconform-reader" {
		t.Errorf("ClusterRole name %q, want meshconform-reader", role.Name)
	}
	if len(role.Rules) != len(fromcluster.Rules) {
		t.Fatalf("%s has %d rules, fromcluster.Rules %d", readerRole, len(role.Rules), len(fromcluster.Rules))
	}
	for i, r := range role.Rules {
		w := fromcluster.Rules[i]
		if !slices.Equal(r.APIGroups, w.APIGroups) || !slices.Equal(r.Resources, w.Resources) || !slices.Equal(r.Verbs, w.Verbs) {
			t.Errorf("rule %d = %+v, want %+v", i, r, w)
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" {
				t.Errorf("rule %d grants %q: the reader must only get and list", i, v)
			}
		}
	}
	// Every kind read is covered by a list rule.
	for _, k := range fromcluster.Kinds {
		if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, k.Group) && slices.Contains(r.Resources, k.Resource) && slices.Contains(r.Verbs, "list")
		}) {
			t.Errorf("no list rule for %s", k.Resource)
		}
	}
}

func TestMinor(t *testing.T) {
	for in, want := range map[string]string{
		"1.24.2": "1.24", "1.31.0-distroless": "1.31", "v1.30": "1.30", "1.22-alpha.1": "1.22",
		"latest": "", "sim": "", "": "", "1": "", "a.b": "",
	} {
		if got := fromcluster.Minor(in); got != want {
			t.Errorf("Minor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMeshConfigMapName(t *testing.T) {
	for rev, want := range map[string]string{"": "istio", "default": "istio", "1-31": "istio-1-31", "canary": "istio-canary"} {
		if got := fromcluster.MeshConfigMapName(rev); got != want {
			t.Errorf("MeshConfigMapName(%q) = %q, want %q", rev, got, want)
		}
	}
}

func serviceEntry(ns, name, host string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": name, "namespace": ns, "resourceVersion": "7",
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
			"annotations":   map[string]any{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		"spec": map[string]any{"hosts": []any{host}, "resolution": "DNS",
			"ports": []any{map[string]any{"number": int64(80), "name": "http", "protocol": "HTTP"}}},
		"status": map[string]any{"conditions": []any{}},
	}}
}

// An object from the cluster goes through the -f decode and validation,
// and its errors name the pseudo file.
func TestDecode(t *testing.T) {
	objs, err := fromcluster.Decode("prod", serviceEntry("shop", "api", "api.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Istio == nil || objs[0].ID() != "ServiceEntry shop/api" || objs[0].File != "cluster:prod/ServiceEntry/shop/api" {
		t.Fatalf("decoded %+v", objs)
	}
	if a := objs[0].Istio.Annotations; len(a) != 0 {
		t.Errorf("annotations kept: %v", a)
	}
	// Negative control: an IP in hosts is rejected by Istio's validation,
	// as istiod's webhook would, and the error names where it came from.
	_, err = fromcluster.Decode("prod", serviceEntry("shop", "bad", "10.0.0.1"))
	var ie *check.InputError
	if err == nil || !errors.As(err, &ie) || ie.File != "cluster:prod/ServiceEntry/shop/bad" || !strings.Contains(ie.Problem, "validation") {
		t.Fatalf("invalid ServiceEntry: err = %v", err)
	}
}

func TestMerge(t *testing.T) {
	dec := func(ns, name, host string) sim.Object {
		o, err := fromcluster.Decode("c", serviceEntry(ns, name, host))
		if err != nil {
			t.Fatal(err)
		}
		return o[0]
	}
	cluster := []sim.Object{dec("a", "one", "one.example.org"), dec("a", "two", "two.example.org")}
	files := []sim.Object{dec("a", "two", "two.example.net"), dec("b", "three", "three.example.org")}
	files[0].File = "change.yaml"
	merged, replaced := fromcluster.Merge(cluster, files)
	var got []string
	for _, o := range merged {
		got = append(got, o.ID()+"@"+o.File)
	}
	want := []string{"ServiceEntry a/one@cluster:c/ServiceEntry/a/one", "ServiceEntry a/two@change.yaml", "ServiceEntry b/three@cluster:c/ServiceEntry/b/three"}
	if !slices.Equal(got, want) || !slices.Equal(replaced, []string{"ServiceEntry a/two"}) {
		t.Errorf("merged %v replaced %v, want %v and [ServiceEntry a/two]", got, replaced, want)
	}
}
