package app

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
)

type simulateOptions struct {
	checkFlags
	configs      []string
	meshConfig   string
	policy       string
	expectations string
	namespace    string
}

func newSimulateCmd(g *globals) *cobra.Command {
	o := &simulateOptions{}
	cmd := &cobra.Command{
		Use:   "simulate [CONFIG_PATH...]",
		Short: "Check egress policy offline with Istio's own config generator and traffic simulator",
		Long: `simulate generates the Envoy configuration istiod would send a sidecar (or the
ingress gateway) for your Istio config, then simulates each expected call
through it: listener → filter chain → virtual host/route → cluster.

Without --expectations it runs the five built-in suites (each check with its
own manifests and policy). With --expectations it checks your own policy:
CONFIG_PATHs (files or directories of ServiceEntry, Sidecar, Gateway,
VirtualService, DestinationRule and Service YAML) are validated with Istio's
own validation, then every expectation in the file is simulated.

Masquerade expectations are evaluated as ip-masq-agent reads its ConfigMap.`,
		Example: `  meshconform simulate
  meshconform simulate --suite registry-only --negative-controls
  meshconform simulate -f istio/ --expectations egress-expectations.yaml --outbound-traffic-policy REGISTRY_ONLY`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.configs = append(o.configs, args...)
			return o.run(cmd, g)
		},
	}
	o.register(cmd, "", "")
	fl := cmd.Flags()
	fl.StringSliceVarP(&o.configs, "config", "f", nil, "Istio YAML file or directory (repeatable; also positional)")
	fl.StringVar(&o.meshConfig, "mesh-config", "", "mesh config YAML file (the `mesh` key of istio-system/istio); default Istio's defaults")
	fl.StringVar(&o.policy, "outbound-traffic-policy", "", "override outboundTrafficPolicy.mode: ALLOW_ANY or REGISTRY_ONLY")
	fl.StringVar(&o.expectations, "expectations", "", "expectations file (apiVersion meshconform.dev/v1alpha1); without it the built-in suites run")
	fl.StringVar(&o.namespace, "namespace", "default", "namespace for config objects that have none")
	return cmd
}

func (o *simulateOptions) run(cmd *cobra.Command, g *globals) error {
	start := time.Now()
	r := reports.Report{Tool: Version, Driver: "simulation", IstioVersion: sim.IstioVersion(), Started: start}
	fail := func(err error) error { return o.setupFailed(g, r, "input", err) }
	mc, err := o.loadMesh()
	if err != nil {
		return fail(err)
	}
	var policy check.OutboundPolicy
	if o.policy != "" {
		if policy, err = check.ParseOutboundPolicy(o.policy); err != nil {
			return fail(fmt.Errorf("--outbound-traffic-policy: %w", err))
		}
	}
	objs, err := sim.LoadPaths(o.configs, o.namespace)
	if err != nil {
		return fail(err)
	}
	if len(o.configs) > 0 {
		progress(g, start, "loaded %d objects from %v (validated with Istio's validation)", len(objs), o.configs)
	}
	var all []check.Check
	env := suites.SimEnv()
	reportPolicy := "per check"
	if o.expectations != "" {
		l, err := expectations.Load(o.expectations, sim.IndexHosts(objs))
		if err != nil {
			return fail(err)
		}
		if policy == "" {
			policy = l.Policy
		}
		if policy == "" {
			policy = check.OutboundPolicy(mc.GetOutboundTrafficPolicy().GetMode().String())
		}
		for _, c := range l.Checks {
			if c.Masquerade == nil {
				c.Policy = policy
			}
			all = append(all, c)
		}
		reportPolicy = string(policy)
		env.Namespace = o.namespace
	} else {
		all = suites.All()
		if policy != "" {
			// An explicit policy overrides the checks' own: expect failures.
			for i := range all {
				if all[i].Policy != "" {
					all[i].Policy = policy
				}
			}
			reportPolicy = string(policy)
		}
	}
	r.MeshPolicy = reportPolicy
	sel, err := o.selectChecks(all)
	if err != nil {
		return fail(err)
	}
	d, err := sim.New(sim.WithEnv(env), sim.WithMeshConfig(mc), sim.WithObjects(objs))
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	if g.verbose {
		progress(g, start, "simulating %d checks", len(sel))
	}
	r.Results = check.RunAll(cmd.Context(), d, sel, check.RunOptions{
		NegativeControls: o.negativeControls,
		OnResult: func(res check.Result) {
			if g.verbose {
				progress(g, start, "%s %s", res.Status, res.Name)
			}
		},
	})
	st := d.Stats()
	progress(g, start, "simulated %d checks: %d configs generated in %s, %d proxy configs in %s, %d calls in %s",
		len(r.Results), st.Builds, st.BuildTime.Round(time.Millisecond), st.Proxies, st.ProxyTime.Round(time.Millisecond),
		st.Calls, st.CallTime.Round(time.Millisecond))
	return o.finish(g, r)
}

func (o *simulateOptions) loadMesh() (*meshconfig.MeshConfig, error) {
	if o.meshConfig == "" {
		return mesh.DefaultMeshConfig(), nil
	}
	data, err := os.ReadFile(o.meshConfig)
	if err != nil {
		return nil, &check.InputError{File: o.meshConfig, Problem: "cannot read: " + err.Error(), Fix: "pass the mesh config YAML (the `mesh` key of the istio ConfigMap)"}
	}
	mc, err := mesh.ApplyMeshConfigDefaults(string(data))
	if err != nil {
		return nil, &check.InputError{File: o.meshConfig, Problem: "invalid mesh config: " + err.Error(),
			Fix: "the file holds the content of the `mesh` key, e.g. `outboundTrafficPolicy: {mode: REGISTRY_ONLY}`"}
	}
	return mc, nil
}
