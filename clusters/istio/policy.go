package istio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/internal/podstatus"
)

// PodRef names a pod whose sidecar must reflect a policy change.
type PodRef struct {
	Namespace, Name string
}

// OutboundPolicy returns the mesh-wide outboundTrafficPolicy.mode from
// ConfigMap istio-system/istio (ALLOW_ANY when unset, Istio's default).
func (m *Mesh) OutboundPolicy(ctx context.Context) (string, error) {
	cm, err := m.cl.Client().CoreV1().ConfigMaps(Namespace).Get(ctx, meshConfigMap, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read outbound policy: %w", err)
	}
	mode, _, err := meshPolicy(cm.Data["mesh"])
	if err != nil {
		return "", fmt.Errorf("read outbound policy: %w", err)
	}
	if mode == "" {
		mode = AllowAny
	}
	return mode, nil
}

// SetOutboundPolicy switches outboundTrafficPolicy the way operators do:
// it edits the mesh key of ConfigMap istio-system/istio (parsed as YAML;
// only outboundTrafficPolicy.mode changes, the rest is kept) and then waits
// until the sidecar of every pod in waitFor has the change (see
// WaitProxyPolicy). restore puts the original mode back (removing the key
// if it was unset) and waits for the pods of waitFor that still exist;
// Teardown of the cluster runs it if the caller has not. On an existing
// cluster (Attach in existing-cluster mode) the mesh-wide policy is not
// changed: an error says which policy the cluster has.
func (m *Mesh) SetOutboundPolicy(ctx context.Context, policy string, waitFor ...PodRef) (restore func(context.Context) error, err error) {
	if _, err := parsePolicy(policy); err != nil {
		return nil, fmt.Errorf("set outbound policy: %w", err)
	}
	if !m.cl.Managed() {
		cur, _ := m.OutboundPolicy(ctx)
		return nil, fmt.Errorf("set outbound policy %s: meshconform does not change the mesh-wide policy of an existing cluster (it is %s): run the checks written for that policy", policy, cur)
	}
	start := time.Now()
	orig, origSet, err := m.editMeshPolicy(ctx, &policy)
	if err != nil {
		return nil, fmt.Errorf("set outbound policy %s: %w", policy, err)
	}
	restore = m.cl.OnTeardown("istio outboundTrafficPolicy", func(ctx context.Context) error {
		var back *string
		if origSet {
			back = &orig
		}
		if _, _, err := m.editMeshPolicy(ctx, back); err != nil {
			return fmt.Errorf("restore outbound policy: %w", err)
		}
		want := orig
		if !origSet {
			want = AllowAny
		}
		for _, p := range waitFor {
			if _, err := m.cl.Client().CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
				continue
			}
			if err := m.WaitProxyPolicy(ctx, p.Namespace, p.Name, want); err != nil {
				return fmt.Errorf("restore outbound policy: %w", err)
			}
		}
		return nil
	})
	for _, p := range waitFor {
		if err := m.WaitProxyPolicy(ctx, p.Namespace, p.Name, policy); err != nil {
			return restore, fmt.Errorf("set outbound policy %s: %w", policy, err)
		}
	}
	m.log.Info("outbound traffic policy set", "policy", policy, "sidecars", len(waitFor), "elapsed", since(start))
	return restore, nil
}

// editMeshPolicy sets (or with nil removes) outboundTrafficPolicy.mode in
// the mesh config and returns the previous mode and whether it was set.
func (m *Mesh) editMeshPolicy(ctx context.Context, mode *string) (prev string, prevSet bool, err error) {
	cms := m.cl.Client().CoreV1().ConfigMaps(Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, meshConfigMap, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get ConfigMap %s/%s: %w", Namespace, meshConfigMap, err)
		}
		prev, prevSet, err = meshPolicy(cm.Data["mesh"])
		if err != nil {
			return err
		}
		next, err := setMeshPolicy(cm.Data["mesh"], mode)
		if err != nil {
			return err
		}
		if next == cm.Data["mesh"] {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["mesh"] = next
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: clusters.FieldManager})
		return err
	})
	return prev, prevSet, err
}

// meshPolicy reads outboundTrafficPolicy.mode from mesh config YAML.
func meshPolicy(mesh string) (string, bool, error) {
	var mc struct {
		OutboundTrafficPolicy *struct {
			Mode *string `yaml:"mode"`
		} `yaml:"outboundTrafficPolicy"`
	}
	if err := yaml.Unmarshal([]byte(mesh), &mc); err != nil {
		return "", false, fmt.Errorf("parse mesh config: %w", err)
	}
	if mc.OutboundTrafficPolicy == nil || mc.OutboundTrafficPolicy.Mode == nil {
		return "", false, nil
	}
	return *mc.OutboundTrafficPolicy.Mode, true, nil
}

// setMeshPolicy sets (nil: removes) outboundTrafficPolicy.mode in mesh
// config YAML, keeping every other key, its order and comments.
func setMeshPolicy(mesh string, mode *string) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(mesh), &doc); err != nil {
		return "", fmt.Errorf("parse mesh config: %w", err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return "", errors.New("parse mesh config: not a YAML mapping")
	}
	otp := mapValue(root, "outboundTrafficPolicy")
	if mode == nil {
		if otp == nil {
			return mesh, nil
		}
		deleteKey(otp, "mode")
		if len(otp.Content) == 0 {
			deleteKey(root, "outboundTrafficPolicy")
		}
	} else {
		if otp == nil {
			otp = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "outboundTrafficPolicy"}, otp)
		}
		if v := mapValue(otp, "mode"); v != nil {
			v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", *mode, 0
		} else {
			otp.Content = append(otp.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "mode"}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: *mode})
		}
		otp.Style = 0
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", fmt.Errorf("write mesh config: %w", err)
	}
	return b.String(), nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// Envoy cluster names the virtualOutbound catch-all routes to.
const (
	PassthroughCluster = "PassthroughCluster"
	BlackHoleCluster   = "BlackHoleCluster"
)

// WaitProxyPolicy waits until the sidecar of pod has policy: its Envoy's
// virtualOutbound listener (0.0.0.0:15001) sends unmatched TCP to
// PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY), read
// from `pilot-agent request GET config_dump` in the istio-proxy container.
// A pod without a ready sidecar is a *NotReadyError.
func (m *Mesh) WaitProxyPolicy(ctx context.Context, namespace, pod, policy string) error {
	if _, err := parsePolicy(policy); err != nil {
		return fmt.Errorf("wait for proxy policy: %w", err)
	}
	want := PassthroughCluster
	if policy == RegistryOnly {
		want = BlackHoleCluster
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.timeouts.ProxyConfig)
	defer cancel()
	var last string
	for {
		got, err := m.proxyCatchAll(ctx, namespace, pod)
		switch {
		case err == nil && got == want:
			m.log.Debug("sidecar has outbound policy", "pod", namespace+"/"+pod, "policy", policy, "cluster", got)
			return nil
		case clusters.IsNotReady(err):
			return fmt.Errorf("wait for proxy policy %s: %w", policy, err)
		case err != nil:
			last = err.Error()
		default:
			last = "catch-all routes to " + got
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return fmt.Errorf("wait for sidecar %s/%s to have outbound policy %s (catch-all to %s): not within %v (last: %s)", namespace, pod, policy, want, m.cfg.timeouts.ProxyConfig, last)
		case <-time.After(m.cfg.timeouts.Poll):
		}
	}
}

// proxyExec runs a command in the istio-proxy container; tests replace it.
var proxyExec = func(ctx context.Context, m *Mesh, namespace, pod string, cmd ...string) ([]byte, error) {
	out, _, err := m.cl.Exec(ctx, namespace, pod, proxyContainer, cmd...)
	return out, err
}

// proxyCatchAll returns the cluster the pod's virtualOutbound catch-all
// routes to.
func (m *Mesh) proxyCatchAll(ctx context.Context, namespace, name string) (string, error) {
	pod, err := m.cl.Client().CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	if !podstatus.HasContainer(pod, proxyContainer) {
		return "", &NotReadyError{Reason: fmt.Sprintf("pod %s/%s has no istio-proxy container (sidecar not injected)", namespace, name)}
	}
	if _, ready := podstatus.ContainerReady(pod, proxyContainer); !ready {
		return "", fmt.Errorf("pod %s/%s: istio-proxy not ready yet", namespace, name)
	}
	out, err := proxyExec(ctx, m, namespace, name, "pilot-agent", "request", "GET", "config_dump?resource=dynamic_listeners")
	if err != nil {
		return "", err
	}
	return OutboundCatchAllCluster(out)
}

// OutboundCatchAllCluster finds, in an Envoy config_dump (full or
// ?resource=dynamic_listeners), the cluster that the virtualOutbound
// listener's catch-all TCP filter chain (virtualOutbound-catchall-tcp)
// sends traffic to: PassthroughCluster or BlackHoleCluster.
func OutboundCatchAllCluster(configDump []byte) (string, error) {
	var root any
	if err := json.Unmarshal(configDump, &root); err != nil {
		return "", fmt.Errorf("parse config_dump: %w", err)
	}
	var listener map[string]any
	walk(root, func(m map[string]any) bool {
		if m["name"] == "virtualOutbound" && (m["filter_chains"] != nil || m["filterChains"] != nil) {
			listener = m
			return false
		}
		return true
	})
	if listener == nil {
		return "", errors.New("config_dump has no virtualOutbound listener (the sidecar has not received its listeners yet)")
	}
	chains, _ := first(listener, "filter_chains", "filterChains").([]any)
	var fallback string
	for _, ch := range chains {
		chm, _ := ch.(map[string]any)
		cl := tcpProxyCluster(chm)
		if cl == "" {
			continue
		}
		if chm["name"] == "virtualOutbound-catchall-tcp" {
			return cl, nil
		}
		// Without the name, the catch-all is the chain without a match
		// (the blackhole chain for port 15001 has one).
		if first(chm, "filter_chain_match", "filterChainMatch") == nil && (cl == PassthroughCluster || cl == BlackHoleCluster) {
			fallback = cl
		}
	}
	if d, ok := first(listener, "default_filter_chain", "defaultFilterChain").(map[string]any); ok {
		if cl := tcpProxyCluster(d); cl != "" {
			return cl, nil
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", errors.New("virtualOutbound listener has no catch-all TCP filter chain")
}

func first(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return nil
}

// tcpProxyCluster returns the cluster of a filter chain's tcp_proxy.
func tcpProxyCluster(chain map[string]any) string {
	filters, _ := chain["filters"].([]any)
	for _, f := range filters {
		fm, _ := f.(map[string]any)
		if fm["name"] != "envoy.filters.network.tcp_proxy" && fm["name"] != "envoy.tcp_proxy" {
			continue
		}
		tc, _ := first(fm, "typed_config", "typedConfig").(map[string]any)
		if c, ok := tc["cluster"].(string); ok {
			return c
		}
	}
	return ""
}

// walk visits every JSON object depth-first until visit returns false.
func walk(v any, visit func(map[string]any) bool) bool {
	switch t := v.(type) {
	case map[string]any:
		if !visit(t) {
			return false
		}
		for _, x := range t {
			if !walk(x, visit) {
				return false
			}
		}
	case []any:
		for _, x := range t {
			if !walk(x, visit) {
				return false
			}
		}
	}
	return true
}
