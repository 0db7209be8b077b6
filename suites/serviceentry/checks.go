package serviceentry

import (
	"embed"
	"fmt"

	"github.com/meshconform/meshconform/suites/check"
)

// Suite is this suite's name.
const Suite = "serviceentry"

//go:embed manifests/*.yaml
var manifests embed.FS

var needs = []check.Requirement{check.NeedsIstio, check.NeedsSidecar}

func to(target string, p check.Protocol, port int) check.Destination {
	return check.Destination{Target: target, Port: port, Protocol: p}
}

// unblocks builds the apply → reachable, delete → blocked check for one
// ServiceEntry manifest.
func unblocks(name, desc, manifest string, p check.Protocol, port int, labels map[string]string) check.Check {
	reach := check.Expectation{From: check.Client, To: to("echo", p, port), Want: check.Allowed,
		WantCluster: fmt.Sprintf("outbound|%d||{{host \"echo\"}}", port)}
	return check.Check{
		Name:        name,
		Suite:       Suite,
		Description: desc,
		Labels:      labels,
		Policy:      check.RegistryOnly,
		Requires:    needs,
		Steps: []check.Step{
			{Name: "entry applied", Apply: check.ManifestFS(manifests, manifest), Expect: []check.Expectation{
				reach,
				// The entry opens its own host only.
				{From: check.Client, To: to("blocked", p, port), Want: check.BlockedByMesh},
			}},
			{Name: "entry deleted", Delete: []string{manifest}, Expect: []check.Expectation{
				{From: check.Client, To: to("echo", p, port), Want: check.BlockedByMesh},
			}},
		},
		NegativeControl: check.Mutation{
			Description: "the ServiceEntry is never applied",
			Mutate: func(c *check.Check) {
				c.Steps[0].Apply = nil
				c.Steps[1].Delete = nil
			},
			// Only the entry's own host changes: it stays blocked.
			Flips: []check.Flip{{Step: 0, Expect: 0, Observed: check.BlockedByMesh}},
		},
	}
}

// Checks is the suite's explicit list.
func Checks() []check.Check {
	return []check.Check{
		unblocks("ServiceEntryHTTPResolutionDNS",
			"An HTTP port-80 ServiceEntry with resolution DNS makes its host reachable under REGISTRY_ONLY, and deleting it blocks it again.",
			"http-dns", check.HTTP, 80, map[string]string{"protocol": "HTTP", "resolution": "DNS"}),
		unblocks("ServiceEntryTLSProtocolTLS",
			"A port-443 ServiceEntry with protocol TLS lets TLS with that SNI through, and deleting it blocks it again.",
			"tls", check.TLS, 443, map[string]string{"protocol": "TLS", "resolution": "DNS"}),
		unblocks("ServiceEntryTLSProtocolHTTPS",
			"A port-443 ServiceEntry with protocol HTTPS lets HTTPS with that SNI through, and deleting it blocks it again.",
			"https", check.HTTPS, 443, map[string]string{"protocol": "HTTPS", "resolution": "DNS"}),
		unblocks("ServiceEntryResolutionNone",
			"A ServiceEntry with resolution NONE forwards HTTP to the address the client resolved, and deleting it blocks it again.",
			"none", check.HTTP, 80, map[string]string{"protocol": "HTTP", "resolution": "NONE"}),
		unblocks("ServiceEntryResolutionNoneTLS",
			"A ServiceEntry with resolution NONE forwards TLS by SNI to the address the client resolved, and deleting it blocks it again.",
			"none", check.TLS, 443, map[string]string{"protocol": "TLS", "resolution": "NONE"}),
		unblocks("ServiceEntryResolutionStatic",
			"A ServiceEntry with resolution STATIC and the echo target as endpoint makes its host reachable, and deleting it blocks it again.",
			"static", check.HTTP, 80, map[string]string{"protocol": "HTTP", "resolution": "STATIC"}),
	}
}
