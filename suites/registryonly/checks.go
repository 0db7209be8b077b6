package registryonly

import "github.com/meshconform/meshconform/suites/check"

// Suite is this suite's name.
const Suite = "registry-only"

var needs = []check.Requirement{check.NeedsIstio, check.NeedsSidecar}

func unregistered(p check.Protocol, port int, want check.Outcome) check.Expectation {
	to := check.Destination{Target: "blocked", Port: port, Protocol: p}
	if p == check.TCP {
		to.Host = "" // raw TCP has no name on the wire: only the IP counts
	}
	return check.Expectation{From: check.Client, To: to, Want: want}
}

// Checks is the suite's explicit list.
func Checks() []check.Check {
	return []check.Check{
		{
			Name:        "AllowAnyBaselineReachesUnregisteredHost",
			Suite:       Suite,
			Description: "Under ALLOW_ANY a meshed pod reaches an unregistered external host over HTTP, TLS and TCP (PassthroughCluster).",
			Labels:      map[string]string{"policy": "ALLOW_ANY"},
			Policy:      check.AllowAny,
			Requires:    needs,
			Steps: []check.Step{{Name: "no ServiceEntry", Expect: []check.Expectation{
				unregistered(check.HTTP, 80, check.Allowed),
				unregistered(check.TLS, 443, check.Allowed),
				unregistered(check.TCP, 9000, check.Allowed),
			}}},
			// Under REGISTRY_ONLY all three calls are blocked.
			NegativeControl: check.WithPolicy(check.RegistryOnly,
				check.Flip{Expect: 0, Observed: check.BlockedByMesh},
				check.Flip{Expect: 1, Observed: check.BlockedByMesh},
				check.Flip{Expect: 2, Observed: check.BlockedByMesh}),
		},
		{
			Name:            "RegistryOnlyBlocksUnregisteredHTTP",
			Suite:           Suite,
			Description:     "Under REGISTRY_ONLY plain HTTP to an unregistered host gets Envoy's 502 (virtual host block_all).",
			Labels:          map[string]string{"policy": "REGISTRY_ONLY", "protocol": "HTTP"},
			Policy:          check.RegistryOnly,
			Requires:        needs,
			Steps:           []check.Step{{Name: "no ServiceEntry", Expect: []check.Expectation{unregistered(check.HTTP, 80, check.BlockedByMesh)}}},
			NegativeControl: check.WithPolicy(check.AllowAny, check.Flip{Observed: check.Allowed}),
		},
		{
			Name:            "RegistryOnlyBlocksUnregisteredTLS",
			Suite:           Suite,
			Description:     "Under REGISTRY_ONLY a TLS connection with an unregistered SNI is reset (BlackHoleCluster).",
			Labels:          map[string]string{"policy": "REGISTRY_ONLY", "protocol": "TLS"},
			Policy:          check.RegistryOnly,
			Requires:        needs,
			Steps:           []check.Step{{Name: "no ServiceEntry", Expect: []check.Expectation{unregistered(check.TLS, 443, check.BlockedByMesh)}}},
			NegativeControl: check.WithPolicy(check.AllowAny, check.Flip{Observed: check.Allowed}),
		},
		{
			Name:            "RegistryOnlyBlocksUnregisteredTCP",
			Suite:           Suite,
			Description:     "Under REGISTRY_ONLY raw TCP to an unregistered address is reset (BlackHoleCluster).",
			Labels:          map[string]string{"policy": "REGISTRY_ONLY", "protocol": "TCP"},
			Policy:          check.RegistryOnly,
			Requires:        needs,
			Steps:           []check.Step{{Name: "no ServiceEntry", Expect: []check.Expectation{unregistered(check.TCP, 9000, check.BlockedByMesh)}}},
			NegativeControl: check.WithPolicy(check.AllowAny, check.Flip{Observed: check.Allowed}),
		},
	}
}
