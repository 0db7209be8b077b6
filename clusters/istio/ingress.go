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
// port 443, never a node's or a container's own address (those are not
// routable from the host on Docker Desktop for macOS, Windows and Linux,
// rootless Docker or Podman):
//
//   - kind clusters meshconform created: 127.0.0.1 and the host port
//     Docker published for the service's nodePort of 443 on the
//     control-plane node (clusters.PublishedPort; kind extraPortMappings
//     written at create, clusters.DefaultPublishedNodePorts).
//   - existing clusters: the service's LoadBalancer address and port 443.
//
// Otherwise the error is a *NotReadyError saying what is missing.
func (m *Mesh) IngressAddress(ctx context.Context) (host string, port int, err error) {
	svc, err := m.cl.Client().CoreV1().Services(Namespace).Get(ctx, gatewayService, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("ingress address: get service %s/%s: %w", Namespace, gatewayService, err)
	}
	nodePort := 0
	for _, p := range svc.Spec.Ports {
		if p.Port == 443 {
			nodePort = int(p.NodePort)
		}
	}
	if !m.cl.Managed() {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				return ing.IP, 443, nil
			}
			if ing.Hostname != "" {
				return ing.Hostname, 443, nil
			}
		}
		return "", 0, &NotReadyError{Reason: fmt.Sprintf("ingress address: service %s/%s (type %s) has no LoadBalancer address; "+
			"node addresses are not used because the host cannot route to them on every Docker", Namespace, gatewayService, svc.Spec.Type)}
	}
	if nodePort == 0 {
		return "", 0, fmt.Errorf("ingress address: service %s/%s has no nodePort for port 443 (type %s)", Namespace, gatewayService, svc.Spec.Type)
	}
	host, port, err = m.cl.PublishedPort(ctx, nodePort)
	if err != nil {
		return "", 0, &NotReadyError{Reason: "ingress address: " + err.Error()}
	}
	return host, port, nil
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
