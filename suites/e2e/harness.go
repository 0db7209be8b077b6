package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/echo"
	"github.com/meshconform/meshconform/fixtures/greeter"
	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/fixtures/mysql"
	"github.com/meshconform/meshconform/fixtures/set"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/live/istiomesh"
	"github.com/meshconform/meshconform/suites/pushed"
)

// Phase names, in order.
const (
	PhaseSweep    = "sweep"
	PhaseCluster  = "cluster"
	PhaseImage    = "image"
	PhaseFixtures = "fixtures"
	PhaseLoad     = "load"
	PhaseDNS      = "dns"
	PhaseIstio    = "istio"
	PhasePods     = "pods"
	PhaseChecks   = "checks"
	PhaseTeardown = "teardown"
)

// Config is what Setup builds. The zero value plus a Printer creates a
// kind cluster "meshconform" with KIND_NODE_IMAGE and installs Istio.
type Config struct {
	// Cluster: see package clusters. Empty NodeImage = KIND_NODE_IMAGE.
	ClusterName string
	NodeImage   string
	KindConfig  string
	Reuse       bool
	Retain      bool
	Kubeconfig  string
	Context     string
	// InstallIstio installs Istio (or, on an existing cluster, attaches to
	// the one there). Leave it off when no selected check needs the mesh.
	InstallIstio bool
	IstioHub     string
	IstioTag     string
	// NoPull: Istio's images are only taken from the host's Docker, never
	// pulled (see clusters.PreloadImages).
	NoPull bool
	// LocalIstiod builds istiod from the pinned istio module into a local
	// image (images.Istiod), loads it into the nodes and installs with it
	// (overrides IstioHub/IstioTag; kind clusters only). See localistiod.go.
	LocalIstiod bool
	// MasqueradeChecks: masquerade checks are selected (ip-masq-agent's
	// image is loaded into the nodes when it is a local image).
	MasqueradeChecks bool
	// IPMasqAgentImage (default env IP_MASQ_AGENT_IMAGE, else upstream's).
	IPMasqAgentImage string
	// MySQLImage (default env MYSQL_IMAGE, else mysql:8.4).
	MySQLImage string
	// Network is the Docker network of the fixtures (default "kind").
	Network string
	// Namespace of the probe pods (default live.DefaultNamespace).
	Namespace string
	// LiveTimeouts bound the live driver; ClusterTimeouts, IstioTimeouts
	// and FixtureTimeouts the setup phases (zero fields: defaults). The
	// CLI fills all four from one --timeouts file.
	LiveTimeouts    live.Timeouts
	ClusterTimeouts clusters.Timeouts
	IstioTimeouts   istio.Timeouts
	FixtureTimeouts fixtures.Timeouts
	PushedTimeouts  pushed.Timeouts
	// LiveOptions are added to the live driver's (Expectations.LiveOptions).
	LiveOptions []live.Option
	// Printer receives progress (required).
	Printer *Printer
}

// PhaseTime is the wall time of one phase.
type PhaseTime struct {
	Name    string
	Elapsed time.Duration
	Detail  string
}

// PhaseError is a setup phase that failed.
type PhaseError struct {
	Phase string
	Err   error
}

func (e *PhaseError) Error() string { return e.Phase + ": " + e.Err.Error() }
func (e *PhaseError) Unwrap() error { return e.Err }

// Env is a set-up environment.
type Env struct {
	cfg Config
	p   *Printer

	Cluster    *clusters.Cluster
	Mesh       *istio.Mesh
	MeshErr    error
	Fixtures   *set.Set
	AgentImage string
	Driver     *live.Driver
	// Istiod is the local istiod image (Config.LocalIstiod).
	Istiod images.IstiodImage
	// The pushed-config tier (pushed.go).
	pushed      *pushed.Driver
	pushedNote  string
	webhookNote string

	mu       sync.Mutex
	phases   []PhaseTime
	marker   *marker
	torn     bool
	tearErr  error
	setupErr error
}

// NeedsMesh reports whether any of checks needs Istio.
func NeedsMesh(checks []check.Check) bool {
	for _, c := range checks {
		if live.NeedsMesh(c) {
			return true
		}
	}
	return false
}

// HasMasquerade reports whether any of checks is a masquerade check.
func HasMasquerade(checks []check.Check) bool {
	for _, c := range checks {
		if c.Masquerade != nil || c.Needs(check.NeedsIPMasqAgent) {
			return true
		}
	}
	return false
}

func (e *Env) record(name string, start time.Time, detail string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.phases = append(e.phases, PhaseTime{Name: name, Elapsed: time.Since(start), Detail: detail})
}

// Phases returns the wall time of each phase run so far.
func (e *Env) Phases() []PhaseTime {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]PhaseTime(nil), e.phases...)
}

// RecordPhase adds a phase timed by the caller (checks, teardown).
func (e *Env) RecordPhase(name string, start time.Time, detail string) { e.record(name, start, detail) }

// Setup runs the setup phases. It always returns an Env (call Teardown),
// and on failure a *PhaseError naming the phase. Cancelling ctx (Ctrl-C)
// stops the current phase; Teardown still cleans up.
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
	e := &Env{cfg: cfg, p: cfg.Printer}
	err := e.setup(ctx)
	if err != nil {
		e.setupErr = err
		var pe *PhaseError
		if !errors.As(err, &pe) {
			err = &PhaseError{Phase: "setup", Err: err}
		}
		e.p.Phase(err.(*PhaseError).Phase, "FAILED: %v", err.(*PhaseError).Err)
	}
	return e, err
}

func fail(phase string, err error) error { return &PhaseError{Phase: phase, Err: err} }

func (e *Env) setup(ctx context.Context) error {
	p, log := e.p, e.p.Logger()
	cfg := e.cfg

	// sweep
	start := time.Now()
	swept, err := sweep(ctx, log)
	if err != nil {
		// Leftovers that cannot be removed do not stop this run.
		p.Phase(PhaseSweep, "warning: %v", err)
	}
	if ctx.Err() != nil {
		return fail(PhaseSweep, ctx.Err())
	}
	p.Phase(PhaseSweep, "%s (%.1fs)", orNone(swept, "no leftovers"), time.Since(start).Seconds())
	e.record(PhaseSweep, start, swept)

	// cluster || (image -> fixtures), cancelling each other on failure.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var clErr, fxErr error
	var fxPhase string
	wg.Go(func() {
		start := time.Now()
		name := cfg.ClusterName
		if name == "" {
			name = clusters.DefaultName
		}
		what := "kind cluster " + name
		if cfg.Kubeconfig != "" || cfg.Context != "" {
			what = "existing cluster " + orNone(cfg.Context, "(current context)")
		}
		p.Phase(PhaseCluster, "setting up %s (node image %s)", what, orNone(cfg.NodeImage, "kind's default"))
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
		if cfg.Kubeconfig == "" && cfg.Context == "" {
			if cfg.NodeImage != "" {
				opts = append(opts, clusters.WithNodeImage(cfg.NodeImage))
			}
			if cfg.KindConfig != "" {
				opts = append(opts, clusters.WithKindConfig(cfg.KindConfig))
			}
			opts = append(opts, clusters.WithReuse(cfg.Reuse))
		}
		cl, err := clusters.Setup(pctx, opts...)
		e.mu.Lock()
		e.Cluster = cl
		e.mu.Unlock()
		if err != nil {
			clErr = err
			cancel()
			return
		}
		detail := fmt.Sprintf("%s %s (%s)", cl.Mode(), cl.Name, orNone(cfg.NodeImage, "default node image"))
		p.Phase(PhaseCluster, "%s in %.1fs", detail, time.Since(start).Seconds())
		e.record(PhaseCluster, start, detail)
	})
	wg.Go(func() {
		start := time.Now()
		p.Phase(PhaseImage, "building the agent image")
		ref, err := images.Agent(pctx, images.WithLogger(p))
		if err != nil {
			fxErr, fxPhase = err, PhaseImage
			cancel()
			return
		}
		e.AgentImage = ref
		p.Phase(PhaseImage, "%s in %.1fs", ref, time.Since(start).Seconds())
		e.record(PhaseImage, start, ref)

		start = time.Now()
		runID := fixtures.NewRunID()
		m, err := writeMarker(runID)
		if err != nil {
			fxErr, fxPhase = err, PhaseFixtures
			cancel()
			return
		}
		e.marker = m
		p.Phase(PhaseFixtures, "starting echo, mysql and greeter (run %s, network %s)", runID, cfg.Network)
		opts := []set.Option{set.WithRunID(runID), set.WithNetwork(cfg.Network), set.WithAgentImage(ref), set.WithLogger(p),
			set.WithTimeouts(cfg.FixtureTimeouts)}
		if cfg.MySQLImage != "" {
			opts = append(opts, set.WithMySQLImage(cfg.MySQLImage))
		}
		s, err := set.Up(pctx, opts...)
		if err != nil {
			fxErr, fxPhase = err, PhaseFixtures
			cancel()
			return
		}
		e.Fixtures = s
		eps := s.Endpoints()
		detail := fmt.Sprintf("echo %s, mysql %s (%s), greeter %s", eps[echo.Name].IP, eps[mysql.Name].IP, s.MySQL().Image(), eps[greeter.Name].IP)
		p.Phase(PhaseFixtures, "%s in %.1fs", detail, time.Since(start).Seconds())
		e.record(PhaseFixtures, start, detail)
	})
	var idErr error
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
	cl := e.Cluster

	// load
	start = time.Now()
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

	// dns
	start = time.Now()
	eps := e.Fixtures.Endpoints()
	hosts := map[string]string{}
	// The suites' environment adds names of its own (e.g. the unregistered
	// "blocked" host, which resolves to the echo target).
	for _, ep := range suites.Env(eps, nil).Endpoints {
		if ep.Host != "" && ep.IP != "" {
			hosts[ep.Host] = ep.IP
		}
	}
	if _, err := cl.SetExternalHosts(ctx, hosts); err != nil {
		return fail(PhaseDNS, err)
	}
	p.Phase(PhaseDNS, "%d names resolve from pods in %.1fs", len(hosts), time.Since(start).Seconds())
	e.record(PhaseDNS, start, fmt.Sprintf("%d names", len(hosts)))

	// istio
	start = time.Now()
	switch {
	case !cfg.InstallIstio:
		e.MeshErr = errors.New("Istio was not installed: no selected check needs it")
		p.Phase(PhaseIstio, "skipped: no selected check needs the mesh")
	case !cl.Managed():
		e.Mesh, e.MeshErr = istio.Attach(ctx, cl)
		p.Phase(PhaseIstio, "attached to the cluster's Istio %s (err: %v)", e.meshVersion(), e.MeshErr)
	default:
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
		p.Phase(PhaseIstio, "installing Istio %s", orNone(cfg.IstioTag, istio.DefaultTag))
		if !e.localIstiod() {
			e.MeshErr = e.preloadIstio(ctx, cl)
		}
		// With a local istiod its image was built and loaded by
		// PhaseIstiodImage; proxyv2 has no local build, so the install goes
		// on and the gateway and sidecars are reported not ready, naming it.
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
	}
	if cfg.InstallIstio {
		e.record(PhaseIstio, start, errString(e.MeshErr, "ready"))
	}
	if e.localIstiod() && e.Mesh != nil {
		e.recordIstiodReady(ctx, start)
	}

	// pods
	start = time.Now()
	cert, err := e.Fixtures.CA().Issue([]string{fixtures.IngressHost})
	if err != nil {
		return fail(PhasePods, fmt.Errorf("issue the ingress certificate: %w", err))
	}
	b := e.Fixtures.MySQL().Bookinfo()
	var mesh live.Mesh
	if e.Mesh != nil {
		mesh = istiomesh.Wrap(e.Mesh)
	}
	d, err := live.New(append([]live.Option{
		live.WithCluster(cl), live.WithMesh(mesh, e.MeshErr), live.WithEndpoints(eps),
		live.WithMySQL(e.Fixtures.AdminDSN(), b.User, b.Password), live.WithAgentImage(e.AgentImage),
		live.WithCA(e.Fixtures.CAPEM()), live.WithIngressCert(cert.CertPEM(), cert.KeyPEM()),
		live.WithEchoContainer(fixtures.ContainerName(e.Fixtures.RunID, echo.Name)),
		live.WithIPMasqAgentImage(cfg.IPMasqAgentImage), live.WithNamespace(cfg.Namespace),
		live.WithTimeouts(cfg.LiveTimeouts), live.WithLogger(log), live.WithEnvBuilder(suites.Env)}, cfg.LiveOptions...)...)
	if err != nil {
		return fail(PhasePods, err)
	}
	e.Driver = d
	if err := d.Setup(ctx); err != nil && ctx.Err() != nil {
		return fail(PhasePods, ctx.Err())
	}
	// A pod that is not usable is not fatal: the checks that need it say why.
	p.Phase(PhasePods, "%s (%.1fs)", d.PodsSummary(), time.Since(start).Seconds())
	e.record(PhasePods, start, d.PodsSummary())
	return nil
}

// preloadIstio loads Istio's images into the nodes from the host's Docker
// (pulled there once unless NoPull), so the nodes never pull them
// anonymously; a failure is a *NotReadyError for the mesh checks.
func (e *Env) preloadIstio(ctx context.Context, cl *clusters.Cluster) error {
	start := time.Now()
	refs := istio.Images(e.cfg.IstioHub, e.cfg.IstioTag)
	if err := cl.PreloadImages(ctx, refs, !e.cfg.NoPull); err != nil {
		return err
	}
	e.record("istio-images", start, strings.Join(refs, ", "))
	e.p.Phase(PhaseIstio, "images %s on the nodes in %.1fs", strings.Join(refs, ", "), time.Since(start).Seconds())
	return nil
}

func (e *Env) meshVersion() string {
	if e.Mesh == nil {
		return ""
	}
	return e.Mesh.Version()
}

// MeshVersion is the installed Istio version ("" if none).
func (e *Env) MeshVersion() string { return e.meshVersion() }

// Properties describe the environment for reports (no secrets).
func (e *Env) Properties() map[string]string {
	m := map[string]string{"meshconform.namespace": e.cfg.Namespace}
	if e.Cluster != nil {
		m["cluster.name"], m["cluster.mode"] = e.Cluster.Name, string(e.Cluster.Mode())
	}
	if e.cfg.NodeImage != "" {
		m["kind.nodeImage"] = e.cfg.NodeImage
	}
	if e.AgentImage != "" {
		m["meshconform.agentImage"] = e.AgentImage
	}
	if e.Fixtures != nil {
		m["fixtures.runID"] = e.Fixtures.RunID
	}
	if e.MeshErr != nil && e.cfg.InstallIstio {
		m["istio.notReady"] = e.MeshErr.Error()
	}
	if e.cfg.InstallIstio {
		m["istio.images"] = strings.Join(istio.Images(e.cfg.IstioHub, e.cfg.IstioTag), ",")
		m["istio.tag"] = orNone(e.cfg.IstioTag, istio.DefaultTag)
		m["istio.module"] = orNone(istio.ModuleVersion(), "unknown")
	}
	if e.Cluster != nil && e.Cluster.PodNetwork() != "" {
		m["cluster.podNetwork"] = e.Cluster.PodNetwork()
	}
	e.pushedProperties(m)
	for _, ph := range e.Phases() {
		m["phase."+ph.Name+".seconds"] = fmt.Sprintf("%.1f", ph.Elapsed.Seconds())
	}
	return m
}

// Teardown undoes Setup in reverse order: the live driver's changes
// (policy, return routes), the cluster (deleted if created, else restored)
// and the fixtures, on a context that ignores cancellation. With Retain it
// keeps everything and says how to remove it. It is safe to call twice.
func (e *Env) Teardown(ctx context.Context) error {
	e.mu.Lock()
	if e.torn {
		e.mu.Unlock()
		return e.tearErr
	}
	e.torn = true
	e.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	p := e.p
	var errs []error
	if e.cfg.Retain {
		if e.Cluster != nil {
			errs = append(errs, e.Cluster.Teardown(ctx))
		}
		if e.marker != nil {
			errs = append(errs, e.marker.retain())
		}
		hint := ""
		if e.Fixtures != nil {
			hint = fmt.Sprintf("; remove the fixtures with `meshconform fixtures down --run-id %s`", e.Fixtures.RunID)
		}
		if e.Cluster != nil && e.Cluster.Managed() {
			hint += fmt.Sprintf("; the cluster with `kind delete cluster --name %s`", e.Cluster.Name)
		}
		p.Phase(PhaseTeardown, "retained everything (--retain)%s", hint)
		e.tearErr = errors.Join(errs...)
		return e.tearErr
	}
	p.Phase(PhaseTeardown, "cleaning up")
	if err := e.closePushed(ctx); err != nil {
		errs = append(errs, err)
	}
	if e.Driver != nil {
		if err := e.Driver.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Cluster != nil {
		if err := e.Cluster.Teardown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tear down cluster: %w", err))
		}
	}
	if e.Fixtures != nil {
		if err := e.Fixtures.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	} else if e.marker != nil {
		// Up failed or was interrupted: it removed its containers itself;
		// make sure nothing of the run is left.
		if _, err := fixtures.Down(ctx, e.marker.RunID); err != nil {
			errs = append(errs, err)
		}
	}
	if e.marker != nil && len(errs) == 0 {
		e.marker.remove()
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

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func errString(err error, ok string) string {
	if err == nil {
		return ok
	}
	return err.Error()
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
