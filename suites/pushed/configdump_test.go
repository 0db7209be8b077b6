package pushed

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/internal/envoydump"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
)

// Entries of the golden input: HTTP on 80, TLS on 443, TCP with an
// address on 3306.
const goldenEntries = httpEntry80 + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: default}
spec:
  hosts: [tls.example]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example]
  addresses: [192.0.2.50/32]
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.50}]
`

// goldenCalls are judged on the generated config and on the config_dump
// made of it; both verdicts must be equal, under both policies.
var goldenCalls = []check.Destination{
	{Host: "first.example", Address: "192.0.2.1", Port: 80, Protocol: check.HTTP},
	{Host: "unknown.example", Address: "192.0.2.1", Port: 80, Protocol: check.HTTP},
	{Host: "tls.example", Address: "192.0.2.2", Port: 443, Protocol: check.TLS},
	{Host: "unknown.example", Address: "192.0.2.2", Port: 443, Protocol: check.TLS},
	{Host: "db.example", Address: "192.0.2.50", Port: 3306, Protocol: check.TCP},
	{Address: "192.0.2.51", Port: 3306, Protocol: check.TCP},
}

// generated is the config Istio's generator (pilot/test/xds, the code
// istiod runs) builds for the client sidecar under policy.
func generated(t *testing.T, policy meshconfig.MeshConfig_OutboundTrafficPolicy_Mode) ([]*listener.Listener, []*cluster.Cluster, []*route.RouteConfiguration) {
	t.Helper()
	quiet()
	mc := mesh.DefaultMeshConfig()
	mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: policy}
	objs, err := sim.ParseYAML("golden.yaml", []byte(goldenEntries), "default")
	if err != nil {
		t.Fatal(err)
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs(objs), MeshConfig: mc})
	p := s.SetupProxy(&model.Proxy{Labels: map[string]string{"app": "client"}, IPAddresses: []string{"10.244.0.5"}})
	ls := s.Listeners(p)
	return ls, s.Clusters(p), s.RoutesFromListeners(p, ls)
}

// envoyConfigDump is the config as Envoy's admin endpoint serves it
// (package envoydump); warming, if set, is a warming copy of
// virtualOutbound, which must not be read.
func envoyConfigDump(t *testing.T, version string, ls []*listener.Listener, cs []*cluster.Cluster, rs []*route.RouteConfiguration, warming *listener.Listener) []byte {
	t.Helper()
	b, err := envoydump.Marshal(envoydump.Config{Version: version, Listeners: ls, Clusters: cs, Routes: rs, Warming: warming})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func virtualOutbound(t *testing.T, ls []*listener.Listener) *listener.Listener {
	t.Helper()
	for _, l := range ls {
		if l.GetName() == "virtualOutbound" {
			return l
		}
	}
	t.Fatal("generator built no virtualOutbound listener")
	return nil
}

// TestConfigDumpSameVerdictsAsGenerated: the config Istio's generator
// builds, served as Envoy's config_dump and read back, gives the same
// verdict as the generated config for every call, under ALLOW_ANY and
// REGISTRY_ONLY; its catch-all is PassthroughCluster or BlackHoleCluster;
// a warming copy of virtualOutbound with the other policy is not read.
func TestConfigDumpSameVerdictsAsGenerated(t *testing.T) {
	allowL, allowC, allowR := generated(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY)
	regL, regC, regR := generated(t, meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY)
	for _, tc := range []struct {
		name     string
		ls       []*listener.Listener
		cs       []*cluster.Cluster
		rs       []*route.RouteConfiguration
		other    *listener.Listener
		catchAll string
	}{
		{"ALLOW_ANY", allowL, allowC, allowR, virtualOutbound(t, regL), sim.PassthroughCluster},
		{"REGISTRY_ONLY", regL, regC, regR, virtualOutbound(t, allowL), sim.BlackHoleCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := envoyConfigDump(t, "2026-12-07T00:00:00Z/7", tc.ls, tc.cs, tc.rs, tc.other)
			if !strings.Contains(string(b), `"dynamic_active_clusters"`) || !strings.Contains(string(b), `"warming_state"`) {
				t.Fatalf("not shaped like Envoy's config_dump: %.300s", b)
			}
			s, err := SnapshotFromConfigDump(b)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Complete() || len(s.Listeners) != len(tc.ls) || len(s.Clusters) != len(tc.cs) || len(s.Routes) != len(tc.rs) {
				t.Fatalf("snapshot complete=%v, %d/%d listeners, %d/%d clusters, %d/%d routes, missing %v",
					s.Complete(), len(s.Listeners), len(tc.ls), len(s.Clusters), len(tc.cs), len(s.Routes), len(tc.rs), s.Missing)
			}
			if got := CatchAllCluster(s); got != tc.catchAll {
				t.Fatalf("catch-all cluster %q, want %s (the warming copy must not be read)", got, tc.catchAll)
			}
			direct := &simulation.Simulation{Listeners: tc.ls, Clusters: tc.cs, Routes: tc.rs}
			dumped := &simulation.Simulation{Listeners: s.Listeners, Clusters: s.Clusters, Routes: s.Routes}
			outcomes := map[check.Outcome]int{}
			for _, dst := range goldenCalls {
				want, err := sim.Judge(direct, check.Client, dst, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := sim.Judge(dumped, check.Client, dst, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got.Outcome != want.Outcome || got.Cluster != want.Cluster || strings.Join(got.Trace, "\n") != strings.Join(want.Trace, "\n") {
					t.Errorf("%s %s:%d: from config_dump %s via %q, generated %s via %q\n%v\n%v", dst.Protocol, dst.Host, dst.Port, got.Outcome, got.Cluster, want.Outcome, want.Cluster, got.Trace, want.Trace)
				}
				outcomes[got.Outcome]++
			}
			// The calls must tell the policies apart, or equal verdicts prove nothing.
			if tc.name == "REGISTRY_ONLY" && outcomes[check.BlockedByMesh] != 3 || tc.name == "ALLOW_ANY" && outcomes[check.BlockedByMesh] != 0 {
				t.Errorf("outcomes %v", outcomes)
			}
		})
	}

	t.Run("route config missing", func(t *testing.T) {
		b := envoyConfigDump(t, "v1", regL, regC, nil, nil)
		s, err := SnapshotFromConfigDump(b)
		if err != nil {
			t.Fatal(err)
		}
		if s.Complete() || len(s.Missing) == 0 {
			t.Fatalf("a dump without the route configs its listeners name is complete (missing %v)", s.Missing)
		}
	})
	t.Run("not a config_dump", func(t *testing.T) {
		if _, err := SnapshotFromConfigDump([]byte(`{"configs": [`)); err == nil {
			t.Fatal("broken JSON accepted")
		}
		if _, err := SnapshotFromConfigDump([]byte(`{"configs": []}`)); err == nil {
			t.Fatal("a dump without clusters and listeners accepted")
		}
	})
}

// TestSidecarDumpWaitsForPolicy: the wait on a sidecar's config_dump
// polls until the dump shows the change and reports when it was seen;
// a change that never comes ends in ErrTimeout.
func TestSidecarDumpWaitsForPolicy(t *testing.T) {
	allowL, allowC, allowR := generated(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY)
	regL, regC, regR := generated(t, meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY)
	before := envoyConfigDump(t, "v1", allowL, allowC, allowR, nil)
	after := envoyConfigDump(t, "v2", regL, regC, regR, nil)
	var reads atomic.Int32
	fetch := func(context.Context) ([]byte, error) {
		if reads.Add(1) < 4 {
			return before, nil
		}
		return after, nil
	}
	id := Identity{Namespace: "default", Pod: "client-0", IP: "10.244.0.5"}
	d, err := newSidecarDump(context.Background(), id, fetch, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := CatchAllCluster(d.Snapshot()); got != sim.PassthroughCluster || d.Kind() != FromConfigDump {
		t.Fatalf("first read: catch-all %q from %s", got, d.Kind())
	}
	first := d.Snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.Wait(ctx, "REGISTRY_ONLY", func(s Snapshot) bool { return CatchAllCluster(s) == sim.BlackHoleCluster })
	if err != nil {
		t.Fatal(err)
	}
	if reads.Load() != 4 || s.Seq != first.Seq+1 || !s.At.After(first.At) {
		t.Fatalf("reads %d, seq %d→%d, at %v→%v", reads.Load(), first.Seq, s.Seq, first.At, s.At)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := d.Wait(short, "ALLOW_ANY again", func(s Snapshot) bool { return CatchAllCluster(s) == sim.PassthroughCluster }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
}
