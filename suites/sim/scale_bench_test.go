package sim_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/benchinput"
)

// BenchmarkSimulateScale is BenchmarkSimulate1000x1000 at the size in
// MESHCONFORM_BENCH_N (default 4000), for profiling:
// MESHCONFORM_BENCH_N=10000 go test -run '^$' -bench SimulateScale -benchtime 1x -cpuprofile cpu.out ./suites/sim
func BenchmarkSimulateScale(b *testing.B) {
	n := 4000
	if v, err := strconv.Atoi(os.Getenv("MESHCONFORM_BENCH_N")); err == nil {
		n = v
	}
	cfg, exp := benchinput.Generate(n, n)
	for i := 0; i < b.N; i++ {
		objs, err := sim.ParseYAML("entries.yaml", []byte(cfg), "default")
		if err != nil {
			b.Fatal(err)
		}
		l, err := expectations.Parse("expectations.yaml", []byte(exp), sim.IndexHosts(objs))
		if err != nil {
			b.Fatal(err)
		}
		d, err := sim.New(sim.WithEnv(suites.SimEnv()), sim.WithObjects(objs))
		if err != nil {
			b.Fatal(err)
		}
		for j := range l.Checks {
			l.Checks[j].Policy = l.Policy
		}
		if err := d.Prepare(context.Background(), l.Checks); err != nil {
			b.Fatal(err)
		}
		rs := check.RunAll(context.Background(), d, l.Checks, check.RunOptions{})
		if c := check.Counts(rs); c[check.Passed] != n {
			b.Fatalf("want %d passed, got %v", n, c)
		}
		st := d.Stats()
		b.ReportMetric(st.BuildTime.Seconds(), "s/config-build")
		b.ReportMetric(st.PrepareTime.Seconds(), "s/proxy-configs")
		b.ReportMetric(st.CallTime.Seconds(), "s/calls")
		d.Close()
	}
}
