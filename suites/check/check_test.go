package check

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/fixtures"
)

func sample() Check {
	return Check{
		Name: "SampleCheck", Suite: "s", Description: "d.", Policy: RegistryOnly,
		Steps: []Step{{Name: "one", Apply: []Manifest{{Name: "m", Text: "host: {{host \"echo\"}}"}},
			Expect: []Expectation{{From: Client, To: Destination{Target: "echo", Port: 80, Protocol: HTTP}, Want: BlockedByMesh}}}},
		NegativeControl: WithPolicy(AllowAny, Flip{Observed: Allowed}),
	}
}

// fakeDriver is this package's own stand-in for a driver: it tests the
// orchestration (RunAll, the negative-control verdict), not a tier.
type fakeDriver struct {
	outcome func(Check) Outcome
	panics  bool
	status  Status // forced Error/Skipped
	err     string // observation error (a timeout, say)
}

func (f fakeDriver) Name() string { return "fake" }
func (f fakeDriver) Run(_ context.Context, c Check) Result {
	if f.panics {
		panic("boom")
	}
	r := NewResult(c)
	if f.status != "" {
		r.Status, r.Message = f.status, "environment not ready: fake"
		return r
	}
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			r.Observations = append(r.Observations, Observation{Step: s.Name, Expect: e, Observed: f.outcome(c), Err: f.err})
		}
	}
	r.Judge()
	return r
}

// policyDriver blocks under REGISTRY_ONLY and allows under ALLOW_ANY.
var policyDriver = fakeDriver{outcome: func(c Check) Outcome {
	if c.Policy == RegistryOnly {
		return BlockedByMesh
	}
	return Allowed
}}

func TestValidate(t *testing.T) {
	if err := ValidateList([]Check{sample()}); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Check){
		"PascalCase":       func(c *Check) { c.Name = "not-pascal" },
		"negative control": func(c *Check) { c.NegativeControl = Mutation{} },
		"Inconclusive":     func(c *Check) { c.Steps[0].Expect[0].Want = Inconclusive },
		"no earlier step":  func(c *Check) { c.Steps[0].Delete = []string{"x"} },
		"declares no flip": func(c *Check) { c.NegativeControl.Flips = nil },
		"points at no expectation": func(c *Check) {
			c.NegativeControl.Flips = []Flip{{Step: 0, Expect: 1, Observed: Allowed}}
		},
		"a flip must change it": func(c *Check) { c.NegativeControl.Flips = []Flip{{Observed: BlockedByMesh}} },
		"declare it in Flips": func(c *Check) {
			c.NegativeControl.Mutate = func(c *Check) { c.Steps[0].Expect[0].Want = Allowed }
		},
	} {
		c := sample().Clone()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if err := ValidateList([]Check{sample(), sample()}); err == nil {
		t.Error("duplicate names must be rejected")
	}
}

func TestNegatedDoesNotTouchTheOriginal(t *testing.T) {
	c := sample()
	n := c.Negated()
	if n.Policy != AllowAny || c.Policy != RegistryOnly || n.Name != "SampleCheck/NegativeControl" {
		t.Fatalf("negated %+v original %+v", n.Policy, c.Policy)
	}
}

func TestRunAllNegativeControls(t *testing.T) {
	rs := RunAll(context.Background(), policyDriver, []Check{sample()}, RunOptions{NegativeControls: true})
	if len(rs) != 2 || rs[0].Status != Passed || rs[1].Status != Passed || !rs[1].NegativeControl {
		t.Fatalf("%+v", rs)
	}
	if !strings.Contains(rs[1].Message, "failed as declared") || !strings.Contains(rs[1].Message, "wants BlockedByMesh, observed Allowed as declared") {
		t.Fatalf("message %q", rs[1].Message)
	}
	// A driver that observes the same thing whatever the policy: the
	// negative control exposes a check that cannot fail.
	blind := fakeDriver{outcome: func(Check) Outcome { return BlockedByMesh }}
	rs = RunAll(context.Background(), blind, []Check{sample()}, RunOptions{NegativeControls: true})
	want := "the broken check did not fail as declared (outboundTrafficPolicy ALLOW_ANY):\n[one] /client(meshed) -> HTTP :80: Allowed: expected Allowed (the negative control's declared flip of BlockedByMesh), observed BlockedByMesh"
	if rs[1].Status != Failed || rs[1].Message != want {
		t.Fatalf("%s\n got %q\nwant %q", rs[1].Status, rs[1].Message, want)
	}
	if ExitCode(rs) != 1 {
		t.Fatalf("exit %d", ExitCode(rs))
	}
}

// TestNegativeControlIsStrict: the control passes only on the declared
// flip; another failure, a timeout, an error or an undeclared change
// is not "the control failed".
func TestNegativeControlIsStrict(t *testing.T) {
	two := sample()
	two.Steps[0].Expect = append(two.Steps[0].Expect, Expectation{From: Client, To: Destination{Target: "blocked", Port: 80, Protocol: HTTP}, Want: BlockedByMesh})
	run := func(c Check, d Driver) Result {
		rs := RunAll(context.Background(), d, []Check{c}, RunOptions{NegativeControls: true})
		return rs[1]
	}
	// Everything allowed: the undeclared second expectation changed too.
	r := run(two, policyDriver)
	if r.Status != Failed || !strings.Contains(r.Message, "expected BlockedByMesh, observed Allowed — the mutation does not declare a change here") {
		t.Fatalf("undeclared change: %s %q", r.Status, r.Message)
	}
	// A different outcome than declared: Unreachable is not Allowed.
	r = run(sample(), fakeDriver{outcome: func(c Check) Outcome {
		if c.Policy == RegistryOnly {
			return BlockedByMesh
		}
		return Unreachable
	}})
	if r.Status != Failed || !strings.Contains(r.Message, "observed Unreachable") {
		t.Fatalf("other outcome: %s %q", r.Status, r.Message)
	}
	// A timeout (an observation that did not converge) is a failure of
	// the control even when its last observation matched.
	r = run(sample(), fakeDriver{outcome: policyDriver.outcome, err: "did not converge within 2m0s"})
	if r.Status != Failed || !strings.Contains(r.Message, "did not converge") {
		t.Fatalf("timeout: %s %q", r.Status, r.Message)
	}
	// An error stays an error.
	r = run(sample(), fakeDriver{outcome: policyDriver.outcome, status: Error})
	if r.Status != Error || !r.NegativeControl {
		t.Fatalf("error: %s %q", r.Status, r.Message)
	}
	// Missing observations are an error, not a pass.
	r = JudgeNegativeControl(two, Result{Status: Passed, Observations: []Observation{{Expect: two.Negated().Steps[0].Expect[0], Observed: Allowed}}})
	if r.Status != Error || !strings.Contains(r.Message, "1 observations for 2 expectations") {
		t.Fatalf("missing: %s %q", r.Status, r.Message)
	}
}

func TestNegatedFlipsOnlyTheDeclared(t *testing.T) {
	c := sample()
	c.Steps[0].Expect[0].WantCluster = "outbound|80||echo"
	n := c.Negated()
	e := n.Steps[0].Expect[0]
	if e.Want != Allowed || e.FlippedFrom != "BlockedByMesh" || e.WantCluster != "" {
		t.Fatalf("%+v", e)
	}
	if b := c.Broken(); b.Steps[0].Expect[0].Want != BlockedByMesh || b.Policy != AllowAny {
		t.Fatalf("broken %+v", b)
	}
}

func TestFacetsJudged(t *testing.T) {
	e := Expectation{Want: Allowed, WantCluster: "outbound|80||echo", WantRows: []string{"1,5"}}
	o := Observation{Expect: e, Observed: Allowed, Observable: TrafficFacets, Rows: []string{"1,5"}}
	if JoinFacets(o.Judged()) != "outcome,rows" || JoinFacets(o.NotJudged()) != "cluster" || o.Mismatch() != "" {
		t.Fatalf("judged %v not %v mismatch %q", o.Judged(), o.NotJudged(), o.Mismatch())
	}
	// Where the cluster is observable, a missing cluster is a mismatch.
	o = Observation{Expect: e, Observed: Allowed, Observable: ConfigFacets}
	if m := o.Mismatch(); m != "expected cluster outbound|80||echo, reached no cluster" {
		t.Fatalf("mismatch %q", m)
	}
	r := Result{Observations: []Observation{o}}
	if tr := r.Trace(); !strings.Contains(tr, "judged: outcome, cluster; not observed: rows") {
		t.Fatalf("trace %s", tr)
	}
	r.Judge()
	if !strings.Contains(r.Message, "(not observed: rows)") {
		t.Fatalf("message %q", r.Message)
	}
	// Failure kind.
	u := Observation{Expect: Expectation{Want: Unreachable, WantFailure: FailureTimeout}, Observed: Unreachable, Failure: "refused", Observable: TrafficFacets}
	if m := u.Mismatch(); m != "expected the connection to fail by timeout, it failed by refused" {
		t.Fatalf("mismatch %q", m)
	}
}

func TestRunAllSurvivesPanicsAndCancel(t *testing.T) {
	rs := RunAll(context.Background(), fakeDriver{panics: true}, []Check{sample()}, RunOptions{})
	if rs[0].Status != Error || !strings.Contains(rs[0].Message, "panicked: boom") || ExitCode(rs) != 2 {
		t.Fatalf("%+v", rs[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs = RunAll(ctx, policyDriver, []Check{sample()}, RunOptions{})
	if rs[0].Status != Skipped {
		t.Fatalf("%+v", rs[0])
	}
}

func TestFilter(t *testing.T) {
	c := sample()
	c.Labels = map[string]string{"protocol": "HTTP"}
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Run: regexp.MustCompile("^Sample")}, true},
		{Filter{Run: regexp.MustCompile("^Other")}, false},
		{Filter{Suites: []string{"s"}}, true},
		{Filter{Labels: map[string]string{"suite": "s", "protocol": "HTTP"}}, true},
		{Filter{Labels: map[string]string{"protocol": "TLS"}}, false},
		{Filter{SkipLabels: map[string]string{"protocol": "HTTP"}}, false},
	} {
		if got := tc.f.Match(c); got != tc.want {
			t.Errorf("%+v: got %v", tc.f, got)
		}
	}
	if _, err := ParseLabels("a"); err == nil {
		t.Error("want error for a label without =")
	}
}

func TestResolve(t *testing.T) {
	env := Env{Namespace: "ns", Endpoints: map[string]fixtures.Endpoint{"echo": {Name: "echo", Host: "echo.external.test", IP: "172.18.0.10"}}}
	r, err := env.Resolve(sample())
	if err != nil {
		t.Fatal(err)
	}
	e := r.Steps[0].Expect[0]
	if e.To.Host != "echo.external.test" || e.To.Address != "172.18.0.10" || e.From.Namespace != "ns" {
		t.Fatalf("%+v", e)
	}
	if r.Steps[0].Apply[0].Text != "host: echo.external.test" {
		t.Fatalf("manifest: %q", r.Steps[0].Apply[0].Text)
	}
	bad := sample()
	bad.Steps[0].Apply[0].Text = `{{ip "nope"}}`
	if _, err := env.Resolve(bad); err == nil || !strings.Contains(err.Error(), `no endpoint "nope"`) {
		t.Fatalf("got %v", err)
	}
}
