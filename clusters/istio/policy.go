package istio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"istio.io/istio/istioctl/pkg/util/configdump"

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

// OutboundCatchAllCluster finds, in an Envoy config_dump (the whole dump,
// or ?resource=dynamic_listeners, whose configs are the DynamicListener
// entries), the cluster that the active virtualOutbound listener's
// catch-all TCP filter chain (virtualOutbound-catchall-tcp) sends traffic
// to: PassthroughCluster or BlackHoleCluster. Only a listener's
// active_state is read: a warming copy (not serving yet) or a draining one
// (no longer serving) would report a policy Envoy does not apply. The dump
// is parsed with istioctl's config_dump wrapper
// (istioctl/pkg/util/configdump).
func OutboundCatchAllCluster(configDump []byte) (string, error) {
	var w configdump.Wrapper
	if err := w.UnmarshalJSON(configDump); err != nil {
		return "", fmt.Errorf("parse config_dump: %w", err)
	}
	var active []*admin.ListenersConfigDump_DynamicListener
	for _, c := range w.GetConfigs() {
		switch c.GetTypeUrl() {
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump":
			ld := &admin.ListenersConfigDump{}
			if err := c.UnmarshalTo(ld); err != nil {
				return "", fmt.Errorf("parse config_dump listeners: %w", err)
			}
			active = append(active, ld.GetDynamicListeners()...)
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.DynamicListener":
			dl := &admin.ListenersConfigDump_DynamicListener{}
			if err := c.UnmarshalTo(dl); err != nil {
				return "", fmt.Errorf("parse config_dump listener: %w", err)
			}
			active = append(active, dl)
		}
	}
	for _, dl := range active {
		if dl.GetActiveState().GetListener() == nil {
			continue
		}
		l := &listener.Listener{}
		if err := dl.GetActiveState().GetListener().UnmarshalTo(l); err != nil {
			return "", fmt.Errorf("parse config_dump listener %s: %w", dl.GetName(), err)
		}
		if l.GetName() != "virtualOutbound" {
			continue
		}
		if c := CatchAllCluster([]*listener.Listener{l}); c != "" {
			return c, nil
		}
		return "", errors.New("active virtualOutbound listener has no catch-all TCP filter chain (virtualOutbound-catchall-tcp)")
	}
	return "", errors.New("config_dump has no active virtualOutbound listener (the sidecar has not received its listeners yet)")
}

// CatchAllCluster is the cluster of the virtualOutbound listener's
// catch-all TCP filter chain among listeners (Istio's outbound policy as
// pushed: PassthroughCluster under ALLOW_ANY, BlackHoleCluster under
// REGISTRY_ONLY), "" when there is none.
func CatchAllCluster(listeners []*listener.Listener) string {
	for _, l := range listeners {
		if l.GetName() != "virtualOutbound" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if fc.GetName() != "virtualOutbound-catchall-tcp" {
				continue
			}
			for _, f := range fc.GetFilters() {
				tp := &tcpproxy.TcpProxy{}
				if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(tp) == nil {
					return tp.GetCluster()
				}
			}
		}
	}
	return ""
}
