package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/images"
	"github.com/meshconform/meshconform/fixtures/set"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/pushed"
)

// Phase names, in order.
const (
	PhaseSweep    = "sweep"
	PhaseCluster  = "cluster"
	PhaseImage    = "image"
	PhaseFixtures = "fixtures"
	PhaseLoad     = "load"
	PhaseDNS      = "dns"
	PhaseIstio    = "istio"
	PhasePods     = "pods"
	PhaseChecks   = "checks"
	PhaseTeardown = "teardown"
)

// Config is what Setup builds. The zero value plus a Printer creates a
// kind cluster "meshconform" with KIND_NODE_IMAGE and installs Istio.
type Config struct {
	// Cluster: see package clusters. Empty NodeImage = KIND_NODE_IMAGE.
	ClusterName string
	NodeImage   string
	KindConfig  string
	Reuse       bool
	Retain      bool
	Kubeconfig  string
	Context     string
	// InstallIstio installs Istio (or, on an existing cluster, attaches to
	// the one there). Leave it off when no selected check needs the mesh.
	InstallIstio bool
	IstioHub     string
	IstioTag     string
	// NoPull: Istio's images are only taken from the host's Docker, never
	// pulled (see clusters.PreloadImages).
	NoPull bool
	// LocalIstiod builds istiod from the pinned istio module into a local
	// image (images.Istiod), loads it into the nodes and installs with it
	// (overrides IstioHub/IstioTag; kind clusters only). See localistiod.go.
	LocalIstiod bool
	// MasqueradeChecks: masquerade checks are selected (ip-masq-agent's
	// image is loaded into the nodes when it is a local image).
	MasqueradeChecks bool
	// IPMasqAgentImage (default env IP_MASQ_AGENT_IMAGE, else upstream's).
	IPMasqAgentImage string
	// MySQLImage (default env MYSQL_IMAGE, else mysql:8.4).
	MySQLImage string
	// Network is the Docker network of the fixtures (default "kind").
	Network string
	// Namespace of the probe pods (default live.DefaultNamespace).
	Namespace string
	// LiveTimeouts bound the live driver; ClusterTimeouts, IstioTimeouts
	// and FixtureTimeouts the setup phases (zero fields: defaults). The
	// CLI fills all four from one --timeouts file.
	LiveTimeouts    live.Timeouts
	ClusterTimeouts clusters.Timeouts
	IstioTimeouts   istio.Timeouts
	FixtureTimeouts fixtures.Timeouts
	PushedTimeouts  pushed.Timeouts
	// AgentImage is a pushed agent image the cluster pulls (attach mode;
	// `meshconform image push`); empty: the local build, which an attached
	// cluster's nodes must already have.
	AgentImage string
	// Revision picks the control plane (istio.io/rev) on an attached
	// cluster running several.
	Revision string
	// LeaseDuration of an attach run's Lease (default
	// DefaultLeaseDuration, at least 3s).
	LeaseDuration time.Duration
	// TeardownTimeout bounds Teardown (default DefaultTeardownTimeout).
	TeardownTimeout time.Duration
	// LiveOptions are added to the live driver's (Expectations.LiveOptions).
	LiveOptions []live.Option
	// Printer receives progress (required).
	Printer *Printer
}

// Attached reports whether the run uses an existing cluster
// (Kubeconfig or Context set): never created or deleted, no node access.
func (c Config) Attached() bool { return c.Kubeconfig != "" || c.Context != "" }

// PhaseTime is the wall time of one phase.
type PhaseTime struct {
	Name    string
	Elapsed time.Duration
	Detail  string
}

// PhaseError is a setup phase that failed.
type PhaseError struct {
	Phase string
	Err   error
}

func (e *PhaseError) Error() string { return e.Phase + ": " + e.Err.Error() }
func (e *PhaseError) Unwrap() error { return e.Err }

// Env is a set-up environment.
type Env struct {
	cfg Config
	p   *Printer

	Cluster    *clusters.Cluster
	Mesh       *istio.Mesh
	MeshErr    error
	Fixtures   *set.Set
	AgentImage string
	Driver     *live.Driver
	// Istiod is the local istiod image (Config.LocalIstiod).
	Istiod images.IstiodImage
	// The pushed-config tier (pushed.go).
	pushed      *pushed.Driver
	pushedNote  string
	webhookNote string
	// pushedFindings: disagreements of the two tiers (pushed.go).
	pushedFindings []findings.Finding
	pushedCompared bool

	// Attach mode: the in-cluster fixtures, the run's namespaces, the
	// control plane's revision and the effective outbound policy.
	endpoints map[string]fixtures.Endpoint
	owned     []string
	Revision  string
	Policy    EffectivePolicy

	mu       sync.Mutex
	phases   []PhaseTime
	marker   *marker
	undos    []undo
	torn     bool
	tearErr  error
	setupErr error
}

// NeedsMesh reports whether any of checks needs Istio.
func NeedsMesh(checks []check.Check) bool {
	for _, c := range checks {
		if live.NeedsMesh(c) {
			return true
		}
	}
	return false
}

// HasMasquerade reports whether any of checks is a masquerade check.
func HasMasquerade(checks []check.Check) bool {
	for _, c := range checks {
		if c.Masquerade != nil || c.Needs(check.NeedsIPMasqAgent) {
			return true
		}
	}
	return false
}

func (e *Env) record(name string, start time.Time, detail string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.phases = append(e.phases, PhaseTime{Name: name, Elapsed: time.Since(start), Detail: detail})
}

// Phases returns the wall time of each phase run so far.
func (e *Env) Phases() []PhaseTime {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]PhaseTime(nil), e.phases...)
}

// RecordPhase adds a phase timed by the caller (checks, teardown).
func (e *Env) RecordPhase(name string, start time.Time, detail string) { e.record(name, start, detail) }

// preloadIstio loads Istio's images into the nodes from the host's Docker
// (pulled there once unless NoPull), so the nodes never pull them
// anonymously; a failure is a *NotReadyError for the mesh checks.
func (e *Env) preloadIstio(ctx context.Context, cl *clusters.Cluster) error {
	start := time.Now()
	refs := istio.Images(e.cfg.IstioHub, e.cfg.IstioTag)
	if err := cl.PreloadImages(ctx, refs, !e.cfg.NoPull); err != nil {
		return err
	}
	e.record("istio-images", start, strings.Join(refs, ", "))
	e.p.Phase(PhaseIstio, "images %s on the nodes in %.1fs", strings.Join(refs, ", "), time.Since(start).Seconds())
	return nil
}

func (e *Env) meshVersion() string {
	if e.Mesh == nil {
		return ""
	}
	return e.Mesh.Version()
}

// MeshVersion is the installed Istio version ("" if none).
func (e *Env) MeshVersion() string { return e.meshVersion() }

// Properties describe the environment for reports (no secrets).
func (e *Env) Properties() map[string]string {
	m := map[string]string{"meshconform.namespace": e.cfg.Namespace}
	if e.Cluster != nil {
		m["cluster.name"], m["cluster.mode"] = e.Cluster.Name, string(e.Cluster.Mode())
	}
	if e.cfg.NodeImage != "" {
		m["kind.nodeImage"] = e.cfg.NodeImage
	}
	if e.AgentImage != "" {
		m["meshconform.agentImage"] = e.AgentImage
	}
	if e.Fixtures != nil {
		m["fixtures.runID"] = e.Fixtures.RunID
	}
	if e.MeshErr != nil && e.cfg.InstallIstio {
		m["istio.notReady"] = e.MeshErr.Error()
	}
	if e.cfg.InstallIstio {
		m["istio.images"] = strings.Join(istio.Images(e.cfg.IstioHub, e.cfg.IstioTag), ",")
		m["istio.tag"] = orNone(e.cfg.IstioTag, istio.DefaultTag)
		m["istio.module"] = orNone(istio.ModuleVersion(), "unknown")
	}
	if e.Cluster != nil && e.Cluster.PodNetwork() != "" {
		m["cluster.podNetwork"] = e.Cluster.PodNetwork()
	}
	if e.cfg.Attached() {
		m["attach.namespaces"] = joinNames(e.owned)
		m["istio.revision"] = e.Revision
		m["istio.effectivePolicy"] = e.Policy.Mode + " (" + e.Policy.Source + ")"
	}
	e.pushedProperties(m)
	for _, ph := range e.Phases() {
		m["phase."+ph.Name+".seconds"] = fmt.Sprintf("%.1f", ph.Elapsed.Seconds())
	}
	return m
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func errString(err error, ok string) string {
	if err == nil {
		return ok
	}
	return err.Error()
}
