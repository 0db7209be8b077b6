package app

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Bad input to `run --expectations` is refused before anything is created
// (no cluster, no fixtures: a kubeconfig that does not exist would fail the
// cluster phase, so reaching it shows up as another error), with simulate's
// file:line and fix, exit 2, and a JUnit report holding one synthetic
// failed case.
func TestRunExpectationsBadInput(t *testing.T) {
	dir := t.TempDir()
	unknown := write(t, dir, "unknown.yaml", `apiVersion: meshconform.dev/v1alpha1
kind: Expectations
expectations:
- name: CheckoutReachesEcho
  source: {namespace: shop, labels: {app: checkout}}
  destination: {address: 172.18.0.9, port: 80, protocol: HTTP}
  expect: Allowed
  colour: blue
`)
	good := write(t, dir, "good.yaml", `apiVersion: meshconform.dev/v1alpha1
kind: Expectations
expectations:
- name: CheckoutReachesEcho
  source: {namespace: shop, labels: {app: checkout}}
  destination: {host: echo.exteranl.test, port: 80, protocol: HTTP}
  expect: Allowed
`)
	entry := write(t, dir, "entry.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo.external.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`)
	missingKube := filepath.Join(dir, "no-kubeconfig")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing file", []string{"--expectations", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "cannot read", "fix:"}},
		{"unknown field", []string{"--expectations", unknown}, []string{"unknown.yaml:8", "colour", "fix:"}},
		{"host not declared by -f", []string{"--expectations", good, "-f", entry}, []string{"good.yaml:", "echo.exteranl.test", "did you mean echo.external.test", "fix:"}},
		{"-f without --expectations", []string{"-f", entry}, []string{"only apply with --expectations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			junit := filepath.Join(t.TempDir(), "junit.xml")
			args := append([]string{"run", "--kubeconfig", missingKube, "--junit", junit, "--summary", ""}, tc.args...)
			code, out, errs := runCLI(t, args...)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if strings.HasSuffix(tc.want[0], ".yaml:") && !regexp.MustCompile(regexp.QuoteMeta(tc.want[0])+`\d+`).MatchString(errs) {
				t.Errorf("stderr does not name the line (%s<line>):\n%s", tc.want[0], errs)
			}
			if strings.Contains(errs, "no-kubeconfig") || strings.Contains(errs, "cluster:") {
				t.Errorf("bad input reached the cluster phase:\n%s", errs)
			}
			b, err := os.ReadFile(junit)
			if err != nil {
				t.Fatalf("no JUnit for bad input: %v", err)
			}
			if x := string(b); !strings.Contains(x, `name="Setup"`) || !strings.Contains(x, "setup failed in phase input") {
				t.Errorf("JUnit lacks the synthetic Setup failure:\n%s", x)
			}
		})
	}
}
