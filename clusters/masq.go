package clusters

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

const (
	// DefaultIPMasqAgentImage is upstream's image (kubernetes-sigs/ip-masq-agent
	// v2.9.3). Machines without a registry pass a preloaded stand-in
	// (the test environment exports IP_MASQ_AGENT_IMAGE).
	DefaultIPMasqAgentImage = "registry.k8s.io/networking/ip-masq-agent:v2.9.3"
	// IPMasqChain is the nat chain ip-masq-agent maintains.
	IPMasqChain = "IP-MASQ-AGENT"

	ipMasqNamespace = "kube-system"
	ipMasqName      = "ip-masq-agent"
	ipMasqSelector  = "k8s-app=ip-masq-agent"
	cniliteName     = "cnilite"
	cniliteChain    = "CNILITE-MASQ"
	kindnetName     = "kindnet"
)

//go:embed manifests/ip-masq-agent.yaml
var ipMasqAgentYAML string

// EnsureIPMasqAgent installs the ip-masq-agent DaemonSet in kube-system
// (image "" = DefaultIPMasqAgentImage) unless the cluster already has one
// (GKE does), and waits until its pods run on every node. If they cannot
// (e.g. the image cannot be pulled), the error is a *NotReadyError naming
// the pod, image and registry message. cleanup deletes the DaemonSet it
// installed and, on kind nodes, the IP-MASQ-AGENT chain it left (the agent
// does not remove its rules when it stops); it is a no-op for a
// pre-existing agent.
func (c *Cluster) EnsureIPMasqAgent(ctx context.Context, image string) (cleanup func(context.Context) error, err error) {
	start := time.Now()
	if image == "" {
		image = DefaultIPMasqAgentImage
	}
	noop := func(context.Context) error { return nil }
	ds, err := c.client.AppsV1().DaemonSets(ipMasqNamespace).Get(ctx, ipMasqName, metav1.GetOptions{})
	switch {
	case err == nil && !isManaged(ds):
		c.log.Info("ip-masq-agent already installed", "image", ds.Spec.Template.Spec.Containers[0].Image)
		if err := c.waitDaemonSet(ctx, ipMasqNamespace, ipMasqName); err != nil {
			return noop, fmt.Errorf("ensure ip-masq-agent: %w", err)
		}
		return noop, nil
	case err != nil && !apierrors.IsNotFound(err):
		return noop, fmt.Errorf("ensure ip-masq-agent: %w", err)
	}
	objs, err := DecodeYAML(strings.Replace(ipMasqAgentYAML, "image: IMAGE", "image: "+image, 1))
	if err != nil {
		return noop, fmt.Errorf("ensure ip-masq-agent: %w", err)
	}
	applied, err := c.ApplyObjects(ctx, ipMasqNamespace, objs)
	cleanup = c.addRestore("ip-masq-agent DaemonSet", func(ctx context.Context) error {
		errs := []error{c.Delete(ctx, applied)}
		if c.Managed() {
			errs = append(errs, c.removeChainOnNodes(ctx, IPMasqChain))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return cleanup, fmt.Errorf("ensure ip-masq-agent: %w", err)
	}
	if err := c.waitDaemonSet(ctx, ipMasqNamespace, ipMasqName); err != nil {
		return cleanup, fmt.Errorf("ensure ip-masq-agent: %w", err)
	}
	c.log.Info("ip-masq-agent running", "image", image, "elapsed", since(start))
	return cleanup, nil
}

// removeChainOnNodes removes the POSTROUTING jump to chain and the chain.
func (c *Cluster) removeChainOnNodes(ctx context.Context, chain string) error {
	nodes, err := c.kindNodes()
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`iptables -t nat -S POSTROUTING | grep -- '-j %[1]s' | sed 's/^-A/-D/' | xargs -r -L1 iptables -w 5 -t nat; `+
		`iptables -w 5 -t nat -F %[1]s 2>/dev/null; iptables -w 5 -t nat -X %[1]s 2>/dev/null; true`, chain)
	var errs []error
	for _, n := range nodes {
		if _, err := c.NodeExec(ctx, n.String(), "sh", "-c", script); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DisableCNIMasquerade stops the CNI from masquerading pod traffic itself,
// so that ip-masq-agent alone decides (as on GKE), and waits until that is
// in effect. Supported CNIs:
//
//   - the harness's own pod network (kind clusters meshconform creates,
//     podnet.go): removes the BaselineMasqChain nat chain and its
//     POSTROUTING jump on every node and observes them gone; restore puts
//     them back and observes them present. Nothing else masquerades pod
//     traffic on those nodes (ptp with ipMasq false; kube-proxy only
//     masquerades marked service traffic), so ip-masq-agent alone decides.
//   - cnilite (the test environment's CNI): sets MASQUERADE=false on
//     ds/kube-system/cnilite, waits for the rollout and, on kind nodes, until
//     no node has the CNILITE-MASQ nat chain; restore puts the variable back
//     and waits for the chain to return.
//   - kindnet (kind's default CNI): there is no supported way. kindnetd
//     (kind v0.33.0, images/kindnetd) masquerades everything leaving the pod
//     subnet (nat chain KIND-MASQ-AGENT, built from its POD_SUBNET env) with
//     no flag or env to turn it off, and only ever appends rules, so even
//     changing POD_SUBNET at runtime would leave the MASQUERADE rule in
//     place; kind's maintainers answer "disable kindnet and use your own
//     CNI" (kubernetes-sigs/kind#2051). An error says so: create the cluster
//     with networking.disableDefaultCNI: true plus a CNI that does not
//     masquerade, or use a node image whose default CNI is cnilite.
//   - no CNI masquerade found (e.g. GKE, where ip-masq-agent is the
//     masquerader): nothing to do; restore is a no-op.
func (c *Cluster) DisableCNIMasquerade(ctx context.Context) (restore func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if c.podNetwork {
		return c.disableBaselineMasq(ctx)
	}
	dss := c.client.AppsV1().DaemonSets(ipMasqNamespace)
	if _, err := dss.Get(ctx, kindnetName, metav1.GetOptions{}); err == nil {
		return noop, errors.New("disable CNI masquerade: kindnet (kind's default CNI) masquerades all pod traffic leaving the pod subnet and cannot be switched off at runtime " +
			"(no flag or env in kindnetd; kubernetes-sigs/kind#2051): this cluster was not created by meshconform; delete it and let meshconform create it " +
			"(it installs its own pod network without CNI masquerade)")
	}
	ds, err := dss.Get(ctx, cniliteName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c.log.Info("no CNI masquerade to disable (neither cnilite nor kindnet found)")
		return noop, nil
	}
	if err != nil {
		return noop, fmt.Errorf("disable CNI masquerade: %w", err)
	}
	start := time.Now()
	orig, had := containerEnv(ds.Spec.Template.Spec.Containers, cniliteName, "MASQUERADE")
	if had && orig == "false" {
		c.log.Info("CNI masquerade already off", "cni", cniliteName)
		return noop, c.waitChain(ctx, cniliteChain, false)
	}
	if err := c.setCNILiteEnv(ctx, ptr("false")); err != nil {
		return noop, fmt.Errorf("disable CNI masquerade: %w", err)
	}
	restore = c.addRestore("cnilite MASQUERADE", func(ctx context.Context) error {
		var v *string
		if had {
			v = &orig
		}
		if err := c.setCNILiteEnv(ctx, v); err != nil {
			return err
		}
		return c.waitChain(ctx, cniliteChain, true)
	})
	if err := c.waitChain(ctx, cniliteChain, false); err != nil {
		return restore, fmt.Errorf("disable CNI masquerade: %w", err)
	}
	c.log.Info("CNI masquerade off", "cni", cniliteName, "elapsed", since(start))
	return restore, nil
}

// disableBaselineMasq is DisableCNIMasquerade on the harness's pod network.
func (c *Cluster) disableBaselineMasq(ctx context.Context) (restore func(context.Context) error, err error) {
	start := time.Now()
	restore = c.addRestore("pod network baseline masquerade", func(ctx context.Context) error {
		if err := c.restoreBaselineMasq(ctx); err != nil {
			return fmt.Errorf("restore %s: %w", BaselineMasqChain, err)
		}
		return c.waitChain(ctx, BaselineMasqChain, true)
	})
	if err := c.removeChainOnNodes(ctx, BaselineMasqChain); err != nil {
		return restore, fmt.Errorf("disable CNI masquerade: remove %s: %w", BaselineMasqChain, err)
	}
	if err := c.waitChain(ctx, BaselineMasqChain, false); err != nil {
		return restore, fmt.Errorf("disable CNI masquerade: %w", err)
	}
	c.log.Info("CNI masquerade off", "cni", PodNetworkName, "chain", BaselineMasqChain, "elapsed", since(start))
	return restore, nil
}

func ptr[T any](v T) *T { return &v }

func containerEnv(cs []corev1.Container, container, name string) (string, bool) {
	for _, c := range cs {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value, true
			}
		}
	}
	return "", false
}

// setCNILiteEnv sets (or with nil removes) MASQUERADE on cnilite and waits
// for the rollout.
func (c *Cluster) setCNILiteEnv(ctx context.Context, v *string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds, err := c.client.AppsV1().DaemonSets(ipMasqNamespace).Get(ctx, cniliteName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i := range ds.Spec.Template.Spec.Containers {
			ct := &ds.Spec.Template.Spec.Containers[i]
			if ct.Name != cniliteName {
				continue
			}
			ct.Env = slices.DeleteFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == "MASQUERADE" })
			if v != nil {
				ct.Env = append(ct.Env, corev1.EnvVar{Name: "MASQUERADE", Value: *v})
			}
		}
		_, err = c.client.AppsV1().DaemonSets(ipMasqNamespace).Update(ctx, ds, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("set MASQUERADE on ds/%s: %w", cniliteName, err)
	}
	return c.waitDaemonSet(ctx, ipMasqNamespace, cniliteName)
}

// waitChain waits until the nat chain exists (present) or not on every
// kind node. Without node access it only logs that it cannot check.
func (c *Cluster) waitChain(ctx context.Context, chain string, present bool) error {
	if !c.Managed() {
		c.log.Warn("cannot observe nat chains without node access; trusting the rollout", "chain", chain)
		return nil
	}
	nodes, err := c.kindNodes()
	if err != nil {
		return err
	}
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.CNIMasquerade)
	defer cancel()
	var last string
	err = wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		for _, n := range nodes {
			out, err := c.NodeExec(ctx, n.String(), "iptables-save", "-t", "nat")
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if has := ParseNAT(string(out), chain).Exists; has != present {
				last = fmt.Sprintf("node %s: chain %s present=%v", n.String(), chain, has)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for nat chain %s present=%v: %w (last: %s)", chain, present, err, last)
	}
	return nil
}

// SetIPMasqConfig sets ip-masq-agent's config: the ConfigMap
// kube-system/ip-masq-agent, key "config" (YAML or JSON, as upstream);
// an empty config deletes the ConfigMap (the agent's defaults). The first
// call remembers the original ConfigMap; Teardown puts it back. In
// existing-cluster mode a ConfigMap the harness does not manage is not
// changed (error). The agent sees the change after the kubelet's ConfigMap
// sync (60–90 s) plus its resync: use WaitIPMasqRules, never a sleep.
func (c *Cluster) SetIPMasqConfig(ctx context.Context, config string) error {
	cms := c.client.CoreV1().ConfigMaps(ipMasqNamespace)
	cur, err := cms.Get(ctx, ipMasqName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("set ip-masq-agent config: %w", err)
	}
	exists := err == nil
	if exists && !isManaged(cur) {
		if c.mode == Existing {
			return fmt.Errorf("set ip-masq-agent config: ConfigMap %s/%s exists and is not managed by meshconform: refusing to change it on an existing cluster", ipMasqNamespace, ipMasqName)
		}
	}
	c.rememberIPMasqConfig(cur, exists)
	if config == "" {
		if exists {
			if err := cms.Delete(ctx, ipMasqName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("set ip-masq-agent config: delete ConfigMap: %w", err)
			}
		}
		c.log.Debug("ip-masq-agent config removed (agent defaults)")
		return nil
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ipMasqName, Namespace: ipMasqNamespace, Labels: c.labels()},
		Data:       map[string]string{"config": config},
	}
	if err := c.putConfigMap(ctx, cm); err != nil {
		return fmt.Errorf("set ip-masq-agent config: %w", err)
	}
	c.log.Debug("ip-masq-agent config set", "config", config)
	return nil
}

func (c *Cluster) putConfigMap(ctx context.Context, cm *corev1.ConfigMap) error {
	cms := c.client.CoreV1().ConfigMaps(cm.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
			return err
		}
		if err != nil {
			return err
		}
		next := cur.DeepCopy()
		next.Data = cm.Data
		next.Labels = cm.Labels
		_, err = cms.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}

// rememberIPMasqConfig registers, once, the restore of the ConfigMap as
// it was before this run changed it.
func (c *Cluster) rememberIPMasqConfig(cur *corev1.ConfigMap, exists bool) {
	c.mu.Lock()
	for _, r := range c.restores {
		if r.what == "ip-masq-agent ConfigMap" {
			c.mu.Unlock()
			return
		}
	}
	c.mu.Unlock()
	var orig *corev1.ConfigMap
	if exists && !isManaged(cur) {
		orig = cur.DeepCopy()
		orig.ResourceVersion = ""
	}
	c.addRestore("ip-masq-agent ConfigMap", func(ctx context.Context) error {
		if orig == nil {
			err := c.client.CoreV1().ConfigMaps(ipMasqNamespace).Delete(ctx, ipMasqName, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			return nil
		}
		return c.putConfigMap(ctx, orig)
	})
}

// WaitIPMasqRules waits until on every kind node the nat chain
// IP-MASQ-AGENT exists, is jumped to from POSTROUTING, RETURNs exactly
// wantCIDRs (any order; internal/ipmasq Config.RuleCIDRs gives them for a config) and ends with
// MASQUERADE, read with `iptables-save -t nat` in the node container. If
// the agent's pods have a persistent problem the error is a
// *NotReadyError. In existing-cluster mode the nodes cannot be read: error.
func (c *Cluster) WaitIPMasqRules(ctx context.Context, wantCIDRs []string) error {
	start := time.Now()
	want := make([]string, 0, len(wantCIDRs))
	for _, s := range wantCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("wait for ip-masq-agent rules: want %q: %w", s, err)
		}
		want = append(want, p.Masked().String())
	}
	slices.Sort(want)
	nodes, err := c.kindNodes()
	if err != nil {
		return fmt.Errorf("wait for ip-masq-agent rules: %w", err)
	}
	ctxW, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.IPMasqRules)
	defer cancel()
	tr := &podstatusTracker{grace: c.cfg.Timeouts.ImagePullGrace}
	var last string
	var notReady error
	err = wait.PollUntilContextCancel(ctxW, c.cfg.Timeouts.Poll, true, func(ctx context.Context) (bool, error) {
		if nre := tr.check(ctx, c, ipMasqNamespace, ipMasqSelector, "ip-masq-agent"); nre != nil {
			notReady = nre
			return true, nil
		}
		var states []string
		ok := true
		for _, n := range nodes {
			out, err := c.NodeExec(ctx, n.String(), "iptables-save", "-t", "nat")
			if err != nil {
				last = err.Error()
				return false, nil
			}
			r := ParseNAT(string(out), IPMasqChain)
			got := slices.Sorted(slices.Values(r.Returns))
			match := r.Exists && r.Jumped && r.EndsWithMasquerade && slices.Equal(got, want)
			ok = ok && match
			states = append(states, fmt.Sprintf("%s: %s", n.String(), r))
		}
		last = strings.Join(states, "; ")
		return ok, nil
	})
	if notReady != nil {
		return fmt.Errorf("wait for ip-masq-agent rules: %w", notReady)
	}
	if err != nil {
		return fmt.Errorf("wait for ip-masq-agent rules RETURN %v: %w (last: %s)", want, err, last)
	}
	c.log.Info("ip-masq-agent rules in place", "nonMasquerade", want, "elapsed", since(start))
	return nil
}

// NATChain is what ParseNAT found about one nat chain.
type NATChain struct {
	// Exists: the chain is declared.
	Exists bool
	// Jumped: POSTROUTING jumps to it.
	Jumped bool
	// Returns are the -d destinations of its RETURN rules, in order.
	Returns []string
	// EndsWithMasquerade: its last rule is -j MASQUERADE.
	EndsWithMasquerade bool
}

func (n NATChain) String() string {
	if !n.Exists {
		return "no chain"
	}
	return fmt.Sprintf("RETURN %v, jumped=%v, ends with MASQUERADE=%v", n.Returns, n.Jumped, n.EndsWithMasquerade)
}

// ParseNAT reads `iptables-save -t nat` output for one chain.
func ParseNAT(save, chain string) NATChain {
	var n NATChain
	last := ""
	for _, line := range strings.Split(save, "\n") {
		line = strings.TrimSpace(line)
		if line == ":"+chain || strings.HasPrefix(line, ":"+chain+" ") {
			n.Exists = true
			continue
		}
		f := splitRule(line)
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		target, dst := ruleArg(f, "-j"), ruleArg(f, "-d")
		switch f[1] {
		case "POSTROUTING":
			if target == chain {
				n.Jumped = true
			}
		case chain:
			n.Exists = true
			if target == "RETURN" && dst != "" {
				n.Returns = append(n.Returns, dst)
			}
			last = target
		}
	}
	n.EndsWithMasquerade = last == "MASQUERADE"
	return n
}

// ruleArg returns the value after flag (e.g. "-j") in a rule.
func ruleArg(f []string, flag string) string {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == flag && (i == 0 || f[i-1] != "!") {
			return f[i+1]
		}
	}
	return ""
}

// splitRule splits an iptables-save line into fields, keeping quoted
// comments together.
func splitRule(line string) []string {
	var out []string
	var b strings.Builder
	inQuote, has := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case ch == '"':
			inQuote, has = !inQuote, true
		case ch == ' ' && !inQuote:
			if has || b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
				has = false
			}
		default:
			b.WriteByte(ch)
		}
	}
	if has || b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
