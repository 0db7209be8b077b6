package clusters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
)

// Mode says how the cluster came to be used.
type Mode string

// Modes.
const (
	// Created: a kind cluster this run created.
	Created Mode = "created"
	// Reused: an existing kind cluster used as is.
	Reused Mode = "reused"
	// Existing: any cluster from a kubeconfig; never created or deleted.
	Existing Mode = "existing"
)

// Cluster is the cluster of one run and what this run changed in it.
// Its methods are safe for concurrent use.
type Cluster struct {
	// Name is the kind cluster name, or the kubeconfig context in
	// existing-cluster mode.
	Name string

	cfg        *Config
	log        *slog.Logger
	mode       Mode
	runID      string
	provider   *kindcluster.Provider
	tmpDir     string
	kubeconfig string
	restConfig *rest.Config
	client     kubernetes.Interface
	dyn        dynamic.Interface
	mapper     *restmapper.DeferredDiscoveryRESTMapper
	execer     podExecer
	// podNetwork: the nodes run the harness's pod network (podnet.go).
	podNetwork bool

	mu         sync.Mutex
	applied    []Object
	namespaces []string
	restores   []*restoreFunc
	tornDown   bool
}

// restoreFunc is an undo registered by a method that changed shared
// cluster state (CoreDNS, CNI, ip-masq-agent); it runs at most once.
type restoreFunc struct {
	what string
	once sync.Once
	fn   func(context.Context) error
	err  error
}

func (r *restoreFunc) run(ctx context.Context) error {
	r.once.Do(func() { r.err = r.fn(ctx) })
	return r.err
}

// addRestore registers fn to run at Teardown unless the caller runs the
// returned function first (each runs at most once).
func (c *Cluster) addRestore(what string, fn func(context.Context) error) func(context.Context) error {
	r := &restoreFunc{what: what, fn: fn}
	c.mu.Lock()
	c.restores = append(c.restores, r)
	c.mu.Unlock()
	return func(ctx context.Context) error {
		err := r.run(ctx)
		c.mu.Lock()
		c.restores = slices.DeleteFunc(c.restores, func(x *restoreFunc) bool { return x == r })
		c.mu.Unlock()
		return err
	}
}

// Setup creates, reuses or attaches to the cluster selected by opts. It
// returns a non-nil *Cluster whenever it may have created something, also
// with an error, so the caller can `defer cl.Teardown(ctx)` before checking
// the error. A failed or interrupted create deletes the kind cluster it
// started unless WithRetain (then Teardown has nothing left to do).
func Setup(ctx context.Context, opts ...Option) (*Cluster, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("set up cluster: %w", err)
	}
	runID, err := newRunID()
	if err != nil {
		return nil, fmt.Errorf("set up cluster: %w", err)
	}
	tmp, err := os.MkdirTemp("", "meshconform-kube-")
	if err != nil {
		return nil, fmt.Errorf("set up cluster: create temp dir: %w", err)
	}
	c := &Cluster{Name: cfg.Name, cfg: cfg, log: cfg.Logger, runID: runID, tmpDir: tmp, kubeconfig: filepath.Join(tmp, "kubeconfig")}
	c.execer = &spdyExecer{c: c}
	start := time.Now()
	if cfg.Existing() {
		c.mode = Existing
		if err := c.attach(ctx); err != nil {
			_ = os.RemoveAll(tmp)
			return nil, fmt.Errorf("attach to cluster: %w", err)
		}
		c.log.Info("using existing cluster", "context", c.Name, "run", runID, "elapsed", since(start))
		return c, nil
	}
	c.provider = kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{c.log}))
	if err := c.setupKind(ctx); err != nil {
		return c, err
	}
	return c, nil
}

func newRunID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate run id: %w", err)
	}
	return time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b), nil
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// attach loads an existing cluster's kubeconfig (existing-cluster mode) and
// writes a minimal copy for KubeconfigPath.
func (c *Cluster) attach(ctx context.Context) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.cfg.Kubeconfig != "" {
		rules.ExplicitPath = c.cfg.Kubeconfig
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.cfg.Context})
	raw, err := loader.RawConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ctxName := c.cfg.Context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	if _, ok := raw.Contexts[ctxName]; !ok {
		return fmt.Errorf("kubeconfig has no context %q: pass one of its contexts with --context", ctxName)
	}
	c.Name = ctxName
	min := raw.DeepCopy()
	min.CurrentContext = ctxName
	if err := clientcmdapi.MinifyConfig(min); err != nil {
		return fmt.Errorf("minify kubeconfig: %w", err)
	}
	if err := clientcmdapi.FlattenConfig(min); err != nil {
		return fmt.Errorf("flatten kubeconfig: %w", err)
	}
	if err := clientcmd.WriteToFile(*min, c.kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Chmod(c.kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return c.initClients(ctx)
}

// initClients builds the clients from c.kubeconfig and checks that the API
// server answers.
func (c *Cluster) initClients(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", c.kubeconfig, err)
	}
	rc.QPS, rc.Burst = 50, 100
	c.restConfig = rc
	if c.client, err = kubernetes.NewForConfig(rc); err != nil {
		return fmt.Errorf("create kubernetes client: %w", err)
	}
	if c.dyn, err = dynamic.NewForConfig(rc); err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	if _, err := c.client.Discovery().ServerVersion(); err != nil {
		return fmt.Errorf("reach API server %s: %w", rc.Host, err)
	}
	return ctx.Err()
}

// Mode says whether the cluster was created, reused or attached.
func (c *Cluster) Mode() Mode { return c.mode }

// Managed reports whether this is a kind cluster the harness has node
// access to (created or reused): images can be loaded and iptables read.
// False in existing-cluster mode.
func (c *Cluster) Managed() bool { return c.mode == Created || c.mode == Reused }

// RunID is the id labelled on everything this run creates.
func (c *Cluster) RunID() string { return c.runID }

// RESTConfig returns the client configuration (a copy).
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Client returns the typed clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Dynamic returns the dynamic client.
func (c *Cluster) Dynamic() dynamic.Interface { return c.dyn }

// KubeconfigPath is a kubeconfig for this cluster only (mode 0600, in a
// temporary directory Teardown removes).
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// ResetRESTMapper forgets discovered API resources, e.g. after Istio's CRDs
// were installed. Apply also resets it by itself when a kind is unknown.
func (c *Cluster) ResetRESTMapper() { c.mapper.Reset() }

// Teardown undoes this run: pending restores (CoreDNS, CNI masquerade,
// ip-masq-agent) in reverse order, then the kind cluster if this run
// created it, or else the objects and namespaces this run made. With
// WithRetain it keeps everything. It is safe to call more than once and on
// the *Cluster a failed Setup returned.
func (c *Cluster) Teardown(ctx context.Context) error {
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		return nil
	}
	c.tornDown = true
	restores := slices.Clone(c.restores)
	c.restores = nil
	applied := slices.Clone(c.applied)
	namespaces := slices.Clone(c.namespaces)
	c.mu.Unlock()
	defer os.RemoveAll(c.tmpDir)

	// Teardown must work after the run's context was cancelled (Ctrl-C).
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	var errs []error
	switch {
	case c.cfg.Retain:
		if c.Managed() {
			errs = append(errs, c.writeState(0))
			c.log.Info("retaining cluster and everything in it", "cluster", c.Name, "mode", c.mode,
				"hint", fmt.Sprintf("kind export kubeconfig --name %s; kind delete cluster --name %s", c.Name, c.Name))
		} else {
			c.log.Info("retaining this run's objects", "context", c.Name, "objects", len(applied), "namespaces", namespaces)
		}
		return errors.Join(errs...)
	case c.mode == Created:
		c.log.Info("deleting kind cluster", "cluster", c.Name)
		if err := c.deleteKind(); err != nil {
			errs = append(errs, fmt.Errorf("delete kind cluster %s: %w", c.Name, err))
		}
		c.log.Info("deleted kind cluster", "cluster", c.Name, "elapsed", since(start))
		return errors.Join(errs...)
	}
	if c.client == nil {
		return nil
	}
	for i := len(restores) - 1; i >= 0; i-- {
		if err := restores[i].run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", restores[i].what, err))
		}
	}
	if err := c.Delete(ctx, applied); err != nil {
		errs = append(errs, err)
	}
	if err := c.deleteNamespaces(ctx, namespaces); err != nil {
		errs = append(errs, err)
	}
	if c.mode == Reused {
		errs = append(errs, c.writeState(0))
	}
	c.log.Info("cleaned up cluster", "cluster", c.Name, "mode", c.mode, "objects", len(applied), "namespaces", len(namespaces), "elapsed", since(start))
	return errors.Join(errs...)
}

// Logger returns the cluster's logger (for packages that build on it).
func (c *Cluster) Logger() *slog.Logger { return c.log }

// Timeouts returns the effective timeouts.
func (c *Cluster) Timeouts() Timeouts { return c.cfg.Timeouts }

// OnTeardown registers fn (an undo of a change to shared cluster state) to
// run at Teardown, in reverse order of registration, unless the returned
// function ran it first. Each runs at most once. Teardown skips them when
// it deletes the whole cluster or when retaining.
func (c *Cluster) OnTeardown(what string, fn func(context.Context) error) (run func(context.Context) error) {
	return c.addRestore(what, fn)
}

// ForClient wraps an existing clientset as a Cluster without kubeconfig,
// dynamic client or node access, in the given mode (Managed() is true for
// Created and Reused). It exists so that code built on Cluster can be unit
// tested with k8s.io/client-go/kubernetes/fake; real runs use Setup.
func ForClient(client kubernetes.Interface, mode Mode, opts ...Option) (*Cluster, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("wrap client: %w", err)
	}
	c := &Cluster{Name: cfg.Name, cfg: cfg, log: cfg.Logger, mode: mode, runID: "test", client: client, restConfig: &rest.Config{}}
	c.execer = &spdyExecer{c: c}
	return c, nil
}
