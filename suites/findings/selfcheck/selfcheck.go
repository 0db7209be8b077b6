package selfcheck

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/config/protocol"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/sim"
)

// Codes of the self-checks.
const (
	CodeShadowed   = "MC0001"
	CodeWholePort  = "MC0002"
	CodeRejected   = "MC0003"
	docBase        = "https://github.com/meshconform/meshconform#findings"
	nameShadowed   = "ShadowedServiceEntry"
	nameWholePort  = "WholePortCapture"
	nameRejected   = "EnvoyWouldReject"
	undeclaredHost = "undeclared.meshconform.invalid"
)

// Run self-checks every scenario (sim.Driver.Scenarios) and returns the
// findings, sorted by object then code. Calls run on one worker per CPU.
// Errors: a config that cannot be generated.
func Run(ctx context.Context, d *sim.Driver, scenarios []sim.Scenario) ([]findings.Finding, error) {
	var out []findings.Finding
	seen := map[string]bool{}
	for _, sc := range scenarios {
		fs, err := runScenario(ctx, d, sc)
		if err != nil {
			return nil, fmt.Errorf("self-check %s: %w", sc.Name, err)
		}
		for _, f := range fs {
			k := f.Code + "|" + f.Object() + "|" + f.Message
			if !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Object() != out[j].Object() {
			return out[i].Object() < out[j].Object()
		}
		return out[i].Code < out[j].Code
	})
	return out, nil
}

// entry is one ServiceEntry of the scenario.
type entry struct {
	obj  sim.Object
	se   *networking.ServiceEntry
	addr []netip.Prefix
}

func (e *entry) id() string { return e.obj.Namespace + "/" + e.obj.Name }

func (e *entry) exportedTo(ns string) bool {
	exp := e.se.GetExportTo()
	if len(exp) == 0 {
		return true
	}
	for _, x := range exp {
		if x == "*" || x == ns || (x == "." && ns == e.obj.Namespace) {
			return true
		}
	}
	return false
}

// probe is one simulated call and what it proves.
type probe struct {
	src  check.Source
	e    *entry
	port *networking.ServicePort
	host string // entry host called ("" for whole-port probes)
	call simulation.Call
	res  simulation.Result
	p    *sim.Proxy
}

func runScenario(ctx context.Context, d *sim.Driver, sc sim.Scenario) ([]findings.Finding, error) {
	cfg, err := d.Config(sc, "")
	if err != nil {
		return nil, err
	}
	var entries []*entry
	vsHosts := map[string]bool{}
	var vsWild []host.Name
	sidecarNS := map[string]bool{}
	for _, o := range sc.Objects {
		if o.Istio == nil {
			continue
		}
		switch s := o.Istio.Spec.(type) {
		case *networking.ServiceEntry:
			e := &entry{obj: o, se: s}
			for _, a := range s.GetAddresses() {
				if p, err := netip.ParsePrefix(a); err == nil {
					e.addr = append(e.addr, p)
				} else if ip, err := netip.ParseAddr(a); err == nil {
					e.addr = append(e.addr, netip.PrefixFrom(ip, ip.BitLen()))
				}
			}
			entries = append(entries, e)
		case *networking.VirtualService:
			if bindsMesh(s.GetGateways()) {
				for _, h := range s.GetHosts() {
					if host.Name(h).IsWildCarded() {
						vsWild = append(vsWild, host.Name(h))
					}
					vsHosts[h] = true
				}
			}
		case *networking.Sidecar:
			sidecarNS[o.Namespace] = true
		}
	}
	if len(entries) == 0 {
		return nil, nil
	}
	declared := func(a netip.Addr) bool {
		for _, e := range entries {
			for _, p := range e.addr {
				if p.Contains(a) {
					return true
				}
			}
		}
		return false
	}
	undeclared := undeclaredAddr(declared)
	routed := func(h string) bool {
		if vsHosts[h] {
			return true
		}
		for _, w := range vsWild {
			if host.Name(h).Matches(w) {
				return true
			}
		}
		return false
	}
	owner := map[string]*entry{} // cluster name -> entry
	for _, e := range entries {
		for _, h := range e.se.GetHosts() {
			for _, p := range e.se.GetPorts() {
				owner[fmt.Sprintf("outbound|%d||%s", p.GetNumber(), h)] = e
			}
		}
	}

	// Sources: the checks' meshed sources, plus a sidecar without labels
	// in the namespace of each entry no such source is exported to, and in
	// each namespace with a Sidecar.
	var sources []check.Source
	haveNS := map[string]bool{}
	for _, s := range sc.Sources {
		if s.Kind == check.Outside {
			continue
		}
		sources = append(sources, s)
		haveNS[s.Namespace] = true
	}
	addNS := func(ns string) {
		if !haveNS[ns] {
			haveNS[ns] = true
			sources = append(sources, check.Source{Kind: check.MeshedPod, Namespace: ns})
		}
	}
	base := len(sources)
	for _, e := range entries {
		reached := false
		for _, s := range sources[:base] {
			reached = reached || e.exportedTo(s.Namespace)
		}
		if !reached {
			addNS(e.obj.Namespace)
		}
	}
	nsList := make([]string, 0, len(sidecarNS))
	for ns := range sidecarNS {
		nsList = append(nsList, ns)
	}
	sort.Strings(nsList)
	for _, ns := range nsList {
		addNS(ns)
	}
	proxies := cfg.Proxies(ctx, sources)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var out []findings.Finding
	// MC0003: Istio's own xDS validation of every generated proxy config.
	for i, p := range proxies {
		for _, r := range validate(p.Listeners(), p.Clusters()) {
			out = append(out, findings.Finding{
				Source: findings.SelfCheck, Code: CodeRejected, Name: nameRejected, Level: findings.Error,
				Message: fmt.Sprintf("Envoy would reject the config istiod generates for %s: %s: %s; the proxy NACKs it and pods never become ready",
					sources[i], r.resource, r.problem),
				DocURL: docBase,
				Trace:  []string{"scenario " + sc.Name, "validated with istio.io/istio/pilot/test/xdstest (the checks Istio's own tests apply)"},
			})
		}
	}

	// Probes: for each entry, the sources it is exported to (one
	// representative unless the namespace has a Sidecar).
	var probes []*probe
	wholeSeen := map[string]bool{}
	for _, e := range entries {
		var srcIdx []int
		first := true
		for i, s := range sources {
			if !e.exportedTo(s.Namespace) {
				continue
			}
			if first || sidecarNS[s.Namespace] {
				srcIdx = append(srcIdx, i)
				first = false
			}
		}
		for _, i := range srcIdx {
			src, p := sources[i], proxies[i]
			for _, port := range e.se.GetPorts() {
				for _, h := range e.se.GetHosts() {
					if host.Name(h).IsWildCarded() || routed(h) {
						continue
					}
					c, ok := callFor(port, h, entryAddr(e, h, src, cfg, undeclared))
					if ok {
						probes = append(probes, &probe{src: src, e: e, port: port, host: h, call: c, p: p})
					}
				}
				// Whole-port probe: once per source, port and protocol.
				k := fmt.Sprintf("%s|%d|%s", src.Key(), port.GetNumber(), protocol.Parse(port.GetProtocol()))
				if !wholeSeen[k] {
					wholeSeen[k] = true
					if c, ok := callFor(port, undeclaredHost, undeclared); ok {
						probes = append(probes, &probe{src: src, e: e, port: port, call: c, p: p})
					}
				}
			}
		}
	}
	runAll(ctx, probes)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// MC0001: a call to the entry's own host lands in another entry's cluster.
	shadowers := map[string]bool{} // entry id + port: already explained as owning the listener
	for _, pr := range probes {
		if pr.host == "" {
			continue
		}
		want := fmt.Sprintf("outbound|%d||%s", pr.port.GetNumber(), pr.host)
		got := pr.res.ClusterMatched
		other, ok := owner[got]
		if pr.res.Error != nil || got == want || !ok || other == pr.e {
			continue
		}
		shadowers[other.id()+fmt.Sprint(pr.port.GetNumber())] = true
		out = append(out, findings.Finding{
			Source: findings.SelfCheck, Code: CodeShadowed, Name: nameShadowed, Level: findings.Error,
			Kind: "ServiceEntry", Namespace: pr.e.obj.Namespace, ObjectName: pr.e.obj.Name, File: pr.e.obj.File, Line: pr.e.obj.Line,
			Message: fmt.Sprintf("calls to %s:%d from %s reach %s of ServiceEntry %s (%s:%d), not %s: %s",
				pr.host, pr.port.GetNumber(), pr.src, got, other.id(), other.obj.File, other.obj.Line, want, why(pr, other)),
			DocURL: docBase,
			Trace:  trace(pr),
		})
	}

	// MC0002: a call to an undeclared address (and an undeclared Host/SNI)
	// reaches an entry's cluster.
	var allowAny *sim.Config
	for _, pr := range probes {
		if pr.host != "" || pr.res.Error != nil {
			continue
		}
		e, ok := owner[pr.res.ClusterMatched]
		if !ok || shadowers[e.id()+fmt.Sprint(pr.port.GetNumber())] {
			continue
		}
		policy := string(sc.Policy)
		if policy == "" {
			policy = "the mesh's policy"
		}
		tr := trace(pr)
		under := "under " + policy
		if sc.Policy != check.AllowAny {
			if allowAny == nil {
				if allowAny, err = d.Config(sc, check.AllowAny); err != nil {
					return nil, err
				}
			}
			p2 := allowAny.Proxy(pr.src)
			r2 := p2.Run(pr.call)
			tr = append(tr, "under ALLOW_ANY:", "listener "+r2.ListenerMatched, "cluster "+r2.ClusterMatched)
			if r2.ClusterMatched == pr.res.ClusterMatched {
				under += " and under ALLOW_ANY"
			}
			// Restore the config the checks use (cache order).
			if _, err := d.Config(sc, ""); err != nil {
				return nil, err
			}
		}
		out = append(out, findings.Finding{
			Source: findings.SelfCheck, Code: CodeWholePort, Name: nameWholePort, Level: findings.Warning,
			Kind: "ServiceEntry", Namespace: e.obj.Namespace, ObjectName: e.obj.Name, File: e.obj.File, Line: e.obj.Line,
			Message: fmt.Sprintf("captures every address on port %d: a %s call to %s:%d, an address it does not declare%s, from %s reaches %s %s; "+
				"declare `addresses` (or give the client DNS capture with auto-allocation, ISTIO_META_DNS_CAPTURE) so only its own traffic matches",
				pr.port.GetNumber(), strings.ToUpper(string(pr.call.Protocol)), pr.call.Address, pr.port.GetNumber(), hostNote(pr.call), pr.src, pr.res.ClusterMatched, under),
			DocURL: docBase,
			Trace:  tr,
		})
	}
	return out, nil
}

func hostNote(c simulation.Call) string {
	switch {
	case c.Sni != "":
		return fmt.Sprintf(" with SNI %q", c.Sni)
	case c.HostHeader != "":
		return fmt.Sprintf(" with Host %q", c.HostHeader)
	}
	return ""
}

// why explains which entry owns the listener.
func why(pr *probe, other *entry) string {
	a, b := other.obj.Istio.CreationTimestamp, pr.e.obj.Istio.CreationTimestamp
	l := pr.res.ListenerMatched
	switch {
	case !a.IsZero() && !b.IsZero() && a.Before(b):
		return fmt.Sprintf("both match on listener %s without a distinguishing address or SNI/Host, and Istio gives it to the older entry (%s created %s, %s created %s); declare distinct `addresses`, or use DNS capture with auto-allocation",
			l, other.id(), a.Format("2006-01-02"), pr.e.id(), b.Format("2006-01-02"))
	default:
		return fmt.Sprintf("both match on listener %s without a distinguishing address or SNI/Host, and Istio keeps the first entry in its order (creation time, then name); declare distinct `addresses`, or use DNS capture with auto-allocation", l)
	}
}

func trace(pr *probe) []string {
	r := pr.res
	t := []string{fmt.Sprintf("sidecar %s: call %s %s:%d%s", pr.src, strings.ToUpper(string(pr.call.Protocol)), pr.call.Address, pr.call.Port, hostNote(pr.call))}
	for _, kv := range [][2]string{{"listener", r.ListenerMatched}, {"filter chain", r.FilterChainMatched}, {"virtual host", r.VirtualHostMatched}, {"route", r.RouteMatched}, {"cluster", r.ClusterMatched}} {
		if kv[1] != "" {
			t = append(t, kv[0]+" "+kv[1])
		}
	}
	return t
}

// runAll runs the probes on one worker per CPU.
func runAll(ctx context.Context, probes []*probe) {
	work := make(chan *probe)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pr := range work {
				pr.res = pr.p.Run(pr.call)
			}
		}()
	}
	for _, pr := range probes {
		if ctx.Err() != nil {
			break
		}
		work <- pr
	}
	close(work)
	wg.Wait()
}

// bindsMesh: a VirtualService applies to sidecars when it names no
// gateway or names "mesh".
func bindsMesh(gws []string) bool {
	if len(gws) == 0 {
		return true
	}
	for _, g := range gws {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// entryAddr is the address a client of host connects to: the entry's own
// (first) address, the auto-allocated one for a DNS-capture sidecar, else
// an address no entry declares (a DNS-resolved public IP).
func entryAddr(e *entry, h string, src check.Source, cfg *sim.Config, undeclared string) string {
	if len(e.addr) > 0 {
		a := e.addr[0].Addr()
		if e.addr[0].Bits() < a.BitLen() {
			a = a.Next()
		}
		return a.String()
	}
	if sim.DNSCapture(src) {
		if a := cfg.Allocated(h); a != "" {
			return a
		}
	}
	return undeclared
}

// undeclaredAddr picks a documentation address (RFC 5737) that no entry
// declares.
func undeclaredAddr(declared func(netip.Addr) bool) string {
	for _, base := range []string{"203.0.113.0", "198.51.100.0", "192.0.2.0"} {
		a := netip.MustParseAddr(base)
		for i := 0; i < 250; i++ {
			a = a.Next()
			if !declared(a) {
				return a.String()
			}
		}
	}
	return "203.0.113.254"
}

// callFor builds the call a client of the port's protocol makes to host h
// at address addr. ok is false for protocols the simulator cannot send.
func callFor(port *networking.ServicePort, h, addr string) (simulation.Call, bool) {
	c := simulation.Call{Address: addr, Port: int(port.GetNumber()), CallMode: simulation.CallModeOutbound}
	p := protocol.Parse(port.GetProtocol())
	switch {
	case p == protocol.HTTP || p == protocol.HTTP_PROXY:
		c.Protocol, c.TLS, c.HostHeader = simulation.HTTP, simulation.Plaintext, h
	case p == protocol.HTTP2 || p == protocol.GRPC || p == protocol.GRPCWeb:
		c.Protocol, c.TLS, c.HostHeader = simulation.HTTP2, simulation.Plaintext, h
	case p == protocol.HTTPS || p == protocol.TLS:
		c.Protocol, c.TLS, c.Sni = simulation.TCP, simulation.TLS, h
	case p.IsTCP() || p == protocol.Unsupported:
		c.Protocol, c.TLS = simulation.TCP, simulation.Plaintext
	default:
		return c, false
	}
	return c, true
}
