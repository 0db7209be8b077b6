package sim

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/meshconform/meshconform/internal/ipmasq"
	"github.com/meshconform/meshconform/suites/check"
)

// masqNetwork is the masquerade scenario's network as the simulation
// models it. A pod (podIP, in podCIDR) on a node (nodeIP, in nodeNetwork)
// sends to a destination; ip-masq-agent (package ipmasq, upstream
// semantics) decides whether the packet leaves SNATed to the node IP or
// with the pod IP; the destination answers that source address, and the
// reply arrives only if the destination's network has a route to it:
// always to the node network (that is how SNATed traffic works), to the
// pod CIDR only with a return route (a peered network that learned the
// pod range). The outcome follows from the addresses and the routes, so
// a negative control that changes the config or the route changes it for
// the reason the live tier would observe.
type masqNetwork struct {
	podCIDR, nodeNetwork netip.Prefix
	podIP, nodeIP        netip.Addr
}

// masqVars are the Env variables the model reads (suites.SimEnv sets
// them: podCIDR 10.244.0.0/16, podIP 10.244.0.7, nodeIP 172.18.0.2 on
// nodeNetwork 172.18.0.0/16, Docker's network "kind").
var masqVars = []string{"podCIDR", "podIP", "nodeIP", "nodeNetwork"}

func newMasqNetwork(vars map[string]string) (masqNetwork, error) {
	var n masqNetwork
	for _, k := range masqVars {
		if vars[k] == "" {
			return n, fmt.Errorf("the masquerade model needs the environment variables %s (%s is missing): pass WithEnv(suites.SimEnv()) or set them", strings.Join(masqVars, ", "), k)
		}
	}
	var err error
	if n.podCIDR, err = netip.ParsePrefix(vars["podCIDR"]); err != nil {
		return n, fmt.Errorf("masquerade model: podCIDR: %w", err)
	}
	if n.nodeNetwork, err = netip.ParsePrefix(vars["nodeNetwork"]); err != nil {
		return n, fmt.Errorf("masquerade model: nodeNetwork: %w", err)
	}
	if n.podIP, err = netip.ParseAddr(vars["podIP"]); err != nil {
		return n, fmt.Errorf("masquerade model: podIP: %w", err)
	}
	if n.nodeIP, err = netip.ParseAddr(vars["nodeIP"]); err != nil {
		return n, fmt.Errorf("masquerade model: nodeIP: %w", err)
	}
	if !n.podCIDR.Contains(n.podIP) || !n.nodeNetwork.Contains(n.nodeIP) {
		return n, fmt.Errorf("masquerade model: podIP %s must be in podCIDR %s and nodeIP %s in nodeNetwork %s", n.podIP, n.podCIDR, n.nodeIP, n.nodeNetwork)
	}
	return n, nil
}

// routesBack are the prefixes the destination's network routes replies to.
func (n masqNetwork) routesBack(returnRoute bool) []netip.Prefix {
	r := []netip.Prefix{n.nodeNetwork}
	if returnRoute {
		r = append(r, n.podCIDR)
	}
	return r
}

// runMasquerade observes masquerade expectations on the model.
func (d *Driver) runMasquerade(c check.Check, res *check.Result) {
	cfg, err := ipmasq.Parse(c.Masquerade.Config, ipmasq.Options{})
	if err != nil {
		res.Status, res.Message = check.Error, err.Error()
		return
	}
	net, err := newMasqNetwork(d.env.Vars)
	if err != nil {
		res.Status, res.Message = check.Error, err.Error()
		return
	}
	src := "ip-masq-agent defaults (no ConfigMap)"
	if strings.TrimSpace(c.Masquerade.Config) != "" {
		src = "ip-masq-agent config " + strings.Join(strings.Fields(c.Masquerade.Config), " ")
	}
	routes := net.routesBack(c.Masquerade.ReturnRoute)
	var rs []string
	for _, p := range routes {
		rs = append(rs, p.String())
	}
	for _, step := range c.Steps {
		for _, e := range step.Expect {
			res.Observations = append(res.Observations, net.observe(cfg, src, rs, routes, step.Name, e))
		}
	}
}

func (n masqNetwork) observe(cfg ipmasq.Config, cfgSrc string, rs []string, routes []netip.Prefix, step string, e check.Expectation) check.Observation {
	o := check.Observation{Step: step, Expect: e}
	if e.From.Kind == check.Outside {
		// A client outside the cluster is not behind ip-masq-agent: the
		// model takes the target to answer on its published port. It is the
		// live tier that proves it (the control beside a bare Unreachable).
		o.Observed, o.Observable = check.Allowed, []check.Facet{check.FacetOutcome}
		o.Trace = []string{"outside the cluster: no ip-masq-agent on the path; the model assumes the target answers (observed by the live tier)"}
		return o
	}
	o.Observable = []check.Facet{check.FacetOutcome, check.FacetSeenAs, check.FacetFailure}
	dst, err := netip.ParseAddr(e.To.Address)
	if err != nil {
		o.Observed, o.Err = check.Inconclusive, fmt.Sprintf("destination address %q is not an IP: masquerade is decided per destination IP", e.To.Address)
		return o
	}
	dec := cfg.Evaluate(dst)
	o.Trace = []string{cfgSrc, "nat IP-MASQ-AGENT RETURN rules: " + strings.Join(cfg.RuleCIDRs(), ", ")}
	seen := n.podIP
	if dec.Masquerade {
		seen = n.nodeIP
		o.Trace = append(o.Trace, fmt.Sprintf("%s matches no RETURN rule → MASQUERADE: the packet leaves with the node IP %s", dst, seen))
	} else {
		o.Trace = append(o.Trace, fmt.Sprintf("%s matches RETURN %s → not masqueraded: the packet leaves with the pod IP %s", dst, dec.Rule, seen))
	}
	o.SourceIP = seen.String()
	o.SeenAs = check.PodIP
	if seen == n.nodeIP {
		o.SeenAs = check.NodeIP
	}
	o.Trace = append(o.Trace, "the destination's network routes replies to: "+strings.Join(rs, ", "))
	for _, p := range routes {
		if p.Contains(seen) {
			o.Observed = check.Allowed
			o.Evidence = fmt.Sprintf("the reply to %s follows the route %s", seen, p)
			return o
		}
	}
	o.Observed, o.Failure = check.Unreachable, check.FailureTimeout
	o.Evidence = fmt.Sprintf("the destination's network has no route to %s: the reply is lost and the client times out (the GKE ip-masq-agent failure)", seen)
	return o
}
