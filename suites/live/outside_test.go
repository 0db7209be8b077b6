package live

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live/probe"
)

// publishedEndpoints are the fixtures as set.Up reports them: an address
// on the Docker network (never dialled from the host) and a published port
// on 127.0.0.1 per container port.
func publishedEndpoints() map[string]fixtures.Endpoint {
	return map[string]fixtures.Endpoint{
		"echo": {Name: "echo", Host: fixtures.EchoHost, IP: echoIP, PublishedAddress: "127.0.0.1",
			Ports: map[string]int{"http": 80, "https": 443, "tcp": 9000, "mysql": 3306}, PublishedPorts: map[string]int{"http": 41080, "https": 41443, "tcp": 41900, "mysql": 41306}},
		"mysql": {Name: "mysql", Host: fixtures.MySQLHost, IP: mysqlIP, PublishedAddress: "127.0.0.1",
			Ports: map[string]int{"mysql": 3306}, PublishedPorts: map[string]int{"mysql": 42306}},
		"greeter": {Name: "greeter", Host: fixtures.GreeterHost, IP: "172.18.0.7", PublishedAddress: "127.0.0.1",
			Ports: map[string]int{"grpc": 50051, "grpc-tls": 50443}, PublishedPorts: map[string]int{"grpc": 43051, "grpc-tls": 43443}},
	}
}

// TestOutsideNeverDialsNodeOrContainer renders every check of every suite
// against fixtures on the Docker network and a kind ingress, and asserts
// that each request made from outside the cluster goes to a published
// port on loopback, never to a node or container address (which Docker
// Desktop, rootless Docker and Podman do not route from the host).
func TestOutsideNeverDialsNodeOrContainer(t *testing.T) {
	e := newEnv(t, &fakeMesh{policy: "ALLOW_ANY"}, nil, func(string, probe.Request) probe.Result { return allowed("") },
		WithEndpoints(publishedEndpoints()), WithEnvBuilder(suites.Env))
	if err := e.d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	private := map[string]bool{nodeIP: true}
	for _, ep := range publishedEndpoints() {
		private[ep.IP] = true
	}
	env := e.d.Env()
	outside := 0
	for _, c := range suites.All() {
		rc, err := env.Resolve(c)
		if err != nil {
			t.Fatalf("resolve %s: %v", c.Name, err)
		}
		for _, s := range rc.Steps {
			for _, x := range s.Expect {
				if x.From.Kind != check.Outside {
					continue
				}
				outside++
				q, err := e.d.request(x)
				if err != nil {
					t.Errorf("%s: %v", c.Name, err)
					continue
				}
				a, perr := netip.ParseAddr(q.Address)
				if perr != nil || !a.IsLoopback() || private[q.Address] {
					t.Errorf("%s: outside request to %s:%d, want a published port on loopback", c.Name, q.Address, q.Port)
				}
			}
		}
	}
	if outside < 3 {
		t.Fatalf("only %d outside expectations found: the suites' ingress checks should have at least 3", outside)
	}

	// A target without a published port for the port asked is refused,
	// and the prober is never called with its container address.
	x := check.Expectation{From: check.Source{Kind: check.Outside}, To: check.Destination{Target: "echo", Address: echoIP, Port: 8443, Protocol: check.HTTPS}, Want: check.Allowed}
	if _, err := e.d.request(x); err == nil || !strings.Contains(err.Error(), "no published port") {
		t.Fatalf("unpublished port: err %v", err)
	}
	o := e.d.observe(context.Background(), "s", x)
	if o.Err == "" || e.prober.count(" HTTPS "+echoIP) != 0 {
		t.Fatalf("observation %+v, calls %v", o, e.prober.calls)
	}
}
