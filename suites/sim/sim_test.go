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
// generator (masquerade: through ipmasq and the network model), then its
// broken form: it must fail on exactly the expectations its negative
// control declares, with the declared observed outcome, and meet every
// other; the negative control's own verdict must then be Passed.
func TestBuiltinSuites(t *testing.T) {
	d := newDriver(t)
	for _, c := range suites.All() {
		t.Run(c.Name, func(t *testing.T) {
			r := d.Run(context.Background(), c)
			if r.Status != check.Passed {
				t.Fatalf("%s: %s\n%s\n%s", r.Status, c.Description, r.Message, r.Trace())
			}
			b := d.Run(context.Background(), c.Broken())
			if b.Status != check.Failed {
				t.Fatalf("broken (%s): %s, want Failed: %s\n%s", c.NegativeControl.Description, b.Status, b.Message, b.Trace())
			}
			flips := map[[2]int]check.Flip{}
			for _, f := range c.NegativeControl.Flips {
				flips[[2]int{f.Step, f.Expect}] = f
			}
			i := 0
			for si, s := range c.Steps {
				for ei := range s.Expect {
					o := b.Observations[i]
					i++
					f, flipped := flips[[2]int{si, ei}]
					switch {
					case flipped && (o.Observed != f.Observed || o.SeenAs != f.SeenAs || o.Mismatch() == ""):
						t.Errorf("step %d expectation %d (%s): observed %s(%s), declared %s", si, ei, o.Expect, o.Observed, o.SeenAs, f)
					case !flipped && o.Mismatch() != "":
						t.Errorf("step %d expectation %d (%s) failed although the control does not declare it: %s", si, ei, o.Expect, o.Mismatch())
					}
				}
			}
			n := check.RunAll(context.Background(), d, []check.Check{c}, check.RunOptions{NegativeControls: true})[1]
			if n.Status != check.Passed {
				t.Fatalf("negative control: %s: %s\n%s", n.Status, n.Message, n.Trace())
			}
			t.Logf("%s", n.Message)
		})
	}
}

// TestMasqueradeModel: the simulation's masquerade outcome follows from
// the addresses and routes, not from the check's fields: a pod network
// the destination routes natively (VPC-native pod ranges) reaches it with
// the pod IP without any declared return route, and without one the
// reply is lost as a timeout.
func TestMasqueradeModel(t *testing.T) {
	c := check.Check{Name: "DefaultsKeepPodIP", Suite: "m", Description: "d",
		Masquerade: &check.Masquerade{Config: ""},
		Steps: []check.Step{{Name: "probe", Expect: []check.Expectation{
			{From: check.Control, To: check.Destination{Address: "172.18.0.10", Port: 80, Protocol: check.HTTP}, Want: check.Allowed, WantSourceIP: check.PodIP}}}}}
	env := suites.SimEnv()
	env.Vars["podCIDR"], env.Vars["podIP"] = "172.18.128.0/17", "172.18.128.7" // pods inside the node network
	if r := newDriver(t, sim.WithEnv(env)).Run(context.Background(), c); r.Status != check.Passed {
		t.Fatalf("flat network: %s %s\n%s", r.Status, r.Message, r.Trace())
	}
	r := newDriver(t).Run(context.Background(), c)
	o := r.Observations[0]
	if r.Status != check.Failed || o.Observed != check.Unreachable || o.Failure != check.FailureTimeout || o.SourceIP != "10.244.0.7" {
		t.Fatalf("separate pod network: %s %+v", r.Status, o)
	}
	bad := suites.SimEnv()
	delete(bad.Vars, "nodeNetwork")
	if r := newDriver(t, sim.WithEnv(bad)).Run(context.Background(), c); r.Status != check.Error || !strings.Contains(r.Message, "nodeNetwork is missing") {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
}

// TestWrongFlipFailsTheControl: a negative control whose declared flip is
// not what Istio's generator produces fails, naming what was observed.
func TestWrongFlipFailsTheControl(t *testing.T) {
	var c check.Check
	for _, x := range suites.All() {
		if x.Name == "RegistryOnlyBlocksUnregisteredTLS" {
			c = x
		}
	}
	c.NegativeControl.Flips = []check.Flip{{Observed: check.Unreachable}}
	n := check.RunAll(context.Background(), newDriver(t), []check.Check{c}, check.RunOptions{NegativeControls: true})[1]
	if n.Status != check.Failed || !strings.Contains(n.Message, "expected Unreachable (the negative control's declared flip of BlockedByMesh), observed Allowed") {
		t.Fatalf("%s %q", n.Status, n.Message)
	}
}
