package e2e

import (
	"context"
	"errors"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
)

// installIstio installs Istio into the kind cluster (from the host's
// Docker, or the local istiod). A *clusters.NotReadyError is not fatal: the
// checks that need the mesh report it. The install goes with the cluster
// (deleted, or restored by its Teardown when reused).
func (e *Env) installIstio(ctx context.Context) error {
	cfg, p, cl := e.cfg, e.p, e.Cluster
	start := time.Now()
	if !cfg.InstallIstio {
		e.MeshErr = errors.New("Istio was not installed: no selected check needs it")
		p.Phase(PhaseIstio, "skipped: no selected check needs the mesh")
		return nil
	}
	opts := []istio.Option{istio.WithTimeouts(cfg.IstioTimeouts)}
	if cfg.IstioHub != "" {
		opts = append(opts, istio.WithHub(cfg.IstioHub))
	}
	if cfg.IstioTag != "" {
		opts = append(opts, istio.WithTag(cfg.IstioTag))
	}
	if e.localIstiod() {
		opts = append(opts, istio.WithHub(e.Istiod.Hub), istio.WithTag(e.Istiod.Tag))
	}
	if cfg.NoPull || e.localIstiod() {
		// Only images on the nodes run: a missing proxyv2 is reported at
		// once (ErrImageNeverPull), and no node ever asks a registry.
		opts = append(opts, istio.WithNeverPull())
	}
	p.Phase(PhaseIstio, "installing Istio %s", orNone(cfg.IstioTag, istio.DefaultTag))
	if !e.localIstiod() {
		e.MeshErr = e.preloadIstio(ctx, cl)
	}
	// With a local istiod its image was built and loaded by
	// PhaseIstiodImage; proxyv2 has no local build, so the install goes on
	// and the gateway and sidecars are reported not ready, naming it.
	if e.MeshErr == nil {
		e.Mesh, e.MeshErr = istio.Install(ctx, cl, opts...)
	}
	switch {
	case e.MeshErr == nil:
		p.Phase(PhaseIstio, "Istio %s ready in %.1fs", e.meshVersion(), time.Since(start).Seconds())
	case clusters.IsNotReady(e.MeshErr):
		p.Phase(PhaseIstio, "not ready after %.1fs: %v (checks that need the mesh will report it)", time.Since(start).Seconds(), e.MeshErr)
	case ctx.Err() != nil:
		return fail(PhaseIstio, ctx.Err())
	default:
		return fail(PhaseIstio, e.MeshErr)
	}
	e.record(PhaseIstio, start, errString(e.MeshErr, "ready"))
	if e.localIstiod() && e.Mesh != nil {
		e.recordIstiodReady(ctx, start)
	}
	return nil
}
