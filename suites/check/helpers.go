package check

// Client is the in-mesh client workload every egress check starts from.
var Client = Source{Kind: MeshedPod, Labels: map[string]string{"app": "client"}}

// Control is the same client without a sidecar (the out-of-mesh control).
var Control = Source{Kind: PlainPod, Labels: map[string]string{"app": "control"}}

// Host is a client outside the cluster, entering through the ingress gateway.
var Host = Source{Kind: Outside}

// WithPolicy is a negative control that runs the check under another
// outboundTrafficPolicy.
func WithPolicy(p OutboundPolicy) Mutation {
	return Mutation{
		Description: "outboundTrafficPolicy " + string(p),
		Mutate:      func(c *Check) { c.Policy = p },
	}
}
