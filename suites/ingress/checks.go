package ingress

import (
	"embed"
	"strings"

	"github.com/meshconform/meshconform/suites/check"
)

// Suite is this suite's name.
const Suite = "ingress"

//go:embed manifests/*.yaml
var manifests embed.FS

func gateway(p check.Protocol, sni string) check.Destination {
	return check.Destination{Target: "ingress", Port: 443, Protocol: p, SNI: sni}
}

var needs = []check.Requirement{check.NeedsIstio, check.NeedsGateway}

func published() []check.Manifest {
	return check.ManifestFS(manifests, "greeter", "gateway", "virtualservice")
}

// replace rewrites one manifest's text in a check's first step.
func replace(c *check.Check, name, old, new string) {
	for i, m := range c.Steps[0].Apply {
		if m.Name == name {
			c.Steps[0].Apply[i].Text = strings.Replace(m.Text, old, new, 1)
		}
	}
}

// Checks is the suite's explicit list.
func Checks() []check.Check {
	return []check.Check{
		{
			Name:        "IngressGatewayServesGRPCOverTLS",
			Suite:       Suite,
			Description: "A client outside the mesh calls the in-mesh greeter's SayHello through the ingress gateway over CA-verified TLS with the published SNI.",
			Labels:      map[string]string{"protocol": "GRPCS"},
			Requires:    needs,
			Steps: []check.Step{{Name: "gateway and route applied", Apply: published(), Expect: []check.Expectation{
				{From: check.External, To: gateway(check.GRPCS, ""), Want: check.Allowed,
					WantCluster: `outbound|50051||greeter.{{ns}}.svc.cluster.local`},
			}}},
			NegativeControl: check.Mutation{
				Description: "the VirtualService is missing: the gateway has no route to the greeter",
				Mutate:      func(c *check.Check) { c.Steps[0].Apply = c.Steps[0].Apply[:2] },
				Flips:       []check.Flip{{Observed: check.BlockedByMesh}},
			},
		},
		{
			Name:        "IngressGatewayRefusesPlaintext",
			Suite:       Suite,
			Description: "Plaintext gRPC to the gateway's TLS port is refused.",
			Labels:      map[string]string{"protocol": "GRPC"},
			Requires:    needs,
			Steps: []check.Step{{Name: "gateway and route applied", Apply: published(), Expect: []check.Expectation{
				{From: check.External, To: gateway(check.GRPC, ""), Want: check.BlockedByMesh},
			}}},
			NegativeControl: check.Mutation{
				Description: "the Gateway serves port 443 as plaintext HTTP instead of terminating TLS",
				Mutate: func(c *check.Check) {
					replace(c, "gateway", "protocol: HTTPS", "protocol: HTTP")
					replace(c, "gateway", "    tls:\n      mode: SIMPLE\n      credentialName: {{var \"tlsSecret\"}}\n", "")
				},
				Flips: []check.Flip{{Observed: check.Allowed}},
			},
		},
		{
			Name:        "IngressGatewayRefusesWrongSNI",
			Suite:       Suite,
			Description: "A TLS client presenting an SNI the Gateway does not serve is refused.",
			Labels:      map[string]string{"protocol": "GRPCS"},
			Requires:    needs,
			Steps: []check.Step{{Name: "gateway and route applied", Apply: published(), Expect: []check.Expectation{
				{From: check.External, To: gateway(check.GRPCS, "wrong.meshconform.test"), Want: check.BlockedByMesh},
			}}},
			NegativeControl: check.Mutation{
				Description: "the Gateway and VirtualService accept any host (\"*\", as in the seed)",
				Mutate: func(c *check.Check) {
					replace(c, "gateway", `- {{host "ingress"}}`, `- "*"`)
					replace(c, "virtualservice", `- {{host "ingress"}}`, `- "*"`)
				},
				Flips: []check.Flip{{Observed: check.Allowed}},
			},
		},
	}
}
