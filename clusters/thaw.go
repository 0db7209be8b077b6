package clusters

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	kindcluster "sigs.k8s.io/kind/pkg/cluster"
)

// deleteKindCluster deletes a kind cluster; if kind fails to remove a node
// container it thaws frozen cgroups under the nodes (see thawNodes) and
// tries once more.
func deleteKindCluster(ctx context.Context, p *kindcluster.Provider, name, kubeconfig string, log *slog.Logger) error {
	err := p.Delete(name, kubeconfig)
	if err == nil {
		return nil
	}
	if n := thawNodes(ctx, name, log); n > 0 {
		return p.Delete(name, kubeconfig)
	}
	return err
}

// thawNodes works around a cgroup v1 hazard: runc freezes a pod's cgroup
// while it starts a container, and when the kind node is killed at that
// moment (a delete or Ctrl-C right after create) the cgroup stays FROZEN,
// its process cannot die and `docker rm -f` fails with "did not receive an
// exit event". It writes THAWED to every frozen freezer cgroup under the
// cluster's node containers (and nothing else) and returns how many it
// thawed. On cgroup v2 hosts, or without permission, it does nothing.
func thawNodes(ctx context.Context, cluster string, log *slog.Logger) int {
	out, err := dockerOutput(ctx, "ps", "-aq", "--no-trunc", "--filter", "label=io.x-k8s.kind.cluster="+cluster)
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range strings.Fields(string(out)) {
		for _, root := range []string{
			filepath.Join("/sys/fs/cgroup/freezer/docker", id),
			filepath.Join("/sys/fs/cgroup/freezer/system.slice", "docker-"+id+".scope"),
		} {
			_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "freezer.state" {
					return nil
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil
				}
				if s := strings.TrimSpace(string(b)); s == "FROZEN" || s == "FREEZING" {
					if os.WriteFile(path, []byte("THAWED"), 0o644) == nil {
						n++
						log.Warn("thawed a frozen cgroup left in a kind node so it can be deleted", "cluster", cluster, "cgroup", filepath.Dir(path))
					}
				}
				return nil
			})
		}
	}
	return n
}
