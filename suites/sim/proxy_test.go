package sim

import (
	"fmt"
	"testing"

	"istio.io/istio/pilot/pkg/simulation"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim/benchinput"
)

// TestIndexedRunEqualsFullScan proves that finding the listener by index
// (Proxy.Run) gives the simulator's own verdict (full listener scan) for
// every call of the benchmark input, plus calls to undeclared addresses
// and ports, from every source.
func TestIndexedRunEqualsFullScan(t *testing.T) {
	cfg, exp := benchinput.Generate(1000, 1000)
	objs, err := ParseYAML("entries.yaml", []byte(cfg), "default")
	if err != nil {
		t.Fatal(err)
	}
	l, err := expectations.Parse("expectations.yaml", []byte(exp), IndexHosts(objs))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(WithEnv(check.Env{Namespace: "default"}), WithObjects(objs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	mc, _ := d.meshFor(l.Policy)
	srv, err := d.server(mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	extra := []simulation.Call{
		{Address: "203.0.113.9", Port: 5432, Protocol: simulation.TCP},
		{Address: "203.0.113.9", Port: 9999, Protocol: simulation.TCP},
		{Address: "203.0.113.9", Port: 80, Protocol: simulation.HTTP, HostHeader: "nope.example"},
	}
	for _, c := range l.Checks {
		e := c.Steps[0].Expect[0]
		p, _ := srv.proxy(e.From)
		calls := append([]simulation.Call(nil), extra...)
		cl, err := call(e.From, e.To)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, cl)
		for _, c := range calls {
			c.CallMode = simulation.CallModeOutbound
			got, want := p.Run(c), p.RunFullScan(c)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: indexed %+v, full scan %+v", describeCall(c), got, want)
			}
			n++
		}
	}
	t.Logf("%d calls: indexed listener lookup and full scan agree", n)
}
