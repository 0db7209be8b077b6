package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/internal/netaddr"
)

// podsTemplate is the probe pods, their CA and the database password.
// Both pods run the agent's `sleep`; the probe is exec'd into them. The
// password reaches the probe only as an environment variable from the
// Secret (stringData is rendered from Go, never logged).
var podsTemplate = template.Must(template.New("pods").Parse(`apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .CAConfigMap }}
  namespace: {{ .Namespace }}
data:
  ca.crt: {{ .CAPEM }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Secret }}
  namespace: {{ .Namespace }}
type: Opaque
stringData:
  password: {{ .Password }}
{{- range .Pods }}
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Name }}
  namespace: {{ $.Namespace }}
  labels:
    app: {{ .Name }}
{{- if not .Meshed }}
    sidecar.istio.io/inject: "false"
  annotations:
    sidecar.istio.io/inject: "false"
{{- end }}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: {{ $.Container }}
    image: {{ $.Image }}
    imagePullPolicy: IfNotPresent
    args: ["sleep"]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: NODE_IP
      valueFrom: {fieldRef: {fieldPath: status.hostIP}}
    - name: {{ $.PasswordEnv }}
      valueFrom: {secretKeyRef: {name: {{ $.Secret }}, key: password, optional: true}}
    volumeMounts:
    - name: ca
      mountPath: {{ $.CAMountDir }}
      readOnly: true
  volumes:
  - name: ca
    configMap:
      name: {{ $.CAConfigMap }}
{{- end }}
`))

type podSpec struct {
	Name   string
	Meshed bool
}

// podsYAML renders the probe pods (control first: it never depends on
// Istio's injection webhook).
func (d *Driver) podsYAML(withClient bool) (string, error) {
	pods := []podSpec{{Name: ControlPod}}
	if withClient {
		pods = append(pods, podSpec{Name: ClientPod, Meshed: true})
	}
	// JSON strings are YAML double-quoted scalars: safe for multi-line PEM.
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b bytes.Buffer
	err := podsTemplate.Execute(&b, map[string]any{
		"Namespace": d.cfg.namespace, "CAConfigMap": caConfigMap, "Secret": mysqlSecret,
		"CAPEM": q(string(d.cfg.caPEM)), "Password": q(d.cfg.bookinfoPass), "Pods": pods,
		"Container": ProbeContainer, "Image": q(d.cfg.agentImage), "PasswordEnv": passwordEnv, "CAMountDir": caMountDir,
	})
	return b.String(), err
}

// Setup creates the namespace and the probe pods and waits for them: the
// control pod always, the meshed client pod only when the mesh is ready
// (with Istio's injection webhook down, a meshed pod cannot even be
// created). Failures are recorded as the reason later checks are not
// ready, and returned. Run calls it on first use.
func (d *Driver) Setup(ctx context.Context) error {
	d.setupOnce.Do(func() { d.setupErr = d.setup(ctx) })
	return d.setupErr
}

func (d *Driver) setup(ctx context.Context) error {
	ns := d.cfg.namespace
	injection := d.cfg.injection
	if injection == nil {
		injection = map[string]string{"istio-injection": "enabled"}
	}
	if err := d.cl.EnsureNamespace(ctx, ns, injection); err != nil {
		d.controlErr = err
		d.clientErr = err
		return fmt.Errorf("set up probe pods: %w", err)
	}
	d.vars["podCIDR"] = d.podCIDR(ctx)
	// Control pod (and the shared ConfigMap and Secret) first.
	y, err := d.podsYAML(false)
	if err != nil {
		return fmt.Errorf("set up probe pods: render: %w", err)
	}
	if _, err := d.cl.Apply(ctx, ns, y); err != nil {
		d.controlErr = fmt.Errorf("create pod %s/%s: %w", ns, ControlPod, err)
		d.clientErr = d.controlErr
		return fmt.Errorf("set up probe pods: %w", d.controlErr)
	}
	d.controlErr = d.cl.WaitPods(ctx, ns, "app="+ControlPod, "probe pod "+ns+"/"+ControlPod, d.cfg.timeouts.Pods)
	if d.controlErr != nil {
		d.log.Warn("control pod not ready", "error", d.controlErr)
	} else {
		d.log.Info("probe pod ready", "pod", ns+"/"+ControlPod, "image", d.cfg.agentImage)
	}
	if d.meshReason() != "" {
		d.clientErr = &clusters.NotReadyError{Reason: d.meshReason()}
		d.log.Info("meshed client pod not created: the mesh is not ready", "reason", d.meshReason())
		return d.controlErr
	}
	if y, err = d.podsYAML(true); err != nil {
		return fmt.Errorf("set up probe pods: render: %w", err)
	}
	if _, err := d.cl.Apply(ctx, ns, y); err != nil {
		d.clientErr = fmt.Errorf("create pod %s/%s: %w", ns, ClientPod, err)
	} else if err := d.cl.WaitPods(ctx, ns, "app="+ClientPod, "probe pod "+ns+"/"+ClientPod, d.cfg.timeouts.Pods); err != nil {
		d.clientErr = err
	} else if err := d.mesh.Preflight(ctx, ns, "app="+ClientPod); err != nil {
		d.clientErr = err
	}
	if d.clientErr != nil {
		d.log.Warn("meshed client pod not ready", "error", d.clientErr)
	} else {
		d.log.Info("probe pod ready", "pod", ns+"/"+ClientPod, "sidecar", true)
	}
	d.setupIngress(ctx)
	if d.controlErr != nil {
		return fmt.Errorf("set up probe pods: %w", d.controlErr)
	}
	if d.clientErr != nil {
		return fmt.Errorf("set up probe pods: %w", d.clientErr)
	}
	return nil
}

// setupIngress publishes the gateway certificate and the "ingress"
// endpoint (where the host reaches the gateway).
func (d *Driver) setupIngress(ctx context.Context) {
	if len(d.cfg.ingressCert) > 0 {
		if err := d.mesh.CreateTLSSecret(ctx, d.Env().Vars["tlsSecret"], d.cfg.ingressCert, d.cfg.ingressKey); err != nil {
			d.gatewayErr = err
			return
		}
	}
	host, port, err := d.mesh.IngressAddress(ctx)
	if err != nil {
		d.gatewayErr = err
		return
	}
	d.endpoints["ingress"] = ingressEndpoint(host, port, d.cfg.caPEM)
}

// PodsSummary says which probe pods are usable, for progress output.
func (d *Driver) PodsSummary() string {
	state := func(err error) string {
		if err == nil {
			return "ready"
		}
		return "not usable (" + reason(err) + ")"
	}
	return fmt.Sprintf("%s/%s %s; %s/%s %s", d.cfg.namespace, ControlPod, state(d.controlErr), d.cfg.namespace, ClientPod, state(d.clientErr))
}

// podInfo is what a probe pod's status says about its addresses.
type podInfo struct {
	PodIP, NodeIP, Node string
}

func (d *Driver) podInfo(ctx context.Context, name string) (podInfo, error) {
	d.mu.Lock()
	if pi, ok := d.pods[name]; ok {
		d.mu.Unlock()
		return pi, nil
	}
	d.mu.Unlock()
	ns, n := d.splitPod(name)
	p, err := d.cl.Client().CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
	if err != nil {
		return podInfo{}, fmt.Errorf("get pod %s/%s: %w", ns, n, err)
	}
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return podInfo{}, fmt.Errorf("pod %s/%s is %s without an IP", ns, n, p.Status.Phase)
	}
	pi := podInfo{PodIP: p.Status.PodIP, NodeIP: p.Status.HostIP, Node: p.Spec.NodeName}
	d.mu.Lock()
	d.pods[name] = pi
	d.mu.Unlock()
	return pi, nil
}

// podCIDR returns the cluster's pod network: kubeadm's podSubnet when the
// cluster says it, else the smallest prefix covering every node's podCIDR.
func (d *Driver) podCIDR(ctx context.Context) string {
	cm, err := d.cl.Client().CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err == nil {
		var cc struct {
			Networking struct {
				PodSubnet string `json:"podSubnet"`
			} `json:"networking"`
		}
		if yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cc) == nil && cc.Networking.PodSubnet != "" {
			first, _, _ := strings.Cut(cc.Networking.PodSubnet, ",")
			if p, err := netip.ParsePrefix(strings.TrimSpace(first)); err == nil {
				return p.Masked().String()
			}
		}
	}
	cidrs, err := d.cl.PodCIDRs(ctx)
	if err != nil || len(cidrs) == 0 {
		d.log.Warn("cannot tell the pod CIDR", "error", err)
		return ""
	}
	return netaddr.Covering(cidrs...)
}
