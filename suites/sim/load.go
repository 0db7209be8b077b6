package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	kubelib "istio.io/istio/pkg/kube"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshconform/meshconform/suites/check"
)

// Object is one input document, Istio config or Kubernetes object.
type Object struct {
	File      string
	Line      int
	Kind      string
	Name      string
	Namespace string
	// Istio is set for Istio config kinds.
	Istio *config.Config
	// Kube is set for Kubernetes kinds the simulation uses (Service, Secret).
	Kube runtime.Object
	// Ignored: a kind the simulation does not need (Deployment, ...).
	Ignored bool
	// Doc is the object's own document (YAML or JSON) when File is not a
	// file on disk (an object read from a cluster, see fromcluster):
	// Istio's analyzers read it instead of File.
	Doc []byte
}

// ID renders "Kind namespace/name".
func (o Object) ID() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

// istioKinds are the Istio kinds meshconform simulates.
var istioKinds = map[string]bool{
	"ServiceEntry": true, "Sidecar": true, "Gateway": true, "VirtualService": true, "DestinationRule": true,
	"WorkloadEntry": true,
}

// kubeKinds are Kubernetes kinds the simulation feeds to its fake registry.
var kubeKinds = map[string]bool{"Service": true, "Secret": true}

// ignoredKinds may appear in manifests (the live tier applies them) but do
// not change the generated proxy config.
var ignoredKinds = map[string]bool{
	"Deployment": true, "Pod": true, "ServiceAccount": true, "ConfigMap": true, "Namespace": true,
}

func acceptedKinds() string {
	var k []string
	for n := range istioKinds {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ", ") + " (networking.istio.io) and Service, Secret (v1)"
}

// LoadPaths loads every .yaml/.yml/.json file in paths (directories are
// walked, sorted). Objects without a namespace get defaultNS.
func LoadPaths(paths []string, defaultNS string) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, &check.InputError{File: p, Problem: "cannot read: " + errors.Unwrap(err).Error(), Fix: "pass an existing file or directory"}
		}
		var files []string
		if st.IsDir() {
			err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
					if !d.IsDir() {
						files = append(files, path)
					}
				}
				return nil
			})
			if err != nil {
				return nil, &check.InputError{File: p, Problem: err.Error()}
			}
			sort.Strings(files)
			if len(files) == 0 {
				return nil, &check.InputError{File: p, Problem: "directory has no .yaml, .yml or .json file", Fix: "point at the directory holding your Istio config"}
			}
		} else {
			files = []string{p}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, &check.InputError{File: f, Problem: "cannot read: " + err.Error()}
			}
			objs, err := ParseYAML(f, data, defaultNS)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, checkDuplicates(out)
}

func checkDuplicates(objs []Object) error {
	seen := map[string]Object{}
	for _, o := range objs {
		if o.Ignored {
			continue
		}
		if prev, ok := seen[o.ID()]; ok {
			return &check.InputError{File: o.File, Line: o.Line, Object: o.ID(),
				Problem: fmt.Sprintf("defined twice (first at %s:%d)", prev.File, prev.Line),
				Fix:     "remove one of them or give it another name"}
		}
		seen[o.ID()] = o
	}
	return nil
}

// ParseYAML parses a multi-document YAML (or JSON) stream named file.
func ParseYAML(file string, data []byte, defaultNS string) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &check.InputError{File: file, Line: yamlErrLine(err), Problem: "malformed YAML: " + err.Error(),
				Fix: "fix the YAML syntax (indentation, quoting) at that line"}
		}
		if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			continue // empty document
		}
		o, err := parseDoc(file, &doc, defaultNS)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func yamlErrLine(err error) int {
	var n int
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		fmt.Sscanf(s[i:], "line %d", &n)
	}
	return n
}

func parseDoc(file string, doc *yaml.Node, defaultNS string) (Object, error) {
	line := doc.Content[0].Line
	var raw map[string]any
	if err := doc.Decode(&raw); err != nil {
		return Object{}, &check.InputError{File: file, Line: line, Problem: "document is not a mapping: " + err.Error(),
			Fix: "each document must be a Kubernetes-style object with apiVersion, kind, metadata and spec"}
	}
	kind, _ := raw["kind"].(string)
	apiVersion, _ := raw["apiVersion"].(string)
	meta, _ := raw["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if kind == "" || apiVersion == "" {
		return Object{}, &check.InputError{File: file, Line: line, Problem: "document has no apiVersion or kind",
			Fix: "add e.g. `apiVersion: networking.istio.io/v1` and `kind: ServiceEntry`"}
	}
	if name == "" {
		return Object{}, &check.InputError{File: file, Line: line, Object: kind, Problem: "metadata.name is missing", Fix: "give the object a name"}
	}
	if ns == "" {
		ns = defaultNS
		if meta == nil {
			meta = map[string]any{}
			raw["metadata"] = meta
		}
		meta["namespace"] = ns
	}
	o := Object{File: file, Line: line, Kind: kind, Name: name, Namespace: ns}
	unknown := func(field string, err error) error {
		at := line
		if l := keyLine(doc, field); l > 0 {
			at = l
		}
		return &check.InputError{File: file, Line: at, Object: o.ID(), Problem: unknownFieldProblem(kind, field, err),
			Fix: "correct the field name (see the " + kind + " reference); `kubectl apply --dry-run=server` reports the same"}
	}
	if field, err := strictObject(raw); err != nil {
		return o, unknown(field, err)
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return o, &check.InputError{File: file, Line: line, Object: o.ID(), Problem: err.Error()}
	}
	gv, err := k8sschema.ParseGroupVersion(apiVersion)
	if err != nil {
		return o, &check.InputError{File: file, Line: line, Object: o.ID(), Problem: "bad apiVersion: " + err.Error()}
	}
	switch {
	case istioKinds[kind]:
		if gv.Group != "networking.istio.io" {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(),
				Problem: fmt.Sprintf("apiVersion %s is not an Istio networking API", apiVersion),
				Fix:     "use apiVersion: networking.istio.io/v1 (or v1beta1, v1alpha3)"}
		}
		gvk := k8sschema.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: kind}
		s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(resource.FromKubernetesGVK(&gvk))
		if !ok {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(),
				Problem: fmt.Sprintf("Istio does not serve %s in version %s", kind, gv.Version),
				Fix:     "use apiVersion: networking.istio.io/v1"}
		}
		if field, err := strictSpec(s, raw["spec"]); err != nil {
			return o, unknown(field, err)
		}
		var ik crd.IstioKind
		if err := json.Unmarshal(js, &ik); err != nil {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(), Problem: "cannot decode: " + err.Error()}
		}
		cfg, err := crd.ConvertObject(s, &ik, "cluster.local")
		if err != nil {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(), Problem: "invalid spec: " + err.Error(),
				Fix: "check field names and types against the Istio reference for " + kind}
		}
		if _, err := s.ValidateConfig(*cfg); err != nil {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(),
				Problem: "rejected by Istio's validation (what istiod's webhook runs): " + err.Error(),
				Fix:     "correct the fields named above; `istioctl validate -f` reports the same"}
		}
		o.Istio = cfg
	case kubeKinds[kind] && gv.Group == "":
		obj, _, err := kubelib.IstioCodec.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return o, &check.InputError{File: file, Line: line, Object: o.ID(), Problem: "invalid " + kind + ": " + err.Error()}
		}
		if field, err := strictJSON(js, obj); err != nil {
			return o, unknown(field, err)
		}
		o.Kube = obj
	case ignoredKinds[kind]:
		o.Ignored = true
	default:
		return o, &check.InputError{File: file, Line: line, Object: o.ID(),
			Problem: fmt.Sprintf("unknown kind %s (apiVersion %s)", kind, apiVersion),
			Fix:     "meshconform simulates " + acceptedKinds() + "; remove other kinds from the input"}
	}
	return o, nil
}
