package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/suites/check"
)

// LabelSource is the one label the harness adds to a source's probe pod
// besides the source's own labels (and the cluster package's
// meshconform.dev/managed and meshconform.dev/run): its pod name, so the
// harness selects exactly its pod and never the workload it stands in for.
const LabelSource = "meshconform.dev/source"

// A source probe pod stands in for a workload of a user's expectation
// (expectations file, `source: {namespace, labels, proxyMetadata}`): a pod
// with exactly those labels in that namespace, so Istio's injection, a
// namespace-wide or workloadSelector Sidecar and exportTo treat it as they
// treat the real workload. The probe is exec'd into it as into the client
// pod. ProxyMetadata becomes the pod's proxy.istio.io/config annotation,
// which Istio's injector turns into the sidecar's ISTIO_META_* environment.
var sourcePodTemplate = template.Must(template.New("source").Parse(`{{- if .WithCA -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .CAConfigMap }}
  namespace: {{ .Namespace }}
data:
  ca.crt: {{ .CAPEM }}
---
{{ end -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Name }}
  namespace: {{ .Namespace }}
  labels:
{{- range $k, $v := .Labels }}
    {{ $k }}: {{ $v }}
{{- end }}
{{- if .ProxyConfig }}
  annotations:
    proxy.istio.io/config: {{ .ProxyConfig }}
{{- end }}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: {{ .Container }}
    image: {{ .Image }}
    imagePullPolicy: IfNotPresent
    args: ["sleep"]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: NODE_IP
      valueFrom: {fieldRef: {fieldPath: status.hostIP}}
{{- if .WithCA }}
    volumeMounts:
    - name: ca
      mountPath: {{ .CAMountDir }}
      readOnly: true
  volumes:
  - name: ca
    configMap:
      name: {{ .CAConfigMap }}
{{- end }}
`))

// SourcePodName is the name of the probe pod standing in for source s:
// "src-" and the first 10 hex digits of the SHA-256 of s.Key(), so the
// same source always gets the same pod and different sources (labels,
// namespace or proxy metadata) different ones.
func SourcePodName(s check.Source) string {
	sum := sha256.Sum256([]byte(s.Key()))
	return "src-" + hex.EncodeToString(sum[:])[:10]
}

// SourcePodManifest renders the probe pod for s (a meshed source): in
// s.Namespace, labelled exactly s.Labels plus LabelSource, with
// s.ProxyMetadata as its proxy.istio.io/config annotation, running the
// agent image's `sleep`. caPEM, when set, is mounted from a ConfigMap the
// manifest also holds. Label keys and values are quoted as YAML strings.
func SourcePodManifest(s check.Source, image string, caPEM []byte) (string, error) {
	if s.Namespace == "" {
		return "", fmt.Errorf("source %s: no namespace", s)
	}
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[q(k)] = q(v)
	}
	name := SourcePodName(s)
	labels[q(LabelSource)] = q(name)
	proxyConfig := ""
	if len(s.ProxyMetadata) > 0 {
		b, err := json.Marshal(map[string]any{"proxyMetadata": s.ProxyMetadata})
		if err != nil {
			return "", err
		}
		proxyConfig = q(string(b))
	}
	var b bytes.Buffer
	err := sourcePodTemplate.Execute(&b, map[string]any{
		"Name": name, "Namespace": s.Namespace, "Labels": labels, "ProxyConfig": proxyConfig,
		"Container": ProbeContainer, "Image": q(image), "WithCA": len(caPEM) > 0, "CAConfigMap": caConfigMap,
		"CAPEM": q(string(caPEM)), "CAMountDir": caMountDir,
	})
	return b.String(), err
}

// isClient reports whether a meshed source is the driver's own client pod
// (the built-in suites' source): in the driver's namespace with no labels
// or exactly app=client, and no proxy metadata.
func (d *Driver) isClient(s check.Source) bool {
	if s.Namespace != "" && s.Namespace != d.cfg.namespace {
		return false
	}
	if len(s.ProxyMetadata) > 0 {
		return false
	}
	return len(s.Labels) == 0 || (len(s.Labels) == 1 && s.Labels["app"] == ClientPod)
}

// sourcePod returns the probe pod an expectation starts in: outsidePod,
// ControlPod, ClientPod, or "<namespace>/<SourcePodName>" for a source
// workload of its own.
func (d *Driver) sourcePod(e check.Expectation) string {
	switch e.From.Kind {
	case check.Outside:
		return outsidePod
	case check.PlainPod:
		return ControlPod
	}
	if d.isClient(e.From) {
		return ClientPod
	}
	return e.From.Namespace + "/" + SourcePodName(e.From)
}

// splitPod returns the namespace and name of a probe pod as sourcePod
// names it (a bare name is in the driver's namespace).
func (d *Driver) splitPod(pod string) (namespace, name string) {
	if ns, n, ok := strings.Cut(pod, "/"); ok {
		return ns, n
	}
	return d.cfg.namespace, pod
}

// ownSources are the meshed sources of c that are not the client pod, in
// a stable order, one per Source.Key.
func (d *Driver) ownSources(c check.Check) []check.Source {
	seen := map[string]check.Source{}
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			if (e.From.Kind == "" || e.From.Kind == check.MeshedPod) && !d.isClient(e.From) {
				seen[e.From.Key()] = e.From
			}
		}
	}
	keys := slices.Sorted(maps.Keys(seen))
	out := make([]check.Source, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out
}

// usesClient reports whether c has an expectation from the client pod.
func (d *Driver) usesClient(c check.Check) bool {
	for _, s := range c.Steps {
		for _, e := range s.Expect {
			if (e.From.Kind == "" || e.From.Kind == check.MeshedPod) && d.isClient(e.From) {
				return true
			}
		}
	}
	return false
}

// sourceNamespaceAllowed reports whether the driver may create a probe pod
// in ns: its own namespace or one given with WithSourceNamespaces.
func (d *Driver) sourceNamespaceAllowed(ns string) bool {
	return ns == d.cfg.namespace || slices.Contains(d.cfg.sourceNamespaces, ns)
}

// ensureSource creates the probe pod of s once (through the API server, so
// Istio's injection webhook handles it as the real workload) and waits
// for it and its sidecar; the outcome is remembered for later checks. The
// pod carries the cluster package's managed and run labels and is removed
// with the run's other objects at teardown.
func (d *Driver) ensureSource(ctx context.Context, s check.Source) error {
	key := s.Key()
	d.mu.Lock()
	if err, ok := d.sources[key]; ok {
		d.mu.Unlock()
		return err
	}
	d.mu.Unlock()
	err := d.createSource(ctx, s)
	if err != nil && ctx.Err() != nil {
		return err // interrupted: not remembered
	}
	d.mu.Lock()
	d.sources[key] = err
	d.mu.Unlock()
	return err
}

func (d *Driver) createSource(ctx context.Context, s check.Source) error {
	name := SourcePodName(s)
	where := s.Namespace + "/" + name + " (" + check.SortedLabels(s.Labels) + ")"
	if !d.sourceNamespaceAllowed(s.Namespace) {
		return &clusters.NotReadyError{Reason: fmt.Sprintf("source %s: the harness creates probe pods only in namespaces it created or that are named with --source-namespace; namespace %s is neither", s, s.Namespace)}
	}
	y, err := SourcePodManifest(s, d.cfg.agentImage, d.cfg.caPEM)
	if err != nil {
		return fmt.Errorf("probe pod %s: %w", where, err)
	}
	start := time.Now()
	if _, err := d.cl.Apply(ctx, s.Namespace, y); err != nil {
		return fmt.Errorf("create probe pod %s: %w", where, err)
	}
	sel := LabelSource + "=" + name
	if err := d.cl.WaitPods(ctx, s.Namespace, sel, "probe pod "+where, d.cfg.timeouts.Pods); err != nil {
		return err
	}
	if err := d.mesh.Preflight(ctx, s.Namespace, sel); err != nil {
		return err
	}
	d.log.Info("source probe pod ready", "pod", where, "sidecar", true, "elapsed", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// preflightSources returns "" when every own source of c has a ready probe
// pod with a sidecar, else why not (the first source that is not ready).
func (d *Driver) preflightSources(ctx context.Context, c check.Check) string {
	for _, s := range d.ownSources(c) {
		if err := d.ensureSource(ctx, s); err != nil {
			return reason(err)
		}
		if err := d.mesh.Preflight(ctx, s.Namespace, LabelSource+"="+SourcePodName(s)); err != nil {
			return reason(err)
		}
	}
	return ""
}

// SourcesSummary lists the source probe pods created so far and their
// state, for progress output ("" when none).
func (d *Driver) SourcesSummary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k, err := range d.sources {
		st := "ready"
		if err != nil {
			st = "not usable (" + reason(err) + ")"
		}
		out = append(out, k+" "+st)
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
