package timeouts

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Config is every bound of a live run. Poll and ImagePullGrace are set
// once here and apply to every section's waits (Resolve copies them in).
// Zero fields keep their defaults.
type Config struct {
	Poll           time.Duration `yaml:"poll" doc:"the interval between two observations of any wait of the cluster, Istio and the live driver"`
	ImagePullGrace time.Duration `yaml:"imagepullgrace" doc:"how long a pod may fail to pull an image, crash-loop or be rejected before a wait stops with that reason (InvalidImageName and ErrImageNeverPull stop at once)"`
	Cluster        Cluster       `yaml:"cluster"`
	Istio          Istio         `yaml:"istio"`
	Live           Live          `yaml:"live"`
	Pushed         Pushed        `yaml:"pushed"`
	Fixtures       Fixtures      `yaml:"fixtures"`
}

// Cluster bounds package clusters: the kind cluster, its pod network,
// CoreDNS, ip-masq-agent and applies.
type Cluster struct {
	Create          time.Duration `doc:"kind's create until every node is Ready (a single-node create takes ~22 s here)"`
	CancelGrace     time.Duration `doc:"an interrupted create noticing its nodes were deleted, before Setup returns anyway"`
	Rollout         time.Duration `doc:"a DaemonSet or Deployment rollout to finish (CoreDNS restart, ip-masq-agent install)"`
	Apply           time.Duration `doc:"an object whose kind is not yet served (CRDs just installed) to be accepted, and deleted objects to be gone"`
	NamespaceDelete time.Duration `doc:"deleted namespaces to be gone"`
	DNS             time.Duration `doc:"every CoreDNS pod answering the harness's names after SetExternalHosts"`
	DNSQuery        time.Duration `doc:"one DNS query to one CoreDNS pod (the DNS wait retries it)"`
	IPMasqRules     time.Duration `doc:"every node's IP-MASQ-AGENT nat chain holding exactly the config's rules (a ConfigMap change takes 60-90 s to reach the pod, plus the agent's resync)"`
	CNIMasquerade   time.Duration `doc:"the CNI's own masquerade chain to go or come back"`
	ImageLoad       time.Duration `doc:"an image to be loaded into every node"`
	Poll            time.Duration `yaml:"-"`
	ImagePullGrace  time.Duration `yaml:"-"`
}

// Istio bounds package clusters/istio: install, preflight, policy switch.
type Istio struct {
	Ready          time.Duration `doc:"istiod and the ingress gateway Ready after install"`
	Preflight      time.Duration `doc:"a client pod's sidecar to be ready"`
	ProxyConfig    time.Duration `doc:"a sidecar's config_dump to show the outbound policy just set"`
	Poll           time.Duration `yaml:"-"`
	ImagePullGrace time.Duration `yaml:"-"`
}

// Live bounds the traffic tier (package live).
type Live struct {
	Pods        time.Duration `doc:"the probe pods to be Ready"`
	Attempt     time.Duration `doc:"each phase of one probe attempt: dial, handshake, first answer (a reset is immediate; a timeout verdict takes this long)"`
	Exec        time.Duration `doc:"one exec of the probe in a pod (at least 4x attempt)"`
	Converge    time.Duration `doc:"a step's expectations to hold, consecutive times in a row (propagation of a change)"`
	Settled     time.Duration `doc:"the same for a step that changes nothing itself (its change was already observed in effect)"`
	Consecutive int           `doc:"how many consecutive matching observations make an expectation converged (a count, not a duration)"`
	AdminSQL    time.Duration `doc:"a step's admin SQL statements to finish"`
	Route       time.Duration `doc:"adding or removing the echo container's return route"`
	Close       time.Duration `doc:"restoring everything the driver changed"`
	Poll        time.Duration `yaml:"-"`
}

// Pushed bounds the pushed-config tier (package pushed).
type Pushed struct {
	Connect     time.Duration `doc:"the port-forward to istiod, the workloads getting an IP and the first complete config"`
	Propagation time.Duration `doc:"a change (policy, applied or deleted object) to show in the pushed config: on the xDS stream, or in a sidecar's config_dump"`
	Poll        time.Duration `yaml:"-"` // between two reads of a sidecar's config_dump (the xDS stream needs none: istiod pushes)
}

// Fixtures bounds the fixture containers (package fixtures).
type Fixtures struct {
	ImageBuild    time.Duration `doc:"building the agent binary and its image (cold)"`
	Start         time.Duration `doc:"one container from create to ready (MySQL's first start initialises its data directory)"`
	Cleanup       time.Duration `doc:"removing a run's containers (on a context Ctrl-C cannot cut short)"`
	DownSettle    time.Duration `doc:"the pause before a second empty container listing (a cancelled create may still complete in the daemon)"`
	ProbeInterval time.Duration `doc:"the interval between two readiness probes of a starting container"`
	Probe         time.Duration `doc:"one readiness probe: a dial, a handshake and a request"`
	SQLConnect    time.Duration `doc:"connecting to the database as its admin (the DSN's timeout)"`
}

// Default returns every default.
func Default() Config {
	return Config{
		Poll:           time.Second,
		ImagePullGrace: 20 * time.Second,
		Cluster: Cluster{
			Create: 5 * time.Minute, CancelGrace: 30 * time.Second, Rollout: 3 * time.Minute, Apply: time.Minute,
			NamespaceDelete: 3 * time.Minute, DNS: 3 * time.Minute, DNSQuery: 3 * time.Second, IPMasqRules: 4 * time.Minute,
			CNIMasquerade: 2 * time.Minute, ImageLoad: 5 * time.Minute,
		},
		Istio: Istio{Ready: 3 * time.Minute, Preflight: 2 * time.Minute, ProxyConfig: 2 * time.Minute},
		Live: Live{
			Pods: 3 * time.Minute, Attempt: 3 * time.Second, Exec: 30 * time.Second, Converge: 90 * time.Second,
			Settled: 20 * time.Second, Consecutive: 3, AdminSQL: 30 * time.Second, Route: time.Minute, Close: 3 * time.Minute,
		},
		Pushed: Pushed{Connect: 2 * time.Minute, Propagation: 60 * time.Second},
		Fixtures: Fixtures{
			ImageBuild: 10 * time.Minute, Start: 3 * time.Minute, Cleanup: 2 * time.Minute, DownSettle: 300 * time.Millisecond,
			ProbeInterval: 100 * time.Millisecond, Probe: 5 * time.Second, SQLConnect: 10 * time.Second,
		},
	}
}

// Resolve fills zero fields from Default and copies Poll and
// ImagePullGrace into the sections that use them.
func (c Config) Resolve() Config {
	out := fill(c, Default())
	out.Cluster.Poll, out.Cluster.ImagePullGrace = out.Poll, out.ImagePullGrace
	out.Istio.Poll, out.Istio.ImagePullGrace = out.Poll, out.ImagePullGrace
	out.Live.Poll = out.Poll
	out.Pushed.Poll = out.Poll
	return out
}

// Validate rejects negative bounds and counts and Live.Exec below
// 4×Live.Attempt (one probe may take a dial, a handshake and an answer),
// naming each field as the YAML file does ("live.exec"). Zero fields are
// valid: they take the defaults.
func (c Config) Validate() error {
	errs := negatives(reflect.ValueOf(c), "")
	if c.Live.Exec > 0 && c.Live.Attempt > 0 && c.Live.Exec < 4*c.Live.Attempt {
		errs = append(errs, fmt.Errorf("live.exec (%v) must be at least 4x live.attempt (%v): one probe may take a dial, a handshake and an answer", c.Live.Exec, c.Live.Attempt))
	}
	return errors.Join(errs...)
}

// Section defaults, for each package's DefaultTimeouts.

// DefaultCluster is Default().Resolve().Cluster.
func DefaultCluster() Cluster { return Default().Resolve().Cluster }

// DefaultIstio is Default().Resolve().Istio.
func DefaultIstio() Istio { return Default().Resolve().Istio }

// DefaultLive is Default().Resolve().Live.
func DefaultLive() Live { return Default().Resolve().Live }

// DefaultPushed is Default().Resolve().Pushed.
func DefaultPushed() Pushed { return Default().Resolve().Pushed }

// DefaultFixtures is Default().Fixtures.
func DefaultFixtures() Fixtures { return Default().Fixtures }

// WithDefaults fills t's zero fields from DefaultCluster.
func (t Cluster) WithDefaults() Cluster { return fill(t, DefaultCluster()) }

// WithDefaults fills t's zero fields from DefaultIstio.
func (t Istio) WithDefaults() Istio { return fill(t, DefaultIstio()) }

// WithDefaults fills t's zero fields from DefaultLive.
func (t Live) WithDefaults() Live { return fill(t, DefaultLive()) }

// WithDefaults fills t's zero fields from DefaultPushed.
func (t Pushed) WithDefaults() Pushed { return fill(t, DefaultPushed()) }

// WithDefaults fills t's zero fields from DefaultFixtures.
func (t Fixtures) WithDefaults() Fixtures { return fill(t, DefaultFixtures()) }

// Validate rejects negative fields of the section.
func (t Cluster) Validate() error { return errors.Join(negatives(reflect.ValueOf(t), "cluster.")...) }

// Validate rejects negative fields of the section.
func (t Istio) Validate() error { return errors.Join(negatives(reflect.ValueOf(t), "istio.")...) }

// Validate rejects negative fields and Exec below 4×Attempt.
func (t Live) Validate() error { return Config{Live: t}.Validate() }

// Validate rejects negative fields of the section.
func (t Pushed) Validate() error { return errors.Join(negatives(reflect.ValueOf(t), "pushed.")...) }

// Validate rejects negative fields of the section.
func (t Fixtures) Validate() error { return errors.Join(negatives(reflect.ValueOf(t), "fixtures.")...) }

// fill returns v with every zero field (recursively in nested structs)
// taken from def.
func fill[T any](v, def T) T {
	out := v
	fillValue(reflect.ValueOf(&out).Elem(), reflect.ValueOf(def))
	return out
}

func fillValue(v, def reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fillValue(v.Field(i), def.Field(i))
		}
	default:
		if v.IsZero() {
			v.Set(def)
		}
	}
}

// negatives names every negative duration or count under prefix.
func negatives(v reflect.Value, prefix string) []error {
	var errs []error
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), prefix+key(t.Field(i))
		switch {
		case f.Kind() == reflect.Struct:
			errs = append(errs, negatives(f, name+".")...)
		case f.Kind() == reflect.Int64 && f.Int() < 0 && f.Type() == reflect.TypeOf(time.Duration(0)):
			errs = append(errs, fmt.Errorf("%s is negative (%v): use a positive duration such as 90s, or 0 for the default", name, time.Duration(f.Int())))
		case f.Kind() == reflect.Int && f.Int() < 0:
			errs = append(errs, fmt.Errorf("%s is negative (%d): use a positive count, or 0 for the default", name, f.Int()))
		}
	}
	return errs
}
