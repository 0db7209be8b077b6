package podstatus

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
)

func pullingPod(reason, msg string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod-abc", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"},
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "discovery", Image: "docker.io/istio/pilot:1.31.0",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
			}},
		},
	}
}

func TestForPodImagePull(t *testing.T) {
	p := ForPod(pullingPod("ImagePullBackOff", `Back-off pulling image "docker.io/istio/pilot:1.31.0"`))
	if len(p) != 1 {
		t.Fatalf("want 1 problem, got %v", p)
	}
	got := p[0].String()
	for _, want := range []string{"istio-system/istiod-abc", "container discovery", "docker.io/istio/pilot:1.31.0", "ImagePullBackOff"} {
		if !strings.Contains(got, want) {
			t.Errorf("reason %q lacks %q", got, want)
		}
	}
	if p[0].Permanent {
		t.Error("ImagePullBackOff must not be permanent (a retry may succeed)")
	}
	if q := ForPod(pullingPod("InvalidImageName", "bad")); len(q) != 1 || !q[0].Permanent {
		t.Errorf("InvalidImageName must be permanent: %v", q)
	}
}

func TestForPodOtherProblems(t *testing.T) {
	crash := pullingPod("CrashLoopBackOff", "")
	crash.Status.ContainerStatuses[0].RestartCount = 4
	crash.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "bad flag"}
	if p := ForPod(crash); len(p) != 1 || p[0].Kind != Crash || !strings.Contains(p[0].String(), "exit code 2") {
		t.Errorf("crash loop: %v", p)
	}

	unsched := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n"}, Status: corev1.PodStatus{
		Phase:      corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."}},
	}}
	if p := ForPod(unsched); len(p) != 1 || p[0].Kind != Unscheduled || !strings.Contains(p[0].String(), "Insufficient cpu") {
		t.Errorf("unschedulable: %v", p)
	}

	ready := pullingPod("", "")
	ready.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	ready.Status.ContainerStatuses[0].Ready = true
	ready.Status.Conditions[1].Status = corev1.ConditionTrue
	if p := ForPod(ready); len(p) != 0 {
		t.Errorf("ready pod has problems: %v", p)
	}
	starting := pullingPod("ContainerCreating", "")
	if p := ForPod(starting); len(p) != 1 || p[0].Kind != NotReady {
		t.Errorf("starting pod: want one NotReady problem, got %v", p)
	}
}

func TestNativeSidecarContainer(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-proxy", RestartPolicy: &always}},
			Containers:     []corev1.Container{{Name: "app"}},
		},
		Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "istio-proxy", Ready: true}}},
	}
	if !HasContainer(pod, "istio-proxy") {
		t.Error("native sidecar (init container) not found")
	}
	if exists, ready := ContainerReady(pod, "istio-proxy"); !exists || !ready {
		t.Errorf("ContainerReady = %v, %v", exists, ready)
	}
}

func TestTrackerGrace(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := &Tracker{Grace: 20 * time.Second, Now: func() time.Time { return now }}
	p := ForPod(pullingPod("ErrImagePull", "x"))
	if got := tr.Observe(p); len(got) != 0 {
		t.Fatalf("reported at first sight: %v", got)
	}
	now = now.Add(19 * time.Second)
	if got := tr.Observe(p); len(got) != 0 {
		t.Fatalf("reported before grace: %v", got)
	}
	// The problem disappears once (a retry): the clock restarts.
	now = now.Add(time.Second)
	tr.Observe(nil)
	if got := tr.Observe(p); len(got) != 0 {
		t.Fatalf("reported after the problem went away and came back: %v", got)
	}
	now = now.Add(20 * time.Second)
	if got := tr.Observe(p); len(got) != 1 {
		t.Fatalf("not reported after grace: %v", got)
	}
	// NotReady without a cause is never reported (only a timeout ends it).
	nr := []Problem{{Object: "a/b", Kind: NotReady, Reason: "ContainersNotReady"}}
	tr.Observe(nr)
	now = now.Add(time.Hour)
	if got := tr.Observe(nr); len(got) != 0 {
		t.Fatalf("NotReady reported: %v", got)
	}
}

func TestForSelectorCreateFailure(t *testing.T) {
	one := int32(1)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "client-7d9", Namespace: "app"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "client", "pod-template-hash": "7d9"}},
		}},
	}
	other := rs.DeepCopy()
	other.Name = "server-1"
	other.Spec.Template.Labels = map[string]string{"app": "server"}
	webhookMsg := `Error creating: Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": no endpoints available for service "istiod"`
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e1", Namespace: "app"},
		InvolvedObject: corev1.ObjectReference{Kind: "ReplicaSet", Name: "client-7d9", Namespace: "app"},
		Reason:         "FailedCreate", Type: corev1.EventTypeWarning, Message: webhookMsg,
		LastTimestamp: metav1.Now(),
	}
	client := fake.NewClientset(rs, other, ev)
	problems, pods, err := ForSelector(context.Background(), client, "app", "app=client")
	if err != nil {
		t.Fatal(err)
	}
	if pods != 0 || len(problems) != 1 {
		t.Fatalf("want no pods and one problem, got %d pods, %v", pods, problems)
	}
	got := problems[0].String()
	for _, want := range []string{"replicaset app/client-7d9", "FailedCreate", "sidecar-injector.istio.io", "no endpoints available"} {
		if !strings.Contains(got, want) {
			t.Errorf("reason %q lacks %q", got, want)
		}
	}
	if _, _, err := ForSelector(context.Background(), client, "app", "app in (("); err == nil {
		t.Error("a bad selector must be an error")
	}
	if got := CreateFailures(context.Background(), client, "app", labels.SelectorFromSet(labels.Set{"app": "nothing"})); len(got) != 0 {
		t.Errorf("unrelated selector: %v", got)
	}
}

func TestEnrichAddsRegistryMessage(t *testing.T) {
	pod := pullingPod("ImagePullBackOff", `Back-off pulling image "docker.io/istio/pilot:1.31.0"`)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: "istio-system"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "istiod-abc", Namespace: "istio-system"},
		Reason:         "Failed", Type: corev1.EventTypeWarning,
		Message:       `Failed to pull image "docker.io/istio/pilot:1.31.0": dial tcp: lookup registry-1.docker.io: no such host`,
		LastTimestamp: metav1.Now(),
	}
	client := fake.NewClientset(pod, ev)
	problems, pods, err := ForSelector(context.Background(), client, "istio-system", "app=istiod")
	if err != nil || pods != 1 || len(problems) != 1 {
		t.Fatalf("ForSelector = %v, %d, %v", problems, pods, err)
	}
	if !strings.Contains(problems[0].Message, "no such host") {
		t.Errorf("message not enriched with the event: %q", problems[0].Message)
	}
}

func TestEnrichNotReadyWithEvent(t *testing.T) {
	pod := pullingPod("ContainerCreating", "")
	pod.Name = "gw"
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: "istio-system"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "gw", Namespace: "istio-system"},
		Reason:         "FailedMount", Type: corev1.EventTypeWarning,
		Message: `MountVolume.SetUp failed for volume "istio-ca-root-cert" : configmap "istio-ca-root-cert" not found`,
	}
	problems, _, err := ForSelector(context.Background(), fake.NewClientset(pod, ev), "istio-system", "app=istiod")
	if err != nil || len(problems) != 1 {
		t.Fatalf("%v %v", problems, err)
	}
	if got := problems[0].String(); !strings.Contains(got, "FailedMount") || !strings.Contains(got, "istio-ca-root-cert") {
		t.Errorf("not enriched: %s", got)
	}
}
