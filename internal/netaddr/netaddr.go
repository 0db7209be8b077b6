package netaddr

import "net/netip"

// Covering returns the smallest IPv4 prefix that contains every given
// address or prefix ("10.244.1.7", "10.244.0.0/24"), in CIDR form; entries
// that do not parse or are IPv6 are ignored, and "" is returned when none
// remains. Covering("172.18.0.3", "172.18.0.4") is "172.18.0.0/29".
func Covering(addrsOrPrefixes ...string) string {
	var out netip.Prefix
	for _, s := range addrsOrPrefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			continue
		}
		p = p.Masked()
		if !out.IsValid() {
			out = p
			continue
		}
		bits := min(out.Bits(), p.Bits())
		for bits > 0 {
			a, _ := out.Addr().Prefix(bits)
			b, _ := p.Addr().Prefix(bits)
			if a == b {
				break
			}
			bits--
		}
		out, _ = out.Addr().Prefix(bits)
	}
	if !out.IsValid() {
		return ""
	}
	return out.String()
}
