package pushed

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/suites/check"
)

// SourcePodFunc names the probe pod standing in for a meshed source (a
// user expectation's `source: {namespace, labels}`) and renders its
// manifest, for the tier to create when the traffic tier did not (package
// live: SourcePodName, SourcePodManifest). selector selects exactly that
// pod in source.Namespace.
type SourcePodFunc func(source check.Source) (name, selector, manifest string, err error)

// WithSourcePods gives every meshed source other than the client pod an
// identity of its own: the tier finds (or creates) the source's probe pod
// — its namespace, exactly its labels, its proxy metadata — and opens an
// xDS stream as that workload, so istiod pushes the config it pushes to
// the real workload (namespace and workloadSelector Sidecars, exportTo).
// Without it such sources are Inconclusive.
func WithSourcePods(f SourcePodFunc) Option { return func(d *Driver) { d.sourcePod = f } }

// isClient reports whether a meshed source is the client pod the tier
// watches by default (the built-in suites' source): in the checks'
// namespace with no labels or exactly app=client, and no proxy metadata.
func (d *Driver) isClient(s check.Source) bool {
	if s.Namespace != "" && s.Namespace != d.namespace {
		return false
	}
	if len(s.ProxyMetadata) > 0 {
		return false
	}
	return len(s.Labels) == 0 || (len(s.Labels) == 1 && s.Labels["app"] == ClientPod)
}

// sourceWatch returns the xDS stream identifying as source s, opening it
// (and waiting for its first config) on first use; a failure is
// remembered.
func (d *Driver) sourceWatch(ctx context.Context, s check.Source) (*Watch, error) {
	if d.sources == nil {
		d.sources, d.sourceErrs = map[string]*Watch{}, map[string]error{}
	}
	key := s.Key()
	if w, ok := d.sources[key]; ok {
		return w, nil
	}
	if err, ok := d.sourceErrs[key]; ok {
		return nil, err
	}
	w, err := d.openSource(ctx, s)
	if err != nil {
		if ctx.Err() == nil {
			d.sourceErrs[key] = err
		}
		return nil, err
	}
	d.sources[key] = w
	return w, nil
}

func (d *Driver) openSource(ctx context.Context, s check.Source) (*Watch, error) {
	ctx, cancel := context.WithTimeout(ctx, d.to.Connect)
	defer cancel()
	if d.identify == nil {
		return nil, fmt.Errorf("source %s: no way to find its workload", s)
	}
	id, err := d.identify(ctx, s)
	if err != nil {
		return nil, err
	}
	id.ProxyMetadata = s.ProxyMetadata
	w, err := d.dial(context.WithoutCancel(ctx), *id)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := w.Wait(ctx, "first config", func(Snapshot) bool { return true }); err != nil {
		w.Close()
		return nil, err
	}
	d.log.Info("pushed config received", "workload", id.String(), "source", s.String(), "elapsed", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// sourceIdentity finds the probe pod of s (creating it when the traffic
// tier did not: it then only needs its IP, labels and injection, which it
// gets without a running sidecar) and returns it as a sidecar identity.
func (d *Driver) sourceIdentity(ctx context.Context, s check.Source) (*Identity, error) {
	if d.sourcePod == nil || d.cl == nil {
		return nil, fmt.Errorf("source %s: the tier was not given the source probe pods (WithSourcePods)", s)
	}
	name, selector, manifest, err := d.sourcePod(s)
	if err != nil {
		return nil, err
	}
	list, err := d.cl.Client().CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("find the probe pod of %s: %w", s, err)
	}
	if len(list.Items) == 0 {
		objs, err := d.cl.Apply(ctx, s.Namespace, manifest)
		d.cleanups = append(d.cleanups, func(ctx context.Context) error { return d.cl.Delete(ctx, objs) })
		if err != nil {
			return nil, fmt.Errorf("create the probe pod %s/%s of %s (through Istio's injection webhook): %w", s.Namespace, name, s, err)
		}
	}
	p, err := d.podWithIP(ctx, s.Namespace, selector)
	if err != nil {
		return nil, err
	}
	return &Identity{Namespace: p.Namespace, Pod: p.Name, IP: p.Status.PodIP, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName}, nil
}
