package sim

import (
	"reflect"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config"

	"github.com/meshconform/meshconform/suites/check"
)

// sharing decides which sources get the same generated config, so that
// it is generated once (the largest repeated work at scale: ten sources
// in five namespaces used to cost ten full generations).
//
// Two sidecars get the same config from istiod when nothing in the
// config can tell them apart:
//   - labels only matter through selectors: a workloadSelector (Sidecar,
//     DestinationRule, ...) or a Kubernetes Service selecting pods
//     (inbound listeners); without any, labels are dropped from the key;
//   - the namespace only matters when some object lives in it, some
//     object's exportTo names namespaces, or the mesh config narrows the
//     default exportTo; otherwise all such namespaces share one config
//     (it differs only in the tracing tag istio.namespace, which no
//     verdict reads).
//
// TestSharedProxyConfigsAreEqual proves the configs equal on the
// benchmark input.
type sharing struct {
	labelsMatter bool
	nsMatter     map[string]bool // namespaces holding objects
	allNSMatter  bool
}

func newSharing(mc *meshconfig.MeshConfig, objs []Object) sharing {
	sh := sharing{nsMatter: map[string]bool{}}
	for _, f := range [][]string{mc.GetDefaultServiceExportTo(), mc.GetDefaultVirtualServiceExportTo(), mc.GetDefaultDestinationRuleExportTo()} {
		for _, x := range f {
			if x != "*" {
				sh.allNSMatter = true
			}
		}
	}
	for _, o := range objs {
		if o.Ignored {
			continue
		}
		sh.nsMatter[o.Namespace] = true
		if o.Kube != nil {
			sh.labelsMatter = true // a Service may select the source's pod
			continue
		}
		if o.Istio == nil {
			continue
		}
		if hasField(o.Istio, "WorkloadSelector") || hasField(o.Istio, "Selector") {
			sh.labelsMatter = true
		}
		for _, x := range exportTo(o.Istio) {
			if x != "*" {
				sh.allNSMatter = true
			}
		}
	}
	return sh
}

// key is the config-sharing key of a source.
func (sh sharing) key(src check.Source) string {
	s := src
	if src.Kind == check.Outside {
		return s.Key()
	}
	if !sh.labelsMatter {
		s.Labels = nil
	}
	if !sh.allNSMatter && !sh.nsMatter[s.Namespace] {
		s.Namespace = "<any namespace without config>"
	}
	return s.Key()
}

// hasField reports whether the spec has a non-nil field of that name.
func hasField(c *config.Config, name string) bool {
	v := reflect.ValueOf(c.Spec)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() {
		return false
	}
	switch f.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return !f.IsNil()
	}
	return !f.IsZero()
}

func exportTo(c *config.Config) []string {
	v := reflect.ValueOf(c.Spec)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	f := v.Elem().FieldByName("ExportTo")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil
	}
	out, _ := f.Interface().([]string)
	return out
}
