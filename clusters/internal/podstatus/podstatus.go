package podstatus

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Kind classifies a problem.
type Kind string

// Problem kinds.
const (
	ImagePull   Kind = "ImagePull"   // the image cannot be pulled
	Config      Kind = "Config"      // the container cannot be created from its spec
	Crash       Kind = "Crash"       // the container keeps exiting
	Unscheduled Kind = "Unscheduled" // no node accepts the pod
	CreateFail  Kind = "CreateFail"  // the controller cannot create the pod at all
	NotReady    Kind = "NotReady"    // running or pending, not (yet) ready, no known cause
	Other       Kind = "Other"       // a caller-defined reason (Reason says what)
)

// Problem is one reason a pod (or the pod a controller wants) is not ready.
type Problem struct {
	// Object is "namespace/name" of the pod, or of the ReplicaSet for CreateFail.
	Object string
	// Container is the container name, if the problem is a container's.
	Container string
	// Image is the container's image, if known.
	Image string
	// Kind classifies the problem.
	Kind Kind
	// Reason is the Kubernetes reason (ErrImagePull, ImagePullBackOff,
	// CrashLoopBackOff, Unschedulable, FailedCreate, ...).
	Reason string
	// Message is the detail from the status or the latest matching event.
	Message string
	// Permanent problems will not resolve by waiting (InvalidImageName,
	// ErrImageNeverPull, CreateContainerConfigError).
	Permanent bool
}

// Key identifies a problem across polls (same object, container and kind).
func (p Problem) Key() string { return p.Object + "|" + p.Container + "|" + string(p.Kind) }

func (p Problem) String() string {
	var b strings.Builder
	switch p.Kind {
	case CreateFail:
		fmt.Fprintf(&b, "%s cannot create pods (%s)", p.Object, p.Reason)
	default:
		fmt.Fprintf(&b, "pod %s", p.Object)
		if p.Container != "" {
			fmt.Fprintf(&b, " container %s", p.Container)
		}
		switch p.Kind {
		case ImagePull:
			fmt.Fprintf(&b, ": image %s cannot be pulled (%s)", p.Image, p.Reason)
		case Crash:
			fmt.Fprintf(&b, ": keeps crashing (%s)", p.Reason)
		case Config:
			fmt.Fprintf(&b, ": cannot be created (%s)", p.Reason)
		case Unscheduled:
			fmt.Fprintf(&b, ": cannot be scheduled (%s)", p.Reason)
		case Other:
			fmt.Fprintf(&b, ": %s", p.Reason)
		default:
			fmt.Fprintf(&b, ": not ready (%s)", p.Reason)
		}
	}
	if p.Message != "" {
		b.WriteString(": " + oneLine(p.Message))
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 600
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

var imagePullReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true, "RegistryUnavailable": true}

// ForPod returns the problems of one pod, init containers first. A pod that
// is Ready or Succeeded has none. A pod being deleted has none either: its
// replacement is what matters.
func ForPod(pod *corev1.Pod) []Problem {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded {
		return nil
	}
	obj := pod.Namespace + "/" + pod.Name
	images := map[string]string{}
	for _, c := range pod.Spec.InitContainers {
		images[c.Name] = c.Image
	}
	for _, c := range pod.Spec.Containers {
		images[c.Name] = c.Image
	}
	var out []Problem
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
			out = append(out, Problem{Object: obj, Kind: Unscheduled, Reason: nonEmpty(cond.Reason, "Unschedulable"), Message: cond.Message})
		}
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		image := images[cs.Name]
		if image == "" {
			image = cs.Image
		}
		p := Problem{Object: obj, Container: cs.Name, Image: image}
		switch {
		case cs.State.Waiting != nil && imagePullReasons[cs.State.Waiting.Reason]:
			p.Kind, p.Reason, p.Message = ImagePull, cs.State.Waiting.Reason, cs.State.Waiting.Message
			p.Permanent = cs.State.Waiting.Reason == "InvalidImageName" || cs.State.Waiting.Reason == "ErrImageNeverPull"
		case cs.State.Waiting != nil && (cs.State.Waiting.Reason == "CreateContainerConfigError" || cs.State.Waiting.Reason == "CreateContainerError" || cs.State.Waiting.Reason == "RunContainerError"):
			p.Kind, p.Reason, p.Message = Config, cs.State.Waiting.Reason, cs.State.Waiting.Message
			p.Permanent = cs.State.Waiting.Reason == "CreateContainerConfigError"
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff":
			p.Kind, p.Reason = Crash, "CrashLoopBackOff"
			p.Message = lastTermination(cs)
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0 && cs.RestartCount > 0:
			p.Kind, p.Reason = Crash, nonEmpty(cs.State.Terminated.Reason, "Error")
			p.Message = fmt.Sprintf("exit code %d %s", cs.State.Terminated.ExitCode, cs.State.Terminated.Message)
		default:
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 && !IsReady(pod) {
		reason, msg := string(pod.Status.Phase), ""
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status != corev1.ConditionTrue {
				reason, msg = nonEmpty(cond.Reason, reason), cond.Message
			}
		}
		out = append(out, Problem{Object: obj, Kind: NotReady, Reason: nonEmpty(reason, "Pending"), Message: msg})
	}
	return out
}

func lastTermination(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return fmt.Sprintf("restarted %d times", cs.RestartCount)
	}
	s := fmt.Sprintf("restarted %d times, last exit code %d", cs.RestartCount, t.ExitCode)
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// IsReady reports whether the pod's Ready condition is true.
func IsReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ContainerReady reports whether the named container (regular or a native
// sidecar init container) exists in the pod and is ready.
func ContainerReady(pod *corev1.Pod, name string) (exists, ready bool) {
	for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if cs.Name == name {
			return true, cs.Ready
		}
	}
	return HasContainer(pod, name), false
}

// HasContainer reports whether the pod spec has a container (regular or
// init, which is how native sidecars are declared) with that name.
func HasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Enrich adds the latest relevant Warning event of each pod to problems
// whose status says too little: an image pull whose status lacks the
// registry's error, and a pod not ready for a reason only events tell
// (FailedMount of a ConfigMap that a component that is down would create,
// a failing probe).
func Enrich(ctx context.Context, client kubernetes.Interface, problems []Problem) {
	cache := map[string][]corev1.Event{}
	for i := range problems {
		p := &problems[i]
		switch {
		case p.Kind == ImagePull && !strings.Contains(p.Message, "failed to pull") && !strings.Contains(p.Message, "ErrImagePull:"):
		case p.Kind == NotReady:
		default:
			continue
		}
		ns, name, _ := strings.Cut(p.Object, "/")
		evs, ok := cache[p.Object]
		if !ok {
			evs = Events(ctx, client, ns, "Pod", name)
			cache[p.Object] = evs
		}
		for _, ev := range evs {
			if ev.Type != corev1.EventTypeWarning {
				continue
			}
			if p.Kind == ImagePull && (ev.Reason != "Failed" || !strings.Contains(ev.Message, p.Image)) {
				continue
			}
			extra := ev.Message
			if p.Kind == NotReady {
				extra = ev.Reason + ": " + ev.Message
			}
			p.Message = strings.TrimPrefix(strings.TrimSpace(p.Message+"; "+extra), "; ")
			break
		}
	}
}

// Events returns the events of one object, newest first.
func Events(ctx context.Context, client kubernetes.Interface, namespace, kind, name string) []corev1.Event {
	sel := fields.Set{"involvedObject.name": name, "involvedObject.kind": kind}.AsSelector().String()
	list, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil
	}
	evs := list.Items
	// The fake clientset ignores field selectors: filter again.
	out := evs[:0]
	for _, e := range evs {
		if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == kind {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(out[i]).After(eventTime(out[j])) })
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// ForSelector returns the problems of the pods in namespace matching
// selector. When no pod exists, it explains why from the ReplicaSets whose
// pod template matches (FailedCreate: e.g. an admission webhook rejected
// the pod). pods is the number of live pods found.
func ForSelector(ctx context.Context, client kubernetes.Interface, namespace, selector string) (problems []Problem, pods int, err error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, 0, fmt.Errorf("parse pod selector %q: %w", selector, err)
	}
	list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, 0, fmt.Errorf("list pods %s in %s: %w", selector, namespace, err)
	}
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		pods++
		problems = append(problems, ForPod(pod)...)
	}
	if pods == 0 {
		problems = append(problems, CreateFailures(ctx, client, namespace, sel)...)
	}
	Enrich(ctx, client, problems)
	return problems, pods, nil
}

// CreateFailures explains why controllers whose pod template matches sel
// have not created pods: the ReplicaSet's ReplicaFailure condition and its
// FailedCreate events (an admission webhook that cannot be reached, a quota).
func CreateFailures(ctx context.Context, client kubernetes.Interface, namespace string, sel labels.Selector) []Problem {
	rss, err := client.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []Problem
	for i := range rss.Items {
		rs := &rss.Items[i]
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas == 0 {
			continue
		}
		if !sel.Matches(labels.Set(rs.Spec.Template.Labels)) {
			continue
		}
		obj := rs.Namespace + "/" + rs.Name
		msg := ""
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
				msg = c.Message
			}
		}
		for _, ev := range Events(ctx, client, rs.Namespace, "ReplicaSet", rs.Name) {
			if ev.Reason == "FailedCreate" {
				msg = ev.Message
				break
			}
		}
		if msg != "" {
			out = append(out, Problem{Object: "replicaset " + obj, Kind: CreateFail, Reason: "FailedCreate", Message: msg, Permanent: false})
		}
	}
	return out
}

// Tracker remembers since when each problem has been observed, so a
// waiter can stop once a problem persisted for a grace period instead of
// waiting out its whole timeout. Transient problems (one failed pull that a
// retry fixes) disappear from a later poll and are forgotten.
type Tracker struct {
	// Grace is how long a non-permanent problem must persist.
	Grace time.Duration
	// Now is the clock (time.Now if nil); tests inject their own.
	Now   func() time.Time
	first map[string]time.Time
}

// Observe records the problems of one poll and returns those that are
// permanent or have lasted at least Grace. NotReady problems (no known
// cause) are never returned: only a timeout ends waiting for them.
func (t *Tracker) Observe(problems []Problem) []Problem {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if t.first == nil {
		t.first = map[string]time.Time{}
	}
	seen := map[string]bool{}
	var out []Problem
	ts := now()
	for _, p := range problems {
		k := p.Key()
		seen[k] = true
		if _, ok := t.first[k]; !ok {
			t.first[k] = ts
		}
		if p.Kind == NotReady {
			continue
		}
		if p.Permanent || ts.Sub(t.first[k]) >= t.Grace {
			out = append(out, p)
		}
	}
	for k := range t.first {
		if !seen[k] {
			delete(t.first, k)
		}
	}
	return out
}

// Join formats problems as one "; "-separated reason.
func Join(problems []Problem) string {
	s := make([]string, 0, len(problems))
	for _, p := range problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "; ")
}
