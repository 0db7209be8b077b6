package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/echo"
	"github.com/meshconform/meshconform/fixtures/greeter"
	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/fixtures/mysql"
	"github.com/meshconform/meshconform/fixtures/set"
)

// clusterAndFixtures runs, in parallel and cancelling each other on
// failure: the kind cluster (created or reused), the agent image followed
// by the fixture containers, and the local istiod image. Its sub-phases
// (cluster, image, fixtures, istiod-image) name a failure.
func (e *Env) clusterAndFixtures(ctx context.Context) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var clErr, fxErr, idErr error
	var fxPhase string
	wg.Go(func() {
		if clErr = e.setupCluster(pctx); clErr != nil {
			cancel()
		}
	})
	wg.Go(func() {
		if fxPhase, fxErr = e.imageAndFixtures(pctx); fxErr != nil {
			cancel()
		}
	})
	if e.localIstiod() {
		wg.Go(func() {
			if idErr = e.buildIstiod(pctx); idErr != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	switch {
	case idErr != nil && !errors.Is(idErr, context.Canceled):
		return fail(PhaseIstiodImage, idErr)
	case clErr != nil && !(fxErr != nil && errors.Is(clErr, context.Canceled) && ctx.Err() == nil):
		return fail(PhaseCluster, clErr)
	case fxErr != nil:
		return fail(fxPhase, fxErr)
	case ctx.Err() != nil:
		return fail(PhaseCluster, ctx.Err())
	}
	return nil
}

// attachCluster connects to the existing cluster of Config.Kubeconfig /
// Config.Context (never created or deleted).
func (e *Env) attachCluster(ctx context.Context) error {
	if err := e.setupCluster(ctx); err != nil {
		return fail(PhaseCluster, err)
	}
	return nil
}

// setupCluster creates, reuses or attaches to the cluster and registers its
// Teardown (which deletes a created cluster, or else removes this run's
// objects and namespaces and restores what it changed; with Retain it keeps
// them) on the undo stack.
func (e *Env) setupCluster(ctx context.Context) error {
	cfg, p, log := e.cfg, e.p, e.p.Logger()
	start := time.Now()
	name := orNone(cfg.ClusterName, clusters.DefaultName)
	what := "kind cluster " + name
	if cfg.Attached() {
		what = "existing cluster " + orNone(cfg.Context, "(current context)")
	}
	if !cfg.Attached() {
		what += " (node image " + orNone(cfg.NodeImage, "kind's default") + ")"
	}
	p.Phase(PhaseCluster, "setting up %s", what)
	opts := []clusters.Option{clusters.WithLogger(log), clusters.WithRetain(cfg.Retain), clusters.WithTimeouts(cfg.ClusterTimeouts)}
	if cfg.ClusterName != "" {
		opts = append(opts, clusters.WithName(cfg.ClusterName))
	}
	if cfg.Kubeconfig != "" {
		opts = append(opts, clusters.WithKubeconfig(cfg.Kubeconfig))
	}
	if cfg.Context != "" {
		opts = append(opts, clusters.WithContext(cfg.Context))
	}
	if !cfg.Attached() {
		if cfg.NodeImage != "" {
			opts = append(opts, clusters.WithNodeImage(cfg.NodeImage))
		}
		if cfg.KindConfig != "" {
			opts = append(opts, clusters.WithKindConfig(cfg.KindConfig))
		}
		opts = append(opts, clusters.WithReuse(cfg.Reuse))
	}
	cl, err := clusters.Setup(ctx, opts...)
	if cl != nil {
		e.mu.Lock()
		e.Cluster = cl
		e.mu.Unlock()
		// Teardown is safe on the *Cluster a failed Setup returned.
		td := func(ctx context.Context) error {
			if err := cl.Teardown(ctx); err != nil {
				return fmt.Errorf("tear down cluster: %w", err)
			}
			return nil
		}
		e.onUndo("cluster "+cl.Name, td, td)
	}
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("%s %s", cl.Mode(), cl.Name)
	if !cfg.Attached() {
		detail += fmt.Sprintf(" (%s)", orNone(cfg.NodeImage, "default node image"))
	}
	p.Phase(PhaseCluster, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseCluster, start, detail)
	return nil
}

// imageAndFixtures builds the agent image, then starts echo, MySQL and
// greeter on the kind network. The fixtures' undo is registered with the
// run marker, before the first container exists. It returns the sub-phase
// that failed.
func (e *Env) imageAndFixtures(ctx context.Context) (string, error) {
	cfg, p := e.cfg, e.p
	start := time.Now()
	p.Phase(PhaseImage, "building the agent image")
	ref, err := images.Agent(ctx, images.WithLogger(p))
	if err != nil {
		return PhaseImage, err
	}
	e.AgentImage = ref
	p.Phase(PhaseImage, "%s in %.1fs", ref, time.Since(start).Seconds())
	e.record(PhaseImage, start, ref)

	start = time.Now()
	runID := fixtures.NewRunID()
	m, err := writeMarker(runID)
	if err != nil {
		return PhaseFixtures, err
	}
	e.marker = m
	e.onUndo("fixtures of run "+runID, func(ctx context.Context) error {
		var err error
		if e.Fixtures != nil {
			err = e.Fixtures.Close(ctx)
		} else {
			// Up failed or was interrupted: it removed its containers
			// itself; make sure nothing of the run is left.
			_, err = fixtures.Down(ctx, runID)
		}
		if err == nil {
			m.remove()
		}
		return err
	}, func(context.Context) error { return m.retain() })
	p.Phase(PhaseFixtures, "starting echo, mysql and greeter (run %s, network %s)", runID, cfg.Network)
	opts := []set.Option{set.WithRunID(runID), set.WithNetwork(cfg.Network), set.WithAgentImage(ref), set.WithLogger(p),
		set.WithTimeouts(cfg.FixtureTimeouts)}
	if cfg.MySQLImage != "" {
		opts = append(opts, set.WithMySQLImage(cfg.MySQLImage))
	}
	s, err := set.Up(ctx, opts...)
	if err != nil {
		return PhaseFixtures, err
	}
	e.Fixtures = s
	eps := s.Endpoints()
	detail := fmt.Sprintf("echo %s, mysql %s (%s), greeter %s", eps[echo.Name].IP, eps[mysql.Name].IP, s.MySQL().Image(), eps[greeter.Name].IP)
	p.Phase(PhaseFixtures, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseFixtures, start, detail)
	return "", nil
}
