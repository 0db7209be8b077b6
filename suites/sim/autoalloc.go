package sim

import (
	"net/netip"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/networking/serviceentry"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/host"

	"github.com/meshconform/meshconform/suites/check"
)

// Proxy metadata keys the simulation honours (ISTIO_META_* environment of
// the sidecar, or proxyMetadata in its ProxyConfig).
const (
	// MetaDNSCapture turns on the sidecar's DNS proxy: the application's
	// DNS queries for ServiceEntry hosts are answered by the sidecar.
	MetaDNSCapture = "ISTIO_META_DNS_CAPTURE"
	// MetaDNSAutoAllocate is the legacy per-proxy switch for address
	// auto-allocation. Istio 1.31 allocates by default in istiod's IP
	// auto-allocation controller (PILOT_ENABLE_IP_AUTOALLOCATE=true), so
	// DNS capture alone makes a sidecar use the allocated addresses.
	MetaDNSAutoAllocate = "ISTIO_META_DNS_AUTO_ALLOCATE"
)

// AutoAllocatePrefix is where Istio's IP auto-allocation controller takes
// IPv4 addresses from (PILOT_IP_AUTOALLOCATE_IPV4_PREFIX default).
const AutoAllocatePrefix = "240.240.0.0/16"

// DNSCapture reports whether a source's sidecar runs Istio's DNS proxy.
func DNSCapture(src check.Source) bool { return isTrue(src.ProxyMetadata[MetaDNSCapture]) }

func isTrue(v string) bool { return strings.EqualFold(v, "true") || v == "1" }

// autoAllocate writes into each eligible ServiceEntry's status the
// addresses Istio's IP auto-allocation controller
// (pilot/pkg/controllers/ipallocate) would write: one IPv4 per
// non-wildcard host, taken in order from AutoAllocatePrefix starting at
// its first usable address. Eligibility is Istio's own
// (serviceentry.ShouldV2AutoAllocateIPFromConfig: no spec addresses,
// resolution not NONE, no opt-out label). Only proxies with DNS capture
// use these addresses (model.nodeUsesAutoallocatedIPs); others are
// unaffected. It returns host -> allocated address.
func autoAllocate(configs []config.Config) map[string]string {
	out := map[string]string{}
	next := netip.MustParsePrefix(AutoAllocatePrefix).Addr().Next()
	for i := range configs {
		c := &configs[i]
		se, ok := c.Spec.(*networking.ServiceEntry)
		if !ok || !serviceentry.ShouldV2AutoAllocateIPFromConfig(*c) {
			continue
		}
		st := &networking.ServiceEntryStatus{}
		for _, h := range se.GetHosts() {
			if host.Name(h).IsWildCarded() && se.GetResolution() != networking.ServiceEntry_DYNAMIC_DNS {
				continue
			}
			st.Addresses = append(st.Addresses, &networking.ServiceEntryAddress{Value: next.String(), Host: h})
			if _, seen := out[h]; !seen {
				out[h] = next.String()
			}
			next = next.Next()
		}
		if len(st.Addresses) > 0 {
			c.Status = st
		}
	}
	return out
}
