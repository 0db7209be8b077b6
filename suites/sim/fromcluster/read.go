package fromcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshconform/meshconform/suites/sim"
)

// Kind is one kind the simulation reads, with the API versions tried in
// order (the first one the server serves is used).
type Kind struct {
	Kind     string
	Group    string
	Versions []string
	Resource string
}

// Kinds are the kinds read, in the order they are read and counted.
var Kinds = []Kind{
	{"ServiceEntry", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "serviceentries"},
	{"Sidecar", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "sidecars"},
	{"Gateway", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "gateways"},
	{"VirtualService", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "virtualservices"},
	{"DestinationRule", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "destinationrules"},
	{"WorkloadEntry", "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "workloadentries"},
	{"Service", "", []string{"v1"}, "services"},
}

// Rules are the only permissions Read needs: get/list on the kinds above
// and on Deployments (to find istiod), get on ConfigMaps (the mesh config
// and ip-masq-agent config, read by name; never listed). The ClusterRole
// clusters/manifests/meshconform-reader.yaml holds exactly these.
var Rules = []rbacv1.PolicyRule{
	{APIGroups: []string{"networking.istio.io"}, Resources: []string{"serviceentries", "sidecars", "gateways", "virtualservices", "destinationrules", "workloadentries"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
}

// IPMasqNamespace, IPMasqName and IPMasqKey locate ip-masq-agent's config.
const (
	IPMasqNamespace = "kube-system"
	IPMasqName      = "ip-masq-agent"
	IPMasqKey       = "config"
)

// Snapshot is what Read found.
type Snapshot struct {
	// Context is the kubeconfig context read ("in-cluster" for the pod's
	// service account).
	Context string
	// Objects are the decoded, validated objects, kind by kind, sorted by
	// namespace/name within a kind.
	Objects []sim.Object
	// Counts is how many objects of each kind were read (every kind of
	// Kinds has an entry).
	Counts map[string]int
	// ControlPlane is the istiod used for the mesh config; nil if none
	// was found.
	ControlPlane *ControlPlane
	// MeshConfig is the `mesh` key of the control plane's ConfigMap
	// ("" when there is none: Istio's defaults apply); MeshConfigSource
	// names it ("istio-system/istio-1-31").
	MeshConfig       string
	MeshConfigSource string
	// IPMasqConfig is the ip-masq-agent ConfigMap's `config` key;
	// IPMasqFound says whether the ConfigMap exists (without it the agent
	// runs on its defaults).
	IPMasqConfig string
	IPMasqFound  bool
	// Elapsed is the time the read took.
	Elapsed time.Duration
}

// ControlPlane describes the istiod whose mesh config is used.
type ControlPlane struct {
	Namespace string
	Name      string
	// Revision is the istio.io/rev label ("default" when absent).
	Revision string
	// Image is istiod's container image; Version the Istio version from
	// its tag or, failing that, from the app.kubernetes.io/version or
	// operator.istio.io/version label ("" when unknown).
	Image   string
	Version string
}

// MeshConfigMapName is the ConfigMap holding a revision's mesh config.
func MeshConfigMapName(revision string) string {
	if revision == "" || revision == "default" {
		return "istio"
	}
	return "istio-" + revision
}

// Minor returns "1.24" from "1.24.2", "1.24.2-distroless" or "1.24";
// "" when v does not start with MAJOR.MINOR.
func Minor(v string) string {
	v = strings.TrimPrefix(v, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	if parts[0] == "" || minor == "" || strings.Trim(parts[0], "0123456789") != "" {
		return ""
	}
	return parts[0] + "." + minor
}

type config struct {
	kubeconfig string
	context    string
	revision   string
	pageSize   int64
	timeout    time.Duration
	rest       *rest.Config
}

// Option configures Read.
type Option func(*config) error

// WithKubeconfig reads the cluster of this kubeconfig file (default: the
// client-go rules: $KUBECONFIG, ~/.kube/config, then in-cluster).
func WithKubeconfig(path string) Option {
	return func(c *config) error { c.kubeconfig = path; return nil }
}

// WithContext selects the kubeconfig context (default: current-context).
func WithContext(name string) Option {
	return func(c *config) error { c.context = name; return nil }
}

// WithRevision picks the istiod of this istio.io/rev revision when the
// cluster runs several ("default" for an install without a revision).
func WithRevision(rev string) Option {
	return func(c *config) error { c.revision = rev; return nil }
}

// WithPageSize sets how many objects one list call returns (default 500).
func WithPageSize(n int64) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("page size must be at least 1, got %d", n)
		}
		c.pageSize = n
		return nil
	}
}

// WithRequestTimeout bounds each API request (default 30s).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("request timeout must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRESTConfig uses this client configuration instead of loading a
// kubeconfig; name is the context name used in pseudo file names.
func WithRESTConfig(rc *rest.Config, name string) Option {
	return func(c *config) error { c.rest, c.context = rest.CopyConfig(rc), name; return nil }
}

// Read reads the simulation's input from the cluster. Errors name what
// could not be read; an object that fails Istio's validation is a
// *check.InputError whose File is its pseudo file name.
func Read(ctx context.Context, opts ...Option) (*Snapshot, error) {
	start := time.Now()
	c := &config{pageSize: 500, timeout: 30 * time.Second}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("read cluster: %w", err)
		}
	}
	rc, name, err := c.restConfig()
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	rc.Timeout = c.timeout
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("read cluster %s: %w", name, err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("read cluster %s: %w", name, err)
	}
	s := &Snapshot{Context: name, Counts: map[string]int{}}
	for _, k := range Kinds {
		objs, err := c.readKind(ctx, dyn, name, k)
		if err != nil {
			return nil, err
		}
		s.Counts[k.Kind] = len(objs)
		s.Objects = append(s.Objects, objs...)
	}
	if err := c.readControlPlane(ctx, kc, s); err != nil {
		return nil, fmt.Errorf("read cluster %s: %w", name, err)
	}
	cm, err := kc.CoreV1().ConfigMaps(IPMasqNamespace).Get(ctx, IPMasqName, metav1.GetOptions{})
	switch {
	case err == nil:
		s.IPMasqFound, s.IPMasqConfig = true, cm.Data[IPMasqKey]
	case apierrors.IsNotFound(err):
	default:
		return nil, fmt.Errorf("read cluster %s: get ConfigMap %s/%s: %w", name, IPMasqNamespace, IPMasqName, err)
	}
	s.Elapsed = time.Since(start)
	return s, nil
}

func (c *config) restConfig() (*rest.Config, string, error) {
	if c.rest != nil {
		return c.rest, c.context, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.kubeconfig != "" {
		rules.ExplicitPath = c.kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	name := c.context
	if name == "" {
		if raw, err := cc.RawConfig(); err == nil {
			name = raw.CurrentContext
		}
	}
	if name == "" {
		name = "in-cluster"
	}
	return rc, name, nil
}

// readKind lists every object of k in all namespaces, page by page, and
// decodes each through sim.ParseYAML.
func (c *config) readKind(ctx context.Context, dyn dynamic.Interface, ctxName string, k Kind) ([]sim.Object, error) {
	var items []unstructured.Unstructured
	var lastErr error
	found := false
	for _, v := range k.Versions {
		gvr := schema.GroupVersionResource{Group: k.Group, Version: v, Resource: k.Resource}
		items = items[:0]
		cont := ""
		lastErr = nil
		for {
			l, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: c.pageSize, Continue: cont})
			if err != nil {
				lastErr = err
				break
			}
			items = append(items, l.Items...)
			cont = l.GetContinue()
			if cont == "" {
				found = true
				break
			}
		}
		if found || !apierrors.IsNotFound(lastErr) {
			break
		}
	}
	if !found {
		if apierrors.IsNotFound(lastErr) && k.Group != "" {
			// The CRD is not installed: the cluster has none of them.
			return nil, nil
		}
		return nil, fmt.Errorf("read cluster %s: list %s: %w", ctxName, k.Resource, lastErr)
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].GetNamespace() != items[j].GetNamespace() {
			return items[i].GetNamespace() < items[j].GetNamespace()
		}
		return items[i].GetName() < items[j].GetName()
	})
	out := make([]sim.Object, 0, len(items))
	for i := range items {
		u := &items[i]
		u.SetKind(k.Kind) // list items carry it, but be explicit
		objs, err := Decode(ctxName, u)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// PseudoFile names an object read from a cluster in errors and traces:
// "cluster:<context>/<Kind>/<namespace>/<name>".
func PseudoFile(ctxName, kind, namespace, name string) string {
	return fmt.Sprintf("cluster:%s/%s/%s/%s", ctxName, kind, namespace, name)
}

// Decode turns one object as the API server returns it into sim.Objects
// through sim.ParseYAML (JSON is YAML), the path files take. Fields the
// server adds that a file would not carry and that do not change
// generated config are dropped: managedFields, the last-applied
// annotation, status. creationTimestamp is kept: Istio orders
// conflicting ServiceEntries by it.
func Decode(ctxName string, u *unstructured.Unstructured) ([]sim.Object, error) {
	obj := u.DeepCopy()
	unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(obj.Object, "status")
	if a := obj.GetAnnotations(); a != nil {
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		if len(a) == 0 {
			a = nil
		}
		obj.SetAnnotations(a)
	}
	js, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	objs, err := sim.ParseYAML(PseudoFile(ctxName, obj.GetKind(), obj.GetNamespace(), obj.GetName()), js, obj.GetNamespace())
	for i := range objs {
		objs[i].Doc = js
	}
	return objs, err
}

// readControlPlane finds istiod and its mesh config.
func (c *config) readControlPlane(ctx context.Context, kc kubernetes.Interface, s *Snapshot) error {
	var deps []appsv1.Deployment
	cont := ""
	for {
		l, err := kc.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod", Limit: c.pageSize, Continue: cont})
		if err != nil {
			return fmt.Errorf("list istiod Deployments (label app=istiod): %w", err)
		}
		deps = append(deps, l.Items...)
		if cont = l.Continue; cont == "" {
			break
		}
	}
	byRev := map[string]*appsv1.Deployment{}
	var revs []string
	for i := range deps {
		rev := deps[i].Labels["istio.io/rev"]
		if rev == "" {
			rev = "default"
		}
		if _, dup := byRev[rev]; !dup {
			revs = append(revs, rev)
		}
		byRev[rev] = &deps[i]
	}
	sort.Strings(revs)
	var d *appsv1.Deployment
	switch {
	case c.revision != "":
		d = byRev[c.revision]
		if d == nil {
			if len(revs) == 0 {
				return fmt.Errorf("--revision %s: no istiod found (no Deployment labelled app=istiod)", c.revision)
			}
			return fmt.Errorf("--revision %s: no istiod of that revision; the cluster runs %s", c.revision, strings.Join(revs, ", "))
		}
	case len(revs) == 1:
		d = byRev[revs[0]]
	case len(revs) > 1:
		return fmt.Errorf("the cluster runs several istiod revisions (%s): pick one with --revision", strings.Join(revs, ", "))
	default:
		return nil // no control plane: Istio's defaults
	}
	cp := &ControlPlane{Namespace: d.Namespace, Name: d.Name, Revision: d.Labels["istio.io/rev"]}
	if cp.Revision == "" {
		cp.Revision = "default"
	}
	cp.Image, cp.Version = istiodVersion(d)
	s.ControlPlane = cp
	cmName := MeshConfigMapName(cp.Revision)
	cm, err := kc.CoreV1().ConfigMaps(d.Namespace).Get(ctx, cmName, metav1.GetOptions{})
	switch {
	case err == nil:
		s.MeshConfig, s.MeshConfigSource = cm.Data["mesh"], d.Namespace+"/"+cmName
	case apierrors.IsNotFound(err):
	default:
		return fmt.Errorf("get mesh config ConfigMap %s/%s: %w", d.Namespace, cmName, err)
	}
	return nil
}

// istiodVersion returns istiod's image and the Istio version from its tag
// (digest and -distroless/-debug suffixes removed), else from labels.
func istiodVersion(d *appsv1.Deployment) (image, version string) {
	var c *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		ct := &d.Spec.Template.Spec.Containers[i]
		if ct.Name == "discovery" || c == nil {
			c = ct
		}
	}
	if c != nil {
		image = c.Image
		ref := image
		if i := strings.Index(ref, "@"); i >= 0 {
			ref = ref[:i]
		}
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			tag := ref[i+1:]
			for _, suf := range []string{"-distroless", "-debug"} {
				tag = strings.TrimSuffix(tag, suf)
			}
			if Minor(tag) != "" {
				return image, tag
			}
		}
	}
	for _, l := range []string{"app.kubernetes.io/version", "operator.istio.io/version"} {
		if v := d.Labels[l]; Minor(v) != "" {
			return image, v
		}
	}
	return image, ""
}

// Merge returns the cluster's objects plus files, a file object replacing
// the cluster object of the same kind/namespace/name (in its place in the
// order). replaced lists the IDs ("Kind ns/name") the files replaced.
func Merge(cluster, files []sim.Object) (merged []sim.Object, replaced []string) {
	fromFile := map[string]sim.Object{}
	for _, o := range files {
		if !o.Ignored {
			fromFile[o.ID()] = o
		}
	}
	used := map[string]bool{}
	for _, o := range cluster {
		if f, ok := fromFile[o.ID()]; ok {
			merged = append(merged, f)
			replaced = append(replaced, o.ID())
			used[o.ID()] = true
			continue
		}
		merged = append(merged, o)
	}
	for _, o := range files {
		if o.Ignored || !used[o.ID()] {
			merged = append(merged, o)
		}
	}
	return merged, replaced
}
