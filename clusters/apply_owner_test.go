package clusters

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/restmapper"
)

// On an existing cluster an object the run did not create is never
// changed: applying a -f file whose ServiceEntry has the deployed one's
// name stops with an error naming it, and the deployed object is as it was
// (a forced server-side apply would have taken it over, and cleanup would
// have deleted it).
func TestApplyNeverTakesOverOnExistingClusters(t *testing.T) {
	cs := fake.NewClientset()
	fd := cs.Discovery().(*fakediscovery.FakeDiscovery)
	fd.Resources = []*metav1.APIResourceList{{GroupVersion: "networking.istio.io/v1",
		APIResources: []metav1.APIResource{{Name: "serviceentries", Kind: "ServiceEntry", Namespaced: true, Verbs: metav1.Verbs{"get", "patch"}}}}}
	deployed := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": "payments", "namespace": "shop"}, "spec": map[string]any{"hosts": []any{"api.payments.example"}}}}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "ServiceEntryList"}, deployed)
	c, err := ForClient(cs, Existing)
	if err != nil {
		t.Fatal(err)
	}
	c.dyn, c.mapper = dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(fd))
	mine := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: payments, namespace: shop}\nspec: {hosts: [other.example]}\n"
	for name, apply := range map[string]func() ([]Object, error){
		"ApplyAsWritten": func() ([]Object, error) { return c.ApplyAsWritten(context.Background(), "shop", mine) },
		"Apply":          func() ([]Object, error) { return c.Apply(context.Background(), "shop", mine) },
	} {
		applied, err := apply()
		if err == nil || !strings.Contains(err.Error(), "already exists and was not created by this run") || len(applied) != 0 {
			t.Errorf("%s: applied %v, err %v; want a refusal naming the object", name, applied, err)
		}
	}
	got, err := dyn.Resource(gvr).Namespace("shop").Get(context.Background(), "payments", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hosts, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "hosts")
	if len(hosts) != 1 || hosts[0] != "api.payments.example" || len(got.GetLabels()) != 0 {
		t.Errorf("the deployed ServiceEntry changed: %v", got.Object)
	}
}
