package app

import (
	"context"
	"fmt"
	"maps"

	"github.com/spf13/pflag"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/e2e"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
)

// runExpectFlags are `run`'s flags for a user's own expectations file.
type runExpectFlags struct {
	expectations     string
	configs          []string
	configNamespace  string
	sourceNamespaces []string
}

func (o *runExpectFlags) registerExpectations(f *pflag.FlagSet) {
	f.StringVar(&o.expectations, "expectations", "", "run this expectations file (apiVersion meshconform.dev/v1alpha1, as simulate) live instead of the built-in suites")
	f.StringSliceVarP(&o.configs, "config", "f", nil, "with --expectations: Istio YAML file or directory applied for the run and removed after (repeatable); without it the cluster's own config is verified")
	f.StringVar(&o.configNamespace, "config-namespace", "default", "with -f: namespace for objects that have none (simulate's --namespace)")
	f.StringSliceVar(&o.sourceNamespaces, "source-namespace", nil, "with --expectations: an existing namespace where probe pods of your sources may be created (repeatable; required on an existing cluster, never created or deleted)")
}

// loadExpectations reads -f and the expectations file with simulate's
// loaders (every error names file:line and a fix) and applies the
// selection flags to its checks.
func (o *runOptions) loadExpectations() (*e2e.Expectations, []check.Check, error) {
	if o.expectations == "" {
		if len(o.configs) > 0 || len(o.sourceNamespaces) > 0 {
			return nil, nil, fmt.Errorf("-f and --source-namespace only apply with --expectations: add --expectations FILE")
		}
		return nil, nil, nil
	}
	objs, err := sim.LoadPaths(o.configs, o.configNamespace)
	if err != nil {
		return nil, nil, err
	}
	var hosts expectations.HostIndex
	if len(o.configs) > 0 {
		// As simulate: a host the -f config does not declare is a likely
		// typo. Without -f the cluster's config is unknown here.
		hosts = sim.IndexHosts(objs)
	}
	l, err := expectations.Load(o.expectations, hosts)
	if err != nil {
		return nil, nil, err
	}
	checks, err := o.selectChecks(l.Checks)
	if err != nil {
		return nil, nil, err
	}
	return &e2e.Expectations{File: l, Objects: objs, DefaultNamespace: o.configNamespace, SourceNamespaces: o.sourceNamespaces}, checks, nil
}

// runExpectations runs x after Setup and puts its results and properties
// into rep; a failed preparation is the report's synthetic Setup failure.
func runExpectations(ctx context.Context, env *e2e.Env, x *e2e.Expectations, checks []check.Check, rep *reports.Report, onResult func(check.Result)) map[string]string {
	res, props, err := env.RunExpectations(ctx, *x, checks, onResult)
	if err != nil {
		rep.SetupFailed(e2e.PhaseExpectations, err)
		return props
	}
	rep.Results = res
	return props
}

// withProps returns m with extra added (extra wins).
func withProps(m, extra map[string]string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, extra)
	return m
}
