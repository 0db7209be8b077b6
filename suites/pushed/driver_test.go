package pushed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/gvk"

	"github.com/meshconform/meshconform/internal/envoydump"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
)

// TestJudgeOnPushedConfig runs the tier's judging and waiting against the
// config Istio's real discovery server pushes over the watch, under
// REGISTRY_ONLY: the catch-all is BlackHoleCluster; an entry's host is
// Allowed through its cluster, another host blocked; an entry added later
// is waited for (its cluster pushed) and then Allowed; deleted, it is
// waited for (withdrawn) and blocked again.
func TestJudgeOnPushedConfig(t *testing.T) {
	quiet()
	mc := mesh.DefaultMeshConfig()
	mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	objs, err := sim.ParseYAML("first.yaml", []byte(httpEntry80), "default")
	if err != nil {
		t.Fatal(err)
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs(objs), MeshConfig: mc})
	w := dialFake(t, s, nil)
	d := &Driver{namespace: "default", to: DefaultTimeouts(), log: slog.New(slog.DiscardHandler), watches: map[check.SourceKind]Source{check.MeshedPod: w}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	snap, err := w.Wait(ctx, "first config", func(Snapshot) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if got := CatchAllCluster(snap); got != sim.BlackHoleCluster {
		t.Fatalf("catch-all cluster %q under REGISTRY_ONLY, want BlackHoleCluster", got)
	}
	judge := func(host string, port int, want check.Outcome, wantCluster string) {
		t.Helper()
		s := w.Snapshot()
		v, err := sim.Judge(&simulation.Simulation{Listeners: s.Listeners, Clusters: s.Clusters, Routes: s.Routes},
			check.Client, check.Destination{Host: host, Address: "192.0.2.1", Port: port, Protocol: check.HTTP}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.Outcome != want || v.Cluster != wantCluster {
			t.Fatalf("%s:%d: %s via %q (%s; %v), want %s via %q", host, port, v.Outcome, v.Cluster, v.Why, v.Trace, want, wantCluster)
		}
	}
	judge("first.example", 80, check.Allowed, "outbound|80||first.example")
	judge("other.example", 80, check.BlockedByMesh, "")

	before := map[check.SourceKind]Snapshot{check.MeshedPod: w.Snapshot()}
	later, err := sim.ParseYAML("later.yaml", []byte(httpEntry8080), "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().Create(*later[0].Istio); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitChange(ctx, "T", "apply", []string{httpEntry8080}, nil, before, map[check.SourceKind]bool{check.MeshedPod: true}); err != nil {
		t.Fatal(err)
	}
	judge("later.example", 8080, check.Allowed, "outbound|8080||later.example")
	if len(d.Propagations) != 1 || d.Propagations[0].Workload == "" {
		t.Fatalf("propagations %+v", d.Propagations)
	}

	if err := s.Store().Delete(gvk.ServiceEntry, "later", "default", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitChange(ctx, "T", "delete", nil, []string{httpEntry8080}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if w.Snapshot().HasCluster("outbound|8080||later.example") {
		t.Fatal("cluster still pushed after the wait for its withdrawal")
	}
	judge("later.example", 8080, check.BlockedByMesh, sim.BlackHoleCluster)
}

// TestWaitOnSidecarConfigDump: the same waits, on a sidecar's
// config_dump instead of the xDS stream. The "sidecar" serves, on every
// read, the config Istio's generator builds from the current config store
// (as Envoy would after istiod's push), marshalled as Envoy's config_dump:
// an entry created later is waited for (its cluster appears in the dump)
// and then Allowed; deleted, waited for and blocked; each change's
// propagation is recorded for the sidecar.
func TestWaitOnSidecarConfigDump(t *testing.T) {
	quiet()
	mc := mesh.DefaultMeshConfig()
	mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{MeshConfig: mc})
	var version atomic.Int32
	// One dump is built from one push context, as Envoy's config comes
	// from one push per type: a push landing between the listeners and the
	// clusters would mix two configs (the test would then be flaky).
	fetch := func(context.Context) ([]byte, error) {
		for {
			pc := s.PushContext()
			p := s.SetupProxy(&model.Proxy{Labels: map[string]string{"app": "client"}, IPAddresses: []string{"10.244.0.5"}})
			ls := s.Listeners(p)
			cfg := envoydump.Config{Version: fmt.Sprint(version.Add(1)), Listeners: ls, Clusters: s.Clusters(p), Routes: s.RoutesFromListeners(p, ls)}
			if s.PushContext() == pc {
				return envoydump.Marshal(cfg)
			}
		}
	}
	id := Identity{Namespace: "default", Pod: "client-0", IP: "10.244.0.5", Labels: map[string]string{"app": "client"}}
	src, err := newSidecarDump(context.Background(), id, fetch, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &Driver{namespace: "default", to: DefaultTimeouts(), log: slog.New(slog.DiscardHandler), watches: map[check.SourceKind]Source{check.MeshedPod: src}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got := CatchAllCluster(src.Snapshot()); got != sim.BlackHoleCluster {
		t.Fatalf("catch-all %q under REGISTRY_ONLY", got)
	}
	judge := func(want check.Outcome, wantCluster string) {
		t.Helper()
		o := d.observe(ctx, "step", check.Expectation{From: check.Client, To: check.Destination{Host: "later.example", Address: "192.0.2.1", Port: 8080, Protocol: check.HTTP}, Want: want})
		if o.Observed != want || o.Cluster != wantCluster || !strings.Contains(o.Trace[0], FromConfigDump) {
			t.Fatalf("%s via %q (%v), want %s via %q", o.Observed, o.Cluster, o.Trace, want, wantCluster)
		}
	}
	judge(check.BlockedByMesh, sim.BlackHoleCluster)

	later, err := sim.ParseYAML("later.yaml", []byte(httpEntry8080), "default")
	if err != nil {
		t.Fatal(err)
	}
	before := map[check.SourceKind]Snapshot{check.MeshedPod: src.Snapshot()}
	if _, err := s.Store().Create(*later[0].Istio); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitChange(ctx, "T", "apply", []string{httpEntry8080}, nil, before, nil); err != nil {
		t.Fatal(err)
	}
	judge(check.Allowed, "outbound|8080||later.example")
	if err := s.Store().Delete(gvk.ServiceEntry, "later", "default", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitChange(ctx, "T", "delete", nil, []string{httpEntry8080}, nil, nil); err != nil {
		t.Fatal(err)
	}
	judge(check.BlockedByMesh, sim.BlackHoleCluster)
	if len(d.Propagations) != 2 || d.Propagations[0].Workload != id.String() {
		t.Fatalf("propagations %+v", d.Propagations)
	}

	// A change that never reaches the sidecar ends with ErrTimeout after
	// the propagation bound.
	d.to.Propagation = 50 * time.Millisecond
	if _, err := d.waitChange(ctx, "T", "never", []string{httpEntry8080}, nil, nil, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
}
