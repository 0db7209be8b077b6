package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/clusters"
)

// sweepAttached removes the namespaces of crashed attach runs, chosen by
// label only (clusters.LabelManaged=true and LabelMode=attach) and
// abandoned: their Lease (LeaseName) expired more than its own duration
// ago, or they have none and are older than twice Config.LeaseDuration (a
// run killed between creating its namespace and its Lease). On a remote cluster a
// process id means nothing, so the owner's liveness is the Lease. A
// namespace without the labels, or whose Lease is labelled
// LabelRetained=true (--retain), is never removed. Failures are warnings.
func (e *Env) sweepAttached(ctx context.Context) error {
	start := time.Now()
	victims, err := abandonedNamespaces(ctx, e.Cluster, time.Now(), e.cfg.LeaseDuration)
	if err == nil && len(victims) > 0 {
		err = e.Cluster.DeleteNamespaces(ctx, victims)
	}
	if err != nil {
		e.p.Phase(PhaseSweep, "warning: %v", err)
	}
	if ctx.Err() != nil {
		return fail(PhaseSweep, ctx.Err())
	}
	detail := "no leftovers"
	if len(victims) > 0 {
		detail = "removed namespaces of crashed runs: " + strings.Join(victims, ", ")
	}
	e.p.Phase(PhaseSweep, "%s (%.1fs)", detail, time.Since(start).Seconds())
	e.record(PhaseSweep, start, detail)
	return nil
}

// abandonedNamespaces lists the attach-run namespaces whose owner is gone
// at now (see sweepAttached).
func abandonedNamespaces(ctx context.Context, cl *clusters.Cluster, now time.Time, lease time.Duration) ([]string, error) {
	list, err := cl.Client().CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: clusters.LabelManaged + "=true," + LabelMode + "=attach"})
	if err != nil {
		return nil, fmt.Errorf("sweep: list namespaces: %w", err)
	}
	var victims []string
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil || ns.Labels[clusters.LabelRun] == cl.RunID() {
			continue
		}
		l, err := cl.Client().CoordinationV1().Leases(ns.Name).Get(ctx, LeaseName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if now.Sub(ns.CreationTimestamp.Time) > 2*lease {
				victims = append(victims, ns.Name)
			}
		case err != nil:
			return victims, fmt.Errorf("sweep: get Lease %s/%s: %w", ns.Name, LeaseName, err)
		case l.Labels[LabelRetained] == "true":
			// Kept with --retain: the user removes it.
		default:
			if leaseExpired(l.Spec.RenewTime, l.Spec.LeaseDurationSeconds, now) {
				victims = append(victims, ns.Name)
			}
		}
	}
	return victims, nil
}

// leaseExpired: renew + twice the duration is before now (no renew time or
// duration counts as expired).
func leaseExpired(renew *metav1.MicroTime, secs *int32, now time.Time) bool {
	if renew == nil || secs == nil {
		return true
	}
	return renew.Add(2 * time.Duration(*secs) * time.Second).Before(now)
}
