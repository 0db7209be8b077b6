package sim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/sim"
)

const everyWay = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [pay.example, "*.cdn.example"]
  addresses: [192.0.2.80, 198.51.100.0/24]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 192.0.2.80}]
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/api.shop.example", "*/*.partners.example", "./Admin.Shop.Example"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: shop}
spec:
  hosts: [reviews, vs-only.example]
  http:
  - route:
    - destination: {host: web.shop.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.40.20
  ports: [{name: http, port: 80}]
`

// TestHostsDeclaredEveryWay: every way Istio declares a name counts, and
// nothing else does.
func TestHostsDeclaredEveryWay(t *testing.T) {
	objs, err := sim.ParseYAML("every.yaml", []byte(everyWay), "default")
	if err != nil {
		t.Fatal(err)
	}
	h := sim.IndexHosts(objs)
	for _, tc := range []struct {
		host, ns string
		want     bool
		why      string
	}{
		{"pay.example", "default", true, "ServiceEntry host"},
		{"PAY.example.", "default", true, "names compare case-insensitively, trailing dot ignored"},
		{"img.cdn.example", "default", true, "ServiceEntry wildcard"},
		{"a.b.cdn.example", "default", true, "wildcards match at any depth"},
		{"cdn.example", "default", false, "*.cdn.example does not declare cdn.example"},
		{"192.0.2.80", "default", true, "ServiceEntry address"},
		{"198.51.100.7", "default", true, "inside a ServiceEntry CIDR"},
		{"192.0.2.81", "default", false, "an address no entry lists"},
		{"api.shop.example", "", true, "Gateway server host with namespace prefix"},
		{"x.partners.example", "", true, "Gateway wildcard host"},
		{"admin.shop.example", "", true, "Gateway host ./ prefix, case-insensitive"},
		{"other.shop.example", "", false, "not on the Gateway"},
		{"vs-only.example", "default", true, "VirtualService host"},
		{"reviews.shop.svc.cluster.local", "default", true, "VirtualService short host, resolved in its namespace"},
		{"reviews", "shop", true, "VirtualService short host from its namespace"},
		{"reviews", "default", false, "a short name from another namespace"},
		{"web", "shop", true, "Service name from its namespace"},
		{"web", "default", false, "Service name from another namespace"},
		{"web.shop", "default", true, "name.ns"},
		{"web.shop.svc", "default", true, "name.ns.svc"},
		{"web.shop.svc.cluster.local", "default", true, "FQDN"},
		{"10.96.40.20", "default", true, "a Service's cluster IP"},
		{"web.other.svc.cluster.local", "default", false, "no such Service"},
		{"api.paymnets.example", "default", false, "a typo"},
	} {
		if got := h.Declared(tc.host, tc.ns); got != tc.want {
			t.Errorf("Declared(%q, %q) = %v, want %v (%s)", tc.host, tc.ns, got, tc.want, tc.why)
		}
	}
	if n, by := h.Nearest("pay.exampel"); n != "pay.example" || by != "ServiceEntry shop/ext" {
		t.Errorf("Nearest(pay.exampel) = %q, %q", n, by)
	}
	if n, _ := h.Nearest("totally.unrelated.test"); n != "" {
		t.Errorf("Nearest offered an unrelated name %q", n)
	}
}

// Cases whose hosts are declared, but not by a ServiceEntry's hosts:
// copied from the shared cases; each expectations file holds the verdict
// checked against Istio's generator.
var declaredCases = []struct {
	name string
	// typo is a host in the expectations file and a misspelling that
	// nothing declares, for the negative control.
	typo [2]string
	// nearest is what the error for the typo must suggest.
	nearest string
}{
	{"gateway-host", [2]string{"api.shop.example", "api.shop.exmaple"}, "api.shop.example"},
	{"address-host", [2]string{"host: 192.0.2.80,", "host: 192.0.2.81,"}, ""},
}

func loadCase(t *testing.T, name string, exp []byte) ([]sim.Object, *expectations.Loaded, error) {
	t.Helper()
	objs, err := sim.LoadPaths([]string{filepath.Join("testdata", "cases", name+".yaml")}, "default")
	if err != nil {
		t.Fatal(err)
	}
	l, err := expectations.Parse(name+"-expect.yaml", exp, sim.IndexHosts(objs))
	return objs, l, err
}

// TestDeclaredHostCases: each case loads (its hosts count as declared),
// every expectation gets its verdict from the simulation, and a misspelt
// host is still refused with file, line and fix.
func TestDeclaredHostCases(t *testing.T) {
	for _, tc := range declaredCases {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := os.ReadFile(filepath.Join("testdata", "cases", tc.name+"-expect.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			objs, l, err := loadCase(t, tc.name, exp)
			if err != nil {
				t.Fatalf("a declared host must be accepted: %v", err)
			}
			policy := l.Policy
			if policy == "" {
				policy = check.OutboundPolicy(mesh.DefaultMeshConfig().GetOutboundTrafficPolicy().GetMode().String())
			}
			env := suites.SimEnv()
			env.Namespace = "default"
			d := newDriver(t, sim.WithEnv(env), sim.WithObjects(objs))
			for _, c := range l.Checks {
				c.Policy = policy
				r := d.Run(context.Background(), c)
				if r.Status != check.Passed {
					t.Errorf("%s: %s: %s\n%s", c.Name, r.Status, r.Message, r.Trace())
				}
				// The verdict is really judged: the opposite outcome fails.
				flip := c
				flip.Steps = []check.Step{{Name: c.Steps[0].Name, Expect: []check.Expectation{c.Steps[0].Expect[0]}}}
				e := &flip.Steps[0].Expect[0]
				if e.Want == check.Allowed {
					e.Want = check.BlockedByMesh
				} else {
					e.Want = check.Allowed
				}
				if n := d.Run(context.Background(), flip); n.Status != check.Failed {
					t.Errorf("%s with the opposite verdict %s: %s, want Failed", c.Name, e.Want, n.Status)
				}
			}

			// Negative control: the same file with a host nothing declares.
			bad := strings.Replace(string(exp), tc.typo[0], tc.typo[1], 1)
			if bad == string(exp) {
				t.Fatalf("typo %q not found in the case", tc.typo[0])
			}
			_, _, err = loadCase(t, tc.name, []byte(bad))
			var ie *check.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("an undeclared host must be an input error, got %v", err)
			}
			msg := err.Error()
			for _, want := range []string{tc.name + "-expect.yaml:", "is not declared", "fix:", "unregistered: true"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if ie.Line == 0 {
				t.Errorf("error has no line: %s", msg)
			}
			if tc.nearest != "" && !strings.Contains(msg, "did you mean "+tc.nearest) {
				t.Errorf("error does not suggest %s:\n%s", tc.nearest, msg)
			}
		})
	}
}
