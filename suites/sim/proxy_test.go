package sim

import (
	"fmt"
	"testing"

	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
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

// TestSharedProxyConfigsAreEqual proves the sharing rule on the benchmark
// input: sources that share a key get configs equal to those generated
// for each of them separately, and the entries' own namespace does not
// share.
func TestSharedProxyConfigsAreEqual(t *testing.T) {
	cfg, _ := benchinput.Generate(300, 1)
	objs, err := ParseYAML("entries.yaml", []byte(cfg), "default")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(WithEnv(check.Env{Namespace: "default"}), WithObjects(objs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	mc, _ := d.meshFor(check.RegistryOnly)
	srv, err := d.server(mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := check.Source{Kind: check.MeshedPod, Namespace: "team0", Labels: map[string]string{"app": "app0"}}
	b := check.Source{Kind: check.MeshedPod, Namespace: "team3", Labels: map[string]string{"app": "app1"}}
	own := check.Source{Kind: check.MeshedPod, Namespace: "egress"}
	if srv.share.key(a) != srv.share.key(b) {
		t.Fatal("team0/app0 and team3/app1 must share a config on this input")
	}
	if srv.share.key(a) == srv.share.key(own) {
		t.Fatal("the entries' own namespace must not share")
	}
	pa, pb := srv.generate(a), srv.generate(b)
	if len(pa.Listeners()) != len(pb.Listeners()) || len(pa.Clusters()) != len(pb.Clusters()) || len(pa.sim.Routes) != len(pb.sim.Routes) {
		t.Fatalf("sizes differ: %d/%d listeners, %d/%d clusters", len(pa.Listeners()), len(pb.Listeners()), len(pa.Clusters()), len(pb.Clusters()))
	}
	// Istio emits listeners in map order: compare by name. The only
	// difference allowed is the tracing tag naming the source's namespace
	// (istio.namespace), which no verdict reads.
	norm := func(ls []*listener.Listener) map[string]string {
		m := map[string]string{}
		for _, l := range ls {
			s := prototext.Format(l)
			s = strings.ReplaceAll(strings.ReplaceAll(s, `"team0"`, `"NS"`), `"team3"`, `"NS"`)
			m[l.GetName()] = s
		}
		return m
	}
	la, lb := norm(pa.Listeners()), norm(pb.Listeners())
	for name, x := range la {
		if lb[name] != x {
			t.Fatalf("listener %s differs beyond the namespace tag:\n%s\n%s", name, x, lb[name])
		}
	}
	equalByName(t, "cluster", pa.Clusters(), pb.Clusters())
	equalByName(t, "route", pa.sim.Routes, pb.sim.Routes)
	// Negative control: a Sidecar in team3 makes the namespace matter.
	sc, err := ParseYAML("sidecar.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: team3}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n"), "default")
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := d.server(mc, sc)
	if err != nil {
		t.Fatal(err)
	}
	if srv2.share.key(a) == srv2.share.key(b) {
		t.Fatal("with a Sidecar in team3, team3 must not share team0's config")
	}
	if len(srv2.generate(b).Clusters()) >= len(pb.Clusters()) {
		t.Fatal("the Sidecar should have hidden the entries from team3")
	}
}

type named interface {
	proto.Message
	GetName() string
}

func equalByName[T named](t *testing.T, what string, a, b []T) {
	t.Helper()
	m := map[string]T{}
	for _, x := range a {
		m[x.GetName()] = x
	}
	for _, y := range b {
		x, ok := m[y.GetName()]
		if !ok || !proto.Equal(x, y) {
			t.Fatalf("%s %s differs:\n%v\n%v", what, y.GetName(), x, y)
		}
	}
}
