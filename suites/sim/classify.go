package sim

import (
	"errors"
	"fmt"
	"strings"

	"istio.io/istio/pilot/pkg/simulation"

	"github.com/meshconform/meshconform/suites/check"
)

// Envoy's well-known clusters and virtual hosts.
const (
	BlackHoleCluster   = "BlackHoleCluster"
	PassthroughCluster = "PassthroughCluster"
	BlockAllVHost      = "block_all"
)

// call turns a destination into the simulator's call.
func call(src check.Source, d check.Destination) (simulation.Call, error) {
	c := simulation.Call{Address: d.Address, Port: d.Port, CallMode: simulation.CallModeOutbound}
	if src.Kind == check.Outside {
		c.CallMode = simulation.CallModeGateway
	}
	switch d.Protocol {
	case check.HTTP:
		c.Protocol, c.TLS, c.HostHeader = simulation.HTTP, simulation.Plaintext, d.Host
	case check.HTTPS:
		c.Protocol, c.TLS, c.Sni, c.Alpn = simulation.TCP, simulation.TLS, d.ServerName(), "http/1.1"
	case check.TLS:
		c.Protocol, c.TLS, c.Sni = simulation.TCP, simulation.TLS, d.ServerName()
	case check.TCP, check.MySQL:
		c.Protocol, c.TLS = simulation.TCP, simulation.Plaintext
	case check.GRPC:
		c.Protocol, c.TLS, c.HostHeader = simulation.HTTP2, simulation.Plaintext, d.Host
	case check.GRPCS:
		c.Protocol, c.TLS, c.HostHeader, c.Sni, c.Alpn = simulation.HTTP2, simulation.TLS, d.Host, d.ServerName(), "h2"
	default:
		return c, fmt.Errorf("protocol %q cannot be simulated", d.Protocol)
	}
	if c.Address == "" {
		// Istio's simulator picks an arbitrary address when unset; make it
		// explicit so traces are reproducible.
		c.Address = "192.0.2.1"
	}
	return c, nil
}

// classify names the outcome of a simulated call and explains it.
func classify(p *Proxy, r simulation.Result) (check.Outcome, []string, string) {
	var trace []string
	add := func(label, v string) {
		if v != "" {
			trace = append(trace, label+" "+v)
		}
	}
	add("listener", r.ListenerMatched)
	add("filter chain", r.FilterChainMatched)
	add("route config", r.RouteConfigMatched)
	add("virtual host", r.VirtualHostMatched)
	add("route", r.RouteMatched)
	add("cluster", r.ClusterMatched)
	switch {
	case errors.Is(r.Error, simulation.ErrNoListener):
		return check.Unreachable, trace, "no listener on that port: nothing accepts the connection"
	case errors.Is(r.Error, simulation.ErrNoFilterChain):
		return check.BlockedByMesh, trace, "no filter chain matches: Envoy closes the connection"
	case errors.Is(r.Error, simulation.ErrTLSError), errors.Is(r.Error, simulation.ErrMTLSError):
		return check.BlockedByMesh, trace, "TLS mismatch: " + r.Error.Error()
	case errors.Is(r.Error, simulation.ErrProtocolError):
		return check.BlockedByMesh, trace, "protocol mismatch: " + r.Error.Error()
	case errors.Is(r.Error, simulation.ErrNoVirtualHost):
		return check.BlockedByMesh, trace, "no virtual host for that Host header: Envoy answers 404"
	case errors.Is(r.Error, simulation.ErrNoRoute):
		return check.BlockedByMesh, trace, "no route matches: Envoy answers 404"
	case errors.Is(r.Error, simulation.ErrTLSRedirect):
		return check.BlockedByMesh, trace, "TLS required: Envoy answers 301"
	case r.Error != nil:
		return check.Inconclusive, trace, "simulation error: " + r.Error.Error()
	}
	if r.VirtualHostMatched == BlockAllVHost {
		return check.BlockedByMesh, trace, "virtual host block_all: Envoy answers 502 (REGISTRY_ONLY)"
	}
	switch r.ClusterMatched {
	case BlackHoleCluster:
		return check.BlockedByMesh, trace, "BlackHoleCluster: Envoy resets the connection (REGISTRY_ONLY)"
	case "":
		return check.BlockedByMesh, trace, "route has no cluster (direct response): the target is never reached"
	case PassthroughCluster:
		return check.Allowed, trace, "PassthroughCluster: forwarded to the original destination (ALLOW_ANY)"
	}
	if p.HasCluster(r.ClusterMatched) {
		return check.Allowed, trace, "forwarded through cluster " + r.ClusterMatched
	}
	return check.BlockedByMesh, trace, fmt.Sprintf("cluster %s is not defined: Envoy answers 503 (no cluster)", r.ClusterMatched)
}

// describeCall renders the call for the trace.
func describeCall(c simulation.Call) string {
	var b strings.Builder
	fmt.Fprintf(&b, "call %s %s:%d", strings.ToUpper(string(c.Protocol)), c.Address, c.Port)
	if c.TLS != simulation.Plaintext && c.TLS != "" {
		fmt.Fprintf(&b, " tls sni=%q", c.Sni)
	}
	if c.HostHeader != "" {
		fmt.Fprintf(&b, " host=%q", c.HostHeader)
	}
	fmt.Fprintf(&b, " (%s)", c.CallMode)
	return b.String()
}

// describeProxy names the proxy a source's calls go through.
func describeProxy(src check.Source) string {
	if src.Kind == check.Outside {
		return "ingress gateway istio-system/istio-ingressgateway"
	}
	s := "sidecar " + src.String()
	if DNSCapture(src) {
		s += " (DNS capture)"
	}
	return s
}

// resolve applies the sidecar's DNS proxy: with DNS capture, a call to a
// host without an explicit address goes to the address Istio's
// auto-allocation gave the host, as the DNS proxy answers it. The second
// result explains the resolution for the trace ("" when none applied).
func (s *server) resolve(src check.Source, d check.Destination, c simulation.Call) (simulation.Call, string) {
	if !DNSCapture(src) || d.Address != "" || d.Host == "" {
		return c, ""
	}
	if a, ok := s.allocated[d.Host]; ok {
		c.Address = a
		return c, fmt.Sprintf("DNS proxy: %s resolves to %s (auto-allocated from %s)", d.Host, a, AutoAllocatePrefix)
	}
	return c, ""
}
