package analysis

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"istio.io/istio/pkg/config/analysis/analyzers"
	"istio.io/istio/pkg/config/analysis/diag"
	"istio.io/istio/pkg/config/analysis/local"
	"istio.io/istio/pkg/config/resource"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/util/protomarshal"

	"github.com/meshconform/meshconform/suites/findings"
)

// Document is one YAML stream to analyze: Name is the file name messages
// cite (with the line Istio's file source records), Data its content.
type Document struct {
	Name string
	Data []byte
}

type options struct {
	mesh         *meshconfig.MeshConfig
	suppressions []findings.Suppression
	istioNS      string
	defaultNS    string
}

// WithDefaultNamespace gives documents without metadata.namespace this
// namespace, as the simulation does (default "default"); messages keep
// the documents' own line numbers.
func WithDefaultNamespace(ns string) Option { return func(o *options) { o.defaultNS = ns } }

// Option configures Run.
type Option func(*options)

// WithMeshConfig analyzes against this mesh config (default: Istio's
// defaults, as istioctl analyze without --meshConfigFile).
func WithMeshConfig(mc *meshconfig.MeshConfig) Option { return func(o *options) { o.mesh = mc } }

// WithSuppressions hides messages as istioctl analyze --suppress does.
func WithSuppressions(s []findings.Suppression) Option {
	return func(o *options) { o.suppressions = s }
}

// Run analyzes the documents together, in every namespace (istioctl
// analyze --all-namespaces), with Istio's default ingress gateway added as
// istioctl does for files-only analysis. Errors: a document Istio's file
// source cannot read, or an analyzer failure.
func Run(docs []Document, opts ...Option) ([]findings.Finding, error) {
	o := options{istioNS: "istio-system", defaultNS: "default"}
	for _, f := range opts {
		f(&o)
	}
	sa := local.NewSourceAnalyzer(analyzers.AllCombined(), "", resource.Namespace(o.istioNS), nil)
	if o.mesh != nil {
		// The analyzer reads a mesh config only from a file.
		dir, err := os.MkdirTemp("", "meshconform-mesh-")
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		defer os.RemoveAll(dir)
		js, err := protomarshal.ToJSON(o.mesh)
		if err != nil {
			return nil, fmt.Errorf("analyze: mesh config: %w", err)
		}
		y, err := yaml.JSONToYAML([]byte(js))
		if err != nil {
			return nil, fmt.Errorf("analyze: mesh config: %w", err)
		}
		p := filepath.Join(dir, "mesh.yaml")
		if err := os.WriteFile(p, y, 0o600); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		if err := sa.AddFileKubeMeshConfig(p); err != nil {
			return nil, fmt.Errorf("analyze: mesh config: %w", err)
		}
	}
	var sups []local.AnalysisSuppression
	for _, s := range o.suppressions {
		sups = append(sups, local.AnalysisSuppression{Code: s.Code, ResourceName: s.Object})
	}
	sa.SetSuppressions(sups)
	var readers []local.ReaderSource
	shifts := map[string][]int{}
	for _, d := range docs {
		data, ins := withNamespace(d.Data, o.defaultNS)
		shifts[d.Name] = ins
		readers = append(readers, local.ReaderSource{Name: d.Name, Reader: strings.NewReader(string(data))})
	}
	if err := sa.AddReaderKubeSource(readers); err != nil {
		return nil, fmt.Errorf("analyze: read config: %w", err)
	}
	if err := sa.AddDefaultResources(); err != nil {
		return nil, fmt.Errorf("analyze: default resources: %w", err)
	}
	cancel := make(chan struct{})
	defer close(cancel)
	res, err := sa.Analyze(cancel)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	out := make([]findings.Finding, 0, len(res.Messages))
	for _, m := range res.Messages {
		f := convert(m)
		if f.Line > 0 {
			f.Line = originalLine(f.Line, shifts[f.File])
		}
		out = append(out, f)
	}
	return out, nil
}

// convert maps one analyzer message, keeping Istio's code, level, text and
// documentation URL.
func convert(m diag.Message) findings.Finding {
	u := m.Unstructured(true)
	f := findings.Finding{
		Source:  findings.Analysis,
		Code:    m.Type.Code(),
		Level:   level(m.Type.Level()),
		Message: fmt.Sprint(u["message"]),
		DocURL:  fmt.Sprint(u["documentationUrl"]),
	}
	if m.Resource != nil {
		kind, _, _ := strings.Cut(m.Resource.Origin.FriendlyName(), " ")
		f.Kind = kind
		f.ObjectName = m.Resource.Metadata.FullName.Name.String()
		f.Namespace = m.Resource.Metadata.FullName.Namespace.String()
		if ref, ok := u["reference"].(string); ok {
			f.File, f.Line = splitRef(ref)
		}
	}
	return f
}

// splitRef splits Istio's "file:line" reference.
func splitRef(ref string) (string, int) {
	i := strings.LastIndexByte(ref, ':')
	if i < 0 {
		return ref, 0
	}
	n, err := strconv.Atoi(ref[i+1:])
	if err != nil {
		return ref, 0
	}
	return ref[:i], n
}

func level(l diag.Level) findings.Level {
	switch l {
	case diag.Error:
		return findings.Error
	case diag.Warning:
		return findings.Warning
	}
	return findings.Info
}
