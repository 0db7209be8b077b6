package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/check"
)

// The masquerade scenario of ../shared/seeds/gke-ip-masq-agent.txt, as
// checks of this test (the suites' own definitions live in suites/).
func masqueradeChecks() []check.Check {
	plain := func(want check.Outcome, as check.SourceIdentity) check.Expectation {
		return check.Expectation{From: check.Source{Kind: check.PlainPod}, To: check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP}, Want: want, WantSourceIP: as}
	}
	nonMasqPods := "nonMasqueradeCIDRs: [{{var \"podCIDR\"}}]\nresyncInterval: 5s\n"
	mk := func(name, cfg string, route bool, e check.Expectation, neg check.Mutation) check.Check {
		return check.Check{Name: name, Suite: "masquerade", Description: name,
			Masquerade: &check.Masquerade{Config: cfg, ReturnRoute: route}, Requires: []check.Requirement{check.NeedsIPMasqAgent},
			Steps: []check.Step{{Name: "probe", Expect: []check.Expectation{e}}}, NegativeControl: neg}
	}
	return []check.Check{
		mk("OutsideNonMasqSeenAsNode", nonMasqPods, false, plain(check.Allowed, check.NodeIP),
			check.Mutation{Description: "agent defaults (the target's range is not masqueraded)", Mutate: func(c *check.Check) { c.Masquerade.Config = "" }}),
		mk("InsideNonMasqNoRouteFails", "", false, plain(check.Unreachable, ""),
			check.Mutation{Description: "a return route exists", Mutate: func(c *check.Check) { c.Masquerade.ReturnRoute = true }}),
		mk("InsideNonMasqWithRouteSeenAsPod", "", true, plain(check.Allowed, check.PodIP),
			check.Mutation{Description: "only the pod CIDR is not masqueraded", Mutate: func(c *check.Check) { c.Masquerade.Config = nonMasqPods }}),
	}
}

func meshCheck() check.Check {
	return check.Check{Name: "UnregisteredHTTPBlocked", Suite: "registry-only", Description: "x", Policy: check.RegistryOnly,
		Steps:           []check.Step{{Name: "blocked", Expect: []check.Expectation{{To: check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP}, Want: check.BlockedByMesh}}}},
		NegativeControl: check.Mutation{Description: "x", Mutate: func(c *check.Check) { c.Steps[0].Expect[0].Want = check.Allowed }}}
}

// TestHarnessLive runs the whole harness for real: kind cluster, fixtures,
// Istio (whose images cannot be pulled without a registry), probe pods,
// the masquerade checks and their negative controls, one mesh check that
// must be "environment not ready", and a teardown that leaves nothing.
// It takes minutes: opt in with MESHCONFORM_E2E_HARNESS=1 (suites/e2e_test.go
// and `make e2e` run the suites' own checks the same way).
func TestHarnessLive(t *testing.T) {
	if os.Getenv("MESHCONFORM_E2E_HARNESS") != "1" {
		t.Skip("opt in with MESHCONFORM_E2E_HARNESS=1 (creates a kind cluster; several minutes)")
	}
	if err := fixtures.DockerAvailable(context.Background()); err != nil || os.Getenv("KIND_NODE_IMAGE") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Docker (%v) or KIND_NODE_IMAGE is missing", err)
		}
		t.Skipf("needs Docker (%v) and KIND_NODE_IMAGE", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	p := NewPrinter(testWriter{t}, time.Now(), true)
	checks := append(masqueradeChecks(), meshCheck())
	env, err := Setup(ctx, Config{ClusterName: "meshconform-harness", InstallIstio: true, MasqueradeChecks: true, Printer: p})
	t.Cleanup(func() {
		if err := env.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		for _, ph := range env.Phases() {
			t.Logf("phase %-9s %6.1fs  %s", ph.Name, ph.Elapsed.Seconds(), ph.Detail)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if env.MeshErr == nil {
		t.Log("Istio is ready here: the mesh check runs for real")
	}
	start := time.Now()
	results := check.RunAll(ctx, env.Driver, checks, check.RunOptions{NegativeControls: true})
	env.RecordPhase(PhaseChecks, start, "")
	for _, r := range results {
		t.Logf("%s %s: %s\n%s", r.Status, r.Name, r.Message, r.Trace())
		switch {
		case r.Suite == "masquerade" && r.Status != check.Passed:
			t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
		case r.Suite != "masquerade" && env.MeshErr != nil:
			if r.Status != check.Error || !strings.HasPrefix(r.Message, check.ErrNotReady+": ") || !strings.Contains(r.Message, "image") {
				t.Errorf("%s: %s %q, want an environment-not-ready error naming the image", r.Name, r.Status, r.Message)
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
