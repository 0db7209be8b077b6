package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/suites/check"
)

// Attach-mode phases (Config.Attached): see attachPhases in phases.go.
const (
	// PhasePreflight checks every permission the run will use with
	// SelfSubjectAccessReviews before anything is changed.
	PhasePreflight = "preflight"
	// PhaseNamespaces creates the run's own namespaces and their Lease.
	PhaseNamespaces = "namespaces"
)

// Labels and annotations of attach mode (besides clusters.LabelManaged and
// clusters.LabelRun, which every object of a run carries).
const (
	// LabelMode marks namespaces of attach-mode runs ("attach"); the sweep
	// of attached clusters only ever considers namespaces with it.
	LabelMode = "meshconform.dev/mode"
	// AnnotationOwner names the process that owns a namespace
	// ("host/pid"), for people; the sweep decides by the Lease only.
	AnnotationOwner = "meshconform.dev/owner"
	// LabelRetained on an attach run's Lease marks its namespace as kept
	// on purpose (--retain): the sweep never removes it.
	LabelRetained = "meshconform.dev/retained"
	// LeaseName is the coordination.k8s.io Lease in every namespace of an
	// attach run, renewed while the run lives (see attach_namespaces.go).
	LeaseName = "meshconform-run"
)

// FixturesNamespace is the namespace of the in-cluster fixtures of an
// attach run whose probe namespace is ns: no injection, outside the mesh.
func FixturesNamespace(ns string) string { return ns + "-fixtures" }

// attachAgentImage decides the agent image of an attach run: AgentImage
// (a pushed image, pulled by the cluster), or else the local build, which
// only works when the nodes already have it (e.g. a kind cluster the user
// loaded it into: `kind load docker-image`).
func (e *Env) attachAgentImage(ctx context.Context) error {
	start := time.Now()
	if e.cfg.AgentImage != "" {
		e.AgentImage = e.cfg.AgentImage
		e.p.Phase(PhaseImage, "%s (pushed; pulled by the cluster)", e.AgentImage)
		e.record(PhaseImage, start, e.AgentImage)
		return nil
	}
	ref, err := images.Agent(ctx, images.WithLogger(e.p))
	if err != nil {
		return fail(PhaseImage, err)
	}
	e.AgentImage = ref
	if err := e.Cluster.LoadImage(ctx, ref); err != nil {
		return fail(PhaseImage, fmt.Errorf("%w: push it with `meshconform image push REGISTRY/meshconform/agent:TAG` and pass --agent-image with that reference", err))
	}
	e.p.Phase(PhaseImage, "%s (on every node) in %.1fs", ref, time.Since(start).Seconds())
	e.record(PhaseImage, start, ref)
	return nil
}

// NotApplicable returns why check c cannot run in this environment without
// changing what the run does not own ("" when it can), decided before it
// runs: on an attached cluster the harness never edits cluster DNS, CNI,
// kube-system, the mesh-wide policy or shared gateways, and runs only the
// echo fixture (HTTP and TCP, inside the cluster). Kind clusters the
// harness manages run every check.
func (e *Env) NotApplicable(c check.Check) string {
	if !e.cfg.Attached() {
		return ""
	}
	if c.Masquerade != nil || c.Needs(check.NeedsIPMasqAgent) {
		return "not applicable on an attached cluster: needs node access and a change to ip-masq-agent's kube-system ConfigMap (source NAT of every pod), which attach mode never makes"
	}
	for _, s := range c.Steps {
		for _, x := range s.Expect {
			if x.To.Target == "ingress" || c.Needs(check.NeedsGateway) {
				return "not applicable on an attached cluster: binds a Gateway to the shared ingress gateway and writes its TLS Secret into the gateway's namespace, which attach mode never does"
			}
			if x.To.Target == "" {
				continue
			}
			ep, ok := e.endpoints[x.To.Target]
			if !ok && x.To.Target != "blocked" {
				return fmt.Sprintf("not applicable on an attached cluster: needs the %s fixture, which attach mode does not run (it runs %s inside the cluster)", x.To.Target, strings.Join(mapsKeys(e.endpoints), ", "))
			}
			if ok && x.To.Port != 0 && !slices.Contains(mapsValues(ep.Ports), x.To.Port) {
				return fmt.Sprintf("not applicable on an attached cluster: needs port %d of the %s fixture, which attach mode does not serve (ports %v)", x.To.Port, x.To.Target, ep.Ports)
			}
		}
		for _, m := range s.Apply {
			if _, db := e.endpoints["mysql"]; !db && strings.Contains(m.Text, "fixtureCIDR") {
				return "not applicable on an attached cluster: " + m.Name + " covers the echo and mysql fixtures' addresses, and attach mode does not run mysql"
			}
			if strings.Contains(m.Text, "resolution: DNS") {
				return "not applicable on an attached cluster: " + m.Name + " resolves the fixtures' names through cluster DNS, which attach mode never edits"
			}
		}
	}
	if c.Policy != "" && string(c.Policy) != e.Policy.Mode {
		return fmt.Sprintf("not applicable on an attached cluster: runs under outboundTrafficPolicy %s, the cluster's effective policy is %s (%s), and attach mode never changes the mesh-wide policy", c.Policy, orNone(e.Policy.Mode, "unknown"), e.Policy.Source)
	}
	return ""
}

// SkipNotApplicable splits checks into those that can run and a Skipped
// result (with the reason, and one for its negative control when
// negativeControls) for each that cannot (NotApplicable).
func (e *Env) SkipNotApplicable(checks []check.Check, negativeControls bool) (run []check.Check, skipped []check.Result) {
	for _, c := range checks {
		why := e.NotApplicable(c)
		if why == "" {
			run = append(run, c)
			continue
		}
		r := check.NewResult(c)
		r.Status, r.Message = check.Skipped, why
		skipped = append(skipped, r)
		if negativeControls && c.NegativeControl.Mutate != nil {
			n := check.NewResult(c.Negated())
			n.NegativeControl = true
			n.Status, n.Message = check.Skipped, why
			skipped = append(skipped, n)
		}
	}
	return run, skipped
}

func mapsKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mapsValues(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
