package clusters

import (
	"errors"
	"fmt"
	"github.com/meshconform/meshconform/internal/timeouts"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
)

// Labels the harness puts on everything it creates in a cluster.
const (
	// LabelManaged marks objects and namespaces the harness made.
	LabelManaged = "meshconform.dev/managed"
	// LabelRun carries the id of the run that made the object.
	LabelRun = "meshconform.dev/run"
	// FieldManager is the server-side apply field manager.
	FieldManager = "meshconform"
	// DefaultName is the default kind cluster name.
	DefaultName = "meshconform"
	// SweepPrefix is the name prefix Sweep considers.
	SweepPrefix = "meshconform"
	// markerPath is where the marker directory is mounted in kind nodes.
	markerPath = "/meshconform"
)

// Timeouts bounds every wait in this package: see timeouts.Cluster for
// each bound, its default and the condition it waits for. Zero fields take
// the defaults. None of them is a sleep: each bounds a poll of the real
// condition.
type Timeouts = timeouts.Cluster

// DefaultTimeouts returns the defaults (timeouts.DefaultCluster).
func DefaultTimeouts() Timeouts { return timeouts.DefaultCluster() }

// Config is what Setup (and Sweep) work from; build it with Options.
type Config struct {
	// Name is the kind cluster name (default "meshconform").
	Name string
	// NodeImage is the kind node image ("" = env KIND_NODE_IMAGE, else
	// kind's default, which cannot be pulled on machines without a registry).
	NodeImage string
	// KindConfig is an optional kind config file (kind.x-k8s.io/v1alpha4).
	KindConfig string
	// Reuse uses an existing kind cluster of that name instead of failing.
	Reuse bool
	// Retain keeps the cluster (and everything in it) after the run and
	// after a failed create.
	Retain bool
	// Kubeconfig and Context select an existing cluster: the harness never
	// creates or deletes it.
	Kubeconfig string
	Context    string
	// ImagesPushed says, in existing-cluster mode, that the harness's
	// images were pushed to a registry the cluster pulls from, so LoadImage
	// has nothing to do.
	ImagesPushed bool
	// StateDir holds the marker directories of created kind clusters
	// (default $TMPDIR/meshconform-clusters).
	StateDir string
	// Logger receives progress (Info) and details (Debug).
	Logger *slog.Logger
	// Timeouts bounds every wait.
	Timeouts Timeouts

	explicit map[string]bool
}

// Option configures Setup and Sweep.
type Option func(*Config)

// WithName sets the kind cluster name (default "meshconform").
func WithName(name string) Option {
	return func(c *Config) { c.Name = name; c.mark("name") }
}

// WithNodeImage sets the kind node image (default env KIND_NODE_IMAGE).
func WithNodeImage(image string) Option {
	return func(c *Config) { c.NodeImage = image; c.mark("node-image") }
}

// WithKindConfig uses a kind config file (v1alpha4) for creation.
func WithKindConfig(path string) Option {
	return func(c *Config) { c.KindConfig = path; c.mark("kind-config") }
}

// WithReuse uses an existing kind cluster of that name if there is one.
func WithReuse(reuse bool) Option {
	return func(c *Config) { c.Reuse = reuse; c.mark("reuse") }
}

// WithRetain keeps the cluster after the run or a failed create.
func WithRetain(retain bool) Option {
	return func(c *Config) { c.Retain = retain }
}

// WithKubeconfig runs against the existing cluster of that kubeconfig file
// (existing-cluster mode: never create or delete).
func WithKubeconfig(path string) Option {
	return func(c *Config) { c.Kubeconfig = path; c.mark("kubeconfig") }
}

// WithContext selects the kubeconfig context (existing-cluster mode).
func WithContext(name string) Option {
	return func(c *Config) { c.Context = name; c.mark("context") }
}

// WithImagesPushed declares that, in existing-cluster mode, the harness's
// images are in a registry the cluster pulls from.
func WithImagesPushed(pushed bool) Option {
	return func(c *Config) { c.ImagesPushed = pushed }
}

// WithStateDir sets where marker directories of created clusters live.
func WithStateDir(dir string) Option {
	return func(c *Config) { c.StateDir = dir }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *Config) { c.Logger = l }
}

// WithTimeouts overrides timeouts; zero fields keep their defaults.
func WithTimeouts(t Timeouts) Option {
	return func(c *Config) { c.Timeouts = t }
}

func (c *Config) mark(k string) {
	if c.explicit == nil {
		c.explicit = map[string]bool{}
	}
	c.explicit[k] = true
}

// Existing reports whether the config selects existing-cluster mode.
func (c *Config) Existing() bool { return c.Kubeconfig != "" || c.Context != "" }

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// newConfig applies options over the defaults and validates the result.
func newConfig(opts ...Option) (*Config, error) {
	c := &Config{Name: DefaultName}
	for _, o := range opts {
		o(c)
	}
	if !c.explicit["node-image"] {
		c.NodeImage = os.Getenv("KIND_NODE_IMAGE")
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(os.TempDir(), "meshconform-clusters")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Timeouts = c.Timeouts.WithDefaults()
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	if c.Existing() {
		for _, k := range []string{"reuse", "kind-config", "node-image"} {
			if c.explicit[k] {
				errs = append(errs, fmt.Errorf("--%s only applies to kind clusters: drop it or drop --kubeconfig/--context", k))
			}
		}
		if c.Kubeconfig != "" {
			if _, err := os.Stat(c.Kubeconfig); err != nil {
				errs = append(errs, fmt.Errorf("kubeconfig %s: %w: pass an existing file", c.Kubeconfig, err))
			}
		}
	} else {
		if !validName.MatchString(c.Name) || len(c.Name) > 50 {
			errs = append(errs, fmt.Errorf("cluster name %q: use 1-50 characters of a-z, 0-9, '.' and '-', starting with a letter or digit", c.Name))
		}
		if c.KindConfig != "" {
			if _, err := os.Stat(c.KindConfig); err != nil {
				errs = append(errs, fmt.Errorf("kind config %s: %w: pass an existing file", c.KindConfig, err))
			}
		}
	}
	if c.ImagesPushed && !c.Existing() {
		errs = append(errs, errors.New("--images-pushed only applies to an existing cluster (--kubeconfig/--context): kind clusters get images loaded"))
	}
	if err := c.Timeouts.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
