package ipmasq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// LinkLocal is the IPv4 link-local range the agent exempts by default.
const LinkLocal = "169.254.0.0/16"

// DefaultNonMasqueradeCIDRs are the RFC 1918 ranges used without a config.
var DefaultNonMasqueradeCIDRs = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

// ReservedCIDRs are added to the defaults by --nomasq-all-reserved-ranges.
var ReservedCIDRs = []string{
	"100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
}

// Config is the agent's effective configuration.
type Config struct {
	NonMasqueradeCIDRs []string `json:"nonMasqueradeCIDRs"`
	CIDRLimit          int      `json:"cidrLimit"`
	MasqLinkLocal      bool     `json:"masqLinkLocal"`
	MasqLinkLocalIPv6  bool     `json:"masqLinkLocalIPv6"`
	ResyncInterval     duration `json:"resyncInterval"`

	prefixes []netip.Prefix
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("resyncInterval must be a duration string such as \"60s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("resyncInterval: %w", err)
	}
	d.Duration = v
	return nil
}

// Options are the agent's command-line flags that change evaluation.
type Options struct {
	// NoMasqAllReservedRanges is --nomasq-all-reserved-ranges.
	NoMasqAllReservedRanges bool
	// EnableIPv6 is --enable-ipv6.
	EnableIPv6 bool
}

// Defaults returns the configuration without a config file.
func Defaults(o Options) Config {
	cidrs := append([]string(nil), DefaultNonMasqueradeCIDRs...)
	if o.NoMasqAllReservedRanges {
		cidrs = append(cidrs, ReservedCIDRs...)
	}
	return Config{NonMasqueradeCIDRs: cidrs, CIDRLimit: 64, ResyncInterval: duration{60 * time.Second}}
}

// Parse evaluates config file content; "" means there is no config file
// (no ConfigMap), so the defaults apply.
func Parse(config string, o Options) (Config, error) {
	c := Defaults(o)
	if strings.TrimSpace(config) != "" {
		data := []byte(config)
		if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			js, err := yaml.YAMLToJSON(data)
			if err != nil {
				return Config{}, fmt.Errorf("ip-masq-agent config: %w", err)
			}
			data = js
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return Config{}, fmt.Errorf("ip-masq-agent config: %w", err)
		}
	}
	if err := c.validate(o); err != nil {
		return Config{}, fmt.Errorf("ip-masq-agent config: %w", err)
	}
	return c, nil
}

func (c *Config) validate(o Options) error {
	if n := len(c.NonMasqueradeCIDRs); n > c.CIDRLimit {
		return fmt.Errorf("%d nonMasqueradeCIDRs exceed cidrLimit %d: raise cidrLimit or merge ranges", n, c.CIDRLimit)
	}
	c.prefixes = nil
	for _, s := range c.NonMasqueradeCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("CIDR %q could not be parsed: write it as a.b.c.d/n", s)
		}
		if p.Masked() != p {
			return fmt.Errorf("CIDR %q is not aligned to a CIDR block: use %s", s, p.Masked())
		}
		if p.Addr().Is6() && !o.EnableIPv6 {
			return fmt.Errorf("IPv6 CIDR %s needs the agent flag --enable-ipv6", s)
		}
		c.prefixes = append(c.prefixes, p)
	}
	return nil
}

// RuleCIDRs lists the IPv4 RETURN rules of the IP-MASQ-AGENT chain, in
// the order the agent writes them (link-local first unless masqLinkLocal).
func (c Config) RuleCIDRs() []string {
	var out []string
	if !c.MasqLinkLocal {
		out = append(out, LinkLocal)
	}
	for _, p := range c.prefixes {
		if p.Addr().Is4() {
			out = append(out, p.String())
		}
	}
	return out
}

// Decision is the verdict for one destination, with the rule that made it.
type Decision struct {
	Masquerade bool
	// Rule is the CIDR that exempted the destination, or "MASQUERADE".
	Rule string
}

// Evaluate decides whether traffic from a pod to dst is masqueraded.
// (Destinations of type LOCAL on the node never reach the chain; callers
// pass off-node destinations.)
func (c Config) Evaluate(dst netip.Addr) Decision {
	dst = dst.Unmap()
	if dst.Is4() && !c.MasqLinkLocal && netip.MustParsePrefix(LinkLocal).Contains(dst) {
		return Decision{Rule: LinkLocal}
	}
	if dst.Is6() && !c.MasqLinkLocalIPv6 && netip.MustParsePrefix("fe80::/10").Contains(dst) {
		return Decision{Rule: "fe80::/10"}
	}
	for _, p := range c.prefixes {
		if p.Contains(dst) {
			return Decision{Rule: p.String()}
		}
	}
	return Decision{Masquerade: true, Rule: "MASQUERADE"}
}

// Masquerades is Evaluate(dst).Masquerade.
func (c Config) Masquerades(dst netip.Addr) bool { return c.Evaluate(dst).Masquerade }
