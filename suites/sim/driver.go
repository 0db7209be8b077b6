package sim

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"

	"github.com/meshconform/meshconform/suites/check"
)

// Driver observes checks by simulation. It is safe for sequential use.
type Driver struct {
	env     check.Env
	mesh    *meshconfig.MeshConfig
	base    []Object
	baseKey string
	keep    int
	mu      sync.Mutex
	servers []*server // most recently used last
	stats   Stats
}

// Stats are the driver's timings, for benchmarks and -v output.
type Stats struct {
	// Builds is how many configs istiod's generator built, BuildTime the
	// total time spent building them (push context included).
	Builds    int
	BuildTime time.Duration
	// Proxies is how many per-source proxy configs (listeners, clusters,
	// routes) were generated, ProxyTime the time spent.
	Proxies   int
	ProxyTime time.Duration
	// PrepareTime is the wall time Prepare spent generating proxy
	// configs concurrently (included in ProxyTime, which sums per proxy).
	PrepareTime time.Duration
	// Calls is how many calls were simulated, CallTime the time spent.
	Calls    int
	CallTime time.Duration
}

// Option configures a Driver.
type Option func(*Driver) error

// WithEnv sets the endpoints and namespace checks are rendered with
// (default: SimEnv's fixed addresses, set by the caller).
func WithEnv(e check.Env) Option {
	return func(d *Driver) error { d.env = e; return nil }
}

// WithMeshConfig sets the base mesh config; a check's Policy overrides its
// outboundTrafficPolicy.
func WithMeshConfig(mc *meshconfig.MeshConfig) Option {
	return func(d *Driver) error {
		if mc == nil {
			return fmt.Errorf("mesh config is nil")
		}
		d.mesh = mc
		return nil
	}
}

// WithObjects adds config every check is simulated with (the user's
// ServiceEntries, Sidecars, ...), on top of the check's own manifests.
func WithObjects(objs []Object) Option {
	return func(d *Driver) error { d.base = append(d.base, objs...); return nil }
}

// WithCachedConfigs keeps up to n generated configs alive for reuse
// (default 2). Each holds a full istiod push context.
func WithCachedConfigs(n int) Option {
	return func(d *Driver) error {
		if n < 1 {
			return fmt.Errorf("cached configs must be at least 1, got %d", n)
		}
		d.keep = n
		return nil
	}
}

// New returns a simulation driver.
func New(opts ...Option) (*Driver, error) {
	quietIstio()
	d := &Driver{mesh: mesh.DefaultMeshConfig(), keep: 2}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, fmt.Errorf("simulation driver: %w", err)
		}
	}
	if d.env.Namespace == "" {
		return nil, fmt.Errorf("simulation driver: the environment has no namespace: pass WithEnv")
	}
	d.baseKey = configKey(d.mesh, "", d.base)
	return d, nil
}

var quietOnce sync.Once

// quietIstio silences istiod's own logging: the driver reports instead.
func quietIstio() {
	quietOnce.Do(func() {
		for _, s := range istiolog.Scopes() {
			s.SetOutputLevel(istiolog.NoneLevel)
		}
	})
}

// Name implements check.Driver.
func (d *Driver) Name() string { return "simulation" }

// Builds is how many configs were generated (for benchmarks and tests).
func (d *Driver) Builds() int { return d.stats.Builds }

// Stats returns the timings so far.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close stops every cached config generator.
func (d *Driver) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.servers {
		s.close()
	}
	d.servers = nil
}

// IstioVersion names the Istio code the verdicts come from.
func IstioVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "istio.io/istio" {
				v := m.Version
				if m.Replace != nil {
					v = m.Replace.Version
				}
				return "1.31 (istio.io/istio " + v + ")"
			}
		}
	}
	return "1.31"
}

// Run implements check.Driver.
func (d *Driver) Run(ctx context.Context, c check.Check) check.Result {
	res := check.NewResult(c)
	rc, err := d.env.Resolve(c)
	if err != nil {
		res.Status, res.Message = check.Error, err.Error()
		return res
	}
	if rc.Masquerade != nil {
		d.runMasquerade(rc, &res)
		if res.Status != check.Error {
			res.Judge()
		}
		return res
	}
	mc, err := d.meshFor(rc.Policy)
	if err != nil {
		res.Status, res.Message = check.Error, err.Error()
		return res
	}
	state := map[string][]Object{} // manifest name -> objects
	var order []string
	for _, step := range rc.Steps {
		if err := ctx.Err(); err != nil {
			res.Status, res.Message = check.Skipped, "interrupted: "+err.Error()
			return res
		}
		for _, name := range step.Delete {
			delete(state, name)
			order = remove(order, name)
		}
		for _, m := range step.Apply {
			objs, err := ParseYAML(c.Name+"/"+m.Name+".yaml", []byte(m.Text), d.env.Namespace)
			if err != nil {
				res.Status, res.Message = check.Error, "manifest: "+err.Error()
				return res
			}
			state[m.Name] = objs
			order = append(order, m.Name)
		}
		var own []Object
		for _, name := range order {
			own = append(own, state[name]...)
		}
		srv, err := d.server(mc, own)
		if err != nil {
			res.Status, res.Message = check.Error, err.Error()
			return res
		}
		for _, e := range step.Expect {
			res.Observations = append(res.Observations, d.observe(srv, step.Name, e))
		}
	}
	res.Judge()
	return res
}

func remove(list []string, name string) []string {
	out := list[:0]
	for _, n := range list {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// meshFor returns the base mesh config with the check's policy.
func (d *Driver) meshFor(p check.OutboundPolicy) (*meshconfig.MeshConfig, error) {
	mc := mesh.DefaultMeshConfig()
	if d.mesh != nil {
		mc = protoClone(d.mesh)
	}
	switch p {
	case "":
	case check.AllowAny:
		mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY}
	case check.RegistryOnly:
		mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	default:
		return nil, fmt.Errorf("unknown outbound traffic policy %q", p)
	}
	return mc, nil
}

// server returns a running config generator for (mesh, base objects +
// the check's own), reusing a cached one when the inputs are identical.
func (d *Driver) server(mc *meshconfig.MeshConfig, own []Object) (*server, error) {
	key := configKey(mc, d.baseKey, own)
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, s := range d.servers {
		if s.key == key {
			d.servers = append(append(d.servers[:i:i], d.servers[i+1:]...), s)
			return s, nil
		}
	}
	t0 := time.Now()
	s, err := startServer(key, mc, append(append([]Object(nil), d.base...), own...))
	if err != nil {
		return nil, err
	}
	d.stats.Builds++
	d.stats.BuildTime += time.Since(t0)
	d.servers = append(d.servers, s)
	for len(d.servers) > d.keep {
		d.servers[0].close()
		d.servers = d.servers[1:]
	}
	return s, nil
}

func (d *Driver) observe(srv *server, step string, e check.Expectation) (o check.Observation) {
	start := time.Now()
	o = check.Observation{Step: step, Expect: e}
	defer func() {
		if p := recover(); p != nil {
			o.Observed, o.Err = check.Inconclusive, fmt.Sprintf("simulator panicked: %v", p)
		}
		o.Elapsed = time.Since(start)
	}()
	if e.From.Kind == check.PlainPod {
		o.Observed = check.Inconclusive
		o.Err = "traffic from a pod without a sidecar bypasses the mesh: the simulation cannot observe it (use the live tier)"
		return o
	}
	c, err := call(e.From, e.To)
	if err != nil {
		o.Observed, o.Err = check.Inconclusive, err.Error()
		return o
	}
	t0 := time.Now()
	p, built := srv.proxy(e.From)
	t1 := time.Now()
	var resolved string
	c, resolved = srv.resolve(e.From, e.To, c)
	r := p.Run(c)
	t2 := time.Now()
	d.mu.Lock()
	if built {
		d.stats.Proxies++
		d.stats.ProxyTime += t1.Sub(t0)
	}
	d.stats.Calls++
	d.stats.CallTime += t2.Sub(t1)
	d.mu.Unlock()
	out, trace, why := classify(p, r)
	o.Observed = out
	o.Cluster = r.ClusterMatched
	o.Observable = check.ConfigFacets
	head := []string{describeProxy(e.From) + ": " + describeCall(c)}
	if resolved != "" {
		head = append(head, resolved)
	}
	o.Trace = append(head, trace...)
	o.Evidence = why
	if len(e.WantRows) > 0 || e.WantSQLError != 0 {
		o.Trace = append(o.Trace, "query results are observed by the live tier only; the simulation checks the path")
	}
	if out == check.Inconclusive {
		o.Err = why
	}
	return o
}
