package istio_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"

	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/internal/envoydump"
)

// goldenDump is the virtualOutbound listener Istio's generator
// (pilot/test/xds, the code istiod runs) builds for a sidecar under
// policy, as Envoy serves GET config_dump?resource=dynamic_listeners (the
// request WaitProxyPolicy sends); warming adds a warming copy built under
// the other policy.
func goldenDump(t *testing.T, policy string, warming bool) []byte {
	t.Helper()
	build := func(policy string) *listener.Listener {
		mc := mesh.DefaultMeshConfig()
		mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_Mode(meshconfig.MeshConfig_OutboundTrafficPolicy_Mode_value[policy])}
		s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{MeshConfig: mc})
		p := s.SetupProxy(&model.Proxy{Labels: map[string]string{"app": "client"}, IPAddresses: []string{"10.244.0.5"}})
		for _, l := range s.Listeners(p) {
			if l.GetName() == "virtualOutbound" {
				return l
			}
		}
		t.Fatalf("no virtualOutbound listener generated under %s", policy)
		return nil
	}
	c := envoydump.Config{Version: "2026-12-07T00:00:00Z/1", Listeners: []*listener.Listener{build(policy)}, Resource: "dynamic_listeners"}
	if warming {
		other := map[string]string{istio.AllowAny: istio.RegistryOnly, istio.RegistryOnly: istio.AllowAny}[policy]
		c.Warming = build(other)
	}
	b, err := envoydump.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenConfigDumps: the config_dump files the unit tests read
// (testdata/listeners_<policy>.json) are what Istio's generator builds
// today (regenerate with MESHCONFORM_UPDATE_GOLDEN=1), and
// OutboundCatchAllCluster finds PassthroughCluster under ALLOW_ANY and
// BlackHoleCluster under REGISTRY_ONLY in them, also with a warming copy
// of the listener under the other policy (which must not be read).
func TestGoldenConfigDumps(t *testing.T) {
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	for policy, want := range map[string]string{istio.AllowAny: istio.PassthroughCluster, istio.RegistryOnly: istio.BlackHoleCluster} {
		t.Run(policy, func(t *testing.T) {
			b := goldenDump(t, policy, false)
			path := filepath.Join("testdata", "listeners_"+policy+".json")
			if os.Getenv("MESHCONFORM_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (generate it with MESHCONFORM_UPDATE_GOLDEN=1)", err)
			}
			// Compared as JSON values: protojson's whitespace is not stable
			// across builds on purpose.
			var a, n any
			if err := json.Unmarshal(old, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &n); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, n) {
				t.Errorf("%s differs from what Istio's generator builds now: regenerate with MESHCONFORM_UPDATE_GOLDEN=1 and review the diff", path)
			}
			for _, warming := range []bool{false, true} {
				got, err := istio.OutboundCatchAllCluster(goldenDump(t, policy, warming))
				if err != nil || got != want {
					t.Errorf("warming copy %v: catch-all %q, %v; want %s", warming, got, err, want)
				}
			}
		})
	}
}
