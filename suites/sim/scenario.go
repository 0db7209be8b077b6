package sim

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/meshconform/meshconform/suites/check"
)

// Scenario is one config that checks are simulated against: a policy, the
// objects (the driver's base objects plus a check step's own manifests)
// and the sources whose sidecars call through it. Self-checks run per
// scenario.
type Scenario struct {
	// Name says where the scenario comes from: "config" for the base
	// objects alone, "<Check>: <step>" for a built-in check's step.
	Name string
	// Policy is the outboundTrafficPolicy ("" = the mesh config's).
	Policy check.OutboundPolicy
	// Objects are every object in the config, base first.
	Objects []Object
	// Sources are the meshed sources (and the gateway) the checks call
	// from, in first-use order.
	Sources []check.Source

	own []Object
	key string
}

// Scenarios lists the distinct configs the checks use (deduplicated by
// policy and objects), in first-use order. Masquerade checks use none.
func (d *Driver) Scenarios(checks []check.Check) ([]Scenario, error) {
	var out []Scenario
	index := map[string]int{}
	seenSrc := map[string]map[string]bool{}
	for _, c := range checks {
		if c.Masquerade != nil {
			continue
		}
		rc, err := d.env.Resolve(c)
		if err != nil {
			return nil, err
		}
		mc, err := d.meshFor(rc.Policy)
		if err != nil {
			return nil, err
		}
		state := map[string][]Object{}
		var order []string
		for _, step := range rc.Steps {
			for _, name := range step.Delete {
				delete(state, name)
				order = remove(order, name)
			}
			for _, m := range step.Apply {
				objs, err := ParseYAML(c.Name+"/"+m.Name+".yaml", []byte(m.Text), d.env.Namespace)
				if err != nil {
					return nil, err
				}
				state[m.Name] = objs
				order = append(order, m.Name)
			}
			var own []Object
			for _, name := range order {
				own = append(own, state[name]...)
			}
			key := configKey(mc, d.baseKey, own)
			i, ok := index[key]
			if !ok {
				name := "config"
				if len(own) > 0 {
					name = c.Name + ": " + step.Name
				}
				i = len(out)
				index[key] = i
				seenSrc[key] = map[string]bool{}
				out = append(out, Scenario{Name: name, Policy: rc.Policy, Objects: append(append([]Object(nil), d.base...), own...), own: own, key: key})
			}
			for _, e := range step.Expect {
				if e.From.Kind == check.PlainPod || seenSrc[key][e.From.Key()] {
					continue
				}
				seenSrc[key][e.From.Key()] = true
				out[i].Sources = append(out[i].Sources, e.From)
			}
		}
	}
	return out, nil
}

// Config is a running config generator for one scenario. It stays valid
// until the driver is closed or has built more configs than it caches
// (WithCachedConfigs); use it before running further checks.
type Config struct {
	Scenario
	d   *Driver
	srv *server
}

// Config starts (or reuses) the config generator for a scenario. A
// non-empty policy overrides the scenario's.
func (d *Driver) Config(s Scenario, policy check.OutboundPolicy) (*Config, error) {
	if policy != "" {
		s.Policy = policy
	}
	mc, err := d.meshFor(s.Policy)
	if err != nil {
		return nil, err
	}
	srv, err := d.server(mc, s.own)
	if err != nil {
		return nil, err
	}
	return &Config{Scenario: s, d: d, srv: srv}, nil
}

// Proxy returns the generated config of one source, built once.
func (c *Config) Proxy(src check.Source) *Proxy {
	t0 := time.Now()
	p, built := c.srv.proxy(src)
	c.d.countProxy(built, time.Since(t0))
	return p
}

// Proxies generates the configs of several sources concurrently (one
// worker per CPU) and returns them in the sources' order.
func (c *Config) Proxies(ctx context.Context, srcs []check.Source) []*Proxy {
	out := make([]*Proxy, len(srcs))
	work := make(chan int)
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(srcs))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i] = c.Proxy(srcs[i])
			}
		}()
	}
	for i := range srcs {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

// Allocated returns the address Istio's auto-allocation gave host in this
// config ("" when none); only sidecars with DNS capture use it.
func (c *Config) Allocated(host string) string { return c.srv.allocated[host] }

// Prepare generates, concurrently, the per-source proxy configs the checks
// will need, so that Run finds them built. It is an optimisation only:
// Run builds whatever Prepare did not.
func (d *Driver) Prepare(ctx context.Context, checks []check.Check) error {
	scs, err := d.Scenarios(checks)
	if err != nil {
		return err
	}
	// Most recently used last: prepare in reverse so the first checks'
	// configs stay cached when there are more scenarios than the cache.
	if len(scs) > d.keep {
		return nil // built-in suites: each check has its own config, nothing to share
	}
	slices.Reverse(scs)
	for _, s := range scs {
		cfg, err := d.Config(s, "")
		if err != nil {
			return err
		}
		t0 := time.Now()
		cfg.Proxies(ctx, s.Sources)
		d.mu.Lock()
		d.stats.PrepareTime += time.Since(t0)
		d.mu.Unlock()
	}
	return nil
}

func (d *Driver) countProxy(built bool, took time.Duration) {
	if !built {
		return
	}
	d.mu.Lock()
	d.stats.Proxies++
	d.stats.ProxyTime += took
	d.mu.Unlock()
}

// Manifest is one rendered manifest of a check, named as the simulation
// names it in errors (File: "<Check>/<manifest>.yaml").
type Manifest struct {
	File string
	Text string
}

// Manifests returns, per check that has manifests of its own, every
// manifest its steps apply, rendered with the driver's environment (the
// config Istio's analyzers should see beside the base objects). Checks
// without manifests (expectations files) contribute nothing.
func (d *Driver) Manifests(checks []check.Check) ([][]Manifest, error) {
	var out [][]Manifest
	for _, c := range checks {
		if c.Masquerade != nil {
			continue
		}
		rc, err := d.env.Resolve(c)
		if err != nil {
			return nil, err
		}
		var set []Manifest
		seen := map[string]bool{}
		for _, st := range rc.Steps {
			for _, m := range st.Apply {
				if !seen[m.Name] {
					seen[m.Name] = true
					set = append(set, Manifest{File: c.Name + "/" + m.Name + ".yaml", Text: m.Text})
				}
			}
		}
		if len(set) > 0 {
			out = append(out, set)
		}
	}
	return out, nil
}
