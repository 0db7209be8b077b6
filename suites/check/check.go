package check

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// Outcome is what happens to a connection attempt, as a named value.
type Outcome string

// The outcomes a check can expect or observe.
const (
	// Allowed: the destination answered (HTTP status from the target,
	// completed TLS handshake, TCP echo, SQL result, gRPC reply).
	Allowed Outcome = "Allowed"
	// BlockedByMesh: the mesh refused it (Envoy's 502 from block_all,
	// BlackHoleCluster reset, no filter chain on a gateway).
	BlockedByMesh Outcome = "BlockedByMesh"
	// Unreachable: the network did not deliver it (timeout, no route,
	// connection refused by nobody listening).
	Unreachable Outcome = "Unreachable"
	// Inconclusive: the observation cannot tell, e.g. the out-of-mesh
	// control failed too. Never expected; a check that observes it errors.
	Inconclusive Outcome = "Inconclusive"
)

var outcomes = []Outcome{Allowed, BlockedByMesh, Unreachable, Inconclusive}

// ParseOutcome parses a case-sensitive outcome name.
func ParseOutcome(s string) (Outcome, error) {
	for _, o := range outcomes {
		if string(o) == s {
			return o, nil
		}
	}
	return "", fmt.Errorf("unknown outcome %q: use one of %s", s, joinOutcomes())
}

func joinOutcomes() string {
	var s []string
	for _, o := range outcomes[:3] {
		s = append(s, string(o))
	}
	return strings.Join(s, ", ")
}

// Protocol is what the probe speaks to the destination.
type Protocol string

// The protocols checks use.
const (
	HTTP  Protocol = "HTTP"  // plaintext HTTP/1.1 with a Host header
	HTTPS Protocol = "HTTPS" // TLS with SNI, then HTTP/1.1
	TLS   Protocol = "TLS"   // TLS handshake with SNI (opaque to the mesh)
	TCP   Protocol = "TCP"   // raw TCP, client-first echo
	MySQL Protocol = "MySQL" // MySQL wire protocol, a real query (server-first)
	GRPC  Protocol = "GRPC"  // gRPC over plaintext HTTP/2 (h2c)
	GRPCS Protocol = "GRPCS" // gRPC over TLS (h2) with SNI, CA-verified
)

var protocols = []Protocol{HTTP, HTTPS, TLS, TCP, MySQL, GRPC, GRPCS}

// ParseProtocol parses a protocol name, case-insensitively.
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range protocols {
		if strings.EqualFold(string(p), s) {
			return p, nil
		}
	}
	var names []string
	for _, p := range protocols {
		names = append(names, string(p))
	}
	return "", fmt.Errorf("unknown protocol %q: use one of %s", s, strings.Join(names, ", "))
}

// UsesTLS reports whether the client starts with a TLS handshake.
func (p Protocol) UsesTLS() bool { return p == HTTPS || p == TLS || p == GRPCS }

// SourceKind says where a connection starts.
type SourceKind string

// Source kinds.
const (
	// MeshedPod is a pod with an Istio sidecar (the default).
	MeshedPod SourceKind = "MeshedPod"
	// PlainPod is a pod without a sidecar: the out-of-mesh control, and
	// the client of the masquerade suite.
	PlainPod SourceKind = "PlainPod"
	// Outside is a client outside the cluster (the machine running
	// meshconform), entering through the ingress gateway.
	Outside SourceKind = "Outside"
)

// Source is the workload a connection starts from.
type Source struct {
	Kind      SourceKind        `json:"kind,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// ProxyMetadata is the sidecar's proxy metadata as Istio's
	// proxyMetadata / ISTIO_META_* environment sets it; the simulation
	// honours ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE.
	ProxyMetadata map[string]string `json:"proxyMetadata,omitempty"`
}

// Key identifies sources that share one generated proxy configuration.
func (s Source) Key() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := strings.Builder{}
	b.WriteString(string(s.Kind) + "/" + s.Namespace)
	for _, k := range keys {
		b.WriteString("," + k + "=" + s.Labels[k])
	}
	meta := make([]string, 0, len(s.ProxyMetadata))
	for k := range s.ProxyMetadata {
		meta = append(meta, k)
	}
	sort.Strings(meta)
	for _, k := range meta {
		b.WriteString(";" + k + "=" + s.ProxyMetadata[k])
	}
	return b.String()
}

func (s Source) String() string {
	if s.Kind == Outside {
		return "outside"
	}
	app := s.Labels["app"]
	if app == "" {
		app = "pod"
	}
	k := "meshed"
	if s.Kind == PlainPod {
		k = "plain"
	}
	return fmt.Sprintf("%s/%s(%s)", s.Namespace, app, k)
}

// Destination is where a connection goes. String fields may use the
// template functions of Env (e.g. `{{ip "mysql"}}`).
type Destination struct {
	// Target names a fixture endpoint ("echo", "mysql", "greeter",
	// "ingress"); it supplies defaults for Host, Address and Port.
	Target string `json:"target,omitempty"`
	// Host is the DNS name, HTTP Host header and (by default) TLS SNI.
	Host string `json:"host,omitempty"`
	// Address is the IP the client connects to.
	Address string `json:"address,omitempty"`
	// Port is the destination port.
	Port int `json:"port"`
	// Protocol is what the client speaks.
	Protocol Protocol `json:"protocol"`
	// SNI overrides the TLS server name (default Host).
	SNI string `json:"sni,omitempty"`
}

// ServerName returns the TLS SNI the client sends.
func (d Destination) ServerName() string {
	if d.SNI != "" {
		return d.SNI
	}
	return d.Host
}

func (d Destination) String() string {
	name := d.Host
	if name == "" {
		name = d.Address
	}
	s := fmt.Sprintf("%s %s:%d", d.Protocol, name, d.Port)
	if d.SNI != "" && d.SNI != d.Host {
		s += " sni=" + d.SNI
	}
	return s
}

// SourceAddress is how the destination sees the client's address.
type SourceAddress string

// Source addresses for the masquerade suite (Istio uses "identity" for
// SPIFFE workload identity; this is only the IP the destination sees).
const (
	// NodeIP: the pod's traffic was SNATed to its node's address.
	NodeIP SourceAddress = "NodeIP"
	// PodIP: the pod's own address reached the destination.
	PodIP SourceAddress = "PodIP"
)

// Expectation is one connection attempt and what must happen to it.
type Expectation struct {
	From Source      `json:"from"`
	To   Destination `json:"to"`
	Want Outcome     `json:"want"`
	// WantCluster optionally pins the Envoy cluster the simulation must
	// reach (e.g. "outbound|3306||mysql.external.test").
	WantCluster string `json:"wantCluster,omitempty"`
	// WantSourceIP, when set, is how the destination must see the client.
	WantSourceIP SourceAddress `json:"wantSourceIP,omitempty"`
	// Query, for MySQL, is the SQL the client runs; WantRows the rows it
	// must return, each row's columns joined by "," (e.g. "1,5").
	Query    string   `json:"query,omitempty"`
	WantRows []string `json:"wantRows,omitempty"`
	// WantSQLError, for MySQL, is the server error number the query must
	// fail with (e.g. 1142: command denied to the least-privilege user).
	WantSQLError int `json:"wantSQLError,omitempty"`
	// WantFailure, for a failed connection, is how it must fail: the
	// probe's kind of evidence (FailureTimeout: no answer at all, not a
	// refusal, no-route or DNS error).
	WantFailure string `json:"wantFailure,omitempty"`
	// Note explains the expectation in the report.
	Note string `json:"note,omitempty"`
	// FlippedFrom is set on the expectations of a negative control that
	// its Mutation flips: the original expectation (WantString), which
	// the broken check must not meet.
	FlippedFrom string `json:"flippedFrom,omitempty"`
}

// FailureTimeout is WantFailure for "no answer within the attempt's
// timeout": the value of the probe's Kind (suites/live/probe KindTimeout).
const FailureTimeout = "timeout"

func (e Expectation) String() string {
	s := fmt.Sprintf("%s -> %s: %s", e.From, e.To, e.Want)
	if e.WantSourceIP != "" {
		s += " as " + string(e.WantSourceIP)
	}
	return s
}

// WantString is the expected outcome for a table: "Allowed",
// "Allowed(NodeIP)", "Unreachable(timeout)".
func (e Expectation) WantString() string {
	w := string(e.Want)
	switch {
	case e.WantSourceIP != "":
		w += "(" + string(e.WantSourceIP) + ")"
	case e.WantFailure != "":
		w += "(" + e.WantFailure + ")"
	}
	return w
}

// Facet is one part of an expectation a driver can judge.
type Facet string

// The facets of an expectation, in the order they are reported.
const (
	FacetOutcome  Facet = "outcome"  // Want: Allowed, BlockedByMesh, Unreachable
	FacetCluster  Facet = "cluster"  // WantCluster: the Envoy cluster reached
	FacetSeenAs   Facet = "seenAs"   // WantSourceIP: how the destination saw the client
	FacetRows     Facet = "rows"     // WantRows: a MySQL query's rows
	FacetSQLError Facet = "sqlError" // WantSQLError: a MySQL server error number
	FacetFailure  Facet = "failure"  // WantFailure: how a connection failed (timeout, ...)
)

// AllFacets lists every facet in report order.
var AllFacets = []Facet{FacetOutcome, FacetCluster, FacetSeenAs, FacetRows, FacetSQLError, FacetFailure}

// Facets lists what e asks to be judged: always the outcome, then each
// facet whose Want field is set.
func (e Expectation) Facets() []Facet {
	out := []Facet{FacetOutcome}
	if e.WantCluster != "" {
		out = append(out, FacetCluster)
	}
	if e.WantSourceIP != "" {
		out = append(out, FacetSeenAs)
	}
	if len(e.WantRows) > 0 {
		out = append(out, FacetRows)
	}
	if e.WantSQLError != 0 {
		out = append(out, FacetSQLError)
	}
	if e.WantFailure != "" {
		out = append(out, FacetFailure)
	}
	return out
}

// Manifest is one YAML document set applied by a check, embedded beside
// the check that uses it. Text is a text/template rendered with Env.
type Manifest struct {
	Name string
	Text string
}

// Step is one phase of a check: apply or delete manifests, then observe.
type Step struct {
	// Name describes the phase ("entry applied", "entry deleted").
	Name string
	// Apply is applied before the expectations are observed; the live
	// driver registers each deletion as it applies it.
	Apply []Manifest
	// Delete names manifests applied by an earlier step, deleted first.
	Delete []string
	// AdminSQL are statements the harness runs as the database admin, from
	// outside the mesh, before observing (e.g. setting a rating the meshed
	// pod must then read). The simulation ignores them.
	AdminSQL []string
	// Expect is observed after Apply/Delete have taken effect.
	Expect []Expectation
}

// OutboundPolicy is the mesh-wide outboundTrafficPolicy.mode.
type OutboundPolicy string

// Istio's two outbound traffic policies.
const (
	AllowAny     OutboundPolicy = "ALLOW_ANY"
	RegistryOnly OutboundPolicy = "REGISTRY_ONLY"
)

// ParseOutboundPolicy parses ALLOW_ANY or REGISTRY_ONLY.
func ParseOutboundPolicy(s string) (OutboundPolicy, error) {
	switch OutboundPolicy(strings.ToUpper(s)) {
	case AllowAny:
		return AllowAny, nil
	case RegistryOnly:
		return RegistryOnly, nil
	}
	return "", fmt.Errorf("unknown outbound traffic policy %q: use ALLOW_ANY or REGISTRY_ONLY", s)
}

// Masquerade is the ip-masq-agent setup a masquerade check runs under.
type Masquerade struct {
	// Config is the ip-masq-agent config file content (the ConfigMap's
	// "config" key); empty means no ConfigMap, i.e. the agent's defaults.
	Config string
	// ReturnRoute: the destination's network has a route back to the pod
	// CIDR (as a peered VPC that learned it would).
	ReturnRoute bool
}

// Requirement is something in the environment a check needs.
type Requirement string

// Requirements checks declare; drivers verify them before observing.
const (
	NeedsIstio       Requirement = "istio"   // istiod ready
	NeedsSidecar     Requirement = "sidecar" // a meshed client pod ready
	NeedsGateway     Requirement = "gateway" // the ingress gateway ready
	NeedsIPMasqAgent Requirement = "ip-masq-agent"
)

// Mutation breaks the property a check verifies, so that the check must
// fail: its negative control. It states which expectations it flips and
// what must be observed instead; the control passes only when exactly
// that is observed (see Check.Negated).
type Mutation struct {
	// Description says what is broken ("outboundTrafficPolicy ALLOW_ANY").
	Description string
	// Mutate changes a deep copy of the check. It may change manifests,
	// the policy and the masquerade setup, not the expectations.
	Mutate func(*Check)
	// Flips are the expectations the broken check must fail, each with
	// the outcome observed instead; every other expectation must still be
	// observed as the check wants it. At least one is required.
	Flips []Flip
}

// Flip is one expectation a negative control flips, and what the broken
// check observes for it instead.
type Flip struct {
	// Step and Expect index the expectation: Steps[Step].Expect[Expect]
	// (0-based; the zero Flip is the first expectation).
	Step, Expect int
	// Observed is the outcome the broken check observes instead.
	Observed Outcome
	// SeenAs, when set, is how the destination sees the client instead.
	SeenAs SourceAddress
}

func (f Flip) String() string {
	s := fmt.Sprintf("step %d expectation %d → %s", f.Step, f.Expect, f.Observed)
	if f.SeenAs != "" {
		s += "(" + string(f.SeenAs) + ")"
	}
	return s
}

// Check is one conformance check: a value in its suite's explicit list.
type Check struct {
	// Name is unique and PascalCase; used for filters and JUnit.
	Name string
	// Suite is the suite's short name ("registry-only", ...).
	Suite string
	// Description is one sentence.
	Description string
	// Labels for filtering; "suite" is added automatically.
	Labels map[string]string
	// Policy is the outboundTrafficPolicy the check runs under ("" for
	// checks that do not involve the mesh).
	Policy OutboundPolicy
	// Masquerade is set for masquerade checks.
	Masquerade *Masquerade
	// Requires lists what the environment must provide.
	Requires []Requirement
	// Steps run in order.
	Steps []Step
	// NegativeControl breaks the property; the check must then fail.
	NegativeControl Mutation
}

// Clone returns a deep copy (manifests and expectations included).
func (c Check) Clone() Check {
	out := c
	out.Labels = map[string]string{}
	for k, v := range c.Labels {
		out.Labels[k] = v
	}
	out.Requires = append([]Requirement(nil), c.Requires...)
	if c.Masquerade != nil {
		m := *c.Masquerade
		out.Masquerade = &m
	}
	out.Steps = make([]Step, len(c.Steps))
	for i, s := range c.Steps {
		ns := Step{Name: s.Name}
		ns.Apply = append([]Manifest(nil), s.Apply...)
		ns.Delete = append([]string(nil), s.Delete...)
		ns.AdminSQL = append([]string(nil), s.AdminSQL...)
		ns.Expect = make([]Expectation, len(s.Expect))
		for j, e := range s.Expect {
			ne := e
			ne.From.Labels = map[string]string{}
			for k, v := range e.From.Labels {
				ne.From.Labels[k] = v
			}
			ne.WantRows = append([]string(nil), e.WantRows...)
			if e.From.ProxyMetadata != nil {
				ne.From.ProxyMetadata = map[string]string{}
				for k, v := range e.From.ProxyMetadata {
					ne.From.ProxyMetadata[k] = v
				}
			}
			ns.Expect[j] = ne
		}
		out.Steps[i] = ns
	}
	return out
}

// Broken returns the check with its negative control's mutation applied
// and its own expectations, renamed "<Name>/NegativeControl": it must
// fail on exactly the expectations the mutation flips.
func (c Check) Broken() Check {
	out := c.Clone()
	out.Name = c.Name + "/NegativeControl"
	out.Description = "negative control: " + c.NegativeControl.Description
	if c.NegativeControl.Mutate != nil {
		c.NegativeControl.Mutate(&out)
	}
	out.NegativeControl = Mutation{}
	return out
}

// Negated is Broken with the declared flips as its expectations: each
// flipped expectation wants the flip's outcome (and source address)
// instead, and drops the facets that belong to the original outcome
// (cluster, rows, SQL error, failure kind); FlippedFrom records the
// original. A driver observes it like any check, so the live tier waits
// for the flipped outcome to be observed Consecutive times, and a timeout
// or an error never counts as the control failing. The negated check
// passes only when every flip is observed and every other expectation is
// met as the original wants it. Flips that point at no expectation are
// ignored here (Validate rejects them).
func (c Check) Negated() Check {
	out := c.Broken()
	for _, f := range c.NegativeControl.Flips {
		if f.Step < 0 || f.Step >= len(out.Steps) || f.Expect < 0 || f.Expect >= len(out.Steps[f.Step].Expect) {
			continue
		}
		e := &out.Steps[f.Step].Expect[f.Expect]
		e.FlippedFrom = e.WantString()
		e.Want, e.WantSourceIP = f.Observed, f.SeenAs
		e.WantCluster, e.WantRows, e.WantSQLError, e.WantFailure = "", nil, 0, ""
	}
	return out
}

// ExpectationCount is the number of expectations over all steps.
func (c Check) ExpectationCount() int {
	n := 0
	for _, s := range c.Steps {
		n += len(s.Expect)
	}
	return n
}

// Needs reports whether the check declares requirement r.
func (c Check) Needs(r Requirement) bool {
	for _, x := range c.Requires {
		if x == r {
			return true
		}
	}
	return false
}

// AllLabels returns the check's labels plus suite=<Suite>.
func (c Check) AllLabels() map[string]string {
	l := map[string]string{"suite": c.Suite}
	for k, v := range c.Labels {
		l[k] = v
	}
	return l
}

var pascal = regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`)

// Validate checks the definition itself (not the environment).
func (c Check) Validate() error {
	if !pascal.MatchString(c.Name) {
		return fmt.Errorf("check %q: name must be PascalCase ([A-Z][A-Za-z0-9]+)", c.Name)
	}
	if c.Suite == "" || c.Description == "" {
		return fmt.Errorf("check %s: suite and description are required", c.Name)
	}
	if len(c.Steps) == 0 {
		return fmt.Errorf("check %s: no steps", c.Name)
	}
	if c.NegativeControl.Mutate == nil || c.NegativeControl.Description == "" {
		return fmt.Errorf("check %s: every check needs a negative control (Mutation with Description and Mutate)", c.Name)
	}
	if err := c.validateFlips(); err != nil {
		return err
	}
	applied := map[string]bool{}
	n := 0
	for _, s := range c.Steps {
		for _, d := range s.Delete {
			if !applied[d] {
				return fmt.Errorf("check %s step %q: deletes manifest %q that no earlier step applied", c.Name, s.Name, d)
			}
			delete(applied, d)
		}
		for _, m := range s.Apply {
			if applied[m.Name] {
				return fmt.Errorf("check %s step %q: manifest %q applied twice", c.Name, s.Name, m.Name)
			}
			applied[m.Name] = true
		}
		for _, e := range s.Expect {
			if e.Want == Inconclusive || e.Want == "" {
				return fmt.Errorf("check %s step %q: expectation %s: want must be Allowed, BlockedByMesh or Unreachable", c.Name, s.Name, e)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("check %s: no expectations", c.Name)
	}
	return nil
}

// validateFlips requires the negative control to declare at least one flip,
// each pointing at an existing expectation and changing it, and the
// mutation to leave the expectations as they are.
func (c Check) validateFlips() error {
	m := c.NegativeControl
	if len(m.Flips) == 0 {
		return fmt.Errorf("check %s: negative control %q declares no flip: set Mutation.Flips to the expectations it makes fail and the outcome observed instead", c.Name, m.Description)
	}
	seen := map[[2]int]bool{}
	for _, f := range m.Flips {
		if f.Step < 0 || f.Step >= len(c.Steps) || f.Expect < 0 || f.Expect >= len(c.Steps[f.Step].Expect) {
			return fmt.Errorf("check %s: negative control flip %s points at no expectation (the check has %d steps)", c.Name, f, len(c.Steps))
		}
		if seen[[2]int{f.Step, f.Expect}] {
			return fmt.Errorf("check %s: negative control flips %s twice", c.Name, f)
		}
		seen[[2]int{f.Step, f.Expect}] = true
		e := c.Steps[f.Step].Expect[f.Expect]
		if f.Observed == "" || f.Observed == Inconclusive {
			return fmt.Errorf("check %s: negative control flip %s: Observed must be Allowed, BlockedByMesh or Unreachable", c.Name, f)
		}
		if f.Observed == e.Want && f.SeenAs == e.WantSourceIP {
			return fmt.Errorf("check %s: negative control flip %s: the expectation already wants %s: a flip must change it", c.Name, f, e.WantString())
		}
	}
	b, o := c.Broken(), c.Clone()
	if len(b.Steps) != len(c.Steps) {
		return fmt.Errorf("check %s: negative control changes the number of steps: a mutation may change what is applied, not what is expected", c.Name)
	}
	for i := range b.Steps {
		if len(b.Steps[i].Expect) != len(c.Steps[i].Expect) {
			return fmt.Errorf("check %s: negative control changes the expectations of step %q: a mutation may change what is applied, not what is expected", c.Name, c.Steps[i].Name)
		}
		for j := range b.Steps[i].Expect {
			if !reflect.DeepEqual(b.Steps[i].Expect[j], o.Steps[i].Expect[j]) {
				return fmt.Errorf("check %s: negative control changes expectation %d of step %q: declare it in Flips instead", c.Name, j, c.Steps[i].Name)
			}
		}
	}
	return nil
}

// ValidateList validates every check and that names are unique.
func ValidateList(checks []Check) error {
	seen := map[string]bool{}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			return err
		}
		if seen[c.Name] {
			return fmt.Errorf("check %s: duplicate name", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}
