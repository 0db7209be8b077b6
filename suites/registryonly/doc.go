// Package registryonly is suite 1, REGISTRY_ONLY blocking: with
// outboundTrafficPolicy REGISTRY_ONLY a meshed pod cannot reach an
// unregistered external host (HTTP gets Envoy's 502 from block_all, TLS and
// TCP are reset by BlackHoleCluster); ALLOW_ANY is the baseline in which
// the same calls pass through. From seeds/registry-only-serviceentry.txt.
package registryonly
