package clusters

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MissingAccess asks the API server, with one SelfSubjectAccessReview per
// verb, API group and resource of rules (a "pods/exec" resource is the
// subresource exec of pods), whether this cluster's identity may do it in
// namespace ("" = in every namespace, or a cluster-scoped resource). It
// changes nothing (SelfSubjectAccessReviews are not stored; every
// authenticated user may create them) and returns what is denied, one
// line each ("create pods/exec in namespace meshconform"), in the order
// of rules; an error only when a review itself fails.
func (c *Cluster) MissingAccess(ctx context.Context, rules []rbacv1.PolicyRule, namespace string) ([]string, error) {
	var missing []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, v := range r.Verbs {
					ra := &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: v, Group: g, Resource: resource, Subresource: sub}
					if resource == "namespaces" {
						ra.Namespace = ""
					}
					rev, err := c.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
						&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: ra}},
						metav1.CreateOptions{})
					if err != nil {
						return nil, fmt.Errorf("check access (%s %s): %w", v, res, err)
					}
					if !rev.Status.Allowed {
						missing = append(missing, describeAccess(ra))
					}
				}
			}
		}
	}
	return missing, nil
}

func describeAccess(ra *authorizationv1.ResourceAttributes) string {
	res := ra.Resource
	if ra.Group != "" {
		res += "." + ra.Group
	}
	if ra.Subresource != "" {
		res = ra.Resource + "/" + ra.Subresource
		if ra.Group != "" {
			res += " (" + ra.Group + ")"
		}
	}
	where := "in every namespace"
	switch {
	case ra.Resource == "namespaces":
		where = "(cluster-scoped)"
	case ra.Namespace != "":
		where = "in namespace " + ra.Namespace
	}
	return ra.Verb + " " + res + " " + where
}
