package suites_test

// The five suites, live, under go test with e2e-framework: one feature per
// check (labelled suite=<suite> plus the check's labels), so
//
//	go test ./suites/... -args --labels suite=masquerade
//
// runs only the masquerade checks for real. TestMain's Setup builds the
// environment with our own harness (suites/e2e: kind through its Go
// library, fixtures, Istio when a selected check needs it, probe pods), not
// e2e-framework's kind helper, which shells out to the kind binary; Finish
// tears it down, also after a failed setup (the setup never fails the
// framework's way, which would skip Finish: the features report it).
//
// Each mesh check is observed in two tiers: traffic (the live driver) and
// the config pushed to the proxy (package pushed, judged with Istio's
// simulator; with the local istiod, MESHCONFORM_LOCAL_ISTIOD=1, on by
// default under CI=true, istiod is real here while Envoy is not).
//
// Verdicts: Passed passes; Failed fails; any other error fails. A check
// that was not observed ("environment not ready: <reason>") is a t.Skip
// with exactly that reason (never a pass) — except under CI=true, where
// it fails: the pushed-config tier is expected to observe every mesh
// check, and the traffic tier may be not ready only with a reason naming
// proxyv2 (no Envoy image here) for a check the pushed-config tier
// observed. TestChecks always logs how many checks each tier observed.
// Without Docker or KIND_NODE_IMAGE the tests skip, or fail when CI=true.
//
// Environment: KIND_NODE_IMAGE, MYSQL_IMAGE, IP_MASQ_AGENT_IMAGE (see
// ../shared/testenv), MESHCONFORM_ISTIO_HUB, MESHCONFORM_ISTIO_TAG,
// MESHCONFORM_LOCAL_ISTIOD=1 (istiod built from the pinned module; default
// under CI=true), MESHCONFORM_NO_PULL=1,
// MESHCONFORM_RETAIN=1 (keep the cluster and fixtures),
// MESHCONFORM_NEGATIVE_CONTROLS=1 (also run each check's negative control),
// MESHCONFORM_CLUSTER_NAME (default meshconform-gotest).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/e2e"
)

var (
	testenv    env.Environment
	harness    *e2e.Env
	setupErr   error
	skipReason string
	negative   = os.Getenv("MESHCONFORM_NEGATIVE_CONTROLS") == "1"
	ci         = os.Getenv("CI") == "true"
	// localIstiod: expected to observe every mesh check on the pushed config.
	localIstiod = os.Getenv(e2e.EnvLocalIstiod) == "1" || ci && os.Getenv(e2e.EnvLocalIstiod) != "0"
	tally       counts
)

// counts are the checks each tier observed (a verdict, passed or failed),
// of those it was asked to.
type counts struct {
	mu                            sync.Mutex
	traffic, trafficOf            int
	pushed, pushedOf, proxyv2Only int
}

func TestMain(m *testing.M) {
	cfg, err := envconf.NewFromFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(2)
	}
	all := suites.All()
	selected := e2e.FrameworkSelect(all, cfg.Labels(), cfg.SkipLabels(), cfg.FeatureRegex(), cfg.SkipFeatureRegex())
	if skipReason = prerequisites(cfg); skipReason != "" || len(selected) == 0 || cfg.DryRunMode() {
		os.Exit(m.Run())
	}
	printer := e2e.NewPrinter(os.Stderr, time.Now(), testing.Verbose())
	name := os.Getenv("MESHCONFORM_CLUSTER_NAME")
	if name == "" {
		name = "meshconform-gotest"
	}
	hcfg := e2e.Config{
		ClusterName: name, Kubeconfig: cfg.KubeconfigFile(), Context: cfg.KubeContext(),
		Retain:       os.Getenv("MESHCONFORM_RETAIN") == "1",
		InstallIstio: e2e.NeedsMesh(selected), IstioHub: os.Getenv("MESHCONFORM_ISTIO_HUB"), IstioTag: os.Getenv("MESHCONFORM_ISTIO_TAG"),
		LocalIstiod: localIstiod, NoPull: os.Getenv("MESHCONFORM_NO_PULL") == "1",
		MasqueradeChecks: e2e.HasMasquerade(selected), Printer: printer,
	}
	testenv = env.NewWithConfig(cfg)
	testenv.Setup(func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		harness, setupErr = e2e.Setup(ctx, hcfg)
		return ctx, nil // reported by each feature; an error here would skip Finish
	})
	testenv.Finish(func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		if harness != nil {
			return ctx, harness.Teardown(ctx)
		}
		return ctx, nil
	})
	code := testenv.Run(m)
	if harness != nil {
		// Idempotent; covers a Finish that did not run.
		if err := harness.Teardown(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: teardown: %v\n", err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// prerequisites returns why the live tests cannot run here ("" if they can).
func prerequisites(cfg *envconf.Config) string {
	if err := fixtures.DockerAvailable(context.Background()); err != nil {
		return "live checks need a Docker engine: " + err.Error()
	}
	if cfg.KubeconfigFile() == "" && cfg.KubeContext() == "" && os.Getenv("KIND_NODE_IMAGE") == "" {
		return "live checks need a kind node image: set KIND_NODE_IMAGE (eval \"$(../shared/testenv/env)\") or pass --kubeconfig"
	}
	return ""
}

// TestChecks runs every check as an e2e-framework feature.
func TestChecks(t *testing.T) {
	if skipReason != "" {
		if ci {
			t.Fatalf("CI=true: %s", skipReason)
		}
		t.Skip(skipReason)
	}
	if testenv == nil {
		t.Skip("no check selected by --feature/--labels/--skip-labels")
	}
	var feats []features.Feature
	for _, c := range suites.All() {
		b := features.New(c.Name)
		for k, v := range c.AllLabels() {
			b = b.WithLabel(k, v)
		}
		// The check runs in the feature's setup; the assessment judges
		// both tiers' results.
		o := &observed{}
		b = b.Setup(observe(c, o))
		b = b.Assess("verdict", judge(c, o))
		feats = append(feats, b.Feature())
	}
	testenv.Test(t, feats...)
	tally.mu.Lock()
	defer tally.mu.Unlock()
	t.Logf("observed: traffic tier %d of %d check runs (%d mesh check runs not ready for lack of proxyv2 only); pushed-config tier %d of %d mesh check runs (local istiod: %v)",
		tally.traffic, tally.trafficOf, tally.proxyv2Only, tally.pushed, tally.pushedOf, localIstiod)
}

// observed holds a check's results in both tiers.
type observed struct {
	traffic, pushed []check.Result
	mesh            bool
}

// observe runs c (and its negative control) with the live driver and, for
// a mesh check, on the pushed config (the check and its negative control).
func observe(c check.Check, o *observed) features.Func {
	return func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
		if setupErr != nil {
			var pe *e2e.PhaseError
			if errors.As(setupErr, &pe) {
				t.Fatalf("setup failed in phase %s: %v", pe.Phase, pe.Err)
			}
			t.Fatalf("setup failed: %v", setupErr)
		}
		t.Log(c.Description)
		o.traffic = check.RunAll(ctx, harness.Driver, []check.Check{c}, check.RunOptions{NegativeControls: negative})
		o.mesh = e2e.NeedsMesh([]check.Check{c}) && c.Masquerade == nil
		if o.mesh {
			o.pushed = harness.RunPushed(ctx, []check.Check{c}, o.traffic, nil)
		}
		for _, r := range append(append([]check.Result(nil), o.traffic...), o.pushed...) {
			if tr := strings.TrimSpace(r.Trace()); tr != "" {
				t.Logf("%s %s:\n%s", r.Suite, r.Name, tr)
			}
			for _, ob := range r.Observations {
				if ob.Converged >= 50*time.Millisecond {
					t.Logf("%s %s [%s]: took effect after %v", r.Suite, r.Name, ob.Step, ob.Converged.Round(100*time.Millisecond))
				}
			}
		}
		return ctx
	}
}

func notReady(r check.Result) bool {
	return r.Status == check.Error && strings.HasPrefix(r.Message, check.ErrNotReady+": ")
}

func verdict(r check.Result) bool { return r.Status == check.Passed || r.Status == check.Failed }

// judge passes only if every observed result passed; what was not
// observed skips (fails under CI=true, see the package comment).
func judge(c check.Check, o *observed) features.Func {
	return func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
		if len(o.traffic) == 0 {
			t.Fatal("the check was not observed")
		}
		pushedOK := o.mesh && len(o.pushed) > 0
		for _, r := range o.pushed {
			pushedOK = pushedOK && verdict(r)
		}
		tally.mu.Lock()
		tally.trafficOf += len(o.traffic)
		if o.mesh {
			tally.pushedOf++
			if pushedOK {
				tally.pushed++
			}
		}
		tally.mu.Unlock()
		var unobserved []string
		for _, r := range o.traffic {
			switch {
			case verdict(r):
				tally.mu.Lock()
				tally.traffic++
				tally.mu.Unlock()
				if r.Status != check.Passed {
					t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
				}
			case notReady(r) && o.mesh && pushedOK && strings.Contains(r.Message, "proxyv2"):
				// No Envoy image here: the data plane cannot run; the
				// pushed-config tier observed the check instead.
				tally.mu.Lock()
				tally.proxyv2Only++
				tally.mu.Unlock()
				t.Logf("traffic tier: %s (allowed: the pushed-config tier observed the check)", r.Message)
			case notReady(r) || r.Status == check.Skipped:
				unobserved = append(unobserved, "traffic tier: "+r.Message)
			default:
				t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
			}
		}
		if o.mesh {
			why := harness.PushedNote()
			if why == "" && harness.MeshErr != nil {
				why = harness.MeshErr.Error()
			}
			if len(o.pushed) == 0 {
				unobserved = append(unobserved, "pushed-config tier did not run: "+orUnknown(why))
			}
			for _, r := range o.pushed {
				switch {
				case r.Status == check.Passed:
				case notReady(r) || r.Status == check.Skipped:
					unobserved = append(unobserved, "pushed-config tier: "+r.Message)
				default:
					t.Errorf("%s%s: %s: %s", r.Name, " (pushed config)", r.Status, r.Message)
				}
			}
		}
		if len(unobserved) > 0 {
			msg := strings.Join(unobserved, "; ")
			if ci {
				t.Errorf("CI=true: %s was expected to be observed (pushed-config tier with the local istiod; the traffic tier may lack only proxyv2) but was not: %s", c.Name, msg)
			} else if !t.Failed() {
				t.Skip(msg)
			}
		}
		return ctx
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
