package sim

import (
	"istio.io/istio/pilot/pkg/simulation"

	"github.com/meshconform/meshconform/suites/check"
)

// Verdict is Istio's simulator's answer for one call on one proxy config.
type Verdict struct {
	// Call describes the simulated call ("call TCP 172.18.0.20:3306 (outbound)").
	Call string
	// Outcome is the classified outcome; Cluster the Envoy cluster reached.
	Outcome check.Outcome
	Cluster string
	// Trace is listener → filter chain → route config → virtual host →
	// route → cluster, as far as the call got.
	Trace []string
	// Why explains Outcome (the evidence).
	Why string
}

// Judge runs Istio's traffic simulator (pilot/pkg/simulation) for a call
// from src to dst on a proxy config — generated here, or pushed by a real
// istiod (package pushed) — and classifies it exactly as the simulation
// tier does. It returns an error for a destination that cannot be
// simulated (unknown protocol). portMap, if set, maps the destination port
// to the port the proxy listens on (a gateway's Service port → targetPort).
func Judge(s *simulation.Simulation, src check.Source, dst check.Destination, portMap map[int]int) (Verdict, error) {
	c, err := call(src, dst)
	if err != nil {
		return Verdict{}, err
	}
	if p, ok := portMap[c.Port]; ok {
		c.Port = p
	}
	p := newProxy(src, s)
	r := p.RunFullScan(c) // a pushed config: Istio's own scan, no index
	out, trace, why := classify(p, r)
	return Verdict{Call: describeCall(c), Outcome: out, Cluster: r.ClusterMatched, Trace: trace, Why: why}, nil
}
