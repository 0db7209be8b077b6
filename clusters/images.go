package clusters

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// LoadImage makes a locally built image (e.g. meshconform/agent:<hash>)
// available to pods without a registry, as `kind load docker-image` does:
// `docker save` once, then nodeutils.LoadImageArchive into every node that
// does not already have that image id. Pods must then use a non-latest tag
// or imagePullPolicy IfNotPresent/Never.
//
// In existing-cluster mode there is no node access: LoadImage succeeds if
// every node already reports the image (node status images), or if
// WithImagesPushed(true) declared that the images were pushed to a
// registry the cluster pulls from; otherwise it returns an error saying so.
func (c *Cluster) LoadImage(ctx context.Context, ref string) error {
	if !c.Managed() {
		return c.checkImageOnNodes(ctx, ref)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.ImageLoad)
	defer cancel()
	idOut, err := dockerOutput(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		return fmt.Errorf("load image %s: not in the local Docker engine (build it first): %w", ref, err)
	}
	id := strings.TrimSpace(string(idOut))
	nodes, err := c.kindNodes()
	if err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	var todo []string
	for _, n := range nodes {
		if have, err := nodeutils.ImageID(n, ref); err == nil && have == id {
			c.log.Debug("image already on node", "image", ref, "node", n.String())
			continue
		}
		todo = append(todo, n.String())
	}
	if len(todo) == 0 {
		c.log.Info("image already loaded", "image", ref, "elapsed", since(start))
		return nil
	}
	tar := filepath.Join(c.tmpDir, "image.tar")
	defer os.Remove(tar)
	if out, err := exec.CommandContext(ctx, "docker", "save", "-o", tar, ref).CombinedOutput(); err != nil {
		return fmt.Errorf("load image %s: docker save: %w: %s", ref, err, strings.TrimSpace(string(out)))
	}
	for _, n := range nodes {
		if !slices.Contains(todo, n.String()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("load image %s: %w", ref, err)
		}
		f, err := os.Open(tar)
		if err != nil {
			return fmt.Errorf("load image %s: %w", ref, err)
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("load image %s into node %s: %w", ref, n.String(), err)
		}
	}
	c.log.Info("loaded image", "image", ref, "nodes", len(todo), "elapsed", since(start))
	return nil
}

// checkImageOnNodes is LoadImage in existing-cluster mode.
func (c *Cluster) checkImageOnNodes(ctx context.Context, ref string) error {
	if c.cfg.ImagesPushed {
		c.log.Debug("image assumed pushed to the cluster's registry", "image", ref)
		return nil
	}
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("load image %s: list nodes: %w", ref, err)
	}
	var missing []string
	for _, n := range list.Items {
		found := false
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				if imageNameMatches(name, ref) {
					found = true
				}
			}
		}
		if !found {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) == 0 && len(list.Items) > 0 {
		return nil
	}
	return fmt.Errorf("load image %s: %w; nodes %v do not have it: push it to a registry the cluster can pull from and pass --images-pushed", ref, errNoNodeAccess, missing)
}

// imageNameMatches compares a node's image name ("docker.io/library/x:t")
// with a reference as users write it ("x:t").
func imageNameMatches(nodeName, ref string) bool {
	return normalizeImage(nodeName) == normalizeImage(ref)
}

func normalizeImage(ref string) string {
	name, digest, _ := strings.Cut(ref, "@")
	if digest != "" {
		return name + "@" + digest
	}
	slash := strings.LastIndex(name, "/")
	if !strings.Contains(name[slash+1:], ":") {
		name += ":latest"
	}
	first, _, found := strings.Cut(name, "/")
	switch {
	case !found:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	return name
}

// PreloadImages puts images the cluster would otherwise pull itself onto
// every node from the host's Docker engine: a ref missing there is pulled
// once with `docker pull` (the user's credentials, mirror and cache, not
// the node containerd's anonymous pulls, which Docker Hub limits to 10 per
// hour per address), unless pull is false ("--no-pull": only what is
// already in the host's Docker is used), then loaded like LoadImage. The
// nodes' pods then find them (tags other than latest: imagePullPolicy
// IfNotPresent). A ref that is neither local nor pullable is a
// *NotReadyError naming it and Docker's message. In existing-cluster mode
// there is nothing to load (the cluster pulls from its registry): nil.
func (c *Cluster) PreloadImages(ctx context.Context, refs []string, pull bool) error {
	if !c.Managed() {
		return nil
	}
	for _, ref := range refs {
		if _, err := dockerOutput(ctx, "image", "inspect", "--format", "{{.Id}}", ref); err != nil {
			if !pull {
				return &NotReadyError{Reason: fmt.Sprintf("image %s is not in the local Docker engine and pulling is off (--no-pull): docker pull it, or drop --no-pull", ref)}
			}
			start := time.Now()
			c.log.Info("pulling image with the host's Docker", "image", ref)
			pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.ImageLoad)
			out, err := exec.CommandContext(pctx, "docker", "pull", "--quiet", ref).CombinedOutput()
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &NotReadyError{Reason: fmt.Sprintf("image %s could not be pulled with the host's Docker: %s", ref, lastLine(string(out), err))}
			}
			c.log.Info("pulled image", "image", ref, "elapsed", since(start))
		}
		if err := c.LoadImage(ctx, ref); err != nil {
			return err
		}
	}
	return nil
}

func lastLine(out string, err error) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}
