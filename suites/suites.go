package suites

import (
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/internal/netaddr"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/ingress"
	"github.com/meshconform/meshconform/suites/masquerade"
	"github.com/meshconform/meshconform/suites/registryonly"
	"github.com/meshconform/meshconform/suites/serviceentry"
	"github.com/meshconform/meshconform/suites/tcpcidr"
)

// All returns every built-in check, suite by suite, in run order.
func All() []check.Check {
	var all []check.Check
	for _, s := range [][]check.Check{
		registryonly.Checks(),
		serviceentry.Checks(),
		tcpcidr.Checks(),
		ingress.Checks(),
		masquerade.Checks(),
	} {
		all = append(all, s...)
	}
	return all
}

// Names of the suites, in run order.
var Names = []string{registryonly.Suite, serviceentry.Suite, tcpcidr.Suite, ingress.Suite, masquerade.Suite}

// Namespace is where checks' client pods and namespaced manifests live.
const Namespace = "meshconform"

// BlockedHost is the external name no ServiceEntry ever registers; it
// resolves to the echo fixture, so the out-of-mesh control reaches it.
const BlockedHost = "blocked.external.test"

// IngressHost is the name the greeter is published under at the gateway.
const IngressHost = "greeter.meshconform.test"

// TLSSecret is the credentialName of the ingress gateway's certificate.
const TLSSecret = "meshconform-greeter-cert"

// Env builds the environment checks are rendered with from the fixtures'
// endpoints ("echo", "mysql", "greeter") and the ingress endpoint, adding
// the derived "blocked" endpoint and the variables checks use. vars
// overrides the defaults (agentImage, podCIDR, rating, ...).
func Env(eps map[string]fixtures.Endpoint, vars map[string]string) check.Env {
	all := map[string]fixtures.Endpoint{}
	for k, v := range eps {
		all[k] = v
	}
	if echo, ok := all["echo"]; ok {
		b := echo
		b.Name, b.Host = "blocked", BlockedHost
		all["blocked"] = b
	}
	v := map[string]string{
		"podCIDR":    "10.244.0.0/16",
		"rating":     "3",
		"tlsSecret":  TLSSecret,
		"agentImage": "meshconform/agent:sim",
	}
	if echo, ok := all["echo"]; ok {
		v["otherIP"] = echo.IP
		if db, ok := all["mysql"]; ok {
			v["fixtureCIDR"] = netaddr.Covering(echo.IP, db.IP)
		}
	}
	for k, val := range vars {
		v[k] = val
	}
	return check.Env{Endpoints: all, Namespace: Namespace, Vars: v}
}

// SimEndpoints are the fixed addresses the simulation renders checks with:
// a Docker network "kind" on 172.18.0.0/16, as on a default install.
func SimEndpoints() map[string]fixtures.Endpoint {
	return map[string]fixtures.Endpoint{
		"echo": {Name: "echo", Host: "echo.external.test", IP: "172.18.0.10",
			Ports: map[string]int{"http": 80, "https": 443, "tcp": 9000, "tcp-3306": 3306}},
		"mysql": {Name: "mysql", Host: "mysql.external.test", IP: "172.18.0.20",
			Ports: map[string]int{"mysql": 3306}},
		"greeter": {Name: "greeter", Host: "greeter.external.test", IP: "172.18.0.30",
			Ports: map[string]int{"grpc": 50051, "grpc-tls": 50443}},
		"ingress": {Name: "ingress", Host: IngressHost, IP: "172.18.0.2",
			Ports: map[string]int{"https": 443}},
	}
}

// SimVars are the simulation's network for the masquerade model: a pod
// 10.244.0.7 of the pod CIDR on a node 172.18.0.2 of Docker's network
// "kind" (172.18.0.0/16), where the fixtures are.
func SimVars() map[string]string {
	return map[string]string{"podIP": "10.244.0.7", "nodeIP": "172.18.0.2", "nodeNetwork": "172.18.0.0/16"}
}

// SimEnv is Env(SimEndpoints(), SimVars()).
func SimEnv() check.Env { return Env(SimEndpoints(), SimVars()) }
