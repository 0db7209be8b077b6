package clusters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
)

// The harness's own pod network on the kind clusters it creates (kind
// networking.disableDefaultCNI: true): no CNI daemon, only a CNI config
// file on every node that uses the plugins every kindest/node image ships
// in /opt/cni/bin (ptp, host-local, portmap), and routes between nodes.
// It never masquerades by itself (ptp "ipMasq": false); the only source
// NAT on the path is a nat chain the harness owns (BaselineMasqChain, the
// equivalent of kindnet's KIND-MASQ-AGENT, so that pods reach the fixtures
// on the Docker network outside masquerade checks) and, once installed,
// ip-masq-agent's. DisableCNIMasquerade removes the baseline chain for
// the masquerade checks, which then see ip-masq-agent alone, as on GKE.
const (
	// PodNetworkConflist is where the CNI config is written on every node.
	PodNetworkConflist = "/etc/cni/net.d/10-meshconform.conflist"
	// BaselineMasqChain is the harness's nat chain: MASQUERADE for traffic
	// from the node's pod CIDR to anything that is neither a pod CIDR nor a
	// local address of the node.
	BaselineMasqChain = "MESHCONFORM-MASQ"
	// PodNetworkName is the "name" of the CNI network.
	PodNetworkName = "meshconform-ptp"
)

// DefaultPublishedNodePorts are the node ports published on 127.0.0.1 of
// the host (kind extraPortMappings on the control-plane node, host port
// chosen free by kind) on clusters the harness creates: the Istio ingress
// gateway's NodePorts for 443 and 80 (clusters/istio DefaultHTTPSNodePort,
// DefaultHTTPNodePort). See PublishedPort.
var DefaultPublishedNodePorts = []int{31443, 31080}

// ptpConflist is the CNI config of one node: ptp (a veth per pod, the
// node's end routed) without masquerade, host-local addresses from the
// node's pod CIDR, a default route through the node, then portmap for
// hostPort pods.
func ptpConflist(podCIDR string) (string, error) {
	p, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return "", fmt.Errorf("pod network: node pod CIDR %q: %w", podCIDR, err)
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       PodNetworkName,
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": p.Masked().String()}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	return string(b), err
}

// podNode is what the pod network needs of one node.
type podNode struct{ name, ip, podCIDR string }

// podNetworkScript is the shell run on node self: the conflist, a route
// to every other node's pod CIDR via that node, and the baseline chain.
// Every step is idempotent (replace, flush and refill, check before add).
func podNetworkScript(self podNode, all []podNode) (string, error) {
	conf, err := ptpConflist(self.podCIDR)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("set -e\n")
	fmt.Fprintf(&b, "mkdir -p /etc/cni/net.d\ncat > %s.tmp <<'EOF'\n%s\nEOF\nmv %s.tmp %s\n", PodNetworkConflist, conf, PodNetworkConflist, PodNetworkConflist)
	for _, o := range all {
		if o.name == self.name {
			continue
		}
		fmt.Fprintf(&b, "ip route replace %s via %s\n", o.podCIDR, o.ip)
	}
	b.WriteString(baselineMasqScript(self, all))
	return b.String(), nil
}

// baselineMasqScript (re)creates BaselineMasqChain on node self and the
// POSTROUTING jump to it.
func baselineMasqScript(self podNode, all []podNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "iptables -w 5 -t nat -N %[1]s 2>/dev/null || iptables -w 5 -t nat -F %[1]s\n", BaselineMasqChain)
	for _, o := range all {
		fmt.Fprintf(&b, "iptables -w 5 -t nat -A %s -d %s -j RETURN\n", BaselineMasqChain, o.podCIDR)
	}
	fmt.Fprintf(&b, "iptables -w 5 -t nat -A %s -s %s -m addrtype ! --dst-type LOCAL -j MASQUERADE\n", BaselineMasqChain, self.podCIDR)
	fmt.Fprintf(&b, "iptables -w 5 -t nat -C POSTROUTING -j %[1]s 2>/dev/null || iptables -w 5 -t nat -A POSTROUTING -j %[1]s\n", BaselineMasqChain)
	return b.String()
}

// podNodes waits until every kind node is registered with an InternalIP
// and a pod CIDR (the controller manager allocates them right after
// registration), and returns them sorted by name.
func (c *Cluster) podNodes(ctx context.Context, want int) ([]podNode, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Create)
	defer cancel()
	var out []podNode
	last := "no nodes registered"
	err := wait.PollUntilContextCancel(ctx, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		out = out[:0]
		for _, n := range list.Items {
			pn := podNode{name: n.Name, podCIDR: n.Spec.PodCIDR}
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP && pn.ip == "" {
					if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
						pn.ip = a.Address
					}
				}
			}
			if pn.ip == "" || pn.podCIDR == "" {
				last = fmt.Sprintf("node %s: InternalIP %q, podCIDR %q", n.Name, pn.ip, pn.podCIDR)
				return false, nil
			}
			out = append(out, pn)
		}
		if len(out) < want {
			last = fmt.Sprintf("%d of %d nodes registered", len(out), want)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for node pod CIDRs: %w (last: %s)", err, last)
	}
	slices.SortFunc(out, func(a, b podNode) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// setupPodNetwork installs the harness's pod network on every node of a
// kind cluster created with disableDefaultCNI (see PodNetworkConflist).
// It is idempotent: a reused cluster gets its routes and chain back after
// a Docker restart. Nodes become Ready once the conflist is there.
func (c *Cluster) setupPodNetwork(ctx context.Context) error {
	start := time.Now()
	kn, err := c.kindNodes()
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	nodes, err := c.podNodes(ctx, len(kn))
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	for _, n := range nodes {
		script, err := podNetworkScript(n, nodes)
		if err != nil {
			return err
		}
		if err := c.nodeScript(ctx, kn, n.name, script); err != nil {
			return fmt.Errorf("pod network on node %s: %w", n.name, err)
		}
	}
	c.podNetwork = true
	var cidrs []string
	for _, n := range nodes {
		cidrs = append(cidrs, n.name+"="+n.podCIDR)
	}
	c.log.Info("pod network ready (ptp, no CNI masquerade)", "nodes", strings.Join(cidrs, ","), "elapsed", since(start))
	return nil
}

// restoreBaselineMasq puts BaselineMasqChain back on every node.
func (c *Cluster) restoreBaselineMasq(ctx context.Context) error {
	kn, err := c.kindNodes()
	if err != nil {
		return err
	}
	nodes, err := c.podNodes(ctx, len(kn))
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if err := c.nodeScript(ctx, kn, n.name, "set -e\n"+baselineMasqScript(n, nodes)); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.name, err))
		}
	}
	return errors.Join(errs...)
}

// nodeScript runs script with sh in the kind node container name.
func (c *Cluster) nodeScript(ctx context.Context, kn []kindnodes.Node, name, script string) error {
	for _, n := range kn {
		if n.String() != name {
			continue
		}
		var stderr bytes.Buffer
		cmd := n.CommandContext(ctx, "sh", "-s")
		cmd.SetStdin(strings.NewReader(script))
		cmd.SetStderr(&stderr)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	return fmt.Errorf("no kind node container %s in cluster %s", name, c.Name)
}

// hasPodNetwork reports whether the first kind node has the harness's
// conflist (a cluster created by meshconform, or reused after it).
func (c *Cluster) hasPodNetwork(ctx context.Context) bool {
	kn, err := c.kindNodes()
	if err != nil {
		return false
	}
	cmd := kn[0].CommandContext(ctx, "test", "-f", PodNetworkConflist)
	return cmd.Run() == nil
}

// PodNetwork names the pod network of the cluster: PodNetworkName when it
// is the harness's own (created by meshconform), "" otherwise (the node
// image's default CNI, or an existing cluster's).
func (c *Cluster) PodNetwork() string {
	if c.podNetwork {
		return PodNetworkName
	}
	return ""
}

// PublishedPort returns where the host reaches containerPort of the kind
// control-plane node: the 127.0.0.1 address and host port Docker bound for
// it (`docker port`; kind extraPortMappings, see DefaultPublishedNodePorts).
// The host never dials a node's own address: on Docker Desktop (macOS,
// Windows, Linux), rootless Docker and Podman it is not routable from the
// host. Errors: existing-cluster mode (errNoNodeAccess), or the port is not
// published (a cluster created by an older meshconform or by hand:
// recreate it).
func (c *Cluster) PublishedPort(ctx context.Context, containerPort int) (host string, port int, err error) {
	kn, err := c.kindNodes()
	if err != nil {
		return "", 0, fmt.Errorf("published port %d: %w", containerPort, err)
	}
	var cp string
	for _, n := range kn {
		if r, err := n.Role(); err == nil && r == "control-plane" {
			cp = n.String()
			break
		}
	}
	if cp == "" {
		cp = kn[0].String()
	}
	out, err := dockerOutput(ctx, "port", cp, fmt.Sprintf("%d/tcp", containerPort))
	if err != nil {
		return "", 0, fmt.Errorf("published port %d of node %s: not published (the cluster was not created by this meshconform with extraPortMappings: delete it and let meshconform create it): %w", containerPort, cp, err)
	}
	return parseDockerPort(string(out), containerPort, cp)
}

// parseDockerPort reads `docker port` output ("127.0.0.1:43127", one per
// line, IPv6 lines too) and returns the first loopback IPv4 binding.
func parseDockerPort(out string, containerPort int, node string) (string, int, error) {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(line))
		if err != nil {
			continue
		}
		addr := ap.Addr()
		if addr.IsUnspecified() {
			addr = netip.MustParseAddr("127.0.0.1")
		}
		if addr.Is4() && addr.IsLoopback() {
			return addr.String(), int(ap.Port()), nil
		}
	}
	return "", 0, fmt.Errorf("published port %d of node %s: no 127.0.0.1 binding in %q", containerPort, node, strings.TrimSpace(out))
}

// NodeContainerImage returns the image id of the first kind node
// container (`docker inspect`): an image with iproute2 that is certainly
// in the local Docker engine, e.g. for helpers run next to fixtures.
func (c *Cluster) NodeContainerImage(ctx context.Context) (string, error) {
	kn, err := c.kindNodes()
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	out, err := dockerOutput(ctx, "inspect", "--format", "{{.Image}}", kn[0].String())
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
