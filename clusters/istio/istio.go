package istio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"istio.io/istio/operator/pkg/install"
	"istio.io/istio/operator/pkg/render"
	"istio.io/istio/operator/pkg/util/clog"
	"istio.io/istio/operator/pkg/util/progress"
	"istio.io/istio/pkg/kube"
	istiolog "istio.io/istio/pkg/log"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/internal/podstatus"
)

const (
	// Namespace is where Istio's control plane and gateway run.
	Namespace = "istio-system"

	istiodSelector  = "app=istiod"
	gatewaySelector = "app=istio-ingressgateway"
	gatewayService  = "istio-ingressgateway"
	meshConfigMap   = "istio"
	proxyContainer  = "istio-proxy"
)

// Mesh is Istio in a cluster, installed by Install or found by Attach.
type Mesh struct {
	cl       *clusters.Cluster
	cfg      *config
	log      *slog.Logger
	version  string
	attached bool
	// istiodNS and istiodSel find istiod's pods: Namespace and app=istiod
	// for Install; the found Deployment's own namespace and selector for
	// Attach (a revisioned control plane, e.g. istiod-1-31).
	istiodNS, istiodSel string

	mu       sync.Mutex
	trackers map[string]*podstatus.Tracker
}

// Version is the Istio version (the image tag installed, or the tag of the
// running istiod's image for Attach).
func (m *Mesh) Version() string { return m.version }

// Hub is the image hub Install used ("" for Attach).
func (m *Mesh) Hub() string {
	if m.attached {
		return ""
	}
	return m.cfg.hub
}

var iopTemplate = template.Must(template.New("iop").Parse(`apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  profile: minimal
  hub: {{ .Hub }}
  tag: {{ .Tag }}
  meshConfig:
    outboundTrafficPolicy:
      mode: {{ .Policy }}
  components:
    ingressGateways:
    - name: istio-ingressgateway
      enabled: {{ not .NoGateway }}
      k8s:
        service:
          type: NodePort
          ports:
          - name: status-port
            port: 15021
            targetPort: 15021
          - name: http2
            port: 80
            targetPort: 8080
            nodePort: {{ .HTTPNodePort }}
          - name: https
            port: 443
            targetPort: 8443
            nodePort: {{ .HTTPSNodePort }}
  values:
{{- if .NeverPull }}
    global:
      imagePullPolicy: Never
{{- end }}
    pilot:
      autoscaleEnabled: false
      resources:
        requests:
          cpu: 100m
          memory: 256Mi
    gateways:
      istio-ingressgateway:
        autoscaleEnabled: false
`))

// renderIOP returns the IstioOperator Install applies.
func renderIOP(c *config) (string, error) {
	var b bytes.Buffer
	err := iopTemplate.Execute(&b, map[string]any{"Hub": c.hub, "Tag": c.tag, "Policy": c.policy, "HTTPNodePort": c.httpNodePort, "HTTPSNodePort": c.httpsNodePort, "NoGateway": c.noGateway, "NeverPull": c.neverPull})
	return b.String(), err
}

var quietOnce sync.Once

// quietIstioLogs keeps Istio's zap scopes (which write to stderr) to errors.
func quietIstioLogs() {
	quietOnce.Do(func() {
		for _, s := range istiolog.Scopes() {
			s.SetOutputLevel(istiolog.ErrorLevel)
		}
	})
}

// Install installs Istio into a kind cluster of cl (created or reused):
// profile minimal + an ingress gateway on NodePorts, images from
// WithHub/WithTag, rendered from the charts embedded in the istio module.
// It then waits (Timeouts.Ready) for istiod and the gateway. If they do
// not become ready — on machines without a registry Istio's images cannot
// be pulled — it returns the *Mesh together with a *NotReadyError naming
// the pod, container and image that failed and why, after the problem
// persisted for Timeouts.ImagePullGrace rather than after the whole
// timeout. In existing-cluster mode it refuses: use Attach.
func Install(ctx context.Context, cl *clusters.Cluster, opts ...Option) (*Mesh, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("install istio: %w", err)
	}
	if !cl.Managed() {
		return nil, errors.New("install istio: the cluster is an existing cluster (--kubeconfig/--context); meshconform does not install Istio there: use its installation (istio.Attach)")
	}
	quietIstioLogs()
	m := &Mesh{cl: cl, cfg: cfg, log: cl.Logger(), version: cfg.tag, trackers: map[string]*podstatus.Tracker{}}
	start := time.Now()
	m.log.Info("installing istio", "hub", cfg.hub, "tag", cfg.tag, "profile", "minimal+ingress", "policy", cfg.policy)
	if err := m.apply(ctx); err != nil {
		return m, fmt.Errorf("install istio: %w", err)
	}
	m.log.Info("istio manifests applied", "elapsed", since(start))
	cl.ResetRESTMapper()
	if err := m.waitReady(ctx); err != nil {
		return m, fmt.Errorf("install istio: %w", err)
	}
	m.log.Info("istio ready", "version", m.version, "elapsed", since(start))
	return m, nil
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// apply renders and applies the manifests, with Istio's installer wait off.
func (m *Mesh) apply(ctx context.Context) error {
	iop, err := renderIOP(m.cfg)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "meshconform-istio-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "iop.yaml")
	if err := os.WriteFile(file, []byte(iop), 0o600); err != nil {
		return err
	}
	kc, err := kube.NewCLIClient(kube.NewClientConfigForRestConfig(m.cl.RESTConfig()))
	if err != nil {
		return fmt.Errorf("create istio kube client: %w", err)
	}
	out := &logWriter{log: m.log}
	defer out.Flush()
	logger := clog.NewConsoleLogger(out, out, istiolog.RegisterScope("meshconform", "meshconform"))
	done := make(chan error, 1)
	go func() {
		defer kc.Shutdown()
		manifests, vals, err := render.GenerateManifest([]string{file}, nil, false, kc, logger)
		if err != nil {
			done <- fmt.Errorf("render manifests: %w", err)
			return
		}
		inst := install.Installer{
			SkipWait:       true,
			Kube:           kc,
			Values:         vals,
			WaitTimeout:    m.cfg.timeouts.Ready,
			Logger:         logger,
			ProgressLogger: progress.NewLog(),
		}
		if err := inst.InstallManifests(manifests); err != nil {
			done <- fmt.Errorf("apply manifests: %w", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The applies are short server-side applies; they finish in the
		// background while the caller tears down.
		return ctx.Err()
	}
}

// waitReady waits for istiod, then the ingress gateway. A *NotReadyError
// for istiod also lists the gateway's current problems.
func (m *Mesh) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.timeouts.Ready)
	defer cancel()
	if err := m.waitPods(ctx, m.istiodNamespace(), m.istiodSelector(), "istiod"); err != nil {
		if clusters.IsNotReady(err) {
			if gw, _, _ := podstatus.ForSelector(context.WithoutCancel(ctx), m.cl.Client(), Namespace, gatewaySelector); len(gw) > 0 {
				var nre *NotReadyError
				errors.As(err, &nre)
				return &NotReadyError{Reason: nre.Reason + "; ingress gateway: " + podstatus.Join(gw)}
			}
		}
		return err
	}
	if m.cfg.noGateway {
		return nil
	}
	return m.waitPods(ctx, Namespace, gatewaySelector, "ingress gateway")
}

// waitPods waits until the pods matching selector are ready; problems
// that persist for ImagePullGrace end it with a *NotReadyError. Trackers
// persist across calls, so a problem already known (e.g. from Install) is
// reported by a later Preflight at its first look.
func (m *Mesh) waitPods(ctx context.Context, namespace, selector, what string) error {
	tr := m.tracker(namespace + "|" + selector)
	var last []podstatus.Problem
	for {
		problems, n, err := podstatus.ForSelector(ctx, m.cl.Client(), namespace, selector)
		if err != nil {
			return err
		}
		if n > 0 && len(problems) == 0 {
			return nil
		}
		last = problems
		if stuck := tr.Observe(problems); len(stuck) > 0 {
			return &NotReadyError{Reason: what + ": " + podstatus.Join(stuck)}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			if len(last) > 0 {
				return &NotReadyError{Reason: fmt.Sprintf("%s not ready in time: %s", what, podstatus.Join(last))}
			}
			return &NotReadyError{Reason: fmt.Sprintf("%s: no pod matching %s in namespace %s", what, selector, namespace)}
		case <-time.After(m.cfg.timeouts.Poll):
		}
	}
}

func (m *Mesh) tracker(key string) *podstatus.Tracker {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trackers[key] == nil {
		m.trackers[key] = &podstatus.Tracker{Grace: m.cfg.timeouts.ImagePullGrace}
	}
	return m.trackers[key]
}

// Attach uses the Istio already installed in the cluster (existing-cluster
// mode, or a reused kind cluster): it checks that istiod exists and takes
// the version from its image tag. It does not wait for readiness (that is
// Preflight's job). Options used: WithTimeouts, WithIngressNodePorts is
// ignored (IngressAddress reads the service).
func Attach(ctx context.Context, cl *clusters.Cluster, opts ...Option) (*Mesh, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("attach to istio: %w", err)
	}
	ns, name := cfg.istiodNS, cfg.istiodName
	if ns == "" {
		ns, name = Namespace, "istiod"
	}
	d, err := cl.Client().AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach to istio: find deployment %s/%s: %w", ns, name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil, fmt.Errorf("attach to istio: deployment %s/%s has no usable pod selector: %v", ns, name, err)
	}
	version := ""
	for _, c := range d.Spec.Template.Spec.Containers {
		if i := strings.LastIndex(c.Image, ":"); i > 0 && !strings.Contains(c.Image[i:], "/") {
			version = c.Image[i+1:]
		}
	}
	return &Mesh{cl: cl, cfg: cfg, log: cl.Logger(), version: version, attached: true, trackers: map[string]*podstatus.Tracker{},
		istiodNS: ns, istiodSel: sel.String()}, nil
}

// logWriter turns the installer's console output into Debug log lines.
type logWriter struct {
	mu  sync.Mutex
	log *slog.Logger
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err == io.EOF {
			w.buf.WriteString(line)
			return len(p), nil
		}
		if s := strings.TrimSpace(line); s != "" {
			w.log.Debug("istio installer: " + s)
		}
	}
}

// Flush logs a trailing partial line.
func (w *logWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			w.log.Debug("istio installer: " + s)
		}
	}
}
