package e2e

import (
	"context"
	"time"

	"github.com/meshconform/meshconform/clusters"
)

// loadImages loads the agent image (and ip-masq-agent's, and the local
// istiod's) into the kind nodes. Nothing to undo: the images go with the
// nodes.
func (e *Env) loadImages(ctx context.Context) error {
	cfg, p, cl := e.cfg, e.p, e.Cluster
	start := time.Now()
	if err := cl.LoadImage(ctx, e.AgentImage); err != nil {
		return fail(PhaseLoad, err)
	}
	loaded := e.AgentImage
	if cfg.MasqueradeChecks && cl.Managed() {
		// Like Istio's images: from the host's Docker (pulled there once
		// unless NoPull), never by the nodes. A failure is reported by the
		// masquerade checks (the agent's pods cannot start).
		ref := orNone(cfg.IPMasqAgentImage, clusters.DefaultIPMasqAgentImage)
		if err := cl.PreloadImages(ctx, []string{ref}, !cfg.NoPull); err != nil {
			p.Phase(PhaseLoad, "warning: %v", err)
		} else {
			loaded += ", " + ref
		}
	}
	if e.localIstiod() {
		if err := cl.LoadImage(ctx, e.Istiod.Ref); err != nil {
			return fail(PhaseLoad, err)
		}
		loaded += ", " + e.Istiod.Ref
	}
	p.Phase(PhaseLoad, "%s in %.1fs", loaded, time.Since(start).Seconds())
	e.record(PhaseLoad, start, loaded)
	return nil
}
