package istio

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// IngressAddress returns where the host reaches the ingress gateway's
// port 443: a node's InternalIP (routable from the host on Linux for kind
// nodes on the Docker network) and the service's nodePort for 443.
func (m *Mesh) IngressAddress(ctx context.Context) (host string, port int, err error) {
	svc, err := m.cl.Client().CoreV1().Services(Namespace).Get(ctx, gatewayService, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("ingress address: get service %s/%s: %w", Namespace, gatewayService, err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == 443 {
			port = int(p.NodePort)
		}
	}
	if port == 0 {
		return "", 0, fmt.Errorf("ingress address: service %s/%s has no nodePort for port 443 (type %s)", Namespace, gatewayService, svc.Spec.Type)
	}
	nodes, err := m.cl.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("ingress address: list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address, port, nil
			}
		}
	}
	return "", 0, fmt.Errorf("ingress address: no node has an InternalIP")
}

// CreateTLSSecret creates (or updates) the kubernetes.io/tls Secret name
// in istio-system that a Gateway's credentialName refers to, labelled as
// the harness's and deleted at Teardown. The pair is checked to match; the
// key is never logged.
func (m *Mesh) CreateTLSSecret(ctx context.Context, name string, certPEM, keyPEM []byte) error {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("create TLS secret %s: certificate and key do not form a pair: %w", name, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   map[string]any{"name": name, "namespace": Namespace},
		"type":       string(corev1.SecretTypeTLS),
		"data": map[string]any{
			corev1.TLSCertKey:       base64.StdEncoding.EncodeToString(certPEM),
			corev1.TLSPrivateKeyKey: base64.StdEncoding.EncodeToString(keyPEM),
		},
	}}
	if _, err := m.cl.ApplyObjects(ctx, Namespace, []*unstructured.Unstructured{u}); err != nil {
		return fmt.Errorf("create TLS secret %s: %w", name, err)
	}
	return nil
}
