package sim

import (
	"net"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
	// vhosts indexes each route config's virtual hosts by exact domain;
	// wild holds those with a '*' domain (order kept).
	vhosts map[string]*vhostIndex
	// sni indexes the filter chains of listeners with many of them by
	// server name (see chainsFor).
	sni map[*listener.Listener]*sniIndex
}

type sniIndex struct {
	exact map[string][]int
	other []int // chains without server names, with a wildcard, or with an earlier-step criterion
}

// chainsFor returns l with only the filter chains that can survive the
// server-name step of Envoy's filter chain sieve for sni, in their order.
// A chain is dropped only if it sets server names, none equal to sni and
// none wildcarded, and sets no destination port or prefix ranges (the
// sieve's earlier steps): such a chain never matches and never narrows an
// earlier step, so the same chain wins.
func (p *Proxy) chainsFor(l *listener.Listener, sni string) *listener.Listener {
	ix := p.sni[l]
	if ix == nil {
		return l
	}
	idx := append(append([]int(nil), ix.exact[sni]...), ix.other...)
	sort.Ints(idx)
	fcs := make([]*listener.FilterChain, 0, len(idx))
	for _, i := range idx {
		fcs = append(fcs, l.FilterChains[i])
	}
	return &listener.Listener{Name: l.Name, Address: l.Address, FilterChains: fcs, DefaultFilterChain: l.DefaultFilterChain,
		ListenerFilters: l.ListenerFilters, TrafficDirection: l.TrafficDirection}
}

func indexSNI(l *listener.Listener) *sniIndex {
	ix := &sniIndex{exact: map[string][]int{}}
	for i, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		names := m.GetServerNames()
		prunable := len(names) > 0 && m.GetDestinationPort() == nil && len(m.GetPrefixRanges()) == 0
		for _, n := range names {
			if strings.Contains(n, "*") {
				prunable = false
			}
		}
		if !prunable {
			ix.other = append(ix.other, i)
			continue
		}
		for _, n := range names {
			ix.exact[n] = append(ix.exact[n], i)
		}
	}
	return ix
}

type vhostIndex struct {
	rc    *route.RouteConfiguration
	exact map[string][]int
	wild  []int
}

// routesFor returns route configs holding only the virtual hosts that can
// match host under the simulator's matchVirtualHost (exact domain,
// host without port, or any domain with '*'), in their order: the same
// virtual host wins as with all of them.
func (p *Proxy) routesFor(host string) []*route.RouteConfiguration {
	out := make([]*route.RouteConfiguration, 0, len(p.vhosts))
	noPort := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		noPort = h
	}
	for _, ix := range p.vhosts {
		idx := append(append([]int(nil), ix.exact[host]...), ix.wild...)
		if noPort != host {
			idx = append(idx, ix.exact[noPort]...)
		}
		sort.Ints(idx)
		vhs := make([]*route.VirtualHost, 0, len(idx))
		last := -1
		for _, i := range idx {
			if i != last {
				vhs = append(vhs, ix.rc.VirtualHosts[i])
				last = i
			}
		}
		out = append(out, &route.RouteConfiguration{Name: ix.rc.GetName(), VirtualHosts: vhs,
			IgnorePortInHostMatching: ix.rc.GetIgnorePortInHostMatching()})
	}
	return out
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
	p.sni = map[*listener.Listener]*sniIndex{}
	for _, l := range sim.Listeners {
		if len(l.GetFilterChains()) > 16 {
			p.sni[l] = indexSNI(l)
		}
	}
	p.vhosts = map[string]*vhostIndex{}
	for _, rc := range sim.Routes {
		if _, dup := p.vhosts[rc.GetName()]; dup {
			p.vhosts = nil // the simulator would take the last: keep its own lookup
			break
		}
		ix := &vhostIndex{rc: rc, exact: map[string][]int{}}
		for i, vh := range rc.GetVirtualHosts() {
			wild := false
			for _, d := range vh.GetDomains() {
				if strings.Contains(d, "*") {
					wild = true
				}
				ix.exact[d] = append(ix.exact[d], i)
			}
			if wild {
				ix.wild = append(ix.wild, i)
			}
		}
		p.vhosts[rc.GetName()] = ix
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
// calls the simulator is given only the listener it would have matched,
// with only the filter chains that can match its SNI, and for HTTP calls
// only the virtual hosts that can match the Host
// (TestIndexedRunEqualsFullScan proves the verdicts equal); inbound calls
// use the full config.
func (p *Proxy) Run(c simulation.Call) simulation.Result {
	if c.CallMode == simulation.CallModeInbound || c.Address == "" {
		return p.sim.Run(c)
	}
	l := p.listenerFor(c)
	var ls []*listener.Listener
	if l != nil {
		sni := c.Sni
		if sni == "" && c.TLS == simulation.TLS {
			sni = c.HostHeader // the simulator's own default
		}
		if sni != "" {
			l = p.chainsFor(l, sni)
		}
		ls = []*listener.Listener{l}
	}
	routes := p.sim.Routes
	if c.HostHeader != "" && p.vhosts != nil && len(c.Headers["Host"]) == 0 {
		routes = p.routesFor(c.HostHeader)
	}
	one := simulation.Simulation{Listeners: ls, Clusters: p.sim.Clusters, Routes: routes}
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
