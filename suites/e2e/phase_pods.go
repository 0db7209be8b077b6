package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/echo"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/live/istiomesh"
)

// startPods creates the live driver and its probe pods; the driver's Close
// (policy restored, return routes removed) goes on the undo stack. A pod
// that is not usable is not fatal: the checks that need it say why.
func (e *Env) startPods(ctx context.Context) error {
	cfg, p, cl := e.cfg, e.p, e.Cluster
	start := time.Now()
	var mesh live.Mesh
	if e.Mesh != nil {
		mesh = istiomesh.Wrap(e.Mesh)
	}
	opts := []live.Option{
		live.WithCluster(cl), live.WithMesh(mesh, e.MeshErr), live.WithAgentImage(e.AgentImage),
		live.WithIPMasqAgentImage(cfg.IPMasqAgentImage), live.WithNamespace(cfg.Namespace),
		live.WithTimeouts(cfg.LiveTimeouts), live.WithLogger(p.Logger()), live.WithEnvBuilder(suites.Env),
	}
	if e.Fixtures != nil {
		cert, err := e.Fixtures.CA().Issue([]string{fixtures.IngressHost})
		if err != nil {
			return fail(PhasePods, fmt.Errorf("issue the ingress certificate: %w", err))
		}
		b := e.Fixtures.MySQL().Bookinfo()
		opts = append(opts, live.WithEndpoints(e.Fixtures.Endpoints()),
			live.WithMySQL(e.Fixtures.AdminDSN(), b.User, b.Password),
			live.WithCA(e.Fixtures.CAPEM()), live.WithIngressCert(cert.CertPEM(), cert.KeyPEM()),
			live.WithEchoContainer(fixtures.ContainerName(e.Fixtures.RunID, echo.Name)))
	} else {
		// Attach mode: only the in-cluster echo, no SQL, no ingress.
		opts = append(opts, live.WithEndpoints(e.endpoints), live.WithInjectionLabels(e.injectionLabels()))
	}
	opts = append(opts, e.cfg.LiveOptions...) // e.g. run --expectations' source namespaces
	d, err := live.New(opts...)
	if err != nil {
		return fail(PhasePods, err)
	}
	e.Driver = d
	e.onUndo("probe pods' changes", d.Close, nil)
	if err := d.Setup(ctx); err != nil && ctx.Err() != nil {
		return fail(PhasePods, ctx.Err())
	}
	p.Phase(PhasePods, "%s (%.1fs)", d.PodsSummary(), time.Since(start).Seconds())
	e.record(PhasePods, start, d.PodsSummary())
	return nil
}
