package istio

// Istio on a real kind cluster whose images can never be pulled, on any
// machine: the hub is 127.0.0.1:1/istio (unreachableHub), so the nodes'
// pull attempt is refused inside the node (no DNS lookup, no dial beyond
// loopback) and the result is the same with or without a registry.
// Install must stop with a *NotReadyError naming the image, and Preflight
// must explain why checks cannot run. Needs Docker and KIND_NODE_IMAGE;
// skips otherwise (fails under CI=true).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"github.com/meshconform/meshconform/internal/livetest"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/clusters"
)

func needLive(t *testing.T) { t.Helper(); livetest.Need(t) }

func logger() *slog.Logger {
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// unreachableHub is an image hub no pull can succeed from: a registry
// address on the node's loopback with port 1, refused at once.
const unreachableHub = "127.0.0.1:1/istio"

func TestLiveInstallNotReady(t *testing.T) {
	needLive(t)
	ctx := context.Background()
	if err := clusters.Sweep(ctx, clusters.WithLogger(logger())); err != nil {
		t.Fatal(err)
	}
	name := os.Getenv("MESHCONFORM_ISTIO_TEST_CLUSTER")
	if name == "" {
		name = "meshconform-istio-test"
	}
	cl, err := clusters.Setup(ctx, clusters.WithName(name), clusters.WithLogger(logger()))
	if cl != nil {
		t.Cleanup(func() {
			if err := cl.Teardown(context.Background()); err != nil {
				t.Errorf("teardown: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	m, err := Install(ctx, cl, WithHub(unreachableHub))
	t.Logf("MEASURE Install to result %v", time.Since(start).Round(100*time.Millisecond))
	if m == nil {
		t.Fatalf("Install returned no *Mesh: %v", err)
	}
	var nre *NotReadyError
	if !errors.As(err, &nre) {
		t.Fatalf("want a *NotReadyError (images from %s cannot be pulled), got %v", unreachableHub, err)
	}
	t.Logf("Install: %v", err)
	for _, want := range []string{"environment not ready: istiod: pod istio-system/istiod-", "container discovery", "image " + unreachableHub + "/pilot:" + DefaultTag + " cannot be pulled", "ingress gateway: pod istio-system/istio-ingressgateway-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reason lacks %q", want)
		}
	}
	// The gateway waits for istiod's root certificate ConfigMap (or, once
	// mounted, fails to pull proxyv2): either way the reason says which.
	if !strings.Contains(err.Error(), "istio-ca-root-cert") && !strings.Contains(err.Error(), unreachableHub+"/proxyv2:"+DefaultTag) {
		t.Errorf("gateway reason is not precise: %v", err)
	}

	t.Run("CRDsUsableAfterInstall", func(t *testing.T) {
		// Istio's kinds are discovered after install (the mapper is reset).
		objs, err := cl.Apply(ctx, "default", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Delete(ctx, objs); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PreflightIstiodNotReady", func(t *testing.T) {
		start := time.Now()
		err := m.Preflight(ctx, "default", "app=client")
		t.Logf("MEASURE Preflight (istiod known broken) %v: %v", time.Since(start).Round(10*time.Millisecond), err)
		if !clusters.IsNotReady(err) || !strings.Contains(err.Error(), unreachableHub+"/pilot:"+DefaultTag) {
			t.Errorf("got %v", err)
		}
	})

	client := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - {name: main, image: testenv/tools:v1, imagePullPolicy: Never, command: [sleep, "3600"]}
`
	t.Run("ClientRejectedByInjectionWebhook", func(t *testing.T) {
		if err := cl.EnsureNamespace(ctx, "mc-meshed", map[string]string{"istio-injection": "enabled"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Apply(ctx, "mc-meshed", client); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := m.waitClient(wctx, "mc-meshed", "app=client")
		t.Logf("client in injected namespace: %v", err)
		if !clusters.IsNotReady(err) || !strings.Contains(err.Error(), "sidecar-injector.istio.io") || !strings.Contains(err.Error(), "FailedCreate") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("ClientNotInjected", func(t *testing.T) {
		if err := cl.EnsureNamespace(ctx, "mc-plain", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Apply(ctx, "mc-plain", client); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := m.waitClient(wctx, "mc-plain", "app=client")
		if !clusters.IsNotReady(err) || !strings.Contains(err.Error(), "not labelled istio-injection=enabled") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("OutboundPolicyConfigMap", func(t *testing.T) {
		if got, err := m.OutboundPolicy(ctx); err != nil || got != AllowAny {
			t.Fatalf("installed policy %q %v", got, err)
		}
		restore, err := m.SetOutboundPolicy(ctx, RegistryOnly)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := m.OutboundPolicy(ctx); got != RegistryOnly {
			t.Errorf("after set: %q", got)
		}
		if err := restore(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.OutboundPolicy(ctx); got != AllowAny {
			t.Errorf("after restore: %q", got)
		}
	})

	t.Run("IngressAndSecret", func(t *testing.T) {
		// The host reaches the gateway through the port published on
		// 127.0.0.1 for its nodePort, never through a node address.
		host, port, err := m.IngressAddress(ctx)
		wantHost, wantPort, perr := cl.PublishedPort(ctx, DefaultHTTPSNodePort)
		if err != nil || perr != nil || host != "127.0.0.1" || host != wantHost || port != wantPort {
			t.Errorf("ingress %s:%d %v (published %s:%d %v)", host, port, err, wantHost, wantPort, perr)
		}
		cert, key := selfSigned(t)
		if err := m.CreateTLSSecret(ctx, "greeter-credential", cert, key); err != nil {
			t.Fatal(err)
		}
		s, err := cl.Client().CoreV1().Secrets(Namespace).Get(ctx, "greeter-credential", metav1.GetOptions{})
		if err != nil || s.Labels[clusters.LabelManaged] != "true" || string(s.Data["tls.crt"]) != string(cert) {
			t.Errorf("secret: %v", err)
		}
		if err := m.CreateTLSSecret(ctx, "bad", cert, []byte("not a key")); err == nil {
			t.Error("mismatched key accepted")
		}
	})
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "greeter.external.test"},
		DNSNames: []string{"greeter.external.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
