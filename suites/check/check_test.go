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
		NegativeControl: WithPolicy(AllowAny),
	}
}

type fakeDriver struct {
	outcome func(Check) Outcome
	panics  bool
}

func (f fakeDriver) Name() string { return "fake" }
func (f fakeDriver) Run(_ context.Context, c Check) Result {
	if f.panics {
		panic("boom")
	}
	r := NewResult(c)
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			r.Observations = append(r.Observations, Observation{Step: s.Name, Expect: e, Observed: f.outcome(c)})
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
	// A driver that observes the same thing whatever the policy: the
	// negative control exposes a check that cannot fail.
	blind := fakeDriver{outcome: func(Check) Outcome { return BlockedByMesh }}
	rs = RunAll(context.Background(), blind, []Check{sample()}, RunOptions{NegativeControls: true})
	if rs[1].Status != Failed || !strings.Contains(rs[1].Message, "cannot fail") {
		t.Fatalf("%+v", rs[1])
	}
	if ExitCode(rs) != 1 {
		t.Fatalf("exit %d", ExitCode(rs))
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
