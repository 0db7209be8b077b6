package pushed

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/registryonly"
)

// results builds the result of c as a driver reports it: one observation
// per expectation with the given outcomes, judged.
func results(t *testing.T, c check.Check, suffix string, negative bool, observed ...check.Outcome) check.Result {
	t.Helper()
	r := check.NewResult(c)
	r.Suite += suffix
	r.NegativeControl = negative
	i := 0
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			o := check.Observation{Step: s.Name, Expect: e, Observed: observed[i]}
			if suffix == SuiteSuffix {
				o.Observable = check.ConfigFacets
				o.Trace = []string{"pushed config of sidecar meshconform/client-x (10.244.0.5) (sidecar config_dump, CDS v2, LDS v2): HTTP call", "listener 0.0.0.0_80"}
				if observed[i] == check.BlockedByMesh {
					o.Trace = append(o.Trace, "virtual host block_all")
				} else {
					o.Cluster = "PassthroughCluster"
				}
			} else {
				o.Evidence = "HTTP 200 from the echo target"
			}
			r.Observations = append(r.Observations, o)
			i++
		}
	}
	r.Judge()
	return r
}

func checkNamed(t *testing.T, name string) check.Check {
	t.Helper()
	for _, c := range registryonly.Checks() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s", name)
	return check.Check{}
}

// TestDisagreements: a traffic verdict that differs from the pushed-config
// verdict of the same expectation is a finding MC0004 carrying the
// proxy's sync status and what it means; agreeing verdicts, a traffic tier
// that could not observe (not ready), Unreachable, and a negative control
// compared with the real check's result yield none.
func TestDisagreements(t *testing.T) {
	blocksHTTP := checkNamed(t, "RegistryOnlyBlocksUnregisteredHTTP")
	baseline := checkNamed(t, "AllowAnyBaselineReachesUnregisteredHost")
	notReady := check.NewResult(baseline)
	notReady.Status, notReady.Message = check.Error, check.ErrNotReady+": pod meshconform/client-x container istio-proxy: image meshconform/proxyv2:x cannot be pulled"

	traffic := []check.Result{
		// The sidecar let the call through although the pushed config blocks it.
		results(t, blocksHTTP, "", false, check.Allowed),
		// Its negative control (ALLOW_ANY): traffic and config agree.
		results(t, blocksHTTP, "", true, check.Allowed),
		notReady,
	}
	pushed := []check.Result{
		results(t, blocksHTTP, SuiteSuffix, false, check.BlockedByMesh),
		results(t, blocksHTTP, SuiteSuffix, true, check.Allowed),
		results(t, baseline, SuiteSuffix, false, check.Allowed, check.Allowed, check.Allowed),
	}
	if traffic[0].Status != check.Failed || pushed[0].Status != check.Passed {
		t.Fatalf("shapes: traffic %s, pushed %s", traffic[0].Status, pushed[0].Status)
	}
	var asked []check.SourceKind
	nack := func(_ context.Context, k check.SourceKind) (SyncStatus, error) {
		asked = append(asked, k)
		return SyncStatus{Proxy: "client-x.meshconform", Types: map[string]string{"CDS": Synced, "LDS": NACK, "RDS": Synced},
			Errors: map[string]string{"LDS": "Error adding/updating listener(s) 0.0.0.0_80: duplicate matcher"}}, nil
	}
	got := Disagreements(context.Background(), traffic, pushed, nack)
	if len(got) != 1 {
		t.Fatalf("want 1 finding, got %d: %v", len(got), got)
	}
	f := got[0]
	if f.Code != findings.CodeConfigNotInEffect || f.Source != findings.PushedConfig || f.Level != findings.Error ||
		f.Object() != "Check registry-only/RegistryOnlyBlocksUnregisteredHTTP" {
		t.Errorf("finding %+v", f)
	}
	for _, want := range []string{"[no ServiceEntry]", "traffic was Allowed", "says BlockedByMesh (via no cluster)",
		"LDS NACK (Error adding/updating listener(s) 0.0.0.0_80: duplicate matcher)", "rejected config: the proxy NACKed LDS"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, f.Message)
		}
	}
	if !strings.Contains(strings.Join(f.Trace, "\n"), "virtual host block_all") || len(asked) != 1 || asked[0] != check.MeshedPod {
		t.Errorf("trace %v, asked %v", f.Trace, asked)
	}

	// The same disagreement with a stale or a synced proxy says so.
	for st, want := range map[string]string{Stale: "stale config: LDS pushed but not acknowledged yet", Synced: "every type SYNCED"} {
		got := Disagreements(context.Background(), traffic[:1], pushed[:1], func(context.Context, check.SourceKind) (SyncStatus, error) {
			return SyncStatus{Types: map[string]string{"CDS": Synced, "LDS": st}}, nil
		})
		if len(got) != 1 || !strings.Contains(got[0].Message, want) {
			t.Errorf("%s: %v", st, got)
		}
	}
	// Without a sync status the finding still stands, saying why.
	got = Disagreements(context.Background(), traffic[:1], pushed[:1], func(context.Context, check.SourceKind) (SyncStatus, error) {
		return SyncStatus{}, errors.New("istiod reports no proxy client-x.meshconform")
	})
	if len(got) != 1 || !strings.Contains(got[0].Message, "sync status: unknown: istiod reports no proxy") {
		t.Errorf("no status: %v", got)
	}
	// Unreachable is not a config matter.
	if got := Disagreements(context.Background(), []check.Result{results(t, blocksHTTP, "", false, check.Unreachable)}, pushed[:1], nack); len(got) != 0 {
		t.Errorf("unreachable: %v", got)
	}
}
