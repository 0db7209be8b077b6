package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// Object identifies one object the harness applied.
type Object struct {
	// GVK is the object's group, version and kind.
	GVK schema.GroupVersionKind
	// Resource is the API resource it was applied through.
	Resource schema.GroupVersionResource
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Name is the object's name.
	Name string
}

func (o Object) String() string {
	k := o.GVK.Kind
	if o.GVK.Group != "" {
		k += "." + o.GVK.Group
	}
	if o.Namespace == "" {
		return k + " " + o.Name
	}
	return k + " " + o.Namespace + "/" + o.Name
}

// DecodeYAML splits multi-document YAML (or JSON) into objects, skipping
// empty documents and expanding List kinds.
func DecodeYAML(text string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode document %d: %w", i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("decode document %d: %w", i+1, err)
			}
			for j := range l.Items {
				out = append(out, &l.Items[j])
			}
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("decode document %d: apiVersion, kind and metadata.name are required", i+1)
		}
		out = append(out, u)
	}
}

// Apply server-side applies multi-document YAML (field manager
// "meshconform", forced), labelling every object meshconform.dev/managed=true
// and meshconform.dev/run=<run id>. Namespaced objects without a namespace
// go to namespace. Kinds the API server does not serve yet (CRDs just
// installed) are retried with fresh discovery for up to Timeouts.Apply.
// Applied objects are remembered for Teardown; on error, applied holds what
// was applied before it.
func (c *Cluster) Apply(ctx context.Context, namespace string, yaml string) (applied []Object, err error) {
	objs, err := DecodeYAML(yaml)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return c.ApplyObjects(ctx, namespace, objs)
}

// ApplyAsWritten is Apply for the user's own objects (run --expectations
// -f): on an existing cluster their exportTo is left as written (the
// configuration under test), where the harness's own objects get
// exportTo ["."]. Like Apply it never takes over an object it did not
// create (see ApplyObjects).
func (c *Cluster) ApplyAsWritten(ctx context.Context, namespace string, yaml string) (applied []Object, err error) {
	objs, err := DecodeYAML(yaml)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return c.applyObjects(ctx, namespace, objs, true)
}

// ApplyObjects is Apply for decoded objects (which it labels in place). On
// an existing cluster an object of that kind, namespace and name that this
// run did not create is never changed: the apply stops with an error
// naming it (a forced server-side apply would take it over, and the run's
// cleanup would then delete it).
func (c *Cluster) ApplyObjects(ctx context.Context, namespace string, objs []*unstructured.Unstructured) (applied []Object, err error) {
	return c.applyObjects(ctx, namespace, objs, false)
}

func (c *Cluster) applyObjects(ctx context.Context, namespace string, objs []*unstructured.Unstructured, asWritten bool) (applied []Object, err error) {
	for _, u := range objs {
		o, err := c.applyOne(ctx, namespace, u, asWritten)
		if err != nil {
			return applied, fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		applied = append(applied, o)
		c.mu.Lock()
		if !slices.Contains(c.applied, o) {
			c.applied = append(c.applied, o)
		}
		c.mu.Unlock()
		c.log.Debug("applied", "object", o.String())
	}
	return applied, nil
}

func (c *Cluster) labels() map[string]string {
	return map[string]string{LabelManaged: "true", LabelRun: c.runID}
}

func (c *Cluster) applyOne(ctx context.Context, namespace string, u *unstructured.Unstructured, asWritten bool) (Object, error) {
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, c.labels())
	u.SetLabels(l)
	gvk := u.GroupVersionKind()
	if c.mode == Existing && !asWritten {
		exportOnlyHere(u)
	}
	var mapping *meta.RESTMapping
	ctxA, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Apply)
	defer cancel()
	err := wait.PollUntilContextCancel(ctxA, c.cfg.Timeouts.Poll, true, func(context.Context) (bool, error) {
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			mapping = m
			return true, nil
		}
		if meta.IsNoMatchError(err) {
			c.mapper.Reset()
			return false, nil
		}
		return false, err
	})
	if err != nil {
		return Object{}, fmt.Errorf("find API resource for %s: %w", gvk, err)
	}
	o := Object{GVK: gvk, Resource: mapping.Resource, Name: u.GetName()}
	var ri dynamic.ResourceInterface = c.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			if namespace == "" {
				return Object{}, errors.New("namespaced object without namespace: set metadata.namespace or pass a namespace")
			}
			u.SetNamespace(namespace)
		}
		o.Namespace = u.GetNamespace()
		ri = c.dyn.Resource(mapping.Resource).Namespace(o.Namespace)
	} else {
		u.SetNamespace("")
	}
	if c.mode == Existing {
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case err == nil && cur.GetLabels()[LabelRun] != c.runID:
			return Object{}, fmt.Errorf("%s already exists and was not created by this run: meshconform changes only what it creates "+
				"(give the file's objects other names or another namespace, or leave out -f to verify the deployed configuration)", o)
		case err != nil && !apierrors.IsNotFound(err):
			return Object{}, fmt.Errorf("check that %s is not someone else's: %w", o, err)
		}
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return Object{}, err
	}
	force := true
	// A webhook of a component still starting (e.g. Istio's validation)
	// can refuse for a moment: retry until Timeouts.Apply.
	var last error
	err = wait.PollUntilContextCancel(ctxA, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		_, last = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
		if last == nil {
			return true, nil
		}
		if apierrors.IsInternalError(last) || apierrors.IsServiceUnavailable(last) || apierrors.IsTimeout(last) || apierrors.IsTooManyRequests(last) {
			return false, nil
		}
		return false, last
	})
	if err != nil {
		if last != nil {
			return Object{}, last
		}
		return Object{}, err
	}
	return o, nil
}

// Delete deletes objects in reverse order (ignoring those already gone)
// and waits until they are gone, up to Timeouts.Apply. Deployments' pods
// are removed in the background.
func (c *Cluster) Delete(ctx context.Context, objs []Object) error {
	var errs []error
	bg := metav1.DeletePropagationBackground
	var pending []Object
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		err := c.resource(o).Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
		switch {
		case err == nil:
			pending = append(pending, o)
			c.log.Debug("deleted", "object", o.String())
		case apierrors.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("delete %s: %w", o, err))
			continue
		}
		c.forget(o)
	}
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Apply)
	defer cancel()
	for _, o := range pending {
		err := wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
			_, err := c.resource(o).Get(ctx, o.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("wait for %s to be deleted: %w", o, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) resource(o Object) dynamic.ResourceInterface {
	if o.Namespace == "" {
		return c.dyn.Resource(o.Resource)
	}
	return c.dyn.Resource(o.Resource).Namespace(o.Namespace)
}

func (c *Cluster) forget(o Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = slices.DeleteFunc(c.applied, func(x Object) bool { return x == o })
}

// EnsureNamespace creates namespace name with labels plus the managed and
// run labels, waiting first for a namespace of that name that is still
// terminating (from an earlier run) to be gone. A namespace this run
// creates is deleted at Teardown. An existing namespace that the harness
// manages gets the labels merged in; an existing namespace it does not
// manage is left untouched in existing-cluster mode (an error if it lacks
// the labels) and labelled otherwise.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	nsc := c.client.CoreV1().Namespaces()
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.NamespaceDelete)
	defer cancel()
	var existing *corev1.Namespace
	err := wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		ns, err := nsc.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			existing = nil
			return true, nil
		}
		if err != nil {
			return false, err
		}
		existing = ns
		return ns.DeletionTimestamp == nil, nil
	})
	if err != nil {
		return fmt.Errorf("ensure namespace %s: wait for the terminating namespace to be gone: %w", name, err)
	}
	if existing == nil {
		l := c.labels()
		maps.Copy(l, labels)
		_, err := nsc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil {
			return fmt.Errorf("ensure namespace %s: %w", name, err)
		}
		c.mu.Lock()
		c.namespaces = append(c.namespaces, name)
		c.mu.Unlock()
		c.log.Debug("created namespace", "namespace", name)
		return nil
	}
	missing := map[string]string{}
	for k, v := range labels {
		if existing.Labels[k] != v {
			missing[k] = v
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !isManaged(existing) && c.mode == Existing {
		return fmt.Errorf("ensure namespace %s: it exists, is not managed by meshconform and lacks labels %v: choose another namespace or label it yourself", name, missing)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": missing}})
	if _, err := nsc.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("ensure namespace %s: label: %w", name, err)
	}
	return nil
}

// deleteNamespaces deletes namespaces and waits until they are gone.
func (c *Cluster) deleteNamespaces(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if err := c.client.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", n, err))
		}
	}
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.NamespaceDelete)
	defer cancel()
	for _, n := range names {
		err := wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
			_, err := c.client.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("wait for namespace %s to be deleted: %w", n, err))
		}
	}
	c.mu.Lock()
	c.namespaces = slices.DeleteFunc(c.namespaces, func(x string) bool { return slices.Contains(names, x) })
	c.mu.Unlock()
	return errors.Join(errs...)
}

// CreateNamespace creates namespace name with labels (plus the managed and
// run labels) and annotations, and deletes it at Teardown. Unlike
// EnsureNamespace it never adopts a namespace: one that exists already
// (another run's, or anybody's) is an error naming it.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels, annotations map[string]string) error {
	l := c.labels()
	maps.Copy(l, labels)
	_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: annotations}},
		metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: it exists already (another run, or not meshconform's): choose another with --namespace", name)
	}
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	c.mu.Lock()
	c.namespaces = append(c.namespaces, name)
	c.mu.Unlock()
	c.log.Debug("created namespace", "namespace", name)
	return nil
}

// DeleteNamespaces deletes namespaces (e.g. a crashed run's, found by
// label) and waits until they are gone, bounded by
// Timeouts.NamespaceDelete.
func (c *Cluster) DeleteNamespaces(ctx context.Context, names []string) error {
	return c.deleteNamespaces(ctx, names)
}

// exportedKinds are Istio's kinds with spec.exportTo (default "*": every
// namespace of the mesh sees them).
var exportedKinds = map[string]bool{"ServiceEntry": true, "VirtualService": true, "DestinationRule": true}

// exportOnlyHere sets spec.exportTo: ["."] on an Istio object that does
// not say whom it is exported to, so that on an existing (shared) cluster
// the harness's objects reach only the proxies of their own namespace
// (https://istio.io/latest/docs/reference/config/networking/service-entry/#ServiceEntry-export_to).
func exportOnlyHere(u *unstructured.Unstructured) {
	gvk := u.GroupVersionKind()
	if gvk.Group != "networking.istio.io" || !exportedKinds[gvk.Kind] {
		return
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "exportTo"); found {
		return
	}
	_ = unstructured.SetNestedStringSlice(u.Object, []string{"."}, "spec", "exportTo")
}
