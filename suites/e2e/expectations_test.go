package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/echo"
	"github.com/meshconform/meshconform/internal/livetest"
	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/reports/diff"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
)

func TestLiveChecksGatewayGoesThroughIngress(t *testing.T) {
	l, err := expectations.Parse("x.yaml", []byte(expectFile("172.18.0.9", "10.244.0.0/16")), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]check.Expectation{}
	for _, c := range LiveChecks(l.Checks) {
		got[c.Name] = c.Steps[0].Expect[0]
	}
	if e := got["ShopThroughTheGateway"]; e.To.Target != "ingress" || e.To.Host != "shop.external.test" {
		t.Errorf("gateway source: %+v, want target ingress with the file's host", e.To)
	}
	if e := got["CheckoutReachesEchoOverHTTP"]; e.To.Target != "" || e.To.Address != "172.18.0.9" {
		t.Errorf("meshed source: %+v, want the destination as written", e.To)
	}
	if ns := SourceNamespaces(l.Checks); strings.Join(ns, ",") != "shop" {
		t.Errorf("source namespaces %v, want [shop]", ns)
	}
}

// The expectation names a report records (source -> destination) are the
// same whether the live driver (its namespace) or simulate (its
// --namespace) resolves the file's checks: `meshconform diff` lines them up.
func TestExpectationNamesLineUp(t *testing.T) {
	l, err := expectations.Parse("x.yaml", []byte(expectFile("172.18.0.9", "10.244.0.0/16")), nil)
	if err != nil {
		t.Fatal(err)
	}
	liveEnv := check.Env{Namespace: "meshconform", Endpoints: map[string]fixtures.Endpoint{"ingress": {Name: "ingress", Host: "meshconform.example"}}}
	simEnv := check.Env{Namespace: "default"}
	for i, c := range LiveChecks(l.Checks) {
		lc, err := liveEnv.Resolve(c)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := simEnv.Resolve(l.Checks[i])
		if err != nil {
			t.Fatal(err)
		}
		if a, b := lc.Steps[0].Expect[0].String(), sc.Steps[0].Expect[0].String(); a != b {
			t.Errorf("%s: live %q, simulate %q", c.Name, a, b)
		}
	}
}

// expectFile is the test's expectations file: mesh expectations from a
// source of its own (shop/checkout) and through the gateway, to the echo
// fixture on the kind network (its address is known only at run time);
// masquerade expectations with the echo target inside nonMasqueradeCIDRs
// (it keeps the pod IP), with and without a route back to the pods. The
// last one is wrong on purpose (the negative control: it must fail,
// observed as PodIP).
func expectFile(echoIP, podCIDR string) string {
	return fmt.Sprintf(`apiVersion: meshconform.dev/v1alpha1
kind: Expectations
meshConfig: {outboundTrafficPolicy: REGISTRY_ONLY}
expectations:
- name: CheckoutReachesEchoOverHTTP
  source: {namespace: shop, labels: {app: checkout, tier: web}}
  destination: {host: echo.external.test, address: %[1]s, port: 80, protocol: HTTP}
  expect: Allowed
- name: CheckoutCannotReachEchoOverTCP
  source: {namespace: shop, labels: {app: checkout, tier: web}}
  destination: {address: %[1]s, port: 9000, protocol: TCP}
  expect: BlockedByMesh
- name: ShopThroughTheGateway
  source: {gateway: true}
  destination: {host: shop.external.test, port: 443, protocol: HTTPS}
  expect: Allowed
  unregistered: true
masquerade:
  config: |
    nonMasqueradeCIDRs: [%[2]s, %[1]s/32]
    resyncInterval: 10s
  expectations:
  - {name: EchoWithoutReturnRouteIsUnreachable, destination: %[1]s, expect: Unreachable}
  - {name: EchoWithReturnRouteSeesPodIP, destination: %[1]s, returnRoute: true, expect: Allowed, seenAs: PodIP}
  - {name: EchoWithReturnRouteSeesNodeIPIsWrong, destination: %[1]s, returnRoute: true, expect: Allowed, seenAs: NodeIP}
`, echoIP, podCIDR)
}

const echoEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo.external.test]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`

// TestExpectationsLive runs a user's expectations file live, as `meshconform
// run --expectations FILE -f entry.yaml` does: a kind cluster with the
// harness's pod network, the fixtures on the kind network, Istio (whose
// images cannot be had here: --no-pull), and only the echo fixture as
// destination. The masquerade expectations are observed for real and pass
// (the wrong one fails, observed PodIP); the mesh expectations are
// "environment not ready" with the reason, and the -f objects are not
// applied (istiod is not ready) and say so. The same file simulated gives
// a report whose checks line up with the run's under `meshconform diff`
// (same suites and names, nothing appeared or disappeared).
func TestExpectationsLive(t *testing.T) {
	livetest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()
	entry := filepath.Join(dir, "entry.yaml")
	if err := os.WriteFile(entry, []byte(echoEntry), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := sim.LoadPaths([]string{entry}, "default")
	if err != nil {
		t.Fatal(err)
	}
	// The sources do not depend on the addresses: the driver's options
	// come from a draft of the file (parsed, never dialled).
	draft, err := expectations.Parse("draft.yaml", []byte(expectFile("127.0.0.1", "10.244.0.0/16")), nil)
	if err != nil {
		t.Fatal(err)
	}
	x := Expectations{File: draft, Objects: objs, DefaultNamespace: "default"}
	p := NewPrinter(testWriter{t}, time.Now(), true)
	cfg := Config{ClusterName: "meshconform-expectlive", InstallIstio: true, NoPull: true, MasqueradeChecks: true, Printer: p}
	cfg.LiveOptions = x.LiveOptions(cfg, draft.Checks)
	env, err := Setup(ctx, cfg)
	t.Cleanup(func() {
		if err := env.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	echoIP := env.Fixtures.Endpoints()[echo.Name].IP
	podCIDR := env.Driver.Env().Vars["podCIDR"]
	if echoIP == "" || podCIDR == "" {
		t.Fatalf("echo %q, pod CIDR %q", echoIP, podCIDR)
	}
	path := filepath.Join(dir, "expectations.yaml")
	if err := os.WriteFile(path, []byte(expectFile(echoIP, podCIDR)), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := expectations.Load(path, sim.IndexHosts(objs))
	if err != nil {
		t.Fatal(err)
	}
	x.File = l
	start := time.Now()
	res, props, err := env.RunExpectations(ctx, x, l.Checks, func(r check.Result) { t.Logf("%s %s/%s: %s", r.Status, r.Suite, r.Name, firstLine(r.Message)) })
	if err != nil {
		t.Fatalf("run expectations: %v", err)
	}
	t.Logf("MEASURE expectations run: %d results in %.1fs; properties %v", len(res), time.Since(start).Seconds(), props)

	got := map[string]check.Result{}
	for _, r := range res {
		if strings.HasSuffix(r.Suite, "(pushed config)") {
			t.Errorf("pushed-config result %s/%s although istiod is not ready here", r.Suite, r.Name)
		}
		got[r.Name] = r
	}
	for _, c := range l.Checks {
		if _, ok := got[c.Name]; !ok {
			t.Errorf("no result named %s (the expectation's name)", c.Name)
		}
	}
	for _, name := range []string{"CheckoutReachesEchoOverHTTP", "CheckoutCannotReachEchoOverTCP", "ShopThroughTheGateway"} {
		r := got[name]
		if r.Suite != expectations.EgressSuite || r.Status != check.Error || !strings.HasPrefix(r.Message, check.ErrNotReady+": ") ||
			len(strings.TrimPrefix(r.Message, check.ErrNotReady+": ")) < 10 {
			t.Errorf("%s: %s %q, want an error %q with the reason", name, r.Status, r.Message, check.ErrNotReady+": <reason>")
		}
	}
	wantMasq := map[string]struct {
		status   check.Status
		observed check.Outcome
		seenAs   check.SourceAddress
	}{
		"EchoWithoutReturnRouteIsUnreachable":  {check.Passed, check.Unreachable, ""},
		"EchoWithReturnRouteSeesPodIP":         {check.Passed, check.Allowed, check.PodIP},
		"EchoWithReturnRouteSeesNodeIPIsWrong": {check.Failed, check.Allowed, check.PodIP},
	}
	for name, w := range wantMasq {
		r := got[name]
		if r.Suite != expectations.MasqueradeSuite || r.Status != w.status || len(r.Observations) != 1 {
			t.Errorf("%s: %s/%s %s (%s), want %s\n%s", name, r.Suite, r.Name, r.Status, r.Message, w.status, r.Trace())
			continue
		}
		o := r.Observations[0]
		if o.Observed != w.observed || o.SeenAs != w.seenAs {
			t.Errorf("%s: observed %s as %q, want %s as %q\n%s", name, o.Observed, o.SeenAs, w.observed, w.seenAs, r.Trace())
		}
	}
	if c := props["expectations.config"]; !strings.Contains(c, "not applied") {
		t.Errorf("expectations.config %q: the -f objects cannot have been applied without istiod", c)
	}
	if props["masquerade.ipMasqAgent"] == "" {
		t.Error("the report does not say which ip-masq-agent config the masquerade expectations ran against")
	}

	// The same file simulated: the reports line up check by check.
	runRep := reports.Report{Tool: "test", Driver: "live", Started: start, Results: res, Properties: props}
	mc := mesh.DefaultMeshConfig()
	mc.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	env2 := suites.SimEnv()
	env2.Namespace = "default"
	sd, err := sim.New(sim.WithEnv(env2), sim.WithMeshConfig(mc), sim.WithObjects(objs))
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	var simChecks []check.Check
	for _, c := range l.Checks {
		if c.Masquerade == nil {
			c.Policy = l.Policy
		}
		simChecks = append(simChecks, c)
	}
	if err := sd.Prepare(ctx, simChecks); err != nil {
		t.Fatal(err)
	}
	simRep := reports.Report{Tool: "test", Driver: "simulation", Started: start, Results: check.RunAll(ctx, sd, simChecks, check.RunOptions{})}
	simPath, runPath := filepath.Join(dir, "simulate.xml"), filepath.Join(dir, "run.xml")
	if err := reports.WriteJUnit(simPath, simRep); err != nil {
		t.Fatal(err)
	}
	if err := reports.WriteJUnit(runPath, runRep); err != nil {
		t.Fatal(err)
	}
	before, err := reports.ReadJUnit(simPath)
	if err != nil {
		t.Fatal(err)
	}
	after, err := reports.ReadJUnit(runPath)
	if err != nil {
		t.Fatal(err)
	}
	d := diff.Compare(before, after)
	var table strings.Builder
	diff.WriteTable(&table, d, diff.FailOnChanged)
	t.Logf("meshconform diff simulate.xml run.xml:\n%s", table.String())
	if n := d.Count(diff.Appeared) + d.Count(diff.Disappeared); n != 0 || len(before.Cases) != len(l.Checks) || len(after.Cases) != len(l.Checks) {
		t.Errorf("the reports do not line up: %d appeared/disappeared, %d simulated and %d live cases for %d expectations",
			n, len(before.Cases), len(after.Cases), len(l.Checks))
	}
	for _, ch := range d.Changes {
		for _, o := range ch.Outcomes {
			// A check that errored before observing (not ready) records no
			// observation: its expectations are absent from that report.
			notObserved := ch.After == check.Error && o.After == "absent"
			if (o.Before == "absent" || o.After == "absent") && !notObserved {
				t.Errorf("%s/%s: expectation %q is not in both reports: %s", ch.Suite, ch.Check, o.Expectation, ch.Detail())
			}
		}
		switch {
		case ch.Suite == expectations.MasqueradeSuite && ch.Before != ch.After:
			t.Errorf("masquerade expectation %s: %s in simulate, %s live: %s", ch.Check, ch.Before, ch.After, ch.Detail())
		case ch.Suite == expectations.EgressSuite && ch.After != check.Error:
			t.Errorf("%s changed %s → %s: only the mesh expectations (not ready here) may differ in status", ch.Check, ch.Before, ch.After)
		}
	}
}
