package e2e

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/meshconform/meshconform/clusters"
)

// sweepLocal removes leftovers of crashed runs on this host (kind clusters,
// fixture containers). Leftovers that cannot be removed do not stop the run.
func (e *Env) sweepLocal(ctx context.Context) error {
	start := time.Now()
	swept, err := sweep(ctx, e.p.Logger())
	if err != nil {
		e.p.Phase(PhaseSweep, "warning: %v", err)
	}
	if ctx.Err() != nil {
		return fail(PhaseSweep, ctx.Err())
	}
	e.p.Phase(PhaseSweep, "%s (%.1fs)", orNone(swept, "no leftovers"), time.Since(start).Seconds())
	e.record(PhaseSweep, start, swept)
	return nil
}

// sweep removes leftovers of crashed runs: kind clusters (clusters.Sweep)
// and fixture containers of `meshconform run`s whose owner is gone.
func sweep(ctx context.Context, log *slog.Logger) (string, error) {
	var did []string
	var errs []error
	decisions, err := clusters.SweepReport(ctx, clusters.WithLogger(log))
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range decisions {
		if d.Deleted {
			did = append(did, "kind cluster "+d.Name)
		}
	}
	runs, err := sweepMarkers(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range runs {
		did = append(did, "fixtures of run "+r)
	}
	if len(did) > 0 {
		log.Info("swept leftovers", "removed", strings.Join(did, ", "))
	}
	return strings.Join(did, ", "), errors.Join(errs...)
}
