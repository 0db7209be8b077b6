package sim

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Hosts indexes the names a config declares: ServiceEntry hosts
// (wildcards included) and Kubernetes Service names.
type Hosts struct {
	exact     map[string]bool
	wildcards []string          // "*.example.com" stored as ".example.com"
	services  map[string]string // short name -> namespace
}

// IndexHosts builds the index from loaded objects.
func IndexHosts(objs []Object) *Hosts {
	h := &Hosts{exact: map[string]bool{}, services: map[string]string{}}
	for _, o := range objs {
		if o.Istio != nil {
			if se, ok := o.Istio.Spec.(*networking.ServiceEntry); ok {
				for _, host := range se.GetHosts() {
					if strings.HasPrefix(host, "*") {
						h.wildcards = append(h.wildcards, strings.TrimPrefix(host, "*"))
					} else {
						h.exact[host] = true
					}
				}
			}
		}
		if svc, ok := o.Kube.(*corev1.Service); ok {
			ns := svc.Namespace
			h.exact[svc.Name+"."+ns+".svc.cluster.local"] = true
			h.exact[svc.Name+"."+ns+".svc"] = true
			h.exact[svc.Name+"."+ns] = true
			h.services[svc.Name] = ns
		}
	}
	return h
}

// Declared implements expectations.HostIndex.
func (h *Hosts) Declared(host, namespace string) bool {
	if h.exact[host] {
		return true
	}
	if ns, ok := h.services[host]; ok && ns == namespace {
		return true
	}
	for _, w := range h.wildcards {
		if w == "" || strings.HasSuffix(host, w) {
			return true
		}
	}
	return false
}
