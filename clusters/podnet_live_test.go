package clusters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLivePodNetworkTwoNodes creates a two-node kind cluster the way
// meshconform does and checks the harness's own pod network (not the node
// image's CNI), the published node ports, the baseline masquerade switch
// and the image pre-load from the host's Docker, with a locally built
// image standing in for Istio's <hub>/pilot:<tag>.
func TestLivePodNetworkTwoNodes(t *testing.T) {
	needLive(t)
	ctx := context.Background()
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	name := "meshconform-laptop-podnet-" + suffix
	dir := t.TempDir()
	kc := filepath.Join(dir, "kind.yaml")
	os.WriteFile(kc, []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"), 0o600)
	start := time.Now()
	cl, err := Setup(ctx, WithName(name), WithKindConfig(kc), WithLogger(testLogger()))
	if cl != nil {
		t.Cleanup(func() {
			if err := cl.Teardown(context.Background()); err != nil {
				t.Errorf("teardown: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Logf("MEASURE two-node create with the pod network, nodes Ready: %v", time.Since(start).Round(100*time.Millisecond))
	if cl.PodNetwork() != PodNetworkName {
		t.Fatalf("pod network %q", cl.PodNetwork())
	}
	if _, err := cl.Client().AppsV1().DaemonSets("kube-system").Get(ctx, kindnetName, metav1.GetOptions{}); err == nil {
		t.Error("kindnet is installed: the node image's default CNI was not disabled")
	}
	nodes, err := cl.Nodes(ctx)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes %v %v", nodes, err)
	}
	for _, n := range nodes {
		if _, err := cl.NodeExec(ctx, n.Name, "test", "-f", PodNetworkConflist); err != nil {
			t.Errorf("node %s: no conflist: %v", n.Name, err)
		}
		for _, o := range nodes {
			if o.Name == n.Name {
				continue
			}
			out, err := cl.NodeExec(ctx, n.Name, "ip", "route", "show", o.PodCIDR)
			if err != nil || !strings.Contains(string(out), "via "+o.InternalIP) {
				t.Errorf("node %s: route to %s: %q %v", n.Name, o.PodCIDR, out, err)
			}
		}
		out, _ := cl.NodeExec(ctx, n.Name, "iptables-save", "-t", "nat")
		if r := ParseNAT(string(out), BaselineMasqChain); !r.Exists || !r.Jumped {
			t.Errorf("node %s: baseline chain %s", n.Name, r)
		}
		if strings.Contains(string(out), "KIND-MASQ-AGENT") || strings.Contains(string(out), "CNILITE-MASQ") {
			t.Errorf("node %s: another CNI's masquerade chain is present", n.Name)
		}
	}

	// Published node ports: loopback and a host port chosen by kind.
	host, port, err := cl.PublishedPort(ctx, DefaultPublishedNodePorts[0])
	if err != nil || host != "127.0.0.1" || port == 0 {
		t.Errorf("published port: %s:%d %v", host, port, err)
	}

	// The masquerade switch: gone, then back, on both nodes.
	restore, err := cl.DisableCNIMasquerade(ctx)
	if err != nil {
		t.Fatalf("disable: %v", err)
	}
	for _, n := range nodes {
		out, _ := cl.NodeExec(ctx, n.Name, "iptables-save", "-t", "nat")
		if ParseNAT(string(out), BaselineMasqChain).Exists {
			t.Errorf("node %s: %s still there", n.Name, BaselineMasqChain)
		}
	}
	if err := restore(ctx); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, n := range nodes {
		out, _ := cl.NodeExec(ctx, n.Name, "iptables-save", "-t", "nat")
		if !ParseNAT(string(out), BaselineMasqChain).Exists {
			t.Errorf("node %s: %s not restored", n.Name, BaselineMasqChain)
		}
	}

	// Pre-load: a tiny locally built image tagged as Istio's pilot.
	ref := "meshconform.test/laptop-" + suffix + "/pilot:1.31.0-test"
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "stand-in"), []byte("not istio\n"), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY stand-in /stand-in\n"), 0o644)
	if out, err := exec.Command("docker", "build", "-q", "-t", ref, ctxDir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", ref).Run() })
	missing := "meshconform.test/laptop-" + suffix + "/proxyv2:absent"
	if err := cl.PreloadImages(ctx, []string{missing}, false); err == nil || !IsNotReady(err) || !strings.Contains(err.Error(), missing) {
		t.Errorf("an absent image with --no-pull: %v", err)
	}
	start = time.Now()
	if err := cl.PreloadImages(ctx, []string{ref}, false); err != nil {
		t.Fatalf("preload: %v", err)
	}
	t.Logf("MEASURE pre-load of a local image into 2 nodes: %v", time.Since(start).Round(100*time.Millisecond))
	for _, n := range nodes {
		out, err := cl.NodeExec(ctx, n.Name, "ctr", "--namespace", "k8s.io", "images", "ls", "-q")
		if err != nil || !strings.Contains(string(out), ref) {
			t.Errorf("node %s: %s not in containerd: %v\n%s", n.Name, ref, err, out)
		}
	}
}
