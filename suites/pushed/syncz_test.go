package pushed

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/security"

	"github.com/meshconform/meshconform/suites/sim"
)

// namespaceIdentities stands in for istiod's Kubernetes JWT authenticator
// (which needs a TokenReview): every caller is service account default of
// namespaces default and other; istiod's own authorization then keeps the
// one that matches the proxy's namespace (pilot/pkg/xds/auth.go).
type namespaceIdentities struct{}

func (namespaceIdentities) Authenticate(security.AuthContext) (*security.Caller, error) {
	return &security.Caller{Identities: []string{"spiffe://cluster.local/ns/default/sa/default", "spiffe://cluster.local/ns/other/sa/default"}}, nil
}
func (namespaceIdentities) AuthenticatorType() string { return "test" }

func fakeConn(t *testing.T, s *xds.FakeDiscoveryServer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///fake-istiod", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return s.BufListener.Dial() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSyncStatusFromIstiod asks Istio's real discovery server for the
// sync status (istio.io/debug/syncz, as istioctl proxy-status): the
// watch's stream is SYNCED per type once it ACKed; a proxy that NACKed its
// listeners is NACK with Envoy's detail; a proxy in another namespace is
// not reported to a caller of namespace default; and an unauthenticated
// caller (istiod's plaintext port 15010) is refused.
func TestSyncStatusFromIstiod(t *testing.T) {
	quiet()
	objs, err := sim.ParseYAML("first.yaml", []byte(httpEntry80), "default")
	if err != nil {
		t.Fatal(err)
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs(objs)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("unauthenticated caller refused", func(t *testing.T) {
		_, err := QuerySyncz(ctx, fakeConn(t, s), "default", "default")
		if err == nil || !strings.Contains(err.Error(), "authentication required") {
			t.Fatalf("want istiod's 'authentication required', got %v", err)
		}
	})

	// istiod authenticates only TLS callers (its port 15012); the test's
	// in-process connection is plaintext: let Istio's authentication run
	// on it (security.AuthPlaintext, Istio's own switch for tests).
	s.Discovery.Authenticators = []security.Authenticator{namespaceIdentities{}}
	security.AuthPlaintext = true
	t.Cleanup(func() { security.AuthPlaintext = false })
	w := dialFake(t, s, nil)
	if _, err := w.Wait(ctx, "routes", func(s Snapshot) bool { return hasRoute(s, "80") }); err != nil {
		t.Fatal(err)
	}
	nacker := s.ConnectADS().WithID("sidecar~10.244.0.9~nacker.default~default.svc.cluster.local").
		WithMetadata(model.NodeMetadata{Namespace: "default", ProxyConfig: &model.NodeMetaProxyConfig{}, IstioVersion: ProxyIstioVersion})
	nacker.RequestResponseAck(t, &discovery.DiscoveryRequest{TypeUrl: v3.ClusterType})
	nacker.RequestResponseNack(t, &discovery.DiscoveryRequest{TypeUrl: v3.ListenerType})
	other := s.ConnectADS().WithID("sidecar~10.244.1.9~elsewhere.other~other.svc.cluster.local").
		WithMetadata(model.NodeMetadata{Namespace: "other", ProxyConfig: &model.NodeMetaProxyConfig{}, IstioVersion: ProxyIstioVersion})
	other.RequestResponseAck(t, &discovery.DiscoveryRequest{TypeUrl: v3.ClusterType})

	var got map[string]SyncStatus
	// istiod records an ACK after it answered: poll until the watch's
	// ACKs and the NACK are recorded.
	for {
		got, err = QuerySyncz(ctx, fakeConn(t, s), "default", "default")
		if err != nil {
			t.Fatal(err)
		}
		if got[w.Identity().ProxyID()].InSync() && got["nacker.default"].Types["LDS"] == NACK || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	ws := got[w.Identity().ProxyID()]
	for _, typ := range []string{"CDS", "LDS", "RDS"} {
		if ws.Types[typ] != Synced {
			t.Errorf("watch %s: %s is %q, want SYNCED (%s)", w.Identity().ProxyID(), typ, ws.Types[typ], ws)
		}
	}
	ns := got["nacker.default"]
	if ns.Types["CDS"] != Synced || ns.Types["LDS"] != NACK || ns.Errors["LDS"] != "Test request NACK" || ns.InSync() {
		t.Errorf("nacking proxy: %s", ns)
	}
	if !strings.Contains(ns.String(), "LDS NACK (Test request NACK)") {
		t.Errorf("String() = %q", ns.String())
	}
	if _, ok := got["elsewhere.other"]; ok {
		t.Errorf("a proxy of namespace other was reported to a caller of namespace default: %v", got)
	}
	if len(got) != 2 {
		t.Errorf("want exactly the watch and the nacking proxy, got %v", got)
	}
}
