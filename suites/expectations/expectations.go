package expectations

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshconform/meshconform/internal/ipmasq"
	"github.com/meshconform/meshconform/suites/check"
)

// APIVersion and Kind identify the file format.
const (
	APIVersion = "meshconform.dev/v1alpha1"
	Kind       = "Expectations"
)

// ControlNamespace is the namespace named in the source of masquerade
// expectations: the harness's out-of-mesh control pod (live's default
// namespace). Pinned, so that the expectation's name in a report is the
// same whichever driver observed it (`simulate` has no pod, `run` uses its
// control pod) and `meshconform diff` lines the two reports up.
const ControlNamespace = "meshconform"

// Suite names given to the checks built from a file.
const (
	EgressSuite     = "expectations"
	MasqueradeSuite = "masquerade-expectations"
)

// File is the document.
type File struct {
	APIVersion   string        `yaml:"apiVersion"`
	Kind         string        `yaml:"kind"`
	MeshConfig   MeshConfig    `yaml:"meshConfig"`
	Expectations []Expectation `yaml:"expectations"`
	Masquerade   *Masquerade   `yaml:"masquerade"`
}

// MeshConfig holds the mesh settings the expectations assume.
type MeshConfig struct {
	// OutboundTrafficPolicy is ALLOW_ANY or REGISTRY_ONLY.
	OutboundTrafficPolicy string `yaml:"outboundTrafficPolicy"`
}

// Expectation is one egress expectation.
type Expectation struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Labels      map[string]string `yaml:"labels"`
	Source      Source            `yaml:"source"`
	Destination Destination       `yaml:"destination"`
	Expect      string            `yaml:"expect"`
	// Cluster optionally pins the Envoy cluster (simulation).
	Cluster string `yaml:"cluster"`
	// Unregistered states that the host is deliberately declared nowhere
	// (no ServiceEntry host or address, Service, Gateway or VirtualService
	// host); without it such a host is reported as a likely typo.
	Unregistered bool `yaml:"unregistered"`

	line   int
	fields map[string]int // "destination.host" → its line
}

// Source is the client workload.
type Source struct {
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
	// Gateway: the call enters through the ingress gateway (istio: ingressgateway).
	Gateway bool `yaml:"gateway"`
	// ProxyMetadata is the source sidecar's proxy metadata, as the pod's
	// ISTIO_META_* environment or proxy.istio.io/config proxyMetadata
	// sets it. Honoured: ISTIO_META_DNS_CAPTURE ("true": the sidecar's DNS
	// proxy answers for ServiceEntry hosts, with the addresses Istio's
	// auto-allocation gives entries without `addresses`) and
	// ISTIO_META_DNS_AUTO_ALLOCATE (the legacy per-proxy switch; Istio
	// 1.31 auto-allocates in istiod by default).
	ProxyMetadata map[string]string `yaml:"proxyMetadata"`
}

// ProxyMetadataKeys are the proxy metadata keys the simulation honours.
var ProxyMetadataKeys = []string{"ISTIO_META_DNS_CAPTURE", "ISTIO_META_DNS_AUTO_ALLOCATE"}

// Destination is where the call goes.
type Destination struct {
	Host     string `yaml:"host"`
	Address  string `yaml:"address"`
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"`
	SNI      string `yaml:"sni"`
}

// Masquerade holds ip-masq-agent expectations.
type Masquerade struct {
	// Config is the ip-masq-agent ConfigMap's "config" key; omitted means
	// no ConfigMap (the agent's defaults).
	Config string `yaml:"config"`
	// NoMasqAllReservedRanges mirrors the agent flag.
	NoMasqAllReservedRanges bool                    `yaml:"nomasqAllReservedRanges"`
	Expectations            []MasqueradeExpectation `yaml:"expectations"`
	line                    int
}

// MasqueradeExpectation is one destination and how it must see a pod.
type MasqueradeExpectation struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Destination string `yaml:"destination"`
	// ReturnRoute: the destination's network routes back to the pod CIDR.
	ReturnRoute bool   `yaml:"returnRoute"`
	Expect      string `yaml:"expect"`
	// SeenAs is NodeIP or PodIP (required when expect is Allowed).
	SeenAs string `yaml:"seenAs"`
	line   int
	fields map[string]int
}

// HostIndex answers whether a destination host (a name, or an IP address
// used as HTTP Host/SNI) is declared by the config for a client in
// namespace: by ServiceEntry hosts or addresses, Gateway or VirtualService
// hosts, or a Kubernetes Service name in any of its short forms. The
// simulate command provides it (sim.IndexHosts).
type HostIndex interface {
	Declared(host, namespace string) bool
}

// HostSuggester is optionally implemented by a HostIndex: the declared name
// nearest to an undeclared host, and what declares it ("" when none is
// close). It makes the error for a likely typo name the intended host.
type HostSuggester interface {
	Nearest(host string) (name, declaredBy string)
}

// Loaded is a parsed file.
type Loaded struct {
	File   string
	Policy check.OutboundPolicy // "" when the file does not say
	Checks []check.Check
}

var pascal = regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`)

// Load reads and validates path. hosts may be nil (no host check).
func Load(path string, hosts HostIndex) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &check.InputError{File: path, Problem: "cannot read: " + err.Error(), Fix: "pass an existing expectations file"}
	}
	return Parse(path, data, hosts)
}

// Parse is Load on bytes; name is used in errors.
func Parse(name string, data []byte, hosts HostIndex) (*Loaded, error) {
	bad := func(line int, problem, fix string) error {
		return &check.InputError{File: name, Line: line, Problem: problem, Fix: fix}
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, bad(lineOf(err), "invalid expectations file: "+strings.TrimPrefix(err.Error(), "yaml: "),
			"fix the YAML at that line; fields are documented in README (Expectations file)")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, bad(lineOf(err), err.Error(), "")
	}
	recordLines(&root, &f)
	if f.APIVersion != APIVersion || f.Kind != Kind {
		return nil, bad(1, fmt.Sprintf("apiVersion %q kind %q is not an expectations file", f.APIVersion, f.Kind),
			fmt.Sprintf("start the file with `apiVersion: %s` and `kind: %s`", APIVersion, Kind))
	}
	out := &Loaded{File: name}
	if p := f.MeshConfig.OutboundTrafficPolicy; p != "" {
		pol, err := check.ParseOutboundPolicy(p)
		if err != nil {
			return nil, bad(findLine(&root, "outboundTrafficPolicy"), err.Error(), "use ALLOW_ANY or REGISTRY_ONLY")
		}
		out.Policy = pol
	}
	if len(f.Expectations) == 0 && (f.Masquerade == nil || len(f.Masquerade.Expectations) == 0) {
		return nil, bad(1, "no expectations", "add entries under `expectations:` or `masquerade.expectations:`")
	}
	seen := map[string]int{}
	name2 := func(n string, line int) error {
		if !pascal.MatchString(n) {
			return bad(line, fmt.Sprintf("name %q is not PascalCase", n), "name it like CheckoutReachesPayments (letters and digits, starting upper-case)")
		}
		if prev, ok := seen[n]; ok {
			return bad(line, fmt.Sprintf("name %s is used twice (first at line %d)", n, prev), "give every expectation a unique name")
		}
		seen[n] = line
		return nil
	}
	// Every bad expectation is reported, not only the first: a file with
	// several typos is fixed in one round.
	var errs []error
	for _, e := range f.Expectations {
		if err := name2(e.Name, e.line); err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := e.check(name, out.Policy, hosts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Checks = append(out.Checks, c)
	}
	if m := f.Masquerade; m != nil {
		if _, err := ipmasq.Parse(m.Config, ipmasq.Options{NoMasqAllReservedRanges: m.NoMasqAllReservedRanges}); err != nil {
			return nil, bad(m.line, err.Error(), "correct masquerade.config: it is read exactly as ip-masq-agent reads its ConfigMap")
		}
		for _, e := range m.Expectations {
			if err := name2(e.Name, e.line); err != nil {
				errs = append(errs, err)
				continue
			}
			c, err := e.check(name, m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out.Checks = append(out.Checks, c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (e Expectation) check(file string, policy check.OutboundPolicy, hosts HostIndex) (check.Check, error) {
	bad := func(problem, fix string) (check.Check, error) {
		return check.Check{}, &check.InputError{File: file, Line: e.line, Object: "expectation " + e.Name, Problem: problem, Fix: fix}
	}
	// badAt points at the field's own line when the file has it.
	badAt := func(field, problem, fix string) (check.Check, error) {
		line := e.line
		if l := e.fields[field]; l > 0 {
			line = l
		}
		return check.Check{}, &check.InputError{File: file, Line: line, Object: "expectation " + e.Name, Problem: problem, Fix: fix}
	}
	want, err := check.ParseOutcome(e.Expect)
	if err != nil || want == check.Inconclusive {
		return badAt("expect", fmt.Sprintf("expect %q is not an outcome", e.Expect), "use Allowed, BlockedByMesh or Unreachable")
	}
	proto, err := check.ParseProtocol(e.Destination.Protocol)
	if err != nil {
		return badAt("destination.protocol", err.Error(), "set destination.protocol")
	}
	d := e.Destination
	if d.Port < 1 || d.Port > 65535 {
		return badAt("destination.port", fmt.Sprintf("destination.port %d is not a port", d.Port), "set destination.port to 1-65535")
	}
	if d.Host == "" && d.Address == "" {
		return bad("destination has neither host nor address", "set destination.host (HTTP Host / TLS SNI) and/or destination.address (the IP the client connects to)")
	}
	if d.Address != "" {
		if _, err := netip.ParseAddr(d.Address); err != nil {
			return badAt("destination.address", fmt.Sprintf("destination.address %q is not an IP address", d.Address), "write the address the client connects to, e.g. 203.0.113.7")
		}
	}
	src := check.Source{Kind: check.MeshedPod, Namespace: e.Source.Namespace, Labels: e.Source.Labels}
	if e.Source.Gateway {
		src = check.Source{Kind: check.Outside}
	}
	if src.Namespace == "" && src.Kind != check.Outside {
		src.Namespace = "default"
	}
	if len(e.Source.ProxyMetadata) > 0 {
		if e.Source.Gateway {
			return badAt("source.proxyMetadata", "source.proxyMetadata is set on the gateway source", "proxyMetadata describes a sidecar: remove it or `gateway: true`")
		}
		for k, v := range e.Source.ProxyMetadata {
			known := false
			for _, kk := range ProxyMetadataKeys {
				known = known || k == kk
			}
			if !known {
				return badAt("source.proxyMetadata", fmt.Sprintf("source.proxyMetadata key %s is not simulated", k), "use "+strings.Join(ProxyMetadataKeys, " or "))
			}
			if v != "true" && v != "false" {
				return badAt("source.proxyMetadata", fmt.Sprintf("source.proxyMetadata %s: %q is not \"true\" or \"false\"", k, v), "quote the value: "+k+": \"true\"")
			}
		}
		src.ProxyMetadata = e.Source.ProxyMetadata
	}
	if d.Host != "" && !e.Unregistered && hosts != nil && !hosts.Declared(d.Host, src.Namespace) {
		problem := fmt.Sprintf("destination.host %s is not declared by any ServiceEntry (hosts or addresses), Service, Gateway or VirtualService in the config", d.Host)
		if s, ok := hosts.(HostSuggester); ok {
			if near, by := s.Nearest(d.Host); near != "" {
				problem += fmt.Sprintf(" (did you mean %s, declared by %s?)", near, by)
			}
		}
		return badAt("destination.host", problem,
			"correct the host name, pass the config that declares it (-f), or set `unregistered: true` if the expectation is about an unregistered host")
	}
	labels := map[string]string{"file": file}
	for k, v := range e.Labels {
		labels[k] = v
	}
	desc := e.Description
	if desc == "" {
		desc = fmt.Sprintf("%s to %s is %s.", src, check.Destination{Host: d.Host, Address: d.Address, Port: d.Port, Protocol: proto, SNI: d.SNI}, want)
	}
	return check.Check{
		Name:        e.Name,
		Suite:       EgressSuite,
		Description: desc,
		Labels:      labels,
		Policy:      policy,
		Steps: []check.Step{{Name: "config applied", Expect: []check.Expectation{{
			From:        src,
			To:          check.Destination{Host: d.Host, Address: d.Address, Port: d.Port, Protocol: proto, SNI: d.SNI},
			Want:        want,
			WantCluster: e.Cluster,
		}}}},
	}, nil
}

func (e MasqueradeExpectation) check(file string, m *Masquerade) (check.Check, error) {
	bad := func(problem, fix string) (check.Check, error) {
		return check.Check{}, &check.InputError{File: file, Line: e.line, Object: "masquerade expectation " + e.Name, Problem: problem, Fix: fix}
	}
	badAt := func(field, problem, fix string) (check.Check, error) {
		line := e.line
		if l := e.fields[field]; l > 0 {
			line = l
		}
		return check.Check{}, &check.InputError{File: file, Line: line, Object: "masquerade expectation " + e.Name, Problem: problem, Fix: fix}
	}
	addr, err := netip.ParseAddr(e.Destination)
	if err != nil {
		return badAt("destination", fmt.Sprintf("destination %q is not an IP address", e.Destination), "masquerade is decided per destination IP: write e.g. 10.2.0.5")
	}
	want, err := check.ParseOutcome(e.Expect)
	if err != nil || (want != check.Allowed && want != check.Unreachable) {
		return badAt("expect", fmt.Sprintf("expect %q", e.Expect), "use Allowed (with seenAs) or Unreachable")
	}
	var seen check.SourceAddress
	switch e.SeenAs {
	case "":
		if want == check.Allowed {
			return bad("expect Allowed needs seenAs", "add `seenAs: NodeIP` or `seenAs: PodIP`")
		}
	case string(check.NodeIP), string(check.PodIP):
		seen = check.SourceAddress(e.SeenAs)
	default:
		return badAt("seenAs", fmt.Sprintf("seenAs %q", e.SeenAs), "use NodeIP or PodIP")
	}
	desc := e.Description
	if desc == "" {
		desc = fmt.Sprintf("A pod reaching %s is %s", addr, want)
		if seen != "" {
			desc += " and seen as its " + string(seen)
		}
		desc += "."
	}
	return check.Check{
		Name:        e.Name,
		Suite:       MasqueradeSuite,
		Description: desc,
		Labels:      map[string]string{"file": file},
		Masquerade:  &check.Masquerade{Config: m.Config, ReturnRoute: e.ReturnRoute},
		Steps: []check.Step{{Name: "ip-masq-agent config", Expect: []check.Expectation{{
			From:         check.Source{Kind: check.Control.Kind, Namespace: ControlNamespace, Labels: map[string]string{"app": check.Control.Labels["app"]}},
			To:           check.Destination{Address: addr.String(), Port: 80, Protocol: check.HTTP},
			Want:         want,
			WantSourceIP: seen,
		}}}},
	}, nil
}

// lineOf extracts "line N" from a yaml error.
func lineOf(err error) int {
	s := err.Error()
	var n int
	if i := strings.Index(s, "line "); i >= 0 {
		fmt.Sscanf(s[i:], "line %d", &n)
	}
	return n
}

// recordLines copies each list entry's line from the node tree.
func recordLines(root *yaml.Node, f *File) {
	if len(root.Content) == 0 {
		return
	}
	doc := root.Content[0]
	if list := mapValue(doc, "expectations"); list != nil {
		for i, n := range list.Content {
			if i < len(f.Expectations) {
				f.Expectations[i].line = n.Line
				f.Expectations[i].fields = fieldLines(n)
			}
		}
	}
	if m := mapValue(doc, "masquerade"); m != nil && f.Masquerade != nil {
		f.Masquerade.line = m.Line
		if c := mapValue(m, "config"); c != nil {
			f.Masquerade.line = c.Line
		}
		if list := mapValue(m, "expectations"); list != nil {
			for i, n := range list.Content {
				if i < len(f.Masquerade.Expectations) {
					f.Masquerade.Expectations[i].line = n.Line
					f.Masquerade.Expectations[i].fields = fieldLines(n)
				}
			}
		}
	}
}

// fieldLines maps each key of an entry, and each key of its mapping
// values ("destination.host"), to the line it is written on.
func fieldLines(n *yaml.Node) map[string]int {
	out := map[string]int{}
	if n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		out[k.Value] = k.Line
		if v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				out[k.Value+"."+v.Content[j].Value] = v.Content[j].Line
			}
		}
	}
	return out
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func findLine(root *yaml.Node, key string) int {
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					return n.Content[i].Line
				}
			}
		}
		for _, c := range n.Content {
			if l := walk(c); l > 0 {
				return l
			}
		}
		return 0
	}
	return walk(root)
}
