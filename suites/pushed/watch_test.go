package pushed

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	istiolog "istio.io/istio/pkg/log"

	"github.com/meshconform/meshconform/suites/sim"
)

// An HTTP ServiceEntry on port 80: the sidecar's listener 0.0.0.0_80 names
// route config "80" in the first push.
const httpEntry80 = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: first, namespace: default}
spec:
  hosts: [first.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`

// Added later: a new HTTP port, so a later LDS push names route config
// "8080", which the watch must subscribe to on the same stream.
const httpEntry8080 = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: later, namespace: default}
spec:
  hosts: [later.example]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: DNS
`

func quiet() {
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
}

// dialFake opens a Watch on Istio's real discovery server (in process,
// over its bufconn listener).
func dialFake(t *testing.T, s *xds.FakeDiscoveryServer, tweak func(*Watch)) *Watch {
	t.Helper()
	id := Identity{Namespace: "default", Pod: "client-0", IP: "10.244.0.5", Labels: map[string]string{"app": "client"}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := dialWith(ctx, "passthrough:///fake-istiod", id, tweak,
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return s.BufListener.Dial() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// TestWatchSubscribesToRoutesNamedLater: a route config first named by an
// LDS push after the initial one arrives on the same stream. The second
// case is a client with the pitfall (the RDS subscription sent with the
// listener response's nonce, RDS ACKed with the names received, as
// istio's pkg/adsc does): istiod drops the subscription as stale and the
// route config never arrives — the scenario fails without the fix.
func TestWatchSubscribesToRoutesNamedLater(t *testing.T) {
	quiet()
	for _, tc := range []struct {
		name      string
		tweak     func(*Watch)
		wantRoute bool
	}{
		{name: "own RDS nonce, subscribed names in every ACK", wantRoute: true},
		{name: "pitfall: listener nonce, received names", wantRoute: false, tweak: func(w *Watch) {
			w.subscribeNonce = func(w *Watch) string { return w.nonces[v3.ListenerType] }
			w.ackReceived = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := sim.ParseYAML("first.yaml", []byte(httpEntry80), "default")
			if err != nil {
				t.Fatal(err)
			}
			s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs(objs)})
			w := dialFake(t, s, tc.tweak)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := w.Wait(ctx, "route 80", func(s Snapshot) bool { return hasRoute(s, "80") }); err != nil {
				t.Fatalf("initial route config: %v", err)
			}
			later, err := sim.ParseYAML("later.yaml", []byte(httpEntry8080), "default")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Store().Create(*later[0].Istio); err != nil {
				t.Fatal(err)
			}
			// The listener naming "8080" must arrive either way.
			lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer lcancel()
			waitListener(t, lctx, w, "0.0.0.0_8080")
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer rcancel()
			for rctx.Err() == nil && !hasRoute(w.Snapshot(), "8080") {
				time.Sleep(50 * time.Millisecond)
			}
			got := hasRoute(w.Snapshot(), "8080")
			if got != tc.wantRoute {
				t.Fatalf("route config 8080 received = %v, want %v (missing: %v)", got, tc.wantRoute, w.Snapshot().Missing)
			}
			if tc.wantRoute && !w.Snapshot().Complete() {
				t.Fatalf("snapshot not complete: missing %v", w.Snapshot().Missing)
			}
		})
	}
}

func waitListener(t *testing.T, ctx context.Context, w *Watch, name string) {
	t.Helper()
	for ctx.Err() == nil {
		for _, l := range w.Snapshot().Listeners {
			if l.GetName() == name {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listener %s never pushed", name)
}

func hasRoute(s Snapshot, name string) bool {
	for _, r := range s.Routes {
		if r.GetName() == name {
			return true
		}
	}
	return false
}

func configs(objs []sim.Object) []config.Config {
	var out []config.Config
	for _, o := range objs {
		if o.Istio != nil {
			out = append(out, *o.Istio)
		}
	}
	return out
}
