package masquerade

import "github.com/meshconform/meshconform/suites/check"

// Suite is this suite's name.
const Suite = "masquerade"

// Configs the checks use ("" is no ConfigMap: the agent's defaults, under
// which the whole of 172.16.0.0/12, the kind network included, keeps the
// pod IP).
const (
	DefaultsConfig = ""
	PodCIDROnly    = "nonMasqueradeCIDRs: [{{var \"podCIDR\"}}]\nmasqLinkLocal: false\nresyncInterval: 10s\n"
)

var needs = []check.Requirement{check.NeedsIPMasqAgent}

func echo(seen check.SourceAddress, want check.Outcome) check.Expectation {
	return check.Expectation{
		From:         check.Control,
		To:           check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP},
		Want:         want,
		WantSourceIP: seen,
	}
}

// echoIsUp is the control expectation beside a bare Unreachable: the echo
// target answers a client outside the cluster on its published port, so a
// pod's timeout means the reply did not come back, not that the target
// is down or misaddressed.
func echoIsUp() check.Expectation {
	return check.Expectation{
		From: check.External,
		To:   check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP},
		Want: check.Allowed,
		Note: "control: the echo target is up (it answers the host on its published port)",
	}
}

// Checks is the suite's explicit list.
func Checks() []check.Check {
	return []check.Check{
		{
			Name:        "MasqueradeOutsideNonMasqueradeCIDRsUsesNodeIP",
			Suite:       Suite,
			Description: "With nonMasqueradeCIDRs limited to the pod CIDR, a pod reaching the echo target is seen with its node's IP.",
			Masquerade:  &check.Masquerade{Config: PodCIDROnly},
			Requires:    needs,
			Steps: []check.Step{{Name: "nonMasqueradeCIDRs [pod CIDR]", Expect: []check.Expectation{
				echo(check.NodeIP, check.Allowed),
			}}},
			NegativeControl: check.Mutation{
				Description: "the agent runs with its defaults (172.16.0.0/12 is not masqueraded) and the target has a return route",
				Mutate: func(c *check.Check) {
					c.Masquerade = &check.Masquerade{Config: DefaultsConfig, ReturnRoute: true}
				},
				Flips: []check.Flip{{Observed: check.Allowed, SeenAs: check.PodIP}},
			},
		},
		{
			Name:        "MasqueradeInsideNonMasqueradeCIDRsWithoutReturnRouteFails",
			Suite:       Suite,
			Description: "With the agent's defaults the kind network keeps the pod IP, and since it has no route back to the pod CIDR the connection fails (the GKE ip-masq-agent failure).",
			Masquerade:  &check.Masquerade{Config: DefaultsConfig},
			Requires:    needs,
			Steps: []check.Step{{Name: "defaults, no return route", Expect: []check.Expectation{
				// No answer at all (a timeout), not a refusal, no-route or
				// DNS error: the request left, the reply had no way back.
				{From: check.Control, To: check.Destination{Target: "echo", Port: 80, Protocol: check.HTTP},
					Want: check.Unreachable, WantFailure: check.FailureTimeout},
				echoIsUp(),
			}}},
			NegativeControl: check.Mutation{
				Description: "nonMasqueradeCIDRs is limited to the pod CIDR (the fix from the seed)",
				Mutate: func(c *check.Check) {
					c.Masquerade = &check.Masquerade{Config: PodCIDROnly}
				},
				// SNAT to the node: the reply comes back; the target is
				// still up.
				Flips: []check.Flip{{Expect: 0, Observed: check.Allowed, SeenAs: check.NodeIP}},
			},
		},
		{
			Name:        "MasqueradeInsideNonMasqueradeCIDRsWithReturnRouteKeepsPodIP",
			Suite:       Suite,
			Description: "With the agent's defaults and a route back to the pod CIDR, the echo target is reached and sees the pod's own IP.",
			Masquerade:  &check.Masquerade{Config: DefaultsConfig, ReturnRoute: true},
			Requires:    needs,
			Steps: []check.Step{{Name: "defaults, return route", Expect: []check.Expectation{
				echo(check.PodIP, check.Allowed),
			}}},
			NegativeControl: check.Mutation{
				Description: "nonMasqueradeCIDRs is limited to the pod CIDR, so the target sees the node IP",
				Mutate: func(c *check.Check) {
					c.Masquerade = &check.Masquerade{Config: PodCIDROnly, ReturnRoute: true}
				},
				Flips: []check.Flip{{Observed: check.Allowed, SeenAs: check.NodeIP}},
			},
		},
	}
}
