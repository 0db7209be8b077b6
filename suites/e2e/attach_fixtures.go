package e2e

import (
	"context"
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/echo"
)

// inClusterEchoPod is the echo target of an attach run: a bare pod (no
// Service, so Istio does not know it as a service) in FixturesNamespace
// (no injection), addressed by its pod IP, speaking HTTP on 80 and TCP on
// 9000 and 3306 — outside the mesh, reachable from the probe pods on any
// cluster network. Names and TLS need cluster DNS and a CA the cluster
// trusts, so the checks that need them are not applicable (NotApplicable).
const inClusterEchoPod = `apiVersion: v1
kind: Pod
metadata:
  name: echo
  labels: {app: meshconform-echo, sidecar.istio.io/inject: "false"}
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  containers:
  - name: echo
    image: %q
    imagePullPolicy: IfNotPresent
    args: ["echo", "--http-addr=:80", "--tcp-addrs=:9000,:3306"]
    ports: [{containerPort: 80}, {containerPort: 9000}, {containerPort: 3306}]
    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
`

// inClusterFixtures starts the echo target inside the attached cluster
// (inClusterEchoPod) and makes it the run's "echo" endpoint. It goes with
// its namespace (deleted by the cluster's Teardown).
func (e *Env) inClusterFixtures(ctx context.Context) error {
	start := time.Now()
	ns := FixturesNamespace(e.cfg.Namespace)
	cl := e.Cluster
	if _, err := cl.Apply(ctx, ns, fmt.Sprintf(inClusterEchoPod, e.AgentImage)); err != nil {
		return fail(PhaseFixtures, fmt.Errorf("create the echo pod in %s: %w", ns, err))
	}
	if err := cl.WaitPods(ctx, ns, "app=meshconform-echo", "echo target "+ns+"/echo", podsTimeout(e.cfg.LiveTimeouts.Pods)); err != nil {
		return fail(PhaseFixtures, err)
	}
	pod, err := cl.Client().CoreV1().Pods(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		return fail(PhaseFixtures, err)
	}
	ports := map[string]int{}
	for k, v := range echo.Ports {
		if k != "https" {
			ports[k] = v
		}
	}
	e.endpoints = map[string]fixtures.Endpoint{echo.Name: {Name: echo.Name, Host: fixtures.EchoHost, IP: pod.Status.PodIP, Ports: ports}}
	detail := fmt.Sprintf("echo %s/echo at %s (pod IP, no Service, no sidecar; ports %s)", ns, pod.Status.PodIP, portList(ports))
	e.p.Phase(PhaseFixtures, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseFixtures, start, detail)
	return nil
}

func portList(m map[string]int) string {
	s := ""
	for _, k := range mapsKeys(m) {
		if s != "" {
			s += ", "
		}
		s += k + " " + strconv.Itoa(m[k])
	}
	return s
}

// podsTimeout is live.Timeouts.Pods or its default.
func podsTimeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return 3 * time.Minute
}
