package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const example = "../../../suites/expectations/example/"

func TestSimulateBuiltinSuitesWritesReports(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "simulate", "--junit", filepath.Join(dir, "junit.xml"), "--summary", filepath.Join(dir, "summary.md"))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "19 passed, 0 failed") {
		t.Fatalf("table:\n%s", out)
	}
	for _, f := range []string{"junit.xml", "summary.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

func TestSimulateExpectationsFile(t *testing.T) {
	code, out, errs := runCLI(t, "simulate", "-f", example+"istio", "--expectations", example+"expectations.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "8 passed, 0 failed") {
		t.Fatalf("table:\n%s", out)
	}
}

// Under ALLOW_ANY the expectations that rely on REGISTRY_ONLY must fail:
// exit code 1, the failing checks named.
func TestSimulateFailingPolicyExitsOne(t *testing.T) {
	code, out, _ := runCLI(t, "simulate", "-f", example+"istio", "--expectations", example+"expectations.yaml", "--outbound-traffic-policy", "ALLOW_ANY")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "Failed  expectations             CheckoutCannotReachAnythingElse") {
		t.Fatalf("table:\n%s", out)
	}
}

func TestSimulateNegativeControls(t *testing.T) {
	code, out, errs := runCLI(t, "simulate", "--suite", "tcp-cidr", "--negative-controls")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "TCPServiceEntryAllowsMySQLByCIDR/NegativeControl") || !strings.Contains(out, "6 passed") {
		t.Fatalf("table:\n%s", out)
	}
}

func TestSimulateBadInput(t *testing.T) {
	dir := t.TempDir()
	goodExp := example + "expectations.yaml"
	cases := []struct {
		name  string
		files map[string]string
		args  func(dir string) []string
		want  []string
	}{
		{"malformed YAML",
			map[string]string{"bad.yaml": "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: x\n spec: [\n"},
			func(d string) []string { return []string{"-f", d + "/bad.yaml"} },
			[]string{"bad.yaml:", "malformed YAML", "fix:"}},
		{"unknown kind",
			map[string]string{"k.yaml": "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.example], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n"},
			func(d string) []string { return []string{"-f", d + "/k.yaml"} },
			[]string{"k.yaml:6:", "unknown kind StatefulSet", "fix:"}},
		{"invalid Istio object",
			map[string]string{"inv.yaml": "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: nope}\nspec:\n  hosts: [a.example]\n  ports: [{number: 99999, name: http, protocol: HTTP}]\n  resolution: DNS\n"},
			func(d string) []string { return []string{"-f", d + "/inv.yaml"} },
			[]string{"inv.yaml:1:", "ServiceEntry default/nope", "rejected by Istio's validation", "port"}},
		{"misspelt field in an Istio spec",
			map[string]string{"typo.yaml": "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.example]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolutoin: DNS\n"},
			func(d string) []string { return []string{"-f", d + "/typo.yaml"} },
			[]string{"typo.yaml:7:", "ServiceEntry default/a", `unknown field "resolutoin"`, "fix:"}},
		{"misspelt metadata field",
			map[string]string{"meta.yaml": "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\n  namespce: shop\nspec: {hosts: [a.example], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}\n"},
			func(d string) []string { return []string{"-f", d + "/meta.yaml"} },
			[]string{"meta.yaml:5:", `unknown field "namespce"`}},
		{"expectation names an undeclared host",
			map[string]string{"exp.yaml": "apiVersion: meshconform.dev/v1alpha1\nkind: Expectations\nexpectations:\n- name: Typo\n  source: {namespace: shop}\n  destination: {host: api.paymnets.example, port: 443, protocol: TLS}\n  expect: Allowed\n"},
			func(d string) []string {
				return []string{"-f", example + "istio", "--expectations", d + "/exp.yaml"}
			},
			[]string{"exp.yaml:6:", "api.paymnets.example is not declared", "unregistered: true"}},
		{"unknown field in expectations",
			map[string]string{"f.yaml": "apiVersion: meshconform.dev/v1alpha1\nkind: Expectations\nexpectations:\n- name: Ab\n  destnation: {host: a, port: 1, protocol: TCP}\n"},
			func(d string) []string { return []string{"--expectations", d + "/f.yaml"} },
			[]string{"f.yaml:5:", "destnation"}},
		{"bad outcome",
			map[string]string{"o.yaml": "apiVersion: meshconform.dev/v1alpha1\nkind: Expectations\nexpectations:\n- name: Ab\n  destination: {address: 10.0.0.1, port: 1, protocol: TCP}\n  expect: Blocked\n"},
			func(d string) []string { return []string{"--expectations", d + "/o.yaml"} },
			[]string{"o.yaml:6:", `expect "Blocked"`, "BlockedByMesh"}},
		{"bad masquerade config",
			map[string]string{"m.yaml": "apiVersion: meshconform.dev/v1alpha1\nkind: Expectations\nmasquerade:\n  config: |\n    nonMasqueradeCIDRs: [10.0.0.1/8]\n  expectations:\n  - {name: Ab, destination: 10.2.0.1, expect: Unreachable}\n"},
			func(d string) []string { return []string{"--expectations", d + "/m.yaml"} },
			[]string{"m.yaml:4:", "not aligned", "10.0.0.0/8"}},
		{"missing file", nil,
			func(d string) []string { return []string{"-f", d + "/nope.yaml", "--expectations", goodExp} },
			[]string{"nope.yaml", "cannot read"}},
		{"bad policy", nil,
			func(d string) []string { return []string{"--outbound-traffic-policy", "DENY"} },
			[]string{"ALLOW_ANY or REGISTRY_ONLY"}},
		{"unknown suite", nil,
			func(d string) []string { return []string{"--suite", "nope"} },
			[]string{`--suite "nope": no such suite`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			os.MkdirAll(d, 0o755)
			for n, txt := range tc.files {
				write(t, d, n, txt)
			}
			junit := filepath.Join(d, "out", "junit.xml")
			args := append([]string{"simulate", "--junit", junit}, tc.args(d)...)
			code, out, errs := runCLI(t, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout:%s\nstderr:%s", code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if strings.Contains(out, "passed") {
				t.Errorf("bad input must not print a result table:\n%s", out)
			}
			// The JUnit report carries one synthetic failure: never a pass.
			b, err := os.ReadFile(junit)
			if err != nil {
				t.Fatalf("JUnit not written on bad input: %v", err)
			}
			if !strings.Contains(string(b), `failures="1"`) || !strings.Contains(string(b), "SetupFailure") {
				t.Errorf("JUnit must hold the synthetic failure:\n%s", b)
			}
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	root := newRoot(&globals{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	for _, c := range root.Commands() {
		code, out, errs := runCLI(t, c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d\n%s%s", c.Name(), code, out, errs)
		}
	}
	if code, _, _ := runCLI(t, "nope"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}
