package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/pushed"
)

// PhasePushed is the pushed-config tier: the mesh checks judged on the
// Envoy config istiod pushes to each source (package pushed).
const PhasePushed = "pushed"

// RunPushed runs the mesh checks among checks (each with its negative
// control) on the pushed config, when istiod is Ready; the results carry
// the suite name "<suite> (pushed config)", so reports keep them apart from
// the traffic results. It returns nil when there is no istiod to ask (the
// reason is printed and kept in the properties). traffic are the traffic
// tier's results of the same run: where an expectation's traffic verdict
// and pushed-config verdict disagree, PushedFindings has a finding MC0004
// with the proxy's sync status (pushed.Disagreements).
func (e *Env) RunPushed(ctx context.Context, checks []check.Check, traffic []check.Result, onResult func(check.Result)) []check.Result {
	return e.runPushed(ctx, checks, traffic, onResult)
}

// runPushed is RunPushed with options of the caller's for the tier's
// driver (RunExpectations: the user sources' probe pods), used when the
// driver is created (once per run).
func (e *Env) runPushed(ctx context.Context, checks []check.Check, traffic []check.Result, onResult func(check.Result), extra ...pushed.Option) []check.Result {
	if e.Mesh == nil || e.Driver == nil || e.Cluster == nil {
		return nil
	}
	var mesh []check.Check
	for _, c := range checks {
		if live.NeedsMesh(c) && c.Masquerade == nil {
			mesh = append(mesh, c)
		}
	}
	if len(mesh) == 0 {
		return nil
	}
	if e.cfg.Attached() {
		// It would port-forward to istiod in the control plane's namespace
		// and register as the workloads: more than attach mode's role.
		e.pushedNote = "not run on an attached cluster (needs pods/portforward to istiod)"
		e.p.Phase(PhasePushed, "%s", e.pushedNote)
		return nil
	}
	start := time.Now()
	d := e.pushedDriver(ctx, extra...)
	if d == nil {
		return nil
	}
	e.p.Phase(PhasePushed, "judging %d mesh checks (and their negative controls) on the config pushed to each proxy (istiod xDS, or its sidecar's config_dump)", len(mesh))
	res := check.RunAll(ctx, d, mesh, check.RunOptions{NegativeControls: true, OnResult: func(r check.Result) {
		r.Suite += pushed.SuiteSuffix
		if onResult != nil {
			onResult(r)
		}
	}})
	for i := range res {
		res[i].Suite += pushed.SuiteSuffix
	}
	e.pushedFindings = append(e.pushedFindings, pushed.Disagreements(ctx, traffic, res, d.SyncStatus)...)
	e.pushedCompared = true
	c := check.Counts(res)
	detail := fmt.Sprintf("%d passed, %d failed, %d errors; %s; %d disagreements with the traffic tier", c[check.Passed], c[check.Failed], c[check.Error], e.propagationSummary(), len(e.pushedFindings))
	e.p.Phase(PhasePushed, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhasePushed, start, detail)
	return res
}

// pushedDriver returns the tier's driver, created on first use (one per
// run: its streams and port-forwards are reused by every later call), or
// nil when istiod is not Ready (the reason is in PushedNote).
func (e *Env) pushedDriver(ctx context.Context, extra ...pushed.Option) *pushed.Driver {
	if e.pushed != nil {
		return e.pushed
	}
	if _, _, err := e.Mesh.IstiodReadySince(ctx); err != nil {
		e.pushedNote = "not run: " + err.Error()
		e.p.Phase(PhasePushed, "%s", e.pushedNote)
		return nil
	}
	opts := []pushed.Option{pushed.WithAgentImage(e.AgentImage), pushed.WithLogger(e.p.Logger()), pushed.WithTimeouts(e.cfg.PushedTimeouts)}
	if e.Fixtures != nil {
		if cert, err := e.Fixtures.CA().Issue([]string{fixtures.IngressHost}); err == nil {
			opts = append(opts, pushed.WithIngress(e.Driver.Env().Vars["tlsSecret"], fixtures.IngressHost, cert.CertPEM(), cert.KeyPEM()))
		}
	}
	d, err := pushed.New(e.Cluster, e.Mesh, e.cfg.Namespace, e.Driver.Env, append(opts, extra...)...)
	if err != nil {
		e.pushedNote = "not run: " + err.Error()
		e.p.Phase(PhasePushed, "%s", e.pushedNote)
		return nil
	}
	e.pushed, e.pushedNote = d, ""
	e.onUndo("pushed-config tier", e.closePushed, nil)
	if msg, err := pushed.VerifyWebhook(ctx, e.Cluster, e.cfg.Namespace); err != nil {
		e.webhookNote = "FAILED: " + err.Error()
	} else {
		e.webhookNote = msg
	}
	e.p.Phase(PhasePushed, "ServiceEntry validation: %s", e.webhookNote)
	return d
}

// PushedNote says why the pushed-config tier did not run ("" when it did
// or was not asked).
func (e *Env) PushedNote() string { return e.pushedNote }

// PushedFindings are the disagreements between the traffic tier and the
// pushed-config tier (findings MC0004), and whether the comparison ran
// (the report then carries the findings source findings.PushedConfig).
func (e *Env) PushedFindings() (fs []findings.Finding, compared bool) {
	return slices.Clone(e.pushedFindings), e.pushedCompared
}

// propagationSummary renders the apply → push-seen times of the tier.
func (e *Env) propagationSummary() string {
	if e.pushed == nil || len(e.pushed.Propagations) == 0 {
		return "no change propagated"
	}
	var ds []time.Duration
	for _, p := range e.pushed.Propagations {
		ds = append(ds, p.Elapsed)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return fmt.Sprintf("%d changes propagated (apply → push seen): median %s, max %s", len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

// Propagations are the pushed-config tier's change → push-seen times.
func (e *Env) Propagations() []pushed.Propagation {
	if e.pushed == nil {
		return nil
	}
	return slices.Clone(e.pushed.Propagations)
}

// pushedProperties adds the tier's figures to the report properties.
func (e *Env) pushedProperties(m map[string]string) {
	if e.pushedNote != "" {
		m["pushed.note"] = e.pushedNote
	}
	if e.pushed != nil {
		m["pushed.propagation"] = e.propagationSummary()
	}
	if e.webhookNote != "" {
		m["istio.webhook"] = e.webhookNote
	}
	if e.Istiod.Ref != "" {
		m["istio.localIstiod"] = e.Istiod.Ref
	}
}

// closePushed ends the tier's streams and restores what it changed.
func (e *Env) closePushed(ctx context.Context) error {
	if e.pushed == nil {
		return nil
	}
	err := e.pushed.Close(ctx)
	e.pushed = nil
	if err != nil {
		return fmt.Errorf("close pushed-config tier: %w", err)
	}
	return nil
}
