package live

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live/probe"
	"github.com/meshconform/meshconform/suites/sim"
)

// The oracle: every shipped check goes through the live driver with a
// ready fake mesh, and each probe is answered with what the simulation
// tier observes for the same call in the state the live driver produced
// (the policy it set, the manifests it applied and has not deleted, the
// ip-masq-agent config and return route it put in place). So a check
// passes here only if the live driver renders it with the live
// environment, applies and deletes its manifests at the right steps,
// switches the policy and sets up masquerading as the check says, and
// judges the answers as the simulation does: the two tiers agree.

// fakeDB is a stateful stand-in for the MySQL fixture: admin UPDATEs
// change it, the least-privilege user's SELECT reads it and its UPDATE is
// refused with 1142, as the fixture's grants do.
type fakeDB struct {
	mu      sync.Mutex
	ratings map[int]int
	stmts   []string
}

func newFakeDB() *fakeDB { return &fakeDB{ratings: map[int]int{1: seededRating, 2: 4}} }

var updateRating = regexp.MustCompile(`^UPDATE test\.ratings SET Rating = (\d+) WHERE ReviewID = (\d+)$`)

func (db *fakeDB) Exec(ctx context.Context, stmt string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	m := updateRating.FindStringSubmatch(stmt)
	if m == nil {
		return fmt.Errorf("fake database: unsupported admin statement %q", stmt)
	}
	r, _ := strconv.Atoi(m[1])
	id, _ := strconv.Atoi(m[2])
	db.ratings[id] = r
	db.stmts = append(db.stmts, stmt)
	return nil
}

func (db *fakeDB) Close() error { return nil }

// query runs q as the bookinfo user (SELECT only).
func (db *fakeDB) query(q string) (rows []string, sqlErr int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !strings.HasPrefix(q, "SELECT ") {
		return nil, 1142
	}
	ids := make([]int, 0, len(db.ratings))
	for id := range db.ratings {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		rows = append(rows, fmt.Sprintf("%d,%d", id, db.ratings[id]))
	}
	return rows, 0
}

func (db *fakeDB) rating(id int) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.ratings[id]
}

// fakeClock advances only when the driver waits: each poll interval is
// exactly Poll, so propagation times are exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

// oracleEndpoints are the fixtures with published ports (the host reaches
// them on 127.0.0.1), like a live run's.
func oracleEndpoints() map[string]fixtures.Endpoint {
	eps := endpoints()
	echo := eps["echo"]
	echo.PublishedAddress, echo.PublishedPorts = "127.0.0.1", map[string]int{"http": 38080, "https": 38443, "tcp": 39000}
	eps["echo"] = echo
	return eps
}

type oracle struct {
	t   testing.TB
	sim *sim.Driver
	e   **env
	// memo: the simulation is deterministic for a state and a call (the
	// simulation driver's own cache is per parse of the manifests).
	mu   sync.Mutex
	memo map[string]check.Result
}

func (o *oracle) run(c check.Check) check.Result {
	b, err := json.Marshal([]any{c.Policy, c.Masquerade, c.Steps})
	if err != nil {
		o.t.Fatalf("oracle: %v", err)
	}
	key := string(b)
	o.mu.Lock()
	r, ok := o.memo[key]
	o.mu.Unlock()
	if ok {
		return r
	}
	r = o.sim.Run(context.Background(), c)
	o.mu.Lock()
	o.memo[key] = r
	o.mu.Unlock()
	return r
}

// newOracleEnv is a live driver whose prober asks the simulation.
func newOracleEnv(t *testing.T, mesh Mesh, meshErr error, extra ...Option) *env {
	t.Helper()
	simEnv := suites.Env(suites.SimEndpoints(), map[string]string{
		// The masquerade model's network is the fake cluster's.
		"podCIDR": "10.244.0.0/24", "podIP": controlIP, "nodeIP": nodeIP, "nodeNetwork": "172.18.0.0/16",
	})
	sd, err := sim.New(sim.WithEnv(simEnv), sim.WithCachedConfigs(8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Close)
	o := &oracle{t: t, sim: sd, memo: map[string]check.Result{}}
	var e *env
	o.e = &e
	db := newFakeDB()
	opts := append([]Option{WithEnvBuilder(suites.Env), WithIngressCert([]byte("cert"), []byte("key")),
		WithEndpoints(oracleEndpoints()),
		WithTimeouts(Timeouts{Converge: 30 * time.Second, Settled: 10 * time.Second, Poll: 100 * time.Millisecond, Consecutive: 3}),
		func(c *config) { c.admin = db; c.clock = &fakeClock{now: time.Unix(1700000000, 0)} }}, extra...)
	e = newEnv(t, mesh, meshErr, o.answer, opts...)
	e.db, e.oracle = db, o
	return e
}

// expectation turns a probe request back into the call it makes.
func (o *oracle) expectation(pod string, q probe.Request) (check.Expectation, error) {
	var from check.Source
	switch pod {
	case ClientPod:
		from = check.Source{Kind: check.MeshedPod, Namespace: DefaultNamespace, Labels: map[string]string{"app": ClientPod}}
	case ControlPod:
		from = check.Source{Kind: check.PlainPod, Namespace: DefaultNamespace, Labels: map[string]string{"app": ControlPod}}
	case outsidePod:
		from = check.Source{Kind: check.Outside}
	default:
		return check.Expectation{}, fmt.Errorf("probe from unknown pod %q", pod)
	}
	to := check.Destination{Host: q.Host, Address: q.Address, Port: q.Port, Protocol: check.Protocol(q.Protocol), SNI: q.SNI}
	if pod == outsidePod {
		// The host dialled a published port: the call the target receives
		// is on its own port.
		found := false
		for _, ep := range (*o.e).d.endpoints {
			for name, hp := range ep.PublishedPorts {
				if ep.PublishedAddress == q.Address && hp == q.Port {
					to.Address, to.Port, found = ep.IP, ep.Ports[name], true
				}
			}
		}
		if !found {
			return check.Expectation{}, fmt.Errorf("outside probe to %s:%d, which is no published port", q.Address, q.Port)
		}
		if to.Address == "" {
			to.Address = nodeIP // the gateway's node; the simulated call matches its listener by port
		}
	}
	return check.Expectation{From: from, To: to, Want: check.Allowed, Query: q.Query}, nil
}

// state is the check the simulation observes: what the live driver has
// put in place right now.
func (o *oracle) state(e check.Expectation) check.Check {
	env := *o.e
	c := check.Check{Name: "Oracle", Suite: "oracle", Description: "the live driver's state"}
	if env.mesh != nil {
		c.Policy = check.OutboundPolicy(env.mesh.current())
	}
	env.cl.mu.Lock()
	if !env.cl.cniMasq {
		c.Masquerade = &check.Masquerade{Config: env.cl.masqConfig, ReturnRoute: env.router.has()}
	}
	var texts []string
	seen := map[string]bool{}
	for name := range env.cl.applied {
		if t, ok := env.cl.docs[name]; ok && !seen[t] {
			seen[t] = true
			texts = append(texts, t)
		}
	}
	env.cl.mu.Unlock()
	sort.Strings(texts)
	step := check.Step{Name: "now", Expect: []check.Expectation{e}}
	for i, t := range texts {
		step.Apply = append(step.Apply, check.Manifest{Name: fmt.Sprint(i), Text: t})
	}
	c.Steps = []check.Step{step}
	return c
}

func (o *oracle) answer(pod string, q probe.Request) probe.Result {
	env := *o.e
	e, err := o.expectation(pod, q)
	if err != nil {
		return probe.Result{Error: err.Error()}
	}
	env.cl.mu.Lock()
	cni := env.cl.cniMasq
	env.cl.mu.Unlock()
	if pod == ControlPod && cni {
		// No sidecar and the CNI's own masquerade: the fixture answers
		// the node (what a pod without the mesh gets outside the
		// masquerade checks).
		return o.withDB(e, probe.Result{Outcome: probe.Allowed, Kind: probe.KindAnswered, Detail: "answered (CNI masquerade)", SourceIP: nodeIP})
	}
	r := o.run(o.state(e))
	if len(r.Observations) != 1 {
		return probe.Result{Error: "oracle: " + r.Message}
	}
	ob := r.Observations[0]
	if ob.Observed == check.Inconclusive || ob.Observed == "" {
		return probe.Result{Error: "oracle: " + ob.Err}
	}
	res := probe.Result{Outcome: probe.Outcome(ob.Observed), Detail: "simulated: " + ob.Evidence, SourceIP: ob.SourceIP}
	switch ob.Observed {
	case check.Allowed:
		res.Kind = probe.KindAnswered
		if res.SourceIP == "" && pod == ClientPod {
			res.SourceIP = nodeIP
		}
	case check.BlockedByMesh:
		res.Kind = probe.KindReset
	default:
		res.Kind = ob.Failure
		if res.Kind == "" {
			res.Kind = probe.KindTimeout
		}
	}
	return o.withDB(e, res)
}

// withDB answers a MySQL query that reached the database.
func (o *oracle) withDB(e check.Expectation, r probe.Result) probe.Result {
	if e.To.Protocol == check.MySQL && r.Outcome == probe.Allowed {
		r.Rows, r.SQLError = (*o.e).db.query(e.Query)
	}
	return r
}

// TestShippedChecksAgainstTheSimulation runs every check of suites.All()
// through the live driver with the simulation as oracle: each passes,
// its broken form fails, and its negative control observes exactly its
// declared flips.
func TestShippedChecksAgainstTheSimulation(t *testing.T) {
	for _, c := range suites.All() {
		t.Run(c.Name, func(t *testing.T) {
			var mesh Mesh
			var meshErr error
			if c.Masquerade == nil {
				mesh = &fakeMesh{policy: "ALLOW_ANY"}
			} else {
				meshErr = fmt.Errorf("Istio is not installed in this run")
			}
			e := newOracleEnv(t, mesh, meshErr)
			rs := check.RunAll(context.Background(), e.d, []check.Check{c}, check.RunOptions{NegativeControls: true})
			if rs[0].Status != check.Passed {
				t.Fatalf("%s: %s\n%s", rs[0].Status, rs[0].Message, rs[0].Trace())
			}
			if rs[1].Status != check.Passed || !strings.HasPrefix(rs[1].Message, "the broken check failed as declared") {
				t.Fatalf("negative control: %s: %s\n%s", rs[1].Status, rs[1].Message, rs[1].Trace())
			}
			b := e.d.Run(context.Background(), c.Broken())
			if b.Status != check.Failed {
				t.Fatalf("broken: %s: %s\n%s", b.Status, b.Message, b.Trace())
			}
			t.Logf("simulation: %+v", e.oracleStats())
			if e.cl.appliedCount() != 0 {
				t.Errorf("manifests left applied: %v", e.cl.calls)
			}
			if e.router.has() {
				t.Error("return route left behind")
			}
		})
	}
}

func (e *env) oracleStats() sim.Stats { return e.oracle.sim.Stats() }

// TestFailureKindsAgree: check.FailureTimeout is the probe's own kind.
func TestFailureKindsAgree(t *testing.T) {
	if check.FailureTimeout != probe.KindTimeout {
		t.Fatalf("check.FailureTimeout %q, probe.KindTimeout %q", check.FailureTimeout, probe.KindTimeout)
	}
}
