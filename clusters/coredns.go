package clusters

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/retry"

	"github.com/meshconform/meshconform/clusters/internal/podstatus"
)

const (
	corednsNamespace  = "kube-system"
	corednsConfigMap  = "coredns"
	corednsDeployment = "coredns"
	corednsSelector   = "k8s-app=kube-dns"
	blockBegin        = "# meshconform:begin"
	blockEnd          = "# meshconform:end"
)

var dnsName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// SetExternalHosts makes names resolve from pods like real DNS (name ->
// IP), so ServiceEntries with resolution: DNS behave as in production: it
// adds a server block for exactly these names, answered by CoreDNS's hosts
// plugin, to the Corefile (ConfigMap kube-system/coredns), restarts CoreDNS
// (the reload plugin would take up to ~2 min: kubelet's ConfigMap sync
// plus its 30 s poll) and waits until every CoreDNS pod answers every name
// with its address (queried through a port-forward, no image needed).
// Names must be exact (no wildcards). A block left by an earlier run is
// replaced. restore removes the block and restarts CoreDNS again; Teardown
// runs it if the caller has not.
func (c *Cluster) SetExternalHosts(ctx context.Context, hosts map[string]string) (restore func(context.Context) error, err error) {
	start := time.Now()
	if len(hosts) == 0 {
		return nil, errors.New("set external hosts: no hosts given")
	}
	for name, ip := range hosts {
		if !dnsName.MatchString(name) {
			return nil, fmt.Errorf("set external hosts: %q is not an exact DNS name (lower case, no wildcard): list each name", name)
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("set external hosts: %s -> %q: not an IP address", name, ip)
		}
	}
	block := hostsBlock(c.runID, hosts)
	if err := c.editCorefile(ctx, func(cf string) string { return stripBlock(cf) + block }); err != nil {
		return nil, fmt.Errorf("set external hosts: %w", err)
	}
	restore = c.addRestore("CoreDNS Corefile", func(ctx context.Context) error {
		if err := c.editCorefile(ctx, stripBlock); err != nil {
			return err
		}
		if err := c.restartDeployment(ctx, corednsNamespace, corednsDeployment); err != nil {
			return err
		}
		return c.waitCoreDNS(ctx, hosts, false)
	})
	if err := c.restartDeployment(ctx, corednsNamespace, corednsDeployment); err != nil {
		return restore, fmt.Errorf("set external hosts: %w", err)
	}
	if err := c.waitCoreDNS(ctx, hosts, true); err != nil {
		return restore, fmt.Errorf("set external hosts: %w", err)
	}
	c.log.Info("external names resolve in the cluster", "hosts", len(hosts), "elapsed", since(start))
	return restore, nil
}

// hostsBlock renders the Corefile server block for hosts.
func hostsBlock(runID string, hosts map[string]string) string {
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s run=%s (external names of meshconform's fixtures; removed at teardown)\n", blockBegin, runID)
	for i, n := range names {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(n + ":53")
	}
	b.WriteString(" {\n    errors\n    hosts {\n")
	for _, n := range names {
		fmt.Fprintf(&b, "        %s %s\n", hosts[n], n)
	}
	b.WriteString("        ttl 5\n    }\n}\n" + blockEnd + "\n")
	return b.String()
}

// stripBlock removes every meshconform block from a Corefile.
func stripBlock(cf string) string {
	var out []string
	in := false
	for _, line := range strings.SplitAfter(cf, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, blockBegin):
			in = true
		case in && t == blockEnd:
			in = false
		case !in:
			out = append(out, line)
		}
	}
	s := strings.Join(out, "")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

func (c *Cluster) editCorefile(ctx context.Context, edit func(string) string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := c.client.CoreV1().ConfigMaps(corednsNamespace).Get(ctx, corednsConfigMap, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get ConfigMap %s/%s: %w", corednsNamespace, corednsConfigMap, err)
		}
		cf, ok := cm.Data["Corefile"]
		if !ok {
			return fmt.Errorf("ConfigMap %s/%s has no Corefile key", corednsNamespace, corednsConfigMap)
		}
		next := edit(cf)
		if next == cf {
			return nil
		}
		cm.Data["Corefile"] = next
		_, err = c.client.CoreV1().ConfigMaps(corednsNamespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}

// waitCoreDNS waits until every ready CoreDNS pod answers every name with
// its address (present) or no longer does (!present; a new pod can start
// with the ConfigMap as it was a moment ago), and the kube-dns Service
// leads to exactly those
// pods: its EndpointSlices list them as ready and, on kind nodes,
// kube-proxy's nat rules DNAT to them (after a restart the Service briefly
// still points at the old pods, and a pod resolving then would time out).
func (c *Cluster) waitCoreDNS(ctx context.Context, hosts map[string]string, present bool) error {
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.DNS)
	defer cancel()
	var last string
	answered := map[string]bool{} // pod UID -> answered all names
	err := wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		pods, err := c.client.CoreV1().Pods(corednsNamespace).List(ctx, metav1.ListOptions{LabelSelector: corednsSelector})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var ips []string
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || !podstatus.IsReady(p) {
				continue
			}
			ips = append(ips, p.Status.PodIP)
			if answered[string(p.UID)] {
				continue
			}
			for name, want := range hosts {
				got, err := c.resolveVia(ctx, p.Name, name, netip.MustParseAddr(want).Is6())
				// Without the block the name goes to the upstream
				// resolvers, which may fail or not answer at all (no
				// internet): either way the pod no longer serves it.
				if err != nil && !present && errors.Is(err, errNoAnswer) {
					err, got = nil, nil
				}
				if err != nil {
					last = fmt.Sprintf("pod %s: %s: %v", p.Name, name, err)
					return false, nil
				}
				if slices.Contains(got, want) != present {
					last = fmt.Sprintf("pod %s answers %s with %v (want %s present=%v)", p.Name, name, got, want, present)
					return false, nil
				}
			}
			answered[string(p.UID)] = true
		}
		if len(ips) == 0 {
			last = "no ready CoreDNS pod"
			return false, nil
		}
		slices.Sort(ips)
		eps, err := c.serviceEndpoints(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if !slices.Equal(eps, ips) {
			last = fmt.Sprintf("kube-dns endpoints %v, ready CoreDNS pods %v", eps, ips)
			return false, nil
		}
		if c.Managed() {
			nodes, err := c.kindNodes()
			if err != nil {
				return false, err
			}
			for _, n := range nodes {
				out, err := c.NodeExec(ctx, n.String(), "iptables-save", "-t", "nat")
				if err != nil {
					last = err.Error()
					return false, nil
				}
				// No kube-dns rules at all: kube-proxy is not in iptables
				// mode; the EndpointSlices have to do.
				if dnat := kubeDNSDNAT(string(out)); len(dnat) > 0 && !slices.Equal(dnat, ips) {
					last = fmt.Sprintf("node %s: kube-proxy sends DNS to %v, ready CoreDNS pods %v", n.String(), dnat, ips)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CoreDNS (names present=%v): %w (last: %s)", present, err, last)
	}
	return nil
}

// serviceEndpoints returns the sorted ready addresses of Service kube-dns.
func (c *Cluster) serviceEndpoints(ctx context.Context) ([]string, error) {
	sl, err := c.client.DiscoveryV1().EndpointSlices(corednsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
	if err != nil {
		return nil, fmt.Errorf("list kube-dns endpoints: %w", err)
	}
	var out []string
	for _, s := range sl.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// kubeDNSDNAT returns the sorted pod IPs kube-proxy's iptables rules send
// the kube-dns UDP port to.
func kubeDNSDNAT(save string) []string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		if !strings.HasPrefix(line, "-A KUBE-SEP-") || !strings.Contains(line, `"kube-system/kube-dns:dns"`) {
			continue
		}
		f := splitRule(line)
		if ruleArg(f, "-j") != "DNAT" {
			continue
		}
		if ap, err := netip.ParseAddrPort(ruleArg(f, "--to-destination")); err == nil && !slices.Contains(out, ap.Addr().String()) {
			out = append(out, ap.Addr().String())
		}
	}
	slices.Sort(out)
	return out
}

// resolveVia asks one CoreDNS pod for name's A (or AAAA) records over TCP
// through a port-forward.
func (c *Cluster) resolveVia(ctx context.Context, pod, name string, ipv6 bool) ([]string, error) {
	addr, stop, err := c.PortForward(ctx, corednsNamespace, pod, 53)
	if err != nil {
		return nil, err
	}
	defer stop()
	t := dnsmessage.TypeA
	if ipv6 {
		t = dnsmessage.TypeAAAA
	}
	return queryTCP(ctx, addr, name, t, c.cfg.Timeouts.DNSQuery)
}

// errNoAnswer: the server answered SERVFAIL or not at all.
var errNoAnswer = errors.New("no DNS answer")

// queryTCP sends one DNS query over TCP, bounded by timeout, and returns
// the addresses.
func queryTCP(ctx context.Context, addr, name string, t dnsmessage.Type, timeout time.Duration) ([]string, error) {
	qname, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, err
	}
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: uint16(rand.Uint32()), RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: t, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	buf := make([]byte, 2+len(q))
	binary.BigEndian.PutUint16(buf, uint16(len(q)))
	copy(buf[2:], q)
	if _, err := conn.Write(buf); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%w within %v", errNoAnswer, timeout)
		}
		return nil, fmt.Errorf("read DNS answer: %w", err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, resp); err != nil {
		return nil, fmt.Errorf("read DNS answer: %w", err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		return nil, fmt.Errorf("parse DNS answer: %w", err)
	}
	switch m.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, nil // NXDOMAIN: no addresses
	case dnsmessage.RCodeServerFailure:
		return nil, fmt.Errorf("%w (SERVFAIL)", errNoAnswer)
	default:
		return nil, fmt.Errorf("DNS answer %s", m.RCode)
	}
	var out []string
	for _, a := range m.Answers {
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(r.A).String())
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(r.AAAA).String())
		}
	}
	return out, nil
}

// PortForward forwards a local port on 127.0.0.1 to port of a pod (what
// `kubectl port-forward` does) and returns the local address. stop ends
// the forwarding.
func (c *Cluster) PortForward(ctx context.Context, namespace, pod string, port int) (addr string, stop func(), err error) {
	transport, upgrader, err := spdy.RoundTripperFor(c.restConfig)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, err)
	}
	u := c.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stopCh, readyCh := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stopCh, readyCh, io.Discard, io.Discard)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, err)
	}
	errCh := make(chan error, 1)
	go func() { errCh <- fw.ForwardPorts() }()
	stopOnce := func() {
		select {
		case <-stopCh:
		default:
			close(stopCh)
		}
	}
	select {
	case <-readyCh:
	case err := <-errCh:
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, err)
	case <-ctx.Done():
		stopOnce()
		return "", nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		stopOnce()
		return "", nil, fmt.Errorf("port-forward to %s/%s: no local port: %v", namespace, pod, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), stopOnce, nil
}
