package check

// Client is the in-mesh client workload every egress check starts from.
var Client = Source{Kind: MeshedPod, Labels: map[string]string{"app": "client"}}

// Control is the same client without a sidecar (the out-of-mesh control).
var Control = Source{Kind: PlainPod, Labels: map[string]string{"app": "control"}}

// External is a client outside the cluster (the machine running
// meshconform), entering through the ingress gateway; Destination.Host is
// a DNS name, so the source is not called Host.
var External = Source{Kind: Outside}

// WithPolicy is a negative control that runs the check under another
// outboundTrafficPolicy and flips the expectations named by flips.
func WithPolicy(p OutboundPolicy, flips ...Flip) Mutation {
	return Mutation{
		Description: "outboundTrafficPolicy " + string(p),
		Mutate:      func(c *Check) { c.Policy = p },
		Flips:       flips,
	}
}
