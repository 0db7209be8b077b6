// Package ipmasq evaluates an ip-masq-agent configuration exactly as
// kubernetes-sigs/ip-masq-agent (v2.9.x) documents it: which destinations a
// pod's traffic is SNATed for (masqueraded to the node IP) and which keep
// the pod IP. It is pure: no iptables, no cluster.
//
// Semantics (upstream README, "Configuring the agent"):
//   - no config file: nonMasqueradeCIDRs = 10.0.0.0/8, 172.16.0.0/12,
//     192.168.0.0/16 (plus the other reserved ranges with
//     --nomasq-all-reserved-ranges); masqLinkLocal false; cidrLimit 64;
//     resyncInterval 60s;
//   - a config file (YAML or JSON) is decoded on top of those defaults:
//     only the keys it has change anything, and a nonMasqueradeCIDRs list
//     replaces the default list entirely ([] masquerades everything but
//     link-local);
//   - 169.254.0.0/16 is never masqueraded unless masqLinkLocal is true;
//   - more CIDRs than cidrLimit, an unparsable or unaligned CIDR, an IPv6
//     CIDR without --enable-ipv6, or a non-string resyncInterval is an
//     error (the agent then keeps its previous rules).
//
// The nat chain IP-MASQ-AGENT has one RETURN rule per non-masquerade CIDR,
// link-local first, then MASQUERADE: RuleCIDRs returns that list in order.
package ipmasq
