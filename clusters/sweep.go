package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
)

// SweepDecision is what Sweep decided about one kind cluster.
type SweepDecision struct {
	Name    string
	Deleted bool
	Reason  string
}

// Sweep removes kind clusters left behind by crashed or killed runs. A
// cluster is deleted only if all of these hold: its name starts with
// "meshconform"; its node containers carry the marker mount this package
// adds at creation (so clusters made by anyone else are never touched);
// its state says it is not retained; and the process that owns it is not
// alive on this host. Marker directories whose cluster is gone are removed.
// Options used: WithStateDir, WithLogger.
func Sweep(ctx context.Context, opts ...Option) error {
	_, err := SweepReport(ctx, opts...)
	return err
}

// SweepReport is Sweep returning its decision for every candidate.
func SweepReport(ctx context.Context, opts ...Option) ([]SweepDecision, error) {
	cfg := &Config{}
	for _, o := range opts {
		o(cfg)
	}
	cfg2, _ := newConfig(WithStateDir(cfg.StateDir), WithLogger(cfg.Logger))
	log := cfg2.Logger
	start := time.Now()
	provider := kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{log}))
	names, err := provider.List()
	if err != nil {
		return nil, fmt.Errorf("sweep: list kind clusters: %w", err)
	}
	tmp, err := os.MkdirTemp("", "meshconform-sweep-")
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	defer os.RemoveAll(tmp)
	host, _ := os.Hostname()
	var out []SweepDecision
	var errs []error
	live := map[string]bool{}
	for _, name := range names {
		live[name] = true
		if !strings.HasPrefix(name, SweepPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("sweep: %w", err)
		}
		d := SweepDecision{Name: name}
		dir, err := markerSource(ctx, name)
		switch {
		case err != nil:
			d.Reason = "cannot inspect nodes: " + err.Error()
		case dir == "":
			d.Reason = "not created by meshconform (no marker mount)"
		default:
			st, err := readState(dir)
			switch {
			case err != nil:
				d.Reason = "marker state unreadable, keeping it: " + err.Error()
			case st.Retain:
				d.Reason = "retained"
			case st.PID == 0:
				// A run that ended cleanly left it on purpose (a reused
				// cluster is never deleted by its run).
				d.Reason = "left by a run that ended cleanly (run " + st.RunID + ")"
			case st.PID != 0 && st.Hostname == host && processAlive(st.PID):
				d.Reason = fmt.Sprintf("in use by pid %d (run %s)", st.PID, st.RunID)
			case st.PID != 0 && st.Hostname != host:
				d.Reason = fmt.Sprintf("owned by a process on host %s", st.Hostname)
			default:
				log.Info("sweeping leftover kind cluster", "cluster", name, "run", st.RunID)
				if err := deleteKindCluster(ctx, provider, name, filepath.Join(tmp, "kubeconfig"), log); err != nil {
					// Another run's Sweep may have deleted it meanwhile.
					if now, lerr := provider.List(); lerr == nil && !slices.Contains(now, name) {
						d.Deleted, d.Reason = true, "leftover of run "+st.RunID+" (deleted concurrently)"
						delete(live, name)
						break
					}
					errs = append(errs, fmt.Errorf("sweep: delete kind cluster %s: %w", name, err))
					d.Reason = "delete failed: " + err.Error()
					break
				}
				_ = os.RemoveAll(dir)
				d.Deleted, d.Reason = true, "leftover of run "+st.RunID
				delete(live, name)
			}
		}
		log.Debug("sweep decision", "cluster", name, "deleted", d.Deleted, "reason", d.Reason)
		out = append(out, d)
	}
	// Marker directories without a cluster (deleted by hand, or the
	// create died before any node existed).
	entries, _ := os.ReadDir(cfg2.StateDir)
	for _, e := range entries {
		if !e.IsDir() || live[e.Name()] {
			continue
		}
		dir := filepath.Join(cfg2.StateDir, e.Name())
		st, err := readState(dir)
		if err == nil && st.PID != 0 && st.Hostname == host && processAlive(st.PID) {
			continue // a create in progress
		}
		_ = os.RemoveAll(dir)
	}
	log.Debug("sweep done", "candidates", len(out), "elapsed", since(start))
	return out, errors.Join(errs...)
}

// markerSource returns the host directory mounted at /meshconform in the
// cluster's node containers ("" if none carries it).
func markerSource(ctx context.Context, cluster string) (string, error) {
	ids, err := dockerOutput(ctx, "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+cluster)
	if err != nil {
		return "", err
	}
	for _, id := range strings.Fields(string(ids)) {
		out, err := dockerOutput(ctx, "inspect", "--format", "{{json .Mounts}}", id)
		if err != nil {
			return "", err
		}
		var mounts []struct{ Source, Destination string }
		if err := json.Unmarshal(out, &mounts); err != nil {
			return "", fmt.Errorf("parse mounts of %s: %w", id, err)
		}
		for _, m := range mounts {
			if m.Destination == markerPath {
				return m.Source, nil
			}
		}
	}
	return "", nil
}

// processAlive reports whether pid exists on this host.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// SweepLeftovers deletes namespaces labelled meshconform.dev/managed=true
// that other runs made more than olderThan ago (crashed runs against an
// existing or reused cluster). Namespaces of this run, of runs younger than
// olderThan (possibly still running against a shared cluster) and
// unlabelled namespaces are never touched.
func (c *Cluster) SweepLeftovers(ctx context.Context, olderThan time.Duration) ([]string, error) {
	list, err := c.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
	if err != nil {
		return nil, fmt.Errorf("sweep leftovers: list namespaces: %w", err)
	}
	var victims []string
	for _, ns := range list.Items {
		if ns.Labels[LabelRun] == c.runID || ns.DeletionTimestamp != nil {
			continue
		}
		if time.Since(ns.CreationTimestamp.Time) < olderThan {
			continue
		}
		victims = append(victims, ns.Name)
	}
	if len(victims) == 0 {
		return nil, nil
	}
	c.log.Info("sweeping leftover namespaces", "namespaces", victims)
	return victims, c.deleteNamespaces(ctx, victims)
}

// isManaged reports whether an object carries the managed label.
func isManaged(meta metav1.Object) bool { return meta.GetLabels()[LabelManaged] == "true" }
