package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/internal/ipmasq"
	"github.com/meshconform/meshconform/suites/check"
)

// Driver observes checks with real traffic. Create it with New, call
// Close when done. Run is not safe for concurrent use (checks share the
// mesh policy and the masquerade setup); Close is safe after any Run.
type Driver struct {
	cfg       *config
	cl        Cluster
	mesh      Mesh
	log       *slog.Logger
	prober    prober
	router    router
	admin     sqlAdmin
	endpoints map[string]fixtures.Endpoint
	vars      map[string]string

	setupOnce  sync.Once
	setupErr   error
	controlErr error // why the control pod is not usable
	clientErr  error // why the meshed client pod is not usable
	gatewayErr error // why the ingress gateway is not usable

	mu      sync.Mutex
	pods    map[string]podInfo
	sources map[string]error // source probe pods by Source.Key: nil when ready (sources.go)

	// Mesh policy: the original, the current, and the restore of the one
	// pending change (only two policies exist, so at most one is pending).
	policyOrig    string
	policyCur     string
	policyRestore func(context.Context) error

	// Masquerade: set up once; the CNI's own masquerade is restored when a
	// check without masquerade runs (it needs pod traffic masqueraded).
	masqAgentErr   error
	masqAgentDone  bool
	cniRestore     func(context.Context) error
	cniDisabled    bool
	masqConfig     *string
	masqEval       *ipmasq.Config // the config in effect, for traces
	masqNote       string         // the existing agent's config, as read (WithExistingIPMasqAgent)
	lastRating     int
	closed         bool
	closeErrs      []error
	routesOutstand []route
}

// New returns a live driver. Options are validated last; the error says
// what to pass.
func New(opts ...Option) (*Driver, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, cl: cfg.cluster, mesh: cfg.mesh, log: cfg.log, pods: map[string]podInfo{}, sources: map[string]error{}, lastRating: seededRating}
	d.endpoints = map[string]fixtures.Endpoint{}
	for k, v := range cfg.endpoints {
		d.endpoints[k] = v
	}
	if cfg.ingressEPFixed != nil {
		d.endpoints["ingress"] = *cfg.ingressEPFixed
	}
	d.vars = map[string]string{
		"agentImage":  cfg.agentImage,
		"ingressHost": fixtures.IngressHost,
		"namespace":   cfg.namespace,
	}
	if ep, ok := d.endpoints["echo"]; ok {
		d.vars["otherIP"] = ep.IP
	}
	d.prober = cfg.prober
	if d.prober == nil {
		d.prober = &execProber{d: d}
	}
	d.router = cfg.router
	if d.router == nil {
		dr := dockerRouter{image: cfg.helperImage}
		if ni, ok := cfg.cluster.(nodeImager); ok && dr.image == "" {
			dr.resolve = ni.NodeContainerImage
		}
		d.router = &dr
	}
	d.admin = cfg.admin
	if d.admin == nil && cfg.adminDSN != "" {
		d.admin = &mysqlAdmin{dsn: cfg.adminDSN}
	}
	return d, nil
}

// seededRating is the rating the MySQL fixture seeds for ReviewID 1; the
// first rating the driver sets differs from it.
const seededRating = 5

// Name is "live".
func (d *Driver) Name() string { return "live" }

// Env is the environment checks are rendered with (after Setup it has the
// pod CIDR and, with a ready gateway, the "ingress" endpoint).
func (d *Driver) Env() check.Env {
	eps := map[string]fixtures.Endpoint{}
	for k, v := range d.endpoints {
		eps[k] = v
	}
	vars := map[string]string{}
	for k, v := range d.vars {
		vars[k] = v
	}
	env := check.Env{Endpoints: eps, Vars: vars}
	if d.cfg.envBuilder != nil {
		env = d.cfg.envBuilder(eps, vars)
	}
	env.Namespace = d.cfg.namespace
	if env.Vars == nil {
		env.Vars = map[string]string{}
	}
	// The ingress certificate's Secret, under both names checks use.
	secret := env.Vars["tlsSecret"]
	if secret == "" {
		secret = IngressTLSSecret
	}
	env.Vars["tlsSecret"], env.Vars["caSecret"] = secret, secret
	return env
}

// meshReason is why the mesh cannot be used ("" when it can).
func (d *Driver) meshReason() string {
	if d.cfg.meshErr == nil && d.mesh != nil {
		return ""
	}
	if d.cfg.meshErr == nil {
		return "Istio is not installed in this run"
	}
	return reason(d.cfg.meshErr)
}

// reason renders err for "environment not ready: <reason>" without
// repeating the prefix a *NotReadyError already carries.
func reason(err error) string {
	var nre *clusters.NotReadyError
	if errors.As(err, &nre) {
		s := err.Error()
		// Keep the wrapping context ("install istio: ...") but drop the
		// duplicated prefix.
		return strings.Replace(s, check.ErrNotReady+": ", "", 1)
	}
	return err.Error()
}

func notReady(r *check.Result, why string) check.Result {
	r.Status = check.Error
	r.Message = check.ErrNotReady + ": " + why
	return *r
}

// NeedsMesh reports whether c needs Istio, declared or implied (a policy,
// a meshed source, the ingress target).
func NeedsMesh(c check.Check) bool { return needs(c)[check.NeedsIstio] }

// needs lists what c needs, declared or implied by its expectations.
func needs(c check.Check) map[check.Requirement]bool {
	n := map[check.Requirement]bool{}
	for _, r := range c.Requires {
		n[r] = true
	}
	if c.Policy != "" {
		n[check.NeedsIstio] = true
	}
	if c.Masquerade != nil {
		n[check.NeedsIPMasqAgent] = true
	}
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			if e.From.Kind == "" || e.From.Kind == check.MeshedPod {
				n[check.NeedsSidecar] = true
			}
			if e.To.Target == "ingress" {
				n[check.NeedsGateway] = true
			}
		}
	}
	if n[check.NeedsSidecar] || n[check.NeedsGateway] {
		n[check.NeedsIstio] = true
	}
	return n
}

// usesPod reports whether any expectation starts in a pod.
func usesPod(c check.Check, kind check.SourceKind) bool {
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			k := e.From.Kind
			if k == "" {
				k = check.MeshedPod
			}
			if k == kind {
				return true
			}
		}
	}
	return false
}

// preflight returns "" when c can run, else why not.
func (d *Driver) preflight(ctx context.Context, c check.Check) string {
	n := needs(c)
	if n[check.NeedsIstio] {
		if why := d.meshReason(); why != "" {
			return why
		}
	}
	if usesPod(c, check.PlainPod) && d.controlErr != nil {
		return reason(d.controlErr)
	}
	if n[check.NeedsSidecar] && d.usesClient(c) {
		if d.clientErr != nil {
			return reason(d.clientErr)
		}
		if err := d.mesh.Preflight(ctx, d.cfg.namespace, "app="+ClientPod); err != nil {
			return reason(err)
		}
	}
	if n[check.NeedsSidecar] {
		if why := d.preflightSources(ctx, c); why != "" {
			return why
		}
	}
	if n[check.NeedsGateway] && d.gatewayErr != nil {
		return "ingress gateway: " + reason(d.gatewayErr)
	}
	if n[check.NeedsIPMasqAgent] && !d.cfg.ipMasqExisting {
		if err := d.ensureMasqAgent(ctx); err != nil {
			return reason(err)
		}
	}
	return ""
}

// Run observes one check. It never panics on a bad environment: problems
// become an Error result saying why.
func (d *Driver) Run(ctx context.Context, c check.Check) (res check.Result) {
	start := time.Now()
	res = check.NewResult(c)
	defer func() { res.Duration = time.Since(start) }()
	if d.closed {
		res.Status, res.Message = check.Error, "live driver already closed"
		return res
	}
	_ = d.Setup(ctx) // failures are recorded per pod and reported by preflight
	if err := ctx.Err(); err != nil {
		res.Status, res.Message = check.Skipped, "run interrupted: "+err.Error()
		return res
	}
	if why := d.preflight(ctx, c); why != "" {
		d.log.Debug("check not ready", "check", c.Name, "reason", why)
		return notReady(&res, why)
	}
	d.vars["rating"] = strconv.Itoa(d.nextRating())
	rc, err := d.Env().Resolve(c)
	if err != nil {
		res.Status, res.Message = check.Error, "render check: "+err.Error()
		return res
	}
	// The CNI must masquerade again for checks that are not about
	// masquerading (their pods reach fixtures by the node's address).
	if rc.Masquerade == nil {
		if err := d.leaveMasquerade(ctx); err != nil {
			return notReady(&res, "restore CNI masquerade after the masquerade checks: "+reason(err))
		}
	}
	if rc.Policy != "" {
		if err := d.switchPolicy(ctx, string(rc.Policy)); err != nil {
			if clusters.IsNotReady(err) {
				return notReady(&res, reason(err))
			}
			res.Status, res.Message = check.Error, err.Error()
			return res
		}
	}
	var cleanups []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.timeouts.Close)
		defer cancel()
		for i := len(cleanups) - 1; i >= 0; i-- {
			if err := cleanups[i](cctx); err != nil {
				d.log.Warn("check cleanup failed", "check", c.Name, "error", err)
				if res.Status == check.Passed {
					res.Status, res.Message = check.Error, "cleanup: "+err.Error()
				}
			}
		}
	}()
	if rc.Masquerade != nil && d.cfg.ipMasqExisting {
		d.observeExistingMasquerade(ctx)
	} else if rc.Masquerade != nil {
		cl, err := d.setupMasquerade(ctx, *rc.Masquerade)
		cleanups = append(cleanups, cl...)
		if err != nil {
			if ctx.Err() != nil {
				res.Status, res.Message = check.Skipped, "run interrupted: "+ctx.Err().Error()
				return res
			}
			if clusters.IsNotReady(err) {
				return notReady(&res, reason(err))
			}
			res.Status, res.Message = check.Error, err.Error()
			return res
		}
	}
	applied := map[string][]clusters.Object{}
	failed := false
	for _, step := range rc.Steps {
		if err := ctx.Err(); err != nil {
			res.Status, res.Message = check.Skipped, "run interrupted: "+err.Error()
			return res
		}
		changed, err := d.change(ctx, step, applied, &cleanups)
		if err != nil {
			res.Status, res.Message = check.Error, fmt.Sprintf("step %q: %v", step.Name, err)
			return res
		}
		obs := d.converge(ctx, step, changed, failed)
		for _, o := range obs {
			if o.Mismatch() != "" {
				failed = true
			}
		}
		res.Observations = append(res.Observations, obs...)
	}
	for _, o := range res.Observations {
		if o.Observed == check.Inconclusive {
			res.Status = check.Error
			res.Message = fmt.Sprintf("[%s] %s: target not reachable even from outside the mesh: %s", o.Step, o.Expect, o.Err)
			return res
		}
	}
	res.Judge()
	return res
}

// change applies a step's manifests (registering each deletion at once),
// deletes the ones it names and runs its admin SQL; it returns when the
// change was made (the start of its propagation).
func (d *Driver) change(ctx context.Context, step check.Step, applied map[string][]clusters.Object, cleanups *[]func(context.Context) error) (time.Time, error) {
	for _, name := range step.Delete {
		objs := applied[name]
		delete(applied, name)
		if err := d.cl.Delete(ctx, objs); err != nil {
			return time.Time{}, fmt.Errorf("delete manifest %s: %w", name, err)
		}
		d.log.Debug("deleted manifest", "manifest", name, "objects", len(objs))
	}
	for _, m := range step.Apply {
		objs, err := d.cl.Apply(ctx, d.cfg.namespace, m.Text)
		applied[m.Name] = objs
		name := m.Name
		*cleanups = append(*cleanups, func(ctx context.Context) error {
			objs := applied[name]
			if len(objs) == 0 {
				return nil
			}
			delete(applied, name)
			return d.cl.Delete(ctx, objs)
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("apply manifest %s: %w", m.Name, err)
		}
		d.log.Debug("applied manifest", "manifest", m.Name, "objects", len(objs))
	}
	if len(step.AdminSQL) > 0 {
		if d.admin == nil {
			return time.Time{}, errors.New("the step runs admin SQL but the driver has no MySQL admin DSN: pass WithMySQL")
		}
		sctx, cancel := context.WithTimeout(ctx, d.cfg.timeouts.AdminSQL)
		defer cancel()
		for _, stmt := range step.AdminSQL {
			if err := d.admin.Exec(sctx, stmt); err != nil {
				return time.Time{}, fmt.Errorf("admin SQL %q: %w", stmt, err)
			}
		}
		d.log.Debug("ran admin SQL", "statements", len(step.AdminSQL))
	}
	return d.clock().Now(), nil
}

// clock is the configured time source, the wall clock by default.
func (d *Driver) clock() clock {
	if d.cfg.clock != nil {
		return d.cfg.clock
	}
	return realClock{}
}

// nextRating picks a rating 1..5 different from the last one set, so a
// read that returns it proves the write reached the database just now.
func (d *Driver) nextRating() int {
	for {
		r := 1 + rand.IntN(5)
		if r != d.lastRating {
			d.lastRating = r
			return r
		}
	}
}

// switchPolicy makes the mesh-wide policy p, waiting until the client's
// sidecar has it.
func (d *Driver) switchPolicy(ctx context.Context, p string) error {
	if d.policyOrig == "" {
		cur, err := d.mesh.OutboundPolicy(ctx)
		if err != nil {
			return fmt.Errorf("switch outbound policy: %w", err)
		}
		d.policyOrig, d.policyCur = cur, cur
	}
	if p == d.policyCur {
		return nil
	}
	start := time.Now()
	client := d.cfg.namespace + "/" + ClientPod
	if p == d.policyOrig && d.policyRestore != nil {
		if err := d.policyRestore(ctx); err != nil {
			return fmt.Errorf("switch outbound policy back to %s: %w", p, err)
		}
		d.policyRestore = nil
	} else {
		restore, err := d.mesh.SetOutboundPolicy(ctx, p, client)
		if restore != nil {
			d.policyRestore = restore
		}
		if err != nil {
			return fmt.Errorf("switch outbound policy to %s: %w", p, err)
		}
	}
	d.policyCur = p
	d.log.Info("outbound traffic policy switched", "policy", p, "elapsed", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Close restores the mesh-wide policy and removes return routes still in
// place. It runs on a context that ignores cancellation, bounded by
// Timeouts.Close, and may be called more than once. What the cluster
// package restores itself (CNI masquerade, ip-masq-agent, applied
// objects) is left to the cluster's Teardown, which honours --retain.
func (d *Driver) Close(ctx context.Context) error {
	if d.closed {
		return errors.Join(d.closeErrs...)
	}
	d.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.timeouts.Close)
	defer cancel()
	if d.policyRestore != nil {
		if err := d.policyRestore(ctx); err != nil {
			d.closeErrs = append(d.closeErrs, fmt.Errorf("close: restore outbound policy %s: %w", d.policyOrig, err))
		}
		d.policyRestore = nil
	}
	for _, r := range slices.Clone(d.routesOutstand) {
		if err := d.delRoute(ctx, r); err != nil {
			d.closeErrs = append(d.closeErrs, fmt.Errorf("close: %w", err))
		}
	}
	if d.admin != nil {
		if err := d.admin.Close(); err != nil {
			d.closeErrs = append(d.closeErrs, fmt.Errorf("close: admin connection: %w", err))
		}
	}
	return errors.Join(d.closeErrs...)
}
