package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/live"
)

// phase is one step of Setup (kind's actionsToRun style): run does the work
// and registers the undo of everything it creates with Env.onUndo the
// moment it exists. An error that is not a *PhaseError is reported under
// the phase's name.
type phase struct {
	name string
	run  func(e *Env, ctx context.Context) error
}

// kindPhases set up a kind cluster the harness creates or reuses: it owns
// the nodes, so it may load images, edit CoreDNS, install Istio and switch
// the mesh-wide policy.
var kindPhases = []phase{
	{PhaseSweep, (*Env).sweepLocal},           // phase_sweep.go
	{PhaseCluster, (*Env).clusterAndFixtures}, // phase_cluster.go (cluster || image → fixtures || istiod image)
	{PhaseLoad, (*Env).loadImages},            // phase_load.go
	{PhaseDNS, (*Env).fixtureNames},           // phase_dns.go
	{PhaseIstio, (*Env).installIstio},         // phase_istio.go
	{PhasePods, (*Env).startPods},             // phase_pods.go
}

// attachPhases set up a run on an existing cluster (Config.Attached): it
// changes only namespaces it creates and the objects in them, and reads
// the rest (attach*.go).
var attachPhases = []phase{
	{PhaseCluster, (*Env).attachCluster},      // phase_cluster.go
	{PhasePreflight, (*Env).preflightAccess},  // attach_preflight.go: stop before any change
	{PhaseSweep, (*Env).sweepAttached},        // attach_sweep.go: crashed runs' namespaces
	{PhaseIstio, (*Env).findIstio},            // attach_istio.go: read only
	{PhaseImage, (*Env).attachAgentImage},     // attach.go: before anything is created
	{PhaseNamespaces, (*Env).ownNamespaces},   // attach_namespaces.go
	{PhaseFixtures, (*Env).inClusterFixtures}, // attach_fixtures.go
	{PhasePods, (*Env).startPods},             // phase_pods.go
}

// phaseList is the list Setup runs for cfg.
func phaseList(cfg Config) []phase {
	if cfg.Attached() {
		return attachPhases
	}
	return kindPhases
}

// Setup runs the setup phases of cfg's mode in order. It always returns an
// Env (call Teardown), and on failure a *PhaseError naming the phase.
// Cancelling ctx (Ctrl-C) stops the current phase; Teardown still undoes
// what the phases created.
func Setup(ctx context.Context, cfg Config) (*Env, error) {
	if cfg.Printer == nil {
		cfg.Printer = NewPrinter(nil, time.Now(), false)
	}
	if cfg.Network == "" {
		cfg.Network = fixtures.DefaultNetwork
	}
	if cfg.Namespace == "" {
		cfg.Namespace = live.DefaultNamespace
	}
	if cfg.NodeImage == "" {
		cfg.NodeImage = os.Getenv("KIND_NODE_IMAGE")
	}
	if cfg.IPMasqAgentImage == "" {
		cfg.IPMasqAgentImage = os.Getenv("IP_MASQ_AGENT_IMAGE")
	}
	if cfg.LeaseDuration < 3*time.Second {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.TeardownTimeout <= 0 {
		cfg.TeardownTimeout = DefaultTeardownTimeout
	}
	e := &Env{cfg: cfg, p: cfg.Printer}
	err := e.runPhases(ctx, phaseList(cfg))
	if err != nil {
		e.setupErr = err
		pe := err.(*PhaseError)
		e.p.Phase(pe.Phase, "FAILED: %v", pe.Err)
	}
	return e, err
}

// runPhases runs list in order and stops at the first failure, returned as
// a *PhaseError.
func (e *Env) runPhases(ctx context.Context, list []phase) error {
	for _, ph := range list {
		if err := ph.run(e, ctx); err != nil {
			var pe *PhaseError
			if errors.As(err, &pe) {
				return pe
			}
			return &PhaseError{Phase: ph.name, Err: err}
		}
		if err := ctx.Err(); err != nil {
			return &PhaseError{Phase: ph.name, Err: err}
		}
	}
	return nil
}

func fail(phase string, err error) error { return &PhaseError{Phase: phase, Err: err} }

// DefaultTeardownTimeout bounds Teardown as a whole (Config.TeardownTimeout).
const DefaultTeardownTimeout = 10 * time.Minute

// undo is one entry of the undo stack: undo removes what a phase created;
// keep, if set, runs instead with Retain (e.g. mark the fixtures as kept).
type undo struct {
	what string
	undo func(context.Context) error
	keep func(context.Context) error
}

// onUndo pushes fn (and keep, for Retain; may be nil) on the undo stack.
// Phases call it the moment they created something, so Teardown after a
// failed or interrupted phase removes exactly what exists.
func (e *Env) onUndo(what string, fn, keep func(context.Context) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.undos = append(e.undos, undo{what: what, undo: fn, keep: keep})
}

// Teardown pops the undo stack in reverse order of registration (the
// pushed-config tier, the live driver's changes, the cluster — deleted if
// created, else this run's objects and namespaces — and the fixtures) on a
// context that ignores cancellation, bounded by Config.TeardownTimeout.
// With Retain it runs only the entries' keep functions and says how to
// remove what is left. It is safe to call twice.
func (e *Env) Teardown(ctx context.Context) error {
	e.mu.Lock()
	if e.torn {
		e.mu.Unlock()
		return e.tearErr
	}
	e.torn = true
	stack := e.undos
	e.undos = nil
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.TeardownTimeout)
	defer cancel()
	start := time.Now()
	p := e.p
	var errs []error
	if e.cfg.Retain {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].keep != nil {
				if err := stack[i].keep(ctx); err != nil {
					errs = append(errs, fmt.Errorf("retain %s: %w", stack[i].what, err))
				}
			}
		}
		p.Phase(PhaseTeardown, "retained everything (--retain)%s", e.retainHint())
		e.tearErr = errors.Join(errs...)
		return e.tearErr
	}
	p.Phase(PhaseTeardown, "cleaning up")
	for i := len(stack) - 1; i >= 0; i-- {
		if err := stack[i].undo(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	e.tearErr = errors.Join(errs...)
	if e.tearErr != nil {
		p.Phase(PhaseTeardown, "FAILED after %.1fs: %v", time.Since(start).Seconds(), e.tearErr)
	} else {
		p.Phase(PhaseTeardown, "nothing left behind (%.1fs)", time.Since(start).Seconds())
	}
	e.record(PhaseTeardown, start, errString(e.tearErr, "clean"))
	return e.tearErr
}

// retainHint says how to remove what --retain kept.
func (e *Env) retainHint() string {
	hint := ""
	if e.Fixtures != nil {
		hint = fmt.Sprintf("; remove the fixtures with `meshconform fixtures down --run-id %s`", e.Fixtures.RunID)
	}
	if e.Cluster != nil && e.Cluster.Managed() {
		hint += fmt.Sprintf("; the cluster with `kind delete cluster --name %s`", e.Cluster.Name)
	}
	if e.cfg.Attached() && len(e.owned) > 0 {
		hint += fmt.Sprintf("; this run's namespaces with `kubectl delete namespace %s` (their Leases are labelled %s=true: no later run sweeps them)", joinNames(e.owned), LabelRetained)
	}
	return hint
}
