package clusters

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
)

// Node is one cluster node as the checks need it.
type Node struct {
	// Name is the Kubernetes node name (the container name in kind).
	Name string
	// InternalIP is the node's InternalIP address (on the Docker network
	// "kind" for kind clusters).
	InternalIP string
	// PodCIDR is the node's spec.podCIDR ("" if none allocated).
	PodCIDR string
}

// Nodes lists the nodes, sorted by name.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]Node, 0, len(list.Items))
	for _, n := range list.Items {
		node := Node{Name: n.Name, PodCIDR: n.Spec.PodCIDR}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && node.InternalIP == "" {
				node.InternalIP = a.Address
			}
		}
		out = append(out, node)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// PodCIDRs returns the nodes' pod CIDRs (each node's spec.podCIDRs), sorted
// and without duplicates.
func (c *Cluster) PodCIDRs(ctx context.Context) ([]string, error) {
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []string
	for _, n := range list.Items {
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, cidr := range cidrs {
			if !slices.Contains(out, cidr) {
				out = append(out, cidr)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// errNoNodeAccess is returned by everything that needs the node containers.
var errNoNodeAccess = errors.New("the harness has no access to the nodes of an existing cluster (--kubeconfig/--context); this needs a kind cluster created or reused by meshconform")

// kindNodes returns the kind node containers (not the load balancer).
func (c *Cluster) kindNodes() ([]kindnodes.Node, error) {
	if !c.Managed() || c.provider == nil {
		return nil, errNoNodeAccess
	}
	nodes, err := c.provider.ListInternalNodes(c.Name)
	if err != nil {
		return nil, fmt.Errorf("list kind nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("kind cluster %s has no nodes", c.Name)
	}
	return nodes, nil
}

// NodeExec runs a command in a kind node container and returns its stdout
// (in existing-cluster mode: an error saying there is no node access).
func (c *Cluster) NodeExec(ctx context.Context, node string, args ...string) ([]byte, error) {
	nodes, err := c.kindNodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.String() != node {
			continue
		}
		var stdout, stderr bytes.Buffer
		cmd := n.CommandContext(ctx, args[0], args[1:]...)
		cmd.SetStdout(&stdout)
		cmd.SetStderr(&stderr)
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("run %s on node %s: %w: %s", args[0], node, err, strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	}
	return nil, fmt.Errorf("run %s: no kind node %s in cluster %s", args[0], node, c.Name)
}

// podExecer runs a command in a pod's container.
type podExecer interface {
	exec(ctx context.Context, namespace, pod, container string, cmd []string, stdin io.Reader) (stdout, stderr []byte, err error)
}

// Exec runs cmd in a container of a pod (what `kubectl exec` does) and
// returns its stdout and stderr.
func (c *Cluster) Exec(ctx context.Context, namespace, pod, container string, cmd ...string) (stdout, stderr []byte, err error) {
	stdout, stderr, err = c.execer.exec(ctx, namespace, pod, container, cmd, nil)
	if err != nil {
		return stdout, stderr, fmt.Errorf("exec %s in %s/%s[%s]: %w: %s", strings.Join(cmd, " "), namespace, pod, container, err, strings.TrimSpace(string(stderr)))
	}
	return stdout, stderr, nil
}

type spdyExecer struct{ c *Cluster }

func (s *spdyExecer) exec(ctx context.Context, namespace, pod, container string, cmd []string, stdin io.Reader) ([]byte, []byte, error) {
	req := s.c.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(s.c.restConfig, "POST", req.URL())
	if err != nil {
		return nil, nil, err
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &stdout, Stderr: &stderr})
	return stdout.Bytes(), stderr.Bytes(), err
}
