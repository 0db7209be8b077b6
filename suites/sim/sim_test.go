package sim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/sim"
)

func newDriver(t testing.TB, opts ...sim.Option) *sim.Driver {
	t.Helper()
	d, err := sim.New(append([]sim.Option{sim.WithEnv(suites.SimEnv())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestChecksAreWellFormed(t *testing.T) {
	if err := check.ValidateList(suites.All()); err != nil {
		t.Fatal(err)
	}
	if got := check.Suites(suites.All()); strings.Join(got, ",") != strings.Join(suites.Names, ",") {
		t.Fatalf("suites %v, want %v", got, suites.Names)
	}
}

// TestBuiltinSuites runs every built-in check through Istio's config
// generator, then its negative control, which must make it fail.
func TestBuiltinSuites(t *testing.T) {
	d := newDriver(t)
	for _, c := range suites.All() {
		t.Run(c.Name, func(t *testing.T) {
			r := d.Run(context.Background(), c)
			if r.Status != check.Passed {
				t.Fatalf("%s: %s\n%s\n%s", r.Status, c.Description, r.Message, r.Trace())
			}
			n := d.Run(context.Background(), c.Negated())
			if n.Status != check.Failed {
				t.Fatalf("negative control (%s) must make the check fail, got %s: %s\n%s", c.NegativeControl.Description, n.Status, n.Message, n.Trace())
			}
			t.Logf("negative control (%s) failed as it must: %s", c.NegativeControl.Description, strings.Split(n.Message, "\n")[0])
		})
	}
}
