package selfcheck

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// MC0003's negative control: Istio's validators, through our recorder,
// must report a listener Envoy rejects (two filter chains with the same
// match) and duplicate names, and nothing for a valid one.
func TestValidateReportsWhatEnvoyRejects(t *testing.T) {
	addr := &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "0.0.0.0",
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: 5432}}}}
	fc := func(name string) *listener.FilterChain {
		return &listener.FilterChain{Name: name, FilterChainMatch: &listener.FilterChainMatch{}}
	}
	good := &listener.Listener{Name: "0.0.0.0_5432", Address: addr, FilterChains: []*listener.FilterChain{fc("a")}}
	if r := validate([]*listener.Listener{good}, []*cluster.Cluster{{Name: "c"}}); len(r) != 0 {
		t.Fatalf("a valid listener is reported: %+v", r)
	}
	bad := &listener.Listener{Name: "0.0.0.0_5432", Address: addr, FilterChains: []*listener.FilterChain{fc("a"), fc("b")}}
	r := validate([]*listener.Listener{bad, good}, []*cluster.Cluster{{Name: "c"}, {Name: "c"}})
	var got []string
	for _, x := range r {
		got = append(got, x.resource+": "+x.problem)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"listener 0.0.0.0_5432: overlapping filter chains", "duplicate listener name 0.0.0.0_5432", "duplicate cluster name c"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}
