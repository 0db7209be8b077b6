package istio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshconform/meshconform/clusters/internal/podstatus"
)

// Preflight checks, before any check that needs the mesh, that istiod is
// ready and that the client pods matching podSelector in namespace have
// the istio-proxy sidecar injected and ready. It waits up to
// Timeouts.Preflight for them; a problem that persists for ImagePullGrace
// (or a pod without a sidecar, which no wait can fix) ends it early. Any
// failure is a *NotReadyError with the precise reason, e.g. "istiod: pod
// istio-system/istiod-x container discovery: image docker.io/istio/pilot:1.31.0
// cannot be pulled (ImagePullBackOff): ..." or "client pods app=client in
// ns: replicaset ns/client-x cannot create pods (FailedCreate): ... failed
// calling webhook "namespace.sidecar-injector.istio.io" ... (Istio's
// injection webhook is served by istiod, which is not ready)".
func (m *Mesh) Preflight(ctx context.Context, namespace, podSelector string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.timeouts.Preflight)
	defer cancel()
	if err := m.waitPods(ctx, m.istiodNamespace(), m.istiodSelector(), "istiod"); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if err := m.waitClient(ctx, namespace, podSelector); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	return nil
}

// waitClient waits until the client pods are ready with an injected,
// ready istio-proxy.
func (m *Mesh) waitClient(ctx context.Context, namespace, selector string) error {
	what := fmt.Sprintf("client pods %s in %s", selector, namespace)
	sel, err := labels.Parse(selector)
	if err != nil {
		return fmt.Errorf("parse pod selector %q: %w", selector, err)
	}
	tr := m.tracker(namespace + "|" + selector)
	var last []podstatus.Problem
	for {
		problems, err := m.clientProblems(ctx, namespace, sel)
		if err != nil {
			return err
		}
		if problems == nil {
			return nil
		}
		last = problems
		if stuck := tr.Observe(problems); len(stuck) > 0 {
			return &NotReadyError{Reason: what + ": " + explain(stuck)}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return &NotReadyError{Reason: fmt.Sprintf("%s not ready in time: %s", what, explain(last))}
		case <-time.After(m.cfg.timeouts.Poll):
		}
	}
}

// clientProblems returns nil when every (live) client pod is ready with a
// ready istio-proxy, else why not.
func (m *Mesh) clientProblems(ctx context.Context, namespace string, sel labels.Selector) ([]podstatus.Problem, error) {
	client := m.cl.Client()
	list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods %s in %s: %w", sel, namespace, err)
	}
	var problems []podstatus.Problem
	live := 0
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		live++
		if !podstatus.HasContainer(pod, proxyContainer) {
			problems = append(problems, podstatus.Problem{
				Object: pod.Namespace + "/" + pod.Name, Kind: podstatus.Other, Reason: "sidecar not injected",
				Message: m.notInjectedReason(ctx, pod), Permanent: true,
			})
			continue
		}
		ps := podstatus.ForPod(pod)
		if _, ready := podstatus.ContainerReady(pod, proxyContainer); ready && len(ps) == 0 {
			continue
		}
		if len(ps) == 0 {
			ps = []podstatus.Problem{{Object: pod.Namespace + "/" + pod.Name, Container: proxyContainer, Kind: podstatus.NotReady, Reason: "ContainerNotReady"}}
		}
		problems = append(problems, ps...)
	}
	if live == 0 {
		problems = append(problems, podstatus.CreateFailures(ctx, client, namespace, sel)...)
		if len(problems) == 0 {
			problems = append(problems, podstatus.Problem{Object: namespace + "/" + sel.String(), Kind: podstatus.NotReady, Reason: "NoPods", Message: "no pod matches the selector"})
		}
	}
	podstatus.Enrich(ctx, client, problems)
	if len(problems) == 0 {
		return nil, nil
	}
	return problems, nil
}

// notInjectedReason says why a pod has no sidecar: the namespace's and
// pod's injection labels as Istio reads them.
func (m *Mesh) notInjectedReason(ctx context.Context, pod *corev1.Pod) string {
	var nsLabel string
	if ns, err := m.cl.Client().CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{}); err == nil {
		switch {
		case ns.Labels["istio-injection"] != "":
			nsLabel = "istio-injection=" + ns.Labels["istio-injection"]
		case ns.Labels["istio.io/rev"] != "":
			nsLabel = "istio.io/rev=" + ns.Labels["istio.io/rev"]
		}
	}
	podLabel := pod.Labels["sidecar.istio.io/inject"]
	switch {
	case podLabel == "false":
		return "the pod has no istio-proxy container: it is labelled sidecar.istio.io/inject=false"
	case nsLabel == "" && podLabel != "true":
		return fmt.Sprintf("the pod has no istio-proxy container: namespace %s is not labelled istio-injection=enabled (nor istio.io/rev), so the sidecar was not injected", pod.Namespace)
	}
	return fmt.Sprintf("the pod has no istio-proxy container although injection is requested (namespace %s); it was probably created while the injection webhook was not configured: recreate it", orNone(nsLabel))
}

func orNone(s string) string {
	if s == "" {
		return "no injection label"
	}
	return s
}

// explain formats problems, adding what a webhook failure means here.
func explain(ps []podstatus.Problem) string {
	s := podstatus.Join(ps)
	if strings.Contains(s, "sidecar-injector.istio.io") {
		s += " (Istio's injection webhook is served by istiod, which is not ready)"
	}
	return s
}

// SidecarReady reports whether pod has an istio-proxy container (a
// sidecar, native or not, or a gateway's proxy) that is running and ready:
// its Envoy then serves its admin API (config_dump) on localhost:15000.
func SidecarReady(pod *corev1.Pod) bool {
	_, ready := podstatus.ContainerReady(pod, proxyContainer)
	return ready
}
