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
	pods, err := m.cl.Client().CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: istiodSelector})
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
	return time.Time{}, "", &NotReadyError{Reason: fmt.Sprintf("istiod: no Ready pod matching %s in %s", istiodSelector, Namespace)}
}

// Cluster is the cluster the mesh runs in.
func (m *Mesh) Cluster() *clusters.Cluster { return m.cl }
