package pushed

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
)

// TestPerSourceIdentities judges the shipped example's expectations on
// the config Istio's real discovery server pushes (in process, no traffic)
// to one xDS identity per source: shop/checkout and shop/orders see the
// shop's entries, reporting/report is fenced by its namespace's Sidecar.
// Every expectation must pass, as `meshconform simulate` says for the same
// files. Negative control: with one identity for every meshed source (the
// client pod's, in another namespace: the tier before per-source
// identities) ReportingIsFencedBySidecar must fail, observed Allowed.
func TestPerSourceIdentities(t *testing.T) {
	quiet()
	objs, err := sim.LoadPaths([]string{"../expectations/example/istio"}, "default")
	if err != nil {
		t.Fatal(err)
	}
	l, err := expectations.Load("../expectations/example/expectations.yaml", sim.IndexHosts(objs))
	if err != nil {
		t.Fatal(err)
	}
	mc := mesh.DefaultMeshConfig()
	mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs(objs), MeshConfig: mc})
	var mesh []check.Check
	for _, c := range l.Checks {
		if c.Masquerade == nil {
			c.Policy = "" // the mesh config above already is REGISTRY_ONLY
			mesh = append(mesh, c)
		}
	}
	if len(mesh) != 6 {
		t.Fatalf("%d mesh expectations in the example, want 6", len(mesh))
	}

	run := func(t *testing.T, oneIdentity bool) (map[string]check.Result, []Identity) {
		var seen []Identity
		ip := 10
		d := &Driver{namespace: "meshconform", to: DefaultTimeouts(), log: slog.New(slog.DiscardHandler), setupDone: true,
			watches: map[check.SourceKind]Source{}, env: func() check.Env { return check.Env{Namespace: "meshconform"} }}
		d.identify = func(_ context.Context, src check.Source) (*Identity, error) {
			ip++
			id := &Identity{Namespace: src.Namespace, Pod: "src-" + src.Labels["app"], IP: fmt.Sprintf("10.244.0.%d", ip), Labels: src.Labels}
			if oneIdentity {
				id = &Identity{Namespace: "meshconform", Pod: "client", IP: "10.244.0.5", Labels: map[string]string{"app": "client"}}
			}
			seen = append(seen, *id)
			return id, nil
		}
		d.dial = func(ctx context.Context, id Identity) (*Watch, error) {
			return dialWith(ctx, "passthrough:///fake-istiod", id, nil,
				grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return s.BufListener.Dial() }))
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out := map[string]check.Result{}
		for _, r := range check.RunAll(ctx, d, mesh, check.RunOptions{}) {
			out[r.Name] = r
		}
		return out, seen
	}

	t.Run("one identity per source", func(t *testing.T) {
		res, ids := run(t, false)
		for _, c := range mesh {
			r := res[c.Name]
			if r.Status != check.Passed {
				t.Errorf("%s: %s: %s\n%s", c.Name, r.Status, r.Message, r.Trace())
			}
		}
		// checkout, orders and report: one stream each, as themselves.
		if len(ids) != 3 {
			t.Fatalf("identities %+v, want 3 (shop/checkout, shop/orders, reporting/report)", ids)
		}
		if tr := res["ReportingIsFencedBySidecar"].Trace(); !strings.Contains(tr, "reporting/src-report") {
			t.Errorf("ReportingIsFencedBySidecar not judged on reporting/report's config:\n%s", tr)
		}
	})
	t.Run("negative control: the client's identity for every source", func(t *testing.T) {
		res, _ := run(t, true)
		r := res["ReportingIsFencedBySidecar"]
		if r.Status != check.Failed || len(r.Observations) != 1 || r.Observations[0].Observed != check.Allowed {
			t.Fatalf("ReportingIsFencedBySidecar judged on another namespace's config: %s (%v), want Failed observed Allowed\n%s", r.Status, r.Message, r.Trace())
		}
	})
}
