package clusters

// Tests against real kind clusters. They need Docker and KIND_NODE_IMAGE
// (eval "$(../shared/testenv/env)"); without them they skip, except under
// CI=true where they fail. One cluster is shared by TestLiveCluster's
// subtests (created on first use, deleted in TestMain); the cancel and
// sweep tests make their own.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/meshconform/meshconform/internal/ipmasq"
)

const liveName = "meshconform-clusters-test"

var live struct {
	once sync.Once
	cl   *Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if live.cl != nil {
		start := time.Now()
		if err := live.cl.Teardown(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "teardown: %v\n", err)
			code = 1
		}
		names, err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).List()
		if err != nil || slices.Contains(names, liveName) {
			fmt.Fprintf(os.Stderr, "teardown left kind cluster %s behind (%v)\n", liveName, err)
			code = 1
		}
		fmt.Fprintf(os.Stderr, "MEASURE teardown (kind delete) %v\n", time.Since(start).Round(100*time.Millisecond))
	}
	os.Exit(code)
}

// liveReason says why live tests cannot run ("" if they can).
func liveReason() string {
	if testing.Short() {
		return "-short"
	}
	if os.Getenv("KIND_NODE_IMAGE") == "" {
		return `KIND_NODE_IMAGE is not set: eval "$(../shared/testenv/env)"`
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("Docker is not available: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

// needLive skips (or under CI=true fails) when live tests cannot run.
func needLive(t *testing.T) {
	t.Helper()
	if r := liveReason(); r != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("live test needs Docker and a kind node image: %s", r)
		}
		t.Skip(r)
	}
}

func testLogger() *slog.Logger {
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func sharedCluster(t *testing.T) *Cluster {
	t.Helper()
	needLive(t)
	live.once.Do(func() {
		ctx := context.Background()
		if err := Sweep(ctx, WithLogger(testLogger())); err != nil {
			live.err = err
			return
		}
		start := time.Now()
		live.cl, live.err = Setup(ctx, WithName(liveName), WithLogger(testLogger()))
		fmt.Fprintf(os.Stderr, "MEASURE kind create (Setup, nodes Ready) %v\n", time.Since(start).Round(100*time.Millisecond))
	})
	if live.err != nil {
		t.Fatalf("setup shared cluster: %v", live.err)
	}
	return live.cl
}

// runPod runs a one-shot pod and returns its logs and phase.
func runPod(t *testing.T, cl *Cluster, ns, name, image string, cmd ...string) (string, corev1.PodPhase) {
	t.Helper()
	ctx := context.Background()
	pods := cl.Client().CoreV1().Pods(ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: cl.labels()},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "main", Image: image, ImagePullPolicy: corev1.PullNever, Command: cmd,
		}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	defer pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	var phase corev1.PodPhase
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatalf("pod %s did not finish (phase %s): %v", name, phase, err)
	}
	logs, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return string(logs), phase
}

func toolsImage() string { return "testenv/tools:v1" } // preloaded in the test node image

func TestLiveCluster(t *testing.T) {
	cl := sharedCluster(t)
	ctx := context.Background()
	if cl.Mode() != Created || !cl.Managed() {
		t.Fatalf("mode %s managed %v", cl.Mode(), cl.Managed())
	}

	t.Run("Nodes", func(t *testing.T) {
		nodes, err := cl.Nodes(ctx)
		if err != nil || len(nodes) == 0 {
			t.Fatalf("nodes: %v %v", nodes, err)
		}
		for _, n := range nodes {
			if n.InternalIP == "" || n.PodCIDR == "" {
				t.Errorf("node %+v lacks address or pod CIDR", n)
			}
		}
		cidrs, err := cl.PodCIDRs(ctx)
		if err != nil || len(cidrs) == 0 {
			t.Errorf("pod CIDRs %v %v", cidrs, err)
		}
		fi, err := os.Stat(cl.KubeconfigPath())
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("kubeconfig %s: %v %v", cl.KubeconfigPath(), fi, err)
		}
		st, err := readState(cl.markerDir())
		if err != nil || st.PID != os.Getpid() {
			t.Errorf("marker state %+v %v", st, err)
		}
		if dir, err := markerSource(ctx, cl.Name); err != nil || dir != cl.markerDir() {
			t.Errorf("marker mount %q %v, want %s", dir, err, cl.markerDir())
		}
	})

	t.Run("LoadImage", func(t *testing.T) {
		ref := buildTinyImage(t)
		start := time.Now()
		if err := cl.LoadImage(ctx, ref); err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE LoadImage %s (first load) %v", ref, time.Since(start).Round(10*time.Millisecond))
		start = time.Now()
		if err := cl.LoadImage(ctx, ref); err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE LoadImage %s (already present) %v", ref, time.Since(start).Round(10*time.Millisecond))
		logs, phase := runPod(t, cl, "default", "tiny", ref)
		if phase != corev1.PodSucceeded || !strings.Contains(logs, "hello from a loaded image") {
			t.Errorf("pod from loaded image: phase %s logs %q", phase, logs)
		}
		if err := cl.LoadImage(ctx, "meshconform-test/not-built:v0"); err == nil || !strings.Contains(err.Error(), "build it first") {
			t.Errorf("missing local image: %v", err)
		}
	})

	t.Run("ApplyDelete", func(t *testing.T) {
		if err := cl.EnsureNamespace(ctx, "mc-apply", map[string]string{"purpose": "test"}); err != nil {
			t.Fatal(err)
		}
		objs, err := cl.Apply(ctx, "mc-apply", `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper}
spec:
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      containers:
      - name: main
        image: testenv/tools:v1
        imagePullPolicy: Never
        command: [sleep, "3600"]
`)
		if err != nil || len(objs) != 2 {
			t.Fatalf("apply: %v %v", objs, err)
		}
		for _, o := range objs {
			u, err := cl.Dynamic().Resource(o.Resource).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get %s: %v", o, err)
			}
			if u.GetLabels()[LabelManaged] != "true" || u.GetLabels()[LabelRun] != cl.RunID() {
				t.Errorf("%s labels %v", o, u.GetLabels())
			}
		}
		if err := cl.WaitPods(ctx, "mc-apply", "app=sleeper", "sleeper", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		// Applying again is idempotent (server-side apply).
		if _, err := cl.Apply(ctx, "mc-apply", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: \"2\"}\n"); err != nil {
			t.Fatal(err)
		}
		if err := cl.Delete(ctx, objs); err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if _, err := cl.Dynamic().Resource(o.Resource).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("%s still there: %v", o, err)
			}
		}
		// An unknown kind is retried (CRDs may be on their way) until the
		// context or Timeouts.Apply ends.
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := cl.Apply(short, "mc-apply", "apiVersion: example.com/v1\nkind: Nothing\nmetadata: {name: x}\n"); err == nil || !strings.Contains(err.Error(), "find API resource") {
			t.Errorf("unknown kind: %v", err)
		}
	})

	t.Run("ExternalHosts", func(t *testing.T) {
		// Names of our own: the fixtures' containers on the kind network
		// may make echo.external.test resolve through Docker's DNS.
		hosts := map[string]string{"echo.mc-clusters-test.test": "172.18.250.1", "mysql.mc-clusters-test.test": "172.18.250.2"}
		start := time.Now()
		restore, err := cl.SetExternalHosts(ctx, hosts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE SetExternalHosts %v", time.Since(start).Round(100*time.Millisecond))
		logs, phase := runPod(t, cl, "default", "resolve", toolsImage(), "getent", "hosts", "echo.mc-clusters-test.test", "mysql.mc-clusters-test.test")
		if phase != corev1.PodSucceeded || !strings.Contains(logs, "172.18.250.1") || !strings.Contains(logs, "172.18.250.2") {
			t.Errorf("from a pod: phase %s, getent says %q", phase, logs)
		}
		if err := restore(ctx); err != nil {
			t.Fatal(err)
		}
		// After restore the cluster's DNS still answers (the API server's
		// name resolves) and our name is gone (getent exits 2: not found),
		// so "gone" cannot be a broken resolver.
		logs, _ = runPod(t, cl, "default", "resolve-after", toolsImage(), "sh", "-c",
			"getent hosts kubernetes.default.svc.cluster.local && echo CLUSTER-DNS-OK; getent hosts echo.mc-clusters-test.test; echo our-name-exit=$?")
		if !strings.Contains(logs, "CLUSTER-DNS-OK") || !strings.Contains(logs, "our-name-exit=2") || strings.Contains(logs, "172.18.250.1") {
			t.Errorf("after restore: want cluster DNS answering and our name not found (exit 2), got %q", logs)
		}
	})

	t.Run("IPMasq", func(t *testing.T) {
		image := os.Getenv("IP_MASQ_AGENT_IMAGE")
		if image == "" {
			if os.Getenv("CI") == "true" {
				t.Fatal(`IP_MASQ_AGENT_IMAGE not set under CI=true: eval "$(../shared/testenv/env)"`)
			}
			t.Skip(`IP_MASQ_AGENT_IMAGE not set: eval "$(../shared/testenv/env)"`)
		}
		start := time.Now()
		cleanup, err := cl.EnsureIPMasqAgent(ctx, image)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE EnsureIPMasqAgent %v", time.Since(start).Round(100*time.Millisecond))
		start = time.Now()
		restoreCNI, err := cl.DisableCNIMasquerade(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE DisableCNIMasquerade %v", time.Since(start).Round(100*time.Millisecond))

		defaults, _ := ipmasq.Parse("", ipmasq.Options{})
		if err := cl.WaitIPMasqRules(ctx, defaults.RuleCIDRs()); err != nil {
			t.Fatal(err)
		}
		cfg := "nonMasqueradeCIDRs: [10.244.0.0/16]\nresyncInterval: 5s\n"
		if err := cl.SetIPMasqConfig(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		want, _ := ipmasq.Parse(cfg, ipmasq.Options{})
		start = time.Now()
		if err := cl.WaitIPMasqRules(ctx, want.RuleCIDRs()); err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE ConfigMap change to rules on every node %v", time.Since(start).Round(100*time.Millisecond))
		if err := cl.SetIPMasqConfig(ctx, ""); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := cl.WaitIPMasqRules(ctx, defaults.RuleCIDRs()); err != nil {
			t.Fatal(err)
		}
		t.Logf("MEASURE ConfigMap deletion to default rules %v", time.Since(start).Round(100*time.Millisecond))

		if err := restoreCNI(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		nodes, _ := cl.kindNodes()
		for _, n := range nodes {
			out, err := cl.NodeExec(ctx, n.String(), "iptables-save", "-t", "nat")
			if err != nil {
				t.Fatal(err)
			}
			if r := ParseNAT(string(out), IPMasqChain); r.Exists || r.Jumped {
				t.Errorf("node %s: %s left after cleanup: %s", n, IPMasqChain, r)
			}
			// The CNI's own masquerade is back: the harness's baseline chain on
			// clusters it created with its own pod network, cnilite's otherwise.
			chain := cniliteChain
			if cl.PodNetwork() == PodNetworkName {
				chain = BaselineMasqChain
			}
			if r := ParseNAT(string(out), chain); !r.Exists {
				t.Errorf("node %s: %s not restored", n, chain)
			}
		}
	})

	t.Run("ExistingClusterMode", func(t *testing.T) {
		ex, err := Setup(ctx, WithKubeconfig(cl.KubeconfigPath()), WithLogger(testLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if ex.Mode() != Existing || ex.Managed() || ex.Name != "kind-"+liveName {
			t.Errorf("mode %s managed %v name %s", ex.Mode(), ex.Managed(), ex.Name)
		}
		if err := ex.LoadImage(ctx, "meshconform/agent:x"); err == nil || !strings.Contains(err.Error(), "--images-pushed") {
			t.Errorf("LoadImage: %v", err)
		}
		if err := ex.LoadImage(ctx, toolsImage()); err != nil {
			t.Errorf("LoadImage of an image every node has: %v", err)
		}
		if err := ex.WaitIPMasqRules(ctx, nil); err == nil || !strings.Contains(err.Error(), "no access to the nodes") {
			t.Errorf("WaitIPMasqRules: %v", err)
		}
		if err := ex.EnsureNamespace(ctx, "mc-existing", nil); err != nil {
			t.Fatal(err)
		}
		if err := ex.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, "mc-existing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace of the existing-mode run not deleted: %v", err)
		}
		if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, "mc-apply", metav1.GetOptions{}); err != nil {
			t.Errorf("existing-mode teardown touched another run's namespace: %v", err)
		}
		names, _ := cl.provider.List()
		if !slices.Contains(names, liveName) {
			t.Error("existing-mode teardown deleted the cluster")
		}
	})
}

// buildTinyImage builds a static hello binary and `docker import`s it.
func buildTinyImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from a loaded image\") }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644)
	build := exec.Command("go", "build", "-o", "hello", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tiny binary: %v: %s", err, out)
	}
	bin, _ := os.ReadFile(filepath.Join(dir, "hello"))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	tw.Close()
	b := make([]byte, 4)
	rand.Read(b)
	ref := "meshconform-test/tiny:" + hex.EncodeToString(b)
	imp := exec.Command("docker", "import", "--change", `ENTRYPOINT ["/hello"]`, "-", ref)
	imp.Stdin = &buf
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", ref).Run() })
	return ref
}

// kindContainers lists the node containers of a kind cluster name.
func kindContainers(t *testing.T, name string) []string {
	t.Helper()
	out, err := dockerOutput(context.Background(), "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// TestLiveCancelCreate interrupts a create once its node container exists
// (as Ctrl-C would) and checks that nothing is left.
func TestLiveCancelCreate(t *testing.T) {
	needLive(t)
	const name = "meshconform-cancel-test"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			out, err := dockerOutput(ctx, "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+name)
			return err == nil && len(bytes.TrimSpace(out)) > 0, nil
		})
		cancel()
	}()
	start := time.Now()
	cl, err := Setup(ctx, WithName(name), WithLogger(testLogger()))
	t.Logf("MEASURE interrupted Setup returned after %v", time.Since(start).Round(100*time.Millisecond))
	if cl != nil {
		defer cl.Teardown(context.Background())
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// Setup deleted synchronously; if kind's create outlived CancelGrace, a
	// background delete follows: allow it to finish.
	var left []string
	wait.PollUntilContextTimeout(context.Background(), time.Second, time.Minute, true, func(context.Context) (bool, error) {
		left = kindContainers(t, name)
		return len(left) == 0, nil
	})
	if len(left) > 0 {
		t.Errorf("interrupted create left containers %v", left)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "meshconform-clusters", name)); !os.IsNotExist(err) {
		t.Errorf("marker directory left: %v", err)
	}
}

// TestLiveSweep: Sweep deletes a leftover of a dead run, and never a
// cluster in use, a retained one, or one it did not create.
func TestLiveSweep(t *testing.T) {
	needLive(t)
	ctx := context.Background()
	state := t.TempDir()
	const ours, foreign = "meshconform-sweep-test", "meshconform-foreign-test"
	provider := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	t.Cleanup(func() {
		provider.Delete(ours, filepath.Join(state, "kc"))
		provider.Delete(foreign, filepath.Join(state, "kc"))
	})
	// A cluster made with kind directly, named like ours: never swept.
	if err := provider.Create(foreign, kindcluster.CreateWithNodeImage(os.Getenv("KIND_NODE_IMAGE")), kindcluster.CreateWithKubeconfigPath(filepath.Join(state, "kc"))); err != nil {
		t.Fatal(err)
	}
	cl, err := Setup(ctx, WithName(ours), WithStateDir(state), WithLogger(testLogger()))
	if cl != nil {
		t.Cleanup(func() { cl.Teardown(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	decide := func() map[string]SweepDecision {
		t.Helper()
		ds, err := SweepReport(ctx, WithStateDir(state), WithLogger(testLogger()))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]SweepDecision{}
		for _, d := range ds {
			m[d.Name] = d
		}
		return m
	}
	d := decide()
	if d[ours].Deleted || !strings.Contains(d[ours].Reason, "in use") || d[foreign].Deleted || !strings.Contains(d[foreign].Reason, "no marker") {
		t.Fatalf("while running: %+v", d)
	}
	// Pretend the run crashed: the owner is a process that has exited.
	dead := exec.Command("true")
	dead.Run()
	st, _ := readState(cl.markerDir())
	st.PID = dead.Process.Pid
	st.Retain = true
	writeRaw(t, cl.markerDir(), st)
	if d := decide(); d[ours].Deleted || d[ours].Reason != "retained" {
		t.Fatalf("retained: %+v", d[ours])
	}
	st.Retain = false
	writeRaw(t, cl.markerDir(), st)
	if d := decide(); !d[ours].Deleted || d[foreign].Deleted {
		t.Fatalf("leftover: %+v", d)
	}
	if left := kindContainers(t, ours); len(left) > 0 {
		t.Errorf("swept cluster left containers %v", left)
	}
	if len(kindContainers(t, foreign)) == 0 {
		t.Error("foreign cluster deleted")
	}
	if _, err := os.Stat(cl.markerDir()); !os.IsNotExist(err) {
		t.Errorf("marker dir not removed: %v", err)
	}
	// Teardown of the swept cluster's handle is harmless.
	if err := cl.Teardown(ctx); err != nil {
		t.Errorf("teardown after sweep: %v", err)
	}
}

func writeRaw(t *testing.T, dir string, st clusterState) {
	t.Helper()
	c := &Cluster{Name: st.Name, cfg: &Config{StateDir: filepath.Dir(dir), Retain: st.Retain}, mode: Created, runID: st.RunID, provider: kindcluster.NewProvider(kindcluster.ProviderWithDocker())}
	os.Remove(filepath.Join(dir, "state.json"))
	if err := c.writeState(st.PID); err != nil {
		t.Fatal(err)
	}
}
