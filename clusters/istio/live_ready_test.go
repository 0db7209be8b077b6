package istio_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/internal/livetest"
	"github.com/meshconform/meshconform/suites/pushed"
)

// TestLiveInstallReady installs the control plane from the local istiod
// image (istiod built from the pinned module, loaded into a kind node, no
// registry involved) and asserts that Install returns nil, that a switch
// of the mesh-wide outbound policy is observed on the config istiod pushes
// to a sidecar identity (catch-all PassthroughCluster → BlackHoleCluster
// and back), and that istiod reports that proxy SYNCED (istio.io/debug/syncz
// over its TLS port with a service account token, certificate verified).
// The ingress gateway is left out (WithoutIngressGateway): its image,
// proxyv2, cannot be had here. Needs Docker and KIND_NODE_IMAGE; skips
// otherwise (fails under CI=true).
func TestLiveInstallReady(t *testing.T) {
	livetest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	img, err := images.Istiod(ctx)
	if err != nil {
		t.Fatalf("local istiod image: %v", err)
	}
	name := os.Getenv("MESHCONFORM_ISTIOD_TEST_CLUSTER")
	if name == "" {
		name = "meshconform-istiod-ready"
	}
	cl, err := clusters.Setup(ctx, clusters.WithName(name), clusters.WithLogger(log))
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
	if err := cl.LoadImage(ctx, img.Ref); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err := istio.Install(ctx, cl, istio.WithHub(img.Hub), istio.WithTag(img.Tag), istio.WithoutIngressGateway())
	t.Logf("MEASURE Install (control plane, %s) %v", img.Ref, time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("Install with the local istiod: %v", err)
	}
	_, pod, err := m.IstiodReadySince(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := cl.PortForward(ctx, istio.Namespace, pod, 15010)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	id := pushed.Identity{Namespace: "default", Pod: "ready-probe", IP: "10.244.0.250", Labels: map[string]string{"app": "client"}}
	w, err := pushed.Dial(ctx, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	wait := func(cluster string) time.Duration {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		start := time.Now()
		s, err := w.Wait(wctx, "catch-all "+cluster, func(s pushed.Snapshot) bool { return pushed.CatchAllCluster(s) == cluster })
		if err != nil {
			t.Fatalf("%v (catch-all now %q)", err, pushed.CatchAllCluster(w.Snapshot()))
		}
		return s.At.Sub(start)
	}
	wait(istio.PassthroughCluster)
	restore, err := m.SetOutboundPolicy(ctx, istio.RegistryOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE outbound policy REGISTRY_ONLY pushed after %v", wait(istio.BlackHoleCluster).Round(time.Millisecond))
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	// The restore must reach the workload's config. Seen flaky once in CI
	// on this stream (the LDS push of the restore never arrived on it within
	// a minute, while the pushed tier of make e2e saw every one of 55
	// changes): if the stream has not seen it, a fresh stream for the same
	// workload must get ALLOW_ANY's catch-all at once, or the test fails.
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	restoreStart := time.Now()
	_, err = w.Wait(rctx, "catch-all after restore", func(s pushed.Snapshot) bool { return pushed.CatchAllCluster(s) == istio.PassthroughCluster })
	rcancel()
	if err != nil {
		t.Logf("KNOWN ISSUE: the restore's push was not seen on the first stream within 1m (catch-all %q): checking a fresh stream", pushed.CatchAllCluster(w.Snapshot()))
		fresh, err := pushed.Dial(ctx, addr, id)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		defer fcancel()
		s, err := fresh.Wait(fctx, "first config", func(s pushed.Snapshot) bool { return s.Complete() })
		if err != nil || pushed.CatchAllCluster(s) != istio.PassthroughCluster {
			t.Fatalf("after restoring ALLOW_ANY istiod pushes catch-all %q to a new stream (%v), want %s", pushed.CatchAllCluster(s), err, istio.PassthroughCluster)
		}
	} else {
		t.Logf("MEASURE outbound policy restored (ALLOW_ANY) pushed after %v", time.Since(restoreStart).Round(time.Millisecond))
	}

	t.Run("SyncStatus", func(t *testing.T) {
		tlsAddr, stopTLS, err := cl.PortForward(ctx, istio.Namespace, pod, 15012)
		if err != nil {
			t.Fatal(err)
		}
		defer stopTLS()
		conn, err := pushed.DialIstiodTLS(ctx, cl, tlsAddr, "default", "default")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var st pushed.SyncStatus
		for ctx.Err() == nil {
			all, err := pushed.QuerySyncz(ctx, conn, "default", "default")
			if err != nil {
				t.Fatalf("syncz from istiod: %v", err)
			}
			if st = all[id.ProxyID()]; st.InSync() {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("istiod reports %s: %s", id.ProxyID(), st)
		for _, typ := range []string{"CDS", "LDS"} {
			if st.Types[typ] != pushed.Synced {
				t.Errorf("%s: %s is %q, want SYNCED (%s)", id.ProxyID(), typ, st.Types[typ], st)
			}
		}
	})
}
