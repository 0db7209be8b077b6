package pushed

import (
	"context"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshconform/meshconform/clusters"
)

var serviceEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

// VerifyWebhook proves that ServiceEntries reach Istio's validating
// webhook: a server-side dry-run create of an entry with an IP address in
// hosts (invalid: hosts are names) must be denied by the webhook. It
// returns the denial message, or an error when the entry was admitted or
// denied by something else. Nothing is stored (dry run).
func VerifyWebhook(ctx context.Context, cl *clusters.Cluster, namespace string) (string, error) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "ServiceEntry",
		"metadata":   map[string]any{"name": "meshconform-webhook-probe", "namespace": namespace},
		"spec": map[string]any{
			"hosts":      []any{"192.0.2.7"},
			"ports":      []any{map[string]any{"number": int64(80), "name": "http", "protocol": "HTTP"}},
			"resolution": "DNS",
		},
	}}
	_, err := cl.Dynamic().Resource(serviceEntries).Namespace(namespace).Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return "", errors.New("istio validating webhook: a ServiceEntry with an IP in hosts was admitted: the webhook is not in the path")
	case strings.Contains(err.Error(), "admission webhook") && strings.Contains(err.Error(), "denied"):
		return err.Error(), nil
	}
	return "", fmt.Errorf("istio validating webhook: dry-run create of an invalid ServiceEntry failed, but not by the webhook: %w", err)
}
