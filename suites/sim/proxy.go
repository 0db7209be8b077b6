package sim

import (
	"net"
	"strconv"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"

	"github.com/meshconform/meshconform/suites/check"
)

// Proxy is the Envoy config istiod generated for one source (listeners,
// clusters, routes) and the simulator over it. Run is safe for concurrent
// use: the config is read only after it is built.
type Proxy struct {
	// Source is the workload the config was generated for.
	Source check.Source
	sim    *simulation.Simulation
	// byAddr maps "address:port" to the first listener (in generated
	// order) whose primary socket address is that, as the simulator's
	// matchListener scans them; virtualOutbound is its fallback.
	byAddr          map[string]*listener.Listener
	virtualOutbound *listener.Listener
	clusters        map[string]*cluster.Cluster
}

func newProxy(src check.Source, sim *simulation.Simulation) *Proxy {
	p := &Proxy{Source: src, sim: sim, byAddr: make(map[string]*listener.Listener, len(sim.Listeners)),
		clusters: make(map[string]*cluster.Cluster, len(sim.Clusters))}
	for _, l := range sim.Listeners {
		sa := l.GetAddress().GetSocketAddress()
		k := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
		if _, dup := p.byAddr[k]; !dup {
			p.byAddr[k] = l
		}
		if p.virtualOutbound == nil && l.GetName() == model.VirtualOutboundListenerName {
			p.virtualOutbound = l
		}
	}
	for _, c := range sim.Clusters {
		if _, dup := p.clusters[c.GetName()]; !dup {
			p.clusters[c.GetName()] = c
		}
	}
	return p
}

// listenerFor picks the listener Istio's simulator would match for an
// outbound or gateway call (exact address:port, then 0.0.0.0:port, then
// virtualOutbound) without scanning every listener. nil: none.
func (p *Proxy) listenerFor(c simulation.Call) *listener.Listener {
	port := strconv.Itoa(c.Port)
	if l := p.byAddr[net.JoinHostPort(c.Address, port)]; l != nil {
		return l
	}
	if l := p.byAddr[net.JoinHostPort("0.0.0.0", port)]; l != nil {
		return l
	}
	return p.virtualOutbound
}

// Run simulates one call with Istio's simulator. For outbound and gateway
// calls the simulator is given only the listener it would have matched
// (TestIndexedRunEqualsFullScan proves the verdicts equal); inbound calls
// use the full config.
func (p *Proxy) Run(c simulation.Call) simulation.Result {
	if c.CallMode == simulation.CallModeInbound || c.Address == "" {
		return p.sim.Run(c)
	}
	l := p.listenerFor(c)
	var ls []*listener.Listener
	if l != nil {
		ls = []*listener.Listener{l}
	}
	one := simulation.Simulation{Listeners: ls, Clusters: p.sim.Clusters, Routes: p.sim.Routes}
	return one.Run(c)
}

// RunFullScan is Run through the simulator's own listener scan (for tests
// and benchmarks proving Run equal).
func (p *Proxy) RunFullScan(c simulation.Call) simulation.Result { return p.sim.Run(c) }

// Listeners returns the generated listeners (do not modify).
func (p *Proxy) Listeners() []*listener.Listener { return p.sim.Listeners }

// Clusters returns the generated clusters (do not modify).
func (p *Proxy) Clusters() []*cluster.Cluster { return p.sim.Clusters }

// HasCluster reports whether the proxy has a cluster of that name.
func (p *Proxy) HasCluster(name string) bool { _, ok := p.clusters[name]; return ok }
