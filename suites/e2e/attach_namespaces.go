package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/clusters"
)

// DefaultLeaseDuration is how long an attach run's Lease stays valid
// without a renewal (Config.LeaseDuration); the run renews it every third
// of that. The sweep treats a namespace as abandoned once its Lease has
// been expired for another lease duration (clock skew between machines).
const DefaultLeaseDuration = 60 * time.Second

// ownNamespaces creates the run's namespaces — the probe namespace, with
// the injection label of the Istio found, and FixturesNamespace, without
// injection — labelled with the run id and LabelMode=attach, annotated
// with the owner, each holding the run's Lease, renewed until Teardown.
// The cluster's Teardown (already on the undo stack) deletes them.
func (e *Env) ownNamespaces(ctx context.Context) error {
	start := time.Now()
	cl := e.Cluster
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), cl.RunID())
	ann := map[string]string{AnnotationOwner: holder}
	fxLabels := map[string]string{LabelMode: "attach", "istio-injection": "disabled"}
	probeLabels := map[string]string{LabelMode: "attach"}
	for k, v := range e.injectionLabels() {
		probeLabels[k] = v
	}
	now := metav1.NewMicroTime(time.Now())
	secs := int32(e.cfg.LeaseDuration / time.Second)
	for _, n := range []struct {
		name   string
		labels map[string]string
	}{{e.cfg.Namespace, probeLabels}, {FixturesNamespace(e.cfg.Namespace), fxLabels}} {
		if err := cl.CreateNamespace(ctx, n.name, n.labels, ann); err != nil {
			return fail(PhaseNamespaces, err)
		}
		e.owned = append(e.owned, n.name)
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Labels: map[string]string{clusters.LabelManaged: "true", clusters.LabelRun: cl.RunID()}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}
		if _, err := cl.Client().CoordinationV1().Leases(n.name).Create(ctx, lease, metav1.CreateOptions{FieldManager: clusters.FieldManager}); err != nil {
			return fail(PhaseNamespaces, fmt.Errorf("create Lease %s/%s: %w", n.name, LeaseName, err))
		}
	}
	owned := slicesClone(e.owned)
	stop := e.renewLeases(owned)
	e.onUndo("renewal of the run's Leases", func(context.Context) error { stop(); return nil }, func(ctx context.Context) error {
		stop()
		return e.retainLeases(ctx, owned)
	})
	detail := fmt.Sprintf("%s (labels %s=attach, %s=%s; Lease %s held by %s)", strings.Join(e.owned, ", "), LabelMode, clusters.LabelRun, cl.RunID(), LeaseName, holder)
	e.p.Phase(PhaseNamespaces, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseNamespaces, start, detail)
	return nil
}

// renewLeases renews the Lease in each namespace every LeaseDuration/3
// until the returned stop is called. A failed renewal is logged: the run
// goes on, and a sweep by another run may then remove its namespaces.
func (e *Env) renewLeases(namespaces []string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	leases := e.Cluster.Client().CoordinationV1()
	wg.Go(func() {
		t := time.NewTicker(e.cfg.LeaseDuration / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, ns := range namespaces {
				l, err := leases.Leases(ns).Get(ctx, LeaseName, metav1.GetOptions{})
				if err == nil {
					now := metav1.NewMicroTime(time.Now())
					l.Spec.RenewTime = &now
					_, err = leases.Leases(ns).Update(ctx, l, metav1.UpdateOptions{FieldManager: clusters.FieldManager})
				}
				if err != nil && ctx.Err() == nil {
					e.p.Logger().Warn("renew the run's Lease", "namespace", ns, "error", err)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// retainLeases labels the run's Leases LabelRetained=true (--retain): the
// sweep leaves their namespaces alone; delete them yourself.
func (e *Env) retainLeases(ctx context.Context, namespaces []string) error {
	leases := e.Cluster.Client().CoordinationV1()
	var errs []error
	for _, ns := range namespaces {
		l, err := leases.Leases(ns).Get(ctx, LeaseName, metav1.GetOptions{})
		if err == nil {
			l.Labels[LabelRetained] = "true"
			_, err = leases.Leases(ns).Update(ctx, l, metav1.UpdateOptions{FieldManager: clusters.FieldManager})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mark Lease %s/%s retained: %w", ns, LeaseName, err))
		}
	}
	return errors.Join(errs...)
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func joinNames(s []string) string { return strings.Join(s, " ") }
