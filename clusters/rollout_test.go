package clusters

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestWaitRollout(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	one := int32(1)
	done := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: 1},
		Spec:   appsv1.DeploymentSpec{Replicas: &one, Selector: sel},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 1, AvailableReplicas: 1, Replicas: 1}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "ns", Generation: 2},
		Spec:   appsv1.DaemonSetSpec{Selector: sel},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1}}
	stuckPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/x:1"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "no such host"}}}}}}
	pending := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "ns", Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: sel}}

	c, err := ForClient(fake.NewClientset(done, ds, stuckPod, pending), Reused,
		WithTimeouts(Timeouts{Rollout: time.Minute, Poll: time.Millisecond, ImagePullGrace: time.Nanosecond}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.waitDeployment(ctx, "ns", "d"); err != nil {
		t.Errorf("complete deployment: %v", err)
	}
	if err := c.waitDaemonSet(ctx, "ns", "ds"); err != nil {
		t.Errorf("complete daemonset: %v", err)
	}
	err = c.waitDeployment(ctx, "ns", "pending")
	if !IsNotReady(err) || !strings.Contains(err.Error(), "deployment ns/pending") || !strings.Contains(err.Error(), "example.invalid/x:1") {
		t.Errorf("stuck deployment: %v", err)
	}
}
