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

// BenchmarkSimulate1000x1000 is the in-process part of
// hack/bench-simulate.sh: 1,000 expectations (10 sources) against 1,000
// ServiceEntries, parse and Istio validation included.
func BenchmarkSimulate1000x1000(b *testing.B) { benchSimulate(b, 1000) }

// BenchmarkSimulateScale is the same at the size in MESHCONFORM_BENCH_N
// (default 4000), for profiling:
// MESHCONFORM_BENCH_N=10000 go test -run '^$' -bench SimulateScale -benchtime 1x -cpuprofile cpu.out ./suites/sim
func BenchmarkSimulateScale(b *testing.B) {
	n := 4000
	if v, err := strconv.Atoi(os.Getenv("MESHCONFORM_BENCH_N")); err == nil {
		n = v
	}
	benchSimulate(b, n)
}

// benchSimulate runs n expectations against n ServiceEntries end to end
// (parse, validation, config generation, concurrent proxy configs, calls),
// requires every expectation to pass, and reports the driver's breakdown:
// config build, proxy configs (wall) and calls, in seconds.
func benchSimulate(b *testing.B, n int) {
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
