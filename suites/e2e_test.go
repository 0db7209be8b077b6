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
// Verdicts: Passed passes; Failed fails; "environment not ready: <reason>"
// is a t.Skip with exactly that reason (never a pass); any other error
// fails. Without Docker or KIND_NODE_IMAGE the tests skip, or fail when
// CI=true.
//
// Environment: KIND_NODE_IMAGE, MYSQL_IMAGE, IP_MASQ_AGENT_IMAGE (see
// ../shared/testenv), MESHCONFORM_ISTIO_HUB, MESHCONFORM_ISTIO_TAG,
// MESHCONFORM_RETAIN=1 (keep the cluster and fixtures),
// MESHCONFORM_NEGATIVE_CONTROLS=1 (also run each check's negative control),
// MESHCONFORM_CLUSTER_NAME (default meshconform-gotest).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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
)

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
		if os.Getenv("CI") == "true" {
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
		// The check runs in the feature's setup, so that "environment not
		// ready" skips the feature itself; the assessment judges it.
		var results []check.Result
		b = b.Setup(observe(c, &results))
		b = b.Assess("verdict", judge(&results))
		feats = append(feats, b.Feature())
	}
	testenv.Test(t, feats...)
}

// observe runs c (and its negative control) with the live driver into
// *results; an environment that is not ready skips the feature with the
// exact reason.
func observe(c check.Check, results *[]check.Result) features.Func {
	return func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
		if setupErr != nil {
			var pe *e2e.PhaseError
			if errors.As(setupErr, &pe) {
				t.Fatalf("setup failed in phase %s: %v", pe.Phase, pe.Err)
			}
			t.Fatalf("setup failed: %v", setupErr)
		}
		t.Log(c.Description)
		*results = check.RunAll(ctx, harness.Driver, []check.Check{c}, check.RunOptions{NegativeControls: negative})
		for _, r := range *results {
			if tr := strings.TrimSpace(r.Trace()); tr != "" {
				t.Logf("%s:\n%s", r.Name, tr)
			}
			for _, o := range r.Observations {
				if o.Converged >= 50*time.Millisecond {
					t.Logf("%s [%s]: took effect after %v", r.Name, o.Step, o.Converged.Round(100*time.Millisecond))
				}
			}
		}
		for _, r := range *results {
			if r.Status == check.Skipped || (r.Status == check.Error && strings.HasPrefix(r.Message, check.ErrNotReady+": ")) {
				t.Skip(r.Message)
			}
		}
		return ctx
	}
}

// judge passes only if every result passed: Failed and other errors fail.
func judge(results *[]check.Result) features.Func {
	return func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
		if len(*results) == 0 {
			t.Fatal("the check was not observed")
		}
		for _, r := range *results {
			if r.Status != check.Passed {
				t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
			}
		}
		return ctx
	}
}
