package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

// AttachNamespacedRules are what an attach run does inside its own
// namespaces (the probe namespace and FixturesNamespace): pods and their
// exec (the probe), the pods' ConfigMap and Secret, events for pod
// diagnostics, the run's Lease, and the checks' Istio objects (exported
// only to their namespace). The preflight reviews them in those
// namespaces.
var AttachNamespacedRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "configmaps", "secrets"}, Verbs: []string{"get", "list", "create", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "delete"}},
	{APIGroups: []string{"networking.istio.io"}, Resources: []string{"serviceentries", "virtualservices", "destinationrules", "sidecars"}, Verbs: []string{"get", "create", "patch", "delete"}},
}

// AttachClusterRules are what an attach run needs across the cluster:
// its own namespaces created and deleted (and, to sweep a crashed run's,
// listed, their Lease read), and Istio as installed read with exactly
// fromcluster.Rules (revisioned istiod, mesh config, root-namespace
// Sidecar). Nothing here writes outside the run's namespaces.
var AttachClusterRules = append([]rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "delete"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}},
}, fromcluster.Rules...)

// AttachRules is the ClusterRole an attach run needs, shipped as
// clusters/manifests/meshconform-attach.yaml (a test keeps them equal).
// Kubernetes RBAC cannot grant rights in a namespace that does not exist
// yet, so it is bound with a ClusterRoleBinding.
func AttachRules() []rbacv1.PolicyRule {
	return append(append([]rbacv1.PolicyRule(nil), AttachNamespacedRules...), AttachClusterRules...)
}

// AccessError lists the permissions an attach run lacks.
type AccessError struct {
	Identity string
	Missing  []string
}

func (e *AccessError) Error() string {
	return fmt.Sprintf("%d permissions missing (nothing was changed); grant clusters/manifests/meshconform-attach.yaml "+
		"(`kubectl apply -f clusters/manifests/meshconform-attach.yaml` and a ClusterRoleBinding to your user or ServiceAccount):\n  %s",
		len(e.Missing), strings.Join(e.Missing, "\n  "))
}

// preflightAccess reviews every permission of AttachRules where the run
// will use it (SelfSubjectAccessReview, which changes nothing) and stops
// the run before any change with an *AccessError listing what is missing.
func (e *Env) preflightAccess(ctx context.Context) error {
	start := time.Now()
	var missing []string
	for _, ns := range []string{e.cfg.Namespace, FixturesNamespace(e.cfg.Namespace)} {
		m, err := e.Cluster.MissingAccess(ctx, AttachNamespacedRules, ns)
		if err != nil {
			return fail(PhasePreflight, err)
		}
		missing = append(missing, m...)
	}
	m, err := e.Cluster.MissingAccess(ctx, AttachClusterRules, "")
	if err != nil {
		return fail(PhasePreflight, err)
	}
	missing = append(missing, m...)
	if len(missing) > 0 {
		return fail(PhasePreflight, &AccessError{Missing: missing})
	}
	n := 0
	for _, r := range AttachRules() {
		n += len(r.APIGroups) * len(r.Resources) * len(r.Verbs)
	}
	detail := fmt.Sprintf("every permission the run uses is granted (%d rule entries reviewed)", n)
	e.p.Phase(PhasePreflight, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhasePreflight, start, detail)
	return nil
}
