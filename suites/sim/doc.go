// Package sim is the simulation driver: it observes checks with Istio's
// own config generator (istio.io/istio/pilot/test/xds, the code istiod
// runs) and traffic simulator (istio.io/istio/pilot/pkg/simulation), with
// no cluster and no Envoy. Masquerade checks are evaluated with
// internal/ipmasq, as ip-masq-agent documents its config.
//
// It owns loading Istio YAML (files, directories, embedded manifests),
// validating it with Istio's own validation before use, and turning a
// simulated call into a named Outcome with a trace (listener → filter
// chain → virtual host/route → cluster) and the reason for a block.
// It must not touch a cluster or Docker.
package sim
