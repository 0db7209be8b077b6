package live

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/suites/check"
)

// A source's probe pod has exactly the source's labels (plus the
// harness's LabelSource), its namespace, and its proxy metadata as the
// proxy.istio.io/config annotation; label values YAML would read as other
// types ("true", "1") stay strings.
func TestSourcePodManifest(t *testing.T) {
	src := check.Source{Kind: check.MeshedPod, Namespace: "shop",
		Labels:        map[string]string{"app": "checkout", "version": "1", "canary": "true"},
		ProxyMetadata: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"}}
	y, err := SourcePodManifest(src, "meshconform/agent:abc", []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := clusters.DecodeYAML(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if len(objs) != 2 || objs[0].GetKind() != "ConfigMap" || objs[1].GetKind() != "Pod" {
		t.Fatalf("want the CA ConfigMap and the pod:\n%s", y)
	}
	pod := objs[1]
	want := maps.Clone(src.Labels)
	want[LabelSource] = SourcePodName(src)
	if pod.GetNamespace() != "shop" || pod.GetName() != SourcePodName(src) || !maps.Equal(pod.GetLabels(), want) {
		t.Errorf("pod %s/%s labels %v, want shop/%s labels %v", pod.GetNamespace(), pod.GetName(), pod.GetLabels(), SourcePodName(src), want)
	}
	if a := pod.GetAnnotations()["proxy.istio.io/config"]; a != `{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true"}}` {
		t.Errorf("proxy.istio.io/config %q", a)
	}
	// Without proxy metadata: no annotation; without a CA: the pod alone.
	src.ProxyMetadata = nil
	y, _ = SourcePodManifest(src, "img", nil)
	objs, err = clusters.DecodeYAML(y)
	if err != nil || len(objs) != 1 || len(objs[0].GetAnnotations()) != 0 {
		t.Errorf("plain source: %v\n%s", err, y)
	}
}

func TestSourcePodNamesDifferPerSource(t *testing.T) {
	a := check.Source{Kind: check.MeshedPod, Namespace: "shop", Labels: map[string]string{"app": "checkout"}}
	b := check.Source{Kind: check.MeshedPod, Namespace: "shop", Labels: map[string]string{"app": "orders"}}
	c := check.Source{Kind: check.MeshedPod, Namespace: "shop", Labels: map[string]string{"app": "checkout"}, ProxyMetadata: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"}}
	if SourcePodName(a) == SourcePodName(b) || SourcePodName(a) == SourcePodName(c) || SourcePodName(a) != SourcePodName(check.Source{Kind: check.MeshedPod, Namespace: "shop", Labels: map[string]string{"app": "checkout"}}) {
		t.Errorf("names %s %s %s", SourcePodName(a), SourcePodName(b), SourcePodName(c))
	}
	if n := SourcePodName(a); len(n) > 63 || !strings.HasPrefix(n, "src-") {
		t.Errorf("name %q", n)
	}
}

// Built-in checks keep the client pod; a user's source gets its own pod
// in its namespace; control and outside sources are unchanged.
func TestSourcePodRouting(t *testing.T) {
	d := &Driver{cfg: &config{namespace: "meshconform"}, sources: map[string]error{}}
	user := check.Source{Kind: check.MeshedPod, Namespace: "shop", Labels: map[string]string{"app": "checkout"}}
	for _, tc := range []struct {
		from check.Source
		want string
	}{
		{check.Client, ClientPod},
		{check.Source{Kind: check.MeshedPod, Namespace: "meshconform", Labels: map[string]string{"app": "client"}}, ClientPod},
		{check.Source{}, ClientPod},
		{check.Control, ControlPod},
		{check.External, outsidePod},
		{user, "shop/" + SourcePodName(user)},
		{check.Source{Kind: check.MeshedPod, Namespace: "meshconform", Labels: map[string]string{"app": "checkout"}}, "meshconform/" + SourcePodName(check.Source{Kind: check.MeshedPod, Namespace: "meshconform", Labels: map[string]string{"app": "checkout"}})},
	} {
		if got := d.sourcePod(check.Expectation{From: tc.from}); got != tc.want {
			t.Errorf("%+v: pod %q, want %q", tc.from, got, tc.want)
		}
	}
	if ns, n := d.splitPod("shop/src-1"); ns != "shop" || n != "src-1" {
		t.Errorf("split %s %s", ns, n)
	}
	if ns, n := d.splitPod(ClientPod); ns != "meshconform" || n != ClientPod {
		t.Errorf("split %s %s", ns, n)
	}
}

// A source outside the allowed namespaces is not ready, saying why,
// before anything is created (the fake has no cluster: any call panics).
func TestSourceNamespaceNotAllowed(t *testing.T) {
	d := &Driver{cfg: &config{namespace: "meshconform", sourceNamespaces: []string{"shop"}}, sources: map[string]error{}}
	c := check.Check{Name: "X", Steps: []check.Step{{Expect: []check.Expectation{
		{From: check.Source{Kind: check.MeshedPod, Namespace: "payments", Labels: map[string]string{"app": "api"}}},
	}}}}
	why := d.preflightSources(context.Background(), c)
	if !strings.Contains(why, "namespace payments") || !strings.Contains(why, "--source-namespace") {
		t.Errorf("reason %q", why)
	}
	if !d.sourceNamespaceAllowed("shop") || !d.sourceNamespaceAllowed("meshconform") || d.sourceNamespaceAllowed("payments") {
		t.Error("allowed namespaces")
	}
}
