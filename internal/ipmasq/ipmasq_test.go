package ipmasq

import (
	"os"

	"net/netip"
	"reflect"
	"sigs.k8s.io/yaml"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name   string
		config string
		opts   Options
		dst    string
		masq   bool
	}{
		{"no config: RFC1918 kept", "", Options{}, "172.18.0.5", false},
		{"no config: 10/8 kept", "", Options{}, "10.2.0.9", false},
		{"no config: public masqueraded", "", Options{}, "8.8.8.8", true},
		{"no config: link-local kept", "", Options{}, "169.254.169.254", false},
		{"no config: TEST-NET-3 masqueraded", "", Options{}, "203.0.113.10", true},
		{"all reserved: TEST-NET-3 kept", "", Options{NoMasqAllReservedRanges: true}, "203.0.113.10", false},
		{"pod CIDR only: kind network masqueraded", "nonMasqueradeCIDRs: [10.244.0.0/16]", Options{}, "172.18.0.5", true},
		{"pod CIDR only: pods kept", "nonMasqueradeCIDRs: [10.244.0.0/16]", Options{}, "10.244.1.7", false},
		{"pod CIDR only: link-local still kept", "nonMasqueradeCIDRs: [10.244.0.0/16]", Options{}, "169.254.1.1", false},
		{"empty list masquerades all but link-local", "nonMasqueradeCIDRs: []", Options{}, "10.0.0.1", true},
		{"masqLinkLocal", "masqLinkLocal: true", Options{}, "169.254.1.1", true},
		{"masqLinkLocal keeps default list", "masqLinkLocal: true", Options{}, "192.168.1.1", false},
		{"JSON, case-insensitive keys", `{"NonMasqueradeCidrs": ["172.18.0.0/16"]}`, Options{}, "172.18.0.5", false},
		{"seed: GKE + own VPC", "nonMasqueradeCIDRs:\n  - 172.16.0.0/16\n  - 10.1.0.0/16\n", Options{}, "10.2.3.4", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.config, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Masquerades(netip.MustParseAddr(tc.dst)); got != tc.masq {
				t.Fatalf("Masquerades(%s) = %v, want %v (rule %s)", tc.dst, got, tc.masq, c.Evaluate(netip.MustParseAddr(tc.dst)).Rule)
			}
		})
	}
}

func TestRuleCIDRs(t *testing.T) {
	c, _ := Parse("", Options{})
	want := []string{"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	if got := c.RuleCIDRs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	c, _ = Parse("nonMasqueradeCIDRs: [10.244.0.0/16]\nmasqLinkLocal: true", Options{})
	if got := c.RuleCIDRs(); !reflect.DeepEqual(got, []string{"10.244.0.0/16"}) {
		t.Fatalf("got %v", got)
	}
}

func TestInvalid(t *testing.T) {
	for config, want := range map[string]string{
		"nonMasqueradeCIDRs: [10.0.0.1/8]":                              "not aligned",
		"nonMasqueradeCIDRs: [banana]":                                  "could not be parsed",
		"nonMasqueradeCIDRs: [fd00::/8]":                                "--enable-ipv6",
		"cidrLimit: 1\nnonMasqueradeCIDRs: [10.0.0.0/8, 172.16.0.0/12]": "exceed cidrLimit",
		"resyncInterval: 60":                                            "duration string",
		"nonMasqueradeCIDRs: [":                                         "ip-masq-agent config",
	} {
		if _, err := Parse(config, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", config, err, want)
		}
	}
}

// TestUpstreamExamples evaluates the configs of the Kubernetes IP
// Masquerade Agent User Guide and compares with the RETURN rules the guide
// shows the agent writing for each (testdata/upstream-examples.yaml).
func TestUpstreamExamples(t *testing.T) {
	b, err := os.ReadFile("testdata/upstream-examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name       string   `json:"name"`
		Config     string   `json:"config"`
		Return     []string `json:"return"`
		Masquerade []string `json:"masquerade"`
		Keep       []string `json:"keep"`
	}
	if err := yaml.Unmarshal(b, &cases); err != nil { // "say" lines are prose for the reader
		t.Fatal(err)
	}
	if len(cases) != 3 {
		t.Fatalf("%d examples, want the guide's 3", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			c, err := Parse(tc.Config, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.RuleCIDRs(); !reflect.DeepEqual(got, tc.Return) {
				t.Errorf("RETURN rules %v, the guide shows %v", got, tc.Return)
			}
			for _, d := range tc.Masquerade {
				if !c.Masquerades(netip.MustParseAddr(d)) {
					t.Errorf("%s kept the pod IP, want MASQUERADE", d)
				}
			}
			for _, d := range tc.Keep {
				if c.Masquerades(netip.MustParseAddr(d)) {
					t.Errorf("%s masqueraded, want RETURN", d)
				}
			}
		})
	}
}
