package clusters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshconform/meshconform/clusters/internal/podstatus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// NotReadyError says the environment cannot run a check: a component
// did not become ready, with the precise reason (which pod, container and
// image, and the registry's message). Checks that need the component
// report it as an environment error, never as a pass or a policy failure.
type NotReadyError struct {
	// Reason names what is not ready and why.
	Reason string
}

func (e *NotReadyError) Error() string { return "environment not ready: " + e.Reason }

// IsNotReady reports whether err is (or wraps) a *NotReadyError.
func IsNotReady(err error) bool {
	var nre *NotReadyError
	return errors.As(err, &nre)
}

// WaitPods waits until the pods matching selector in namespace are all
// ready (at least one), within timeout. It returns a *NotReadyError as soon
// as a problem (image pull failure, crash loop, unschedulable, pod creation
// rejected by a webhook) has persisted for Timeouts.ImagePullGrace, or when
// timeout passes; what names the workload in the reason.
func (c *Cluster) WaitPods(ctx context.Context, namespace, selector, what string, timeout time.Duration) error {
	return WaitPodsReady(ctx, c.client, namespace, selector, what, PodWait{Timeout: timeout, Poll: c.cfg.Timeouts.Poll, Grace: c.cfg.Timeouts.ImagePullGrace})
}

// PodWait bounds WaitPodsReady.
type PodWait struct {
	// Timeout bounds the whole wait.
	Timeout time.Duration
	// Poll is the interval between observations.
	Poll time.Duration
	// Grace is how long a problem may persist before the wait gives up.
	Grace time.Duration
}

// WaitPodsReady is (*Cluster).WaitPods for any clientset.
func WaitPodsReady(ctx context.Context, client kubernetes.Interface, namespace, selector, what string, w PodWait) error {
	ctxW, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	tr := &podstatus.Tracker{Grace: w.Grace}
	var last, stuck []podstatus.Problem
	var pods int
	err := wait.PollUntilContextCancel(ctxW, w.Poll, true, func(ctx context.Context) (bool, error) {
		problems, n, err := podstatus.ForSelector(ctx, client, namespace, selector)
		if err != nil {
			return false, err
		}
		pods, last = n, problems
		if n > 0 && len(problems) == 0 {
			return true, nil
		}
		stuck = tr.Observe(problems)
		return len(stuck) > 0, nil
	})
	switch {
	case len(stuck) > 0:
		return &NotReadyError{Reason: what + ": " + podstatus.Join(stuck)}
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("wait for %s: %w", what, ctx.Err())
	case len(last) > 0:
		return &NotReadyError{Reason: fmt.Sprintf("%s not ready after %v: %s", what, w.Timeout, podstatus.Join(last))}
	case pods == 0 && wait.Interrupted(err):
		return &NotReadyError{Reason: fmt.Sprintf("%s: no pod matching %s in namespace %s after %v", what, selector, namespace, w.Timeout)}
	}
	return fmt.Errorf("wait for %s: %w", what, err)
}

// rolloutStatus reads a workload: whether its rollout is complete, a
// one-line state for messages, and its pod selector.
type rolloutStatus func(ctx context.Context) (done bool, state string, sel *metav1.LabelSelector, err error)

// waitRollout polls status until the rollout completes, its pods are stuck
// (reported as a *NotReadyError with the reason) or the timeout expires.
func (c *Cluster) waitRollout(ctx context.Context, what, namespace string, status rolloutStatus) error {
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Rollout)
	defer cancel()
	tr := &podstatus.Tracker{Grace: c.cfg.Timeouts.ImagePullGrace}
	var stuck []podstatus.Problem
	var state string
	err := wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		done, st, selector, err := status(ctx)
		state = st
		if err != nil || done {
			return done, err
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return false, err
		}
		problems, _, err := podstatus.ForSelector(ctx, c.client, namespace, sel.String())
		if err != nil {
			return false, err
		}
		stuck = tr.Observe(problems)
		return len(stuck) > 0, nil
	})
	return rolloutResult(ctx, what, state, stuck, err, c.cfg.Timeouts.Rollout)
}

// waitDaemonSet waits for a DaemonSet rollout (all desired pods updated
// and available), reporting pod problems as a *NotReadyError.
func (c *Cluster) waitDaemonSet(ctx context.Context, namespace, name string) error {
	return c.waitRollout(ctx, fmt.Sprintf("daemonset %s/%s", namespace, name), namespace,
		func(ctx context.Context) (bool, string, *metav1.LabelSelector, error) {
			ds, err := c.client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", nil, err
			}
			st := ds.Status
			state := fmt.Sprintf("%d desired, %d updated, %d available", st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberAvailable)
			done := st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
				st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberAvailable == st.DesiredNumberScheduled && st.NumberUnavailable == 0
			return done, state, ds.Spec.Selector, nil
		})
}

// waitDeployment waits like `kubectl rollout status deployment`.
func (c *Cluster) waitDeployment(ctx context.Context, namespace, name string) error {
	return c.waitRollout(ctx, fmt.Sprintf("deployment %s/%s", namespace, name), namespace,
		func(ctx context.Context) (bool, string, *metav1.LabelSelector, error) {
			d, err := c.client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", nil, err
			}
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			st := d.Status
			state := fmt.Sprintf("%d wanted, %d updated, %d available, %d total", want, st.UpdatedReplicas, st.AvailableReplicas, st.Replicas)
			done := st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
			return done, state, d.Spec.Selector, nil
		})
}

func rolloutResult(ctx context.Context, what, state string, stuck []podstatus.Problem, err error, timeout time.Duration) error {
	switch {
	case len(stuck) > 0:
		return &NotReadyError{Reason: what + ": " + podstatus.Join(stuck)}
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("wait for %s: %w", what, ctx.Err())
	case apierrors.IsNotFound(err):
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return &NotReadyError{Reason: fmt.Sprintf("%s not rolled out after %v (%s)", what, timeout, state)}
}

// restartDeployment triggers a rolling restart (what `kubectl rollout
// restart` does) and waits for it.
func (c *Cluster) restartDeployment(ctx context.Context, namespace, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Spec.Template.Annotations == nil {
			d.Spec.Template.Annotations = map[string]string{}
		}
		d.Spec.Template.Annotations["meshconform.dev/restartedAt"] = time.Now().UTC().Format(time.RFC3339Nano)
		_, err = c.client.AppsV1().Deployments(namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("restart deployment %s/%s: %w", namespace, name, err)
	}
	return c.waitDeployment(ctx, namespace, name)
}

// podstatusTracker checks, poll after poll, whether the pods of a
// component have a problem that persisted for grace.
type podstatusTracker struct {
	grace time.Duration
	t     *podstatus.Tracker
}

func (p *podstatusTracker) check(ctx context.Context, c *Cluster, namespace, selector, what string) error {
	if p.t == nil {
		p.t = &podstatus.Tracker{Grace: p.grace}
	}
	problems, _, err := podstatus.ForSelector(ctx, c.client, namespace, selector)
	if err != nil {
		return nil
	}
	if stuck := p.t.Observe(problems); len(stuck) > 0 {
		return &NotReadyError{Reason: what + ": " + podstatus.Join(stuck)}
	}
	return nil
}
