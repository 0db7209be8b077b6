package sim_test

import (
	"context"
	"testing"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/benchinput"
)

// BenchmarkSimulate1000x1000 is the in-process part of
// hack/bench-simulate.sh: 1,000 expectations (10 sources) against 1,000
// ServiceEntries, parse and Istio validation included. It reports
// config-build time and time per expectation.
func BenchmarkSimulate1000x1000(b *testing.B) {
	cfg, exp := benchinput.Generate(1000, 1000)
	for i := 0; i < b.N; i++ {
		objs, err := sim.ParseYAML("entries.yaml", []byte(cfg), "default")
		if err != nil {
			b.Fatal(err)
		}
		l, err := expectations.Parse("expectations.yaml", []byte(exp), sim.IndexHosts(objs))
		if err != nil {
			b.Fatal(err)
		}
		env := suites.SimEnv()
		d, err := sim.New(sim.WithEnv(env), sim.WithObjects(objs))
		if err != nil {
			b.Fatal(err)
		}
		for j := range l.Checks {
			l.Checks[j].Policy = l.Policy
		}
		rs := check.RunAll(context.Background(), d, l.Checks, check.RunOptions{})
		if c := check.Counts(rs); c[check.Passed] != 1000 {
			b.Fatalf("want 1000 passed, got %v", c)
		}
		st := d.Stats()
		b.ReportMetric(st.BuildTime.Seconds()*1000/float64(st.Builds), "ms/config-build")
		b.ReportMetric(float64((st.ProxyTime+st.CallTime).Microseconds())/1000, "µs/expectation")
		d.Close()
	}
}
