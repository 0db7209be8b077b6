package istio

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/clusters"
)

// IstiodReadySince returns when istiod became Ready (the latest Ready
// condition transition of its pods, second resolution as Kubernetes keeps
// it) and one Ready pod's name. It returns a *NotReadyError when no istiod
// pod is Ready.
func (m *Mesh) IstiodReadySince(ctx context.Context) (since time.Time, pod string, err error) {
	pods, err := m.cl.Client().CoreV1().Pods(m.istiodNamespace()).List(ctx, metav1.ListOptions{LabelSelector: m.istiodSelector()})
	if err != nil {
		return time.Time{}, "", fmt.Errorf("istiod readiness: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return c.LastTransitionTime.Time, p.Name, nil
			}
		}
	}
	return time.Time{}, "", &NotReadyError{Reason: fmt.Sprintf("istiod: no Ready pod matching %s in %s", m.istiodSelector(), m.istiodNamespace())}
}

// Cluster is the cluster the mesh runs in.
func (m *Mesh) Cluster() *clusters.Cluster { return m.cl }

// istiodNamespace is where istiod runs: Namespace, or for Attach the found
// Deployment's namespace.
func (m *Mesh) istiodNamespace() string {
	if m.istiodNS != "" {
		return m.istiodNS
	}
	return Namespace
}

// istiodSelector selects istiod's pods: app=istiod, or for Attach the found
// Deployment's own selector (a revision's, e.g. app=istiod,istio.io/rev=1-31).
func (m *Mesh) istiodSelector() string {
	if m.istiodSel != "" {
		return m.istiodSel
	}
	return istiodSelector
}

// IstiodNamespace is the namespace of istiod's pods (for a port-forward).
func (m *Mesh) IstiodNamespace() string { return m.istiodNamespace() }
