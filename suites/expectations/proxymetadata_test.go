package expectations

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites/check"
)

const pmFile = `apiVersion: meshconform.dev/v1alpha1
kind: Expectations
expectations:
- name: WithDNSCapture
  source: {namespace: identity, proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}}
  destination: {host: ldap.internal, port: 636, protocol: TCP}
  expect: Allowed
`

func TestProxyMetadata(t *testing.T) {
	l, err := Parse("x.yaml", []byte(pmFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := l.Checks[0].Steps[0].Expect[0].From
	if src.ProxyMetadata["ISTIO_META_DNS_CAPTURE"] != "true" {
		t.Fatalf("source %+v", src)
	}
	plain := src
	plain.ProxyMetadata = nil
	if src.Key() == plain.Key() {
		t.Fatal("a DNS-capture sidecar must not share its generated config with a plain one")
	}
}

func TestProxyMetadataRejected(t *testing.T) {
	for bad, want := range map[string]string{
		`ISTIO_META_DNS_CAPTURE: "true"`:    "",
		`ISTIO_META_DNS_CAPTUR: "true"`:     "key ISTIO_META_DNS_CAPTUR is not simulated",
		`ISTIO_META_DNS_CAPTURE: "yes"`:     `"yes" is not`,
		`ISTIO_META_DNS_AUTO_ALLOCATE: "1"`: `"1" is not`,
	} {
		_, err := Parse("x.yaml", []byte(strings.Replace(pmFile, `ISTIO_META_DNS_CAPTURE: "true"`, bad, 1)), nil)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", bad, err)
			}
			continue
		}
		var ie *check.InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), want) || ie.Line != 5 {
			t.Errorf("%s: got %v, want an error at line 5 (the proxyMetadata field) saying %q", bad, err, want)
		}
	}
}

// Every bad expectation is reported at its field's line, not only the first.
func TestEveryBadExpectationIsReported(t *testing.T) {
	file := `apiVersion: meshconform.dev/v1alpha1
kind: Expectations
expectations:
- name: First
  source: {namespace: shop}
  destination:
    address: 10.0.0.300
    port: 443
    protocol: TLS
  expect: Allowed
- name: Fine
  destination: {address: 10.0.0.1, port: 1, protocol: TCP}
  expect: Allowed
- name: Second
  destination: {address: 10.0.0.1, port: 1, protocol: TCP}
  expect: Blocked
`
	_, err := Parse("two.yaml", []byte(file), nil)
	if err == nil {
		t.Fatal("two bad expectations accepted")
	}
	for _, want := range []string{`two.yaml:7: expectation First: destination.address "10.0.0.300"`, `two.yaml:16: expectation Second: expect "Blocked"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "Fine") {
		t.Errorf("the good expectation is reported:\n%v", err)
	}
}
