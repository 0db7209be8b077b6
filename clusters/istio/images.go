package istio

import "runtime/debug"

// Images are the images an install with hub and tag ("" = DefaultHub,
// DefaultTag) runs: istiod's <hub>/pilot:<tag> and the gateway's and
// sidecars' <hub>/proxyv2:<tag>. The harness pre-loads them into kind
// nodes from the host's Docker (clusters.PreloadImages) so the nodes never
// pull them anonymously.
func Images(hub, tag string) []string {
	if hub == "" {
		hub = DefaultHub
	}
	if tag == "" {
		tag = DefaultTag
	}
	return []string{hub + "/pilot:" + tag, hub + "/proxyv2:" + tag}
}

// ModuleVersion is the istio.io/istio module version this binary was built
// with (its charts and profiles render the install), or "" when unknown
// (tests). It is a pseudo-version of a development snapshot: compare with
// DefaultTag, the image release installed by default.
func ModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "istio.io/istio" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}
