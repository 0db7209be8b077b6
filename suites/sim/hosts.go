package sim

import (
	"net/netip"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Hosts indexes every name and address a config declares, the ways Istio
// declares them:
//   - ServiceEntry hosts (exact or wildcard "*.example.com") and
//     addresses (IPs or CIDRs: an HTTP Host or SNI that is such an
//     address is declared);
//   - Gateway server hosts ("ns/host", "./host", "*/host"; the namespace
//     part is dropped, "*" declares every name);
//   - VirtualService hosts (a short name "reviews" is read as Istio reads
//     it: reviews.<vs-namespace>.svc.cluster.local);
//   - Kubernetes Services: name (from the same namespace only), name.ns,
//     name.ns.svc, name.ns.svc.cluster.local, and their cluster IPs.
//
// Names compare case-insensitively. A wildcard "*.example.com" declares
// every name under example.com at any depth, but not example.com itself
// (Istio's host matching).
type Hosts struct {
	exact     map[string]string // name -> what declares it (e.g. "ServiceEntry shop/metadata-svc")
	wildcards []wildcard
	services  map[string]map[string]bool // short name -> namespaces
	prefixes  []netip.Prefix
}

type wildcard struct {
	suffix string // "*.example.com" stored as ".example.com"; "*" as ""
	by     string
}

// IndexHosts builds the index from loaded objects.
func IndexHosts(objs []Object) *Hosts {
	h := &Hosts{exact: map[string]string{}, services: map[string]map[string]bool{}}
	for _, o := range objs {
		by := o.ID()
		if o.Istio != nil {
			switch spec := o.Istio.Spec.(type) {
			case *networking.ServiceEntry:
				for _, host := range spec.GetHosts() {
					h.addName(host, by)
				}
				for _, a := range spec.GetAddresses() {
					h.addAddress(a)
				}
			case *networking.Gateway:
				for _, s := range spec.GetServers() {
					for _, host := range s.GetHosts() {
						if i := strings.IndexByte(host, '/'); i >= 0 {
							host = host[i+1:]
						}
						h.addName(host, by)
					}
				}
			case *networking.VirtualService:
				for _, host := range spec.GetHosts() {
					if !strings.ContainsAny(host, ".*") && o.Istio.Namespace != "" {
						h.addService(host, o.Istio.Namespace, by)
						continue
					}
					h.addName(host, by)
				}
			}
		}
		if svc, ok := o.Kube.(*corev1.Service); ok {
			h.addService(svc.Name, svc.Namespace, by)
			for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
				if ip != "" && ip != corev1.ClusterIPNone {
					h.addAddress(ip)
				}
			}
		}
	}
	return h
}

func (h *Hosts) addName(host, by string) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case host == "*":
		h.wildcards = append(h.wildcards, wildcard{"", by})
	case strings.HasPrefix(host, "*."):
		h.wildcards = append(h.wildcards, wildcard{host[1:], by})
	case host != "":
		if a, err := netip.ParseAddr(host); err == nil {
			h.prefixes = append(h.prefixes, netip.PrefixFrom(a, a.BitLen()))
			return
		}
		if _, ok := h.exact[host]; !ok {
			h.exact[host] = by
		}
	}
}

func (h *Hosts) addService(name, ns, by string) {
	name, ns = strings.ToLower(name), strings.ToLower(ns)
	for _, n := range []string{name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"} {
		h.addName(n, by)
	}
	if h.services[name] == nil {
		h.services[name] = map[string]bool{}
	}
	h.services[name][ns] = true
}

func (h *Hosts) addAddress(a string) {
	if p, err := netip.ParsePrefix(a); err == nil {
		h.prefixes = append(h.prefixes, p.Masked())
		return
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		h.prefixes = append(h.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
	}
}

// Declared implements expectations.HostIndex: host (a DNS name, or an IP
// address used as HTTP Host or SNI) is declared for a client in namespace
// (a Service's bare name only counts in its own namespace).
func (h *Hosts) Declared(host, namespace string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		for _, p := range h.prefixes {
			if p.Contains(ip.Unmap()) {
				return true
			}
		}
		return false
	}
	if _, ok := h.exact[host]; ok {
		return true
	}
	if h.services[host][strings.ToLower(namespace)] {
		return true
	}
	for _, w := range h.wildcards {
		if w.suffix == "" || strings.HasSuffix(host, w.suffix) {
			return true
		}
	}
	return false
}

// Nearest implements expectations.HostSuggester: the declared name closest
// to host by edit distance (at most a third of its length away, so a typo
// is caught but an unrelated name is not offered), with what declares it;
// "" when none is close.
func (h *Hosts) Nearest(host string) (name, by string) {
	host = strings.ToLower(host)
	best := len(host)/3 + 1
	names := make([]string, 0, len(h.exact))
	for n := range h.exact {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic among equal distances
	for _, n := range names {
		if d := editDistance(host, n, best); d < best {
			best, name, by = d, n, h.exact[n]
		}
	}
	return name, by
}

// editDistance is Levenshtein's distance, abandoned (returning max) once it
// cannot stay below max.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d >= max || -d >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= max {
			return max
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
