package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live/probe"
)

// agentBinary is the agent's path in its image (fixtures/images' Dockerfile).
const agentBinary = "/agent"

// outsidePod names the harness process itself as a probe source.
const outsidePod = ""

// prober runs probes; tests fake it.
//
// There is no Envoy-counter evidence: a real sidecar's stats inclusion
// list drops cluster.BlackHoleCluster.*, the stat name carries Istio's ";"
// delimiter, a STATIC cluster without hosts moves upstream_cx_none_healthy
// and never upstream_cx_total, and HTTP block_all is a direct response that
// never touches the cluster (live-tier review A5). The mesh's side of a
// verdict comes from the pushed-config tier (package pushed): the config
// istiod pushed to the workload, judged by Istio's simulator.
type prober interface {
	// Probe runs q from pod (outsidePod: in this process).
	Probe(ctx context.Context, pod string, q probe.Request) (probe.Result, error)
}

// execProber execs `/agent probe --json` in the probe pods.
type execProber struct{ d *Driver }

func (p *execProber) Probe(ctx context.Context, pod string, q probe.Request) (probe.Result, error) {
	if pod == outsidePod {
		return probe.Run(ctx, q), nil
	}
	d := p.d
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeouts.Exec)
	defer cancel()
	args := probeArgs(q, len(d.cfg.caPEM) > 0)
	ns, name := d.splitPod(pod)
	stdout, _, err := d.cl.Exec(ctx, ns, name, ProbeContainer, args...)
	if err != nil {
		return probe.Result{}, fmt.Errorf("run probe in %s/%s: %w", ns, name, err)
	}
	var r probe.Result
	if err := json.Unmarshal(stdout, &r); err != nil {
		return probe.Result{}, fmt.Errorf("run probe in %s/%s: output is not a probe result: %v: %q", ns, name, err, shorten(string(stdout), 200))
	}
	return r, nil
}

// probeArgs is the command line of one probe in a pod. The MySQL password
// is passed by the name of the variable holding it, never by value.
func probeArgs(q probe.Request, withCA bool) []string {
	args := []string{agentBinary, "probe", "--json", "--protocol", q.Protocol, "--port", strconv.Itoa(q.Port),
		"--timeout", q.Timeout.String()}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	add("--host", q.Host)
	add("--address", q.Address)
	add("--sni", q.SNI)
	if withCA && (q.Protocol == probe.HTTPS || q.Protocol == probe.TLS || q.Protocol == probe.GRPCS || (q.Protocol == probe.GRPC && !q.Plaintext)) {
		args = append(args, "--ca", caFileInPod)
	}
	if q.Protocol == probe.MySQL {
		add("--mysql-user", q.MySQLUser)
		args = append(args, "--mysql-password-env", passwordEnv)
		add("--query", q.Query)
	}
	if q.Plaintext {
		args = append(args, "--plaintext")
	}
	return args
}

// request turns an expectation into a probe request. For sources outside
// the cluster the address is the one the host reaches: the target's
// published port (Endpoint.PublishedAddress and PublishedPorts: 127.0.0.1 and a
// Docker-published port for fixtures and the kind ingress). The host never
// dials a node's or a container's own address, which Docker Desktop,
// rootless Docker and Podman do not route from the host: a target without
// a published port for that port is an error.
func (d *Driver) request(e check.Expectation) (probe.Request, error) {
	t := e.To
	q := probe.Request{Protocol: string(t.Protocol), Host: t.Host, Address: t.Address, Port: t.Port, SNI: t.SNI,
		Timeout: d.cfg.timeouts.Attempt, Query: e.Query}
	if t.Protocol == check.GRPC {
		q.Plaintext = true // check.GRPC is h2c; check.GRPCS is gRPC over TLS
	}
	if t.Protocol == check.MySQL {
		q.MySQLUser = d.cfg.bookinfoUser
	}
	if d.sourcePod(e) != outsidePod {
		return q, nil
	}
	q.CAPEM = d.cfg.caPEM
	ep, ok := d.endpoints[t.Target]
	if !ok {
		return q, fmt.Errorf("outside the cluster: target %q is not a known endpoint with published ports: the host does not dial %s directly", t.Target, t.Address)
	}
	if len(q.CAPEM) == 0 {
		q.CAPEM = ep.CAPEM
	}
	published := false
	for name, p := range ep.Ports {
		if hp, ok := ep.PublishedPorts[name]; ok && p == t.Port && ep.PublishedAddress != "" {
			q.Address, q.Port, published = ep.PublishedAddress, hp, true
		}
	}
	if !published {
		return q, fmt.Errorf("outside the cluster: %s has no published port for %d: the host does not dial node or container addresses (%s)", t.Target, t.Port, orDash(t.Address))
	}
	if t.Protocol == check.MySQL {
		q.MySQLPassword = d.cfg.bookinfoPass
	}
	return q, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// observe makes one observation of e.
func (d *Driver) observe(ctx context.Context, step string, e check.Expectation) check.Observation {
	o := check.Observation{Step: step, Expect: e, Observable: check.TrafficFacets}
	pod := d.sourcePod(e)
	meshed := pod != outsidePod && pod != ControlPod
	q, err := d.request(e)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	where := pod
	if where == outsidePod {
		where = "outside"
	}
	r, err := d.prober.Probe(ctx, pod, q)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	o.Elapsed = time.Duration(r.Elapsed)
	o.Trace = append(o.Trace, fmt.Sprintf("%s: %s", where, r.String()))
	for _, s := range r.Steps {
		o.Trace = append(o.Trace, "  "+s)
	}
	if r.Error != "" {
		o.Err = "probe: " + r.Error
		return o
	}
	o.Observed = check.Outcome(r.Outcome)
	if o.Observed != check.Allowed {
		o.Failure = r.Kind
	}
	o.Evidence = r.Detail
	o.SourceIP, o.Rows, o.SQLError = r.SourceIP, r.Rows, r.SQLError
	if o.SourceIP != "" && pod != outsidePod {
		if pi, err := d.podInfo(ctx, pod); err == nil {
			switch o.SourceIP {
			case pi.PodIP:
				o.SeenAs = check.PodIP
			case pi.NodeIP:
				o.SeenAs = check.NodeIP
			}
			o.Trace = append(o.Trace, fmt.Sprintf("pod %s: pod IP %s, node IP %s; the target saw %s", pod, pi.PodIP, pi.NodeIP, o.SourceIP))
		}
	}
	if d.masqEval != nil && !meshed && pod != outsidePod {
		if dst, err := netip.ParseAddr(e.To.Address); err == nil {
			dec := d.masqEval.Evaluate(dst)
			o.Trace = append(o.Trace, fmt.Sprintf("ip-masq-agent config in effect: traffic to %s masqueraded=%v (rule %s)", dst, dec.Masquerade, dec.Rule))
		}
	}
	if meshed && o.Observed != check.Allowed {
		d.control(ctx, q, &o)
	}
	return o
}

// control repeats a meshed pod's failed probe from the control pod (no
// sidecar): if the target is unreachable from there too, the meshed
// observation says nothing about the mesh: Inconclusive.
func (d *Driver) control(ctx context.Context, q probe.Request, o *check.Observation) {
	if d.controlErr != nil {
		o.Trace = append(o.Trace, "control (no sidecar): not available: "+d.controlErr.Error())
		return
	}
	cr, err := d.prober.Probe(ctx, ControlPod, q)
	switch {
	case err != nil:
		o.Trace = append(o.Trace, "control (no sidecar): "+err.Error())
	case cr.Error == "" && cr.Outcome == probe.Allowed:
		o.Trace = append(o.Trace, "control (no sidecar): "+cr.String())
	default:
		o.Trace = append(o.Trace, "control (no sidecar): "+cr.String())
		o.Evidence = fmt.Sprintf("meshed: %s %s; control: %s %s", o.Observed, o.Evidence, cr.Outcome, cr.Detail)
		o.Observed = check.Inconclusive
		o.Err = "the control pod without sidecar failed too: " + cr.String()
	}
}

// converge observes a step's expectations in rounds until each has
// matched Timeouts.Consecutive times in a row or the bound has passed
// since the change: Timeouts.Converge after the step applied, deleted or
// wrote something, Timeouts.Settled when it changed nothing itself. Converged is the time from the change to the
// first of the matching observations. An expectation that never converges
// keeps its last observation and an error saying so: it fails, even if its
// last observation happened to match. After an earlier failed step
// (alreadyFailed) each expectation is observed once.
func (d *Driver) converge(ctx context.Context, step check.Step, changed time.Time, alreadyFailed bool) []check.Observation {
	t := d.cfg.timeouts
	n := len(step.Expect)
	last := make([]check.Observation, n)
	streak := make([]int, n)
	firstMatch := make([]time.Time, n)
	done := make([]bool, n)
	need := t.Consecutive
	if alreadyFailed {
		need = 1
	}
	bound := t.Converge
	if len(step.Apply) == 0 && len(step.Delete) == 0 && len(step.AdminSQL) == 0 {
		bound = t.Settled
	}
	deadline := changed.Add(bound)
	rounds := 0
	for {
		rounds++
		all := true
		for i, e := range step.Expect {
			if done[i] {
				continue
			}
			t0 := d.clock().Now()
			o := d.observe(ctx, step.Name, e)
			last[i] = o
			mm := o.Mismatch()
			d.log.Debug("observation", "step", step.Name, "expect", e.String(), "observed", o.Observed, "seenAs", o.SeenAs, "mismatch", mm, "evidence", o.Evidence)
			switch {
			case alreadyFailed:
				done[i] = true
				last[i].Trace = append(last[i].Trace, "observed once: the check had already failed")
			case mm == "":
				if streak[i] == 0 {
					firstMatch[i] = t0
				}
				streak[i]++
				if streak[i] >= need {
					done[i] = true
					last[i].Converged = firstMatch[i].Sub(changed)
				}
			default:
				streak[i] = 0
			}
			all = all && done[i]
		}
		if all || ctx.Err() != nil || d.clock().Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-d.clock().After(t.Poll):
		}
	}
	for i := range last {
		if done[i] {
			continue
		}
		why := fmt.Sprintf("did not converge within %v after the change (%d rounds; %d consecutive matching observations needed, last streak %d)", bound, rounds, need, streak[i])
		if ctx.Err() != nil {
			why = "interrupted before converging: " + ctx.Err().Error()
		}
		last[i].Trace = append(last[i].Trace, why)
		if last[i].Mismatch() == "" {
			last[i].Err = why
		}
	}
	return last
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ingressEndpoint is where the host reaches the ingress gateway's port
// 443 (Mesh.IngressAddress: 127.0.0.1 and a published port on kind). It has
// no address on the cluster network: only outside sources use it.
func ingressEndpoint(host string, port int, caPEM []byte) fixtures.Endpoint {
	return fixtures.Endpoint{
		Name: "ingress", Host: fixtures.IngressHost, PublishedAddress: host,
		Ports: map[string]int{"https": 443}, PublishedPorts: map[string]int{"https": port}, CAPEM: caPEM,
	}
}
