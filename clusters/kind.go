package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"
	"sigs.k8s.io/yaml"
)

// clusterState is the content of <state dir>/<name>/state.json, the
// marker Sweep reads. PID 0 means no process is using the cluster.
type clusterState struct {
	Name     string    `json:"name"`
	RunID    string    `json:"runID"`
	PID      int       `json:"pid"`
	Hostname string    `json:"hostname"`
	Retain   bool      `json:"retain"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

func (c *Cluster) markerDir() string { return filepath.Join(c.cfg.StateDir, c.Name) }

// writeState records who uses the cluster (pid 0: nobody) in the marker
// directory. Clusters without a marker directory (not created here) are
// left alone.
func (c *Cluster) writeState(pid int) error {
	if c.provider == nil { // not a kind cluster (ForClient): no marker
		return nil
	}
	dir := c.markerDir()
	st := clusterState{Name: c.Name, RunID: c.runID, PID: pid, Retain: c.cfg.Retain, Created: time.Now().UTC(), Updated: time.Now().UTC()}
	if old, err := readState(dir); err == nil {
		st.Created = old.Created
		st.Retain = old.Retain || c.cfg.Retain
	} else if c.mode != Created {
		return nil
	}
	st.Hostname, _ = os.Hostname()
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

func readState(dir string) (clusterState, error) {
	var st clusterState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return st, nil
}

// setupKind reuses or creates the kind cluster, then builds the clients.
func (c *Cluster) setupKind(ctx context.Context) error {
	start := time.Now()
	existing, err := c.provider.List()
	if err != nil {
		return fmt.Errorf("list kind clusters: %w", err)
	}
	if slices.Contains(existing, c.Name) {
		if !c.cfg.Reuse {
			return fmt.Errorf("create kind cluster %s: it already exists: pass --reuse to use it, or choose another --name", c.Name)
		}
		c.mode = Reused
		if err := c.exportKubeconfig(); err != nil {
			return fmt.Errorf("reuse kind cluster %s: %w", c.Name, err)
		}
		if err := c.initClients(ctx); err != nil {
			return fmt.Errorf("reuse kind cluster %s: %w", c.Name, err)
		}
		if c.hasPodNetwork(ctx) {
			// Routes and nat rules do not survive a Docker restart.
			if err := c.setupPodNetwork(ctx); err != nil {
				return fmt.Errorf("reuse kind cluster %s: %w", c.Name, err)
			}
		}
		if err := c.writeState(os.Getpid()); err != nil {
			return err
		}
		c.log.Info("reusing kind cluster", "cluster", c.Name, "run", c.runID, "elapsed", since(start))
		return nil
	}
	c.mode = Created
	c.log.Info("creating kind cluster", "cluster", c.Name, "image", c.cfg.NodeImage, "run", c.runID)
	err = c.createKind(ctx)
	if err == nil {
		err = c.initClients(ctx)
	}
	if err == nil {
		err = c.setupPodNetwork(ctx)
	}
	if err == nil {
		err = c.waitNodesReady(ctx)
	}
	if err != nil {
		if !c.cfg.Retain {
			c.log.Info("deleting the cluster of the failed create", "cluster", c.Name, "error", err)
			if derr := c.deleteKind(); derr != nil {
				err = errors.Join(err, fmt.Errorf("delete kind cluster %s after failed create: %w", c.Name, derr))
			}
		} else {
			c.log.Info("keeping the cluster of the failed create (--retain)", "cluster", c.Name)
		}
		return fmt.Errorf("create kind cluster %s: %w", c.Name, err)
	}
	c.log.Info("created kind cluster", "cluster", c.Name, "elapsed", since(start))
	return nil
}

const kubeletSyncPatch = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
syncFrequency: 10s
`

// kindConfig returns the v1alpha4 config (from WithKindConfig or one
// control-plane node) with the marker mount added to every node, kind's
// default CNI off (the harness installs its own pod network, podnet.go,
// whatever the node image's default CNI is) and the published node ports
// (DefaultPublishedNodePorts, unless the node already maps that port) on
// 127.0.0.1 of the control-plane node, host port chosen free by kind.
func (c *Cluster) kindConfig() (*kindv1alpha4.Cluster, error) {
	kc := &kindv1alpha4.Cluster{}
	if c.cfg.KindConfig != "" {
		b, err := os.ReadFile(c.cfg.KindConfig)
		if err != nil {
			return nil, fmt.Errorf("read kind config: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, kc); err != nil {
			return nil, fmt.Errorf("parse kind config %s: %w", c.cfg.KindConfig, err)
		}
		if kc.APIVersion != "kind.x-k8s.io/v1alpha4" || kc.Kind != "Cluster" {
			return nil, fmt.Errorf("kind config %s: want kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4 (got %q %q)", c.cfg.KindConfig, kc.Kind, kc.APIVersion)
		}
	}
	kc.Kind, kc.APIVersion = "Cluster", "kind.x-k8s.io/v1alpha4"
	if len(kc.Nodes) == 0 {
		kc.Nodes = []kindv1alpha4.Node{{Role: kindv1alpha4.ControlPlaneRole}}
	}
	// Kubelets resync pods every 10 s instead of 1 min, so ConfigMap
	// changes (ip-masq-agent's config) reach pods in seconds rather than
	// 60–90 s. Placed first: a user's own KubeletConfiguration patch wins.
	kc.KubeadmConfigPatches = append([]string{kubeletSyncPatch}, kc.KubeadmConfigPatches...)
	for i := range kc.Nodes {
		kc.Nodes[i].ExtraMounts = append(kc.Nodes[i].ExtraMounts, kindv1alpha4.Mount{
			HostPath: c.markerDir(), ContainerPath: markerPath, Readonly: true,
		})
	}
	kc.Networking.DisableDefaultCNI = true
	for i := range kc.Nodes {
		if kc.Nodes[i].Role != kindv1alpha4.ControlPlaneRole {
			continue
		}
		for _, p := range DefaultPublishedNodePorts {
			if slices.ContainsFunc(kc.Nodes[i].ExtraPortMappings, func(m kindv1alpha4.PortMapping) bool { return int(m.ContainerPort) == p }) {
				continue
			}
			kc.Nodes[i].ExtraPortMappings = append(kc.Nodes[i].ExtraPortMappings, kindv1alpha4.PortMapping{
				ContainerPort: int32(p), HostPort: 0, ListenAddress: "127.0.0.1", Protocol: kindv1alpha4.PortMappingProtocolTCP,
			})
		}
		break
	}
	return kc, nil
}

// createKind runs kind's Create, which takes no context. On cancellation
// it deletes the nodes (so Create's next step fails fast), waits up to
// CancelGrace for Create to return, and deletes again: nodes created after
// the first delete must not survive. Unless retained.
func (c *Cluster) createKind(ctx context.Context) error {
	kc, err := c.kindConfig()
	if err != nil {
		return err
	}
	// The marker exists before any node does: a crash mid-create leaves
	// a cluster Sweep recognises.
	if err := c.writeState(os.Getpid()); err != nil {
		return err
	}
	opts := []kindcluster.CreateOption{
		kindcluster.CreateWithV1Alpha4Config(kc),
		kindcluster.CreateWithRetain(c.cfg.Retain),
		kindcluster.CreateWithKubeconfigPath(c.kubeconfig),
		// Readiness is waited for by waitNodesReady, which honours ctx.
		kindcluster.CreateWithWaitForReady(0),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	}
	if c.cfg.NodeImage != "" {
		opts = append(opts, kindcluster.CreateWithNodeImage(c.cfg.NodeImage))
	}
	done := make(chan error, 1)
	go func() { done <- c.provider.Create(c.Name, opts...) }()
	timer := time.NewTimer(c.cfg.Timeouts.Create)
	defer timer.Stop()
	var cause error
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kind create: %w", err)
		}
		return os.Chmod(c.kubeconfig, 0o600)
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timer.C:
		cause = fmt.Errorf("kind create did not finish within %v (Timeouts.Create)", c.cfg.Timeouts.Create)
	}
	if c.cfg.Retain {
		c.log.Info("create interrupted; keeping what was made (--retain)", "cluster", c.Name, "cause", cause)
		return cause
	}
	c.log.Info("create interrupted; deleting what was made", "cluster", c.Name, "cause", cause)
	// Delete now and again every couple of seconds until kind's Create
	// notices: a node container that `docker run` was still starting can
	// survive the first delete.
	_ = c.deleteKind()
	grace := time.NewTimer(c.cfg.Timeouts.CancelGrace)
	defer grace.Stop()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return cause
		case <-tick.C:
			_ = c.deleteKind()
		case <-grace.C:
			c.log.Warn("kind create still running after its nodes were deleted; a later Sweep removes anything it leaves", "cluster", c.Name)
			go func() { <-done; _ = c.deleteKind() }()
			return cause
		}
	}
}

// exportKubeconfig writes the kind cluster's external kubeconfig (0600).
func (c *Cluster) exportKubeconfig() error {
	kc, err := c.provider.KubeConfig(c.Name, false)
	if err != nil {
		return fmt.Errorf("get kubeconfig: %w", err)
	}
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// deleteKind deletes the kind cluster and its marker directory.
func (c *Cluster) deleteKind() error {
	if c.provider == nil {
		return nil
	}
	if err := deleteKindCluster(context.Background(), c.provider, c.Name, c.kubeconfig, c.log); err != nil {
		return err
	}
	return os.RemoveAll(c.markerDir())
}

// waitNodesReady waits until every node is Ready.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Create)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if len(nodes.Items) == 0 {
			last = "no nodes registered"
			return false, nil
		}
		for _, n := range nodes.Items {
			ready := false
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					ready = cond.Status == corev1.ConditionTrue
					if !ready {
						last = fmt.Sprintf("node %s not ready: %s %s", n.Name, cond.Reason, cond.Message)
					}
				}
			}
			if !ready {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for nodes ready: %w (last: %s)", err, last)
	}
	return nil
}

// kindLogger forwards kind's messages to slog at Debug (kind's own
// progress lines are details here; the harness logs its own phases).
type kindLogger struct{ l *slog.Logger }

func (k kindLogger) Warn(m string)                      { k.l.Debug("kind: " + m) }
func (k kindLogger) Warnf(f string, a ...any)           { k.l.Debug("kind: " + fmt.Sprintf(f, a...)) }
func (k kindLogger) Error(m string)                     { k.l.Warn("kind: " + m) }
func (k kindLogger) Errorf(f string, a ...any)          { k.l.Warn("kind: " + fmt.Sprintf(f, a...)) }
func (k kindLogger) V(kindlog.Level) kindlog.InfoLogger { return kindInfo(k) }

type kindInfo kindLogger

func (k kindInfo) Info(m string)            { k.l.Debug("kind: " + m) }
func (k kindInfo) Infof(f string, a ...any) { k.l.Debug("kind: " + fmt.Sprintf(f, a...)) }
func (k kindInfo) Enabled() bool            { return k.l.Enabled(context.Background(), slog.LevelDebug) }
