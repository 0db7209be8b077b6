package live

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver for the admin statements

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/internal/ipmasq"
	"github.com/meshconform/meshconform/suites/check"
)

// ensureMasqAgent installs ip-masq-agent once (its removal is registered
// with the cluster's Teardown). An error is remembered for later checks,
// unless it was an interruption.
func (d *Driver) ensureMasqAgent(ctx context.Context) error {
	if d.masqAgentDone {
		return d.masqAgentErr
	}
	start := time.Now()
	_, err := d.cl.EnsureIPMasqAgent(ctx, d.cfg.ipMasqImage)
	if err != nil && ctx.Err() != nil {
		return err
	}
	d.masqAgentDone = true
	if err != nil {
		d.masqAgentErr = fmt.Errorf("ip-masq-agent: %w", err)
		return d.masqAgentErr
	}
	d.log.Info("ip-masq-agent installed", "image", d.cfg.ipMasqImage, "elapsed", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// setupMasquerade puts the cluster in the state a masquerade check runs
// under: the CNI's own masquerading off (ip-masq-agent alone decides, as
// on GKE), the agent's config set and its rules observed on every node,
// and, for ReturnRoute, a route from the echo target's network back to the
// pod CIDR. It returns the cleanups of what is per check (the route).
func (d *Driver) setupMasquerade(ctx context.Context, m check.Masquerade) ([]func(context.Context) error, error) {
	var cleanups []func(context.Context) error
	if !d.cniDisabled {
		restore, err := d.cl.DisableCNIMasquerade(ctx)
		if err != nil {
			if restore != nil {
				d.cniRestore = restore
			}
			if ctx.Err() == nil && !clusters.IsNotReady(err) {
				err = &clusters.NotReadyError{Reason: err.Error()}
			}
			return nil, err
		}
		if restore == nil {
			restore = func(context.Context) error { return nil }
		}
		d.cniRestore, d.cniDisabled = restore, true
	}
	if d.masqConfig == nil || *d.masqConfig != m.Config {
		// The agent's own semantics (internal/ipmasq): an invalid
		// config is the check's error, not a wait that times out.
		eval, err := ipmasq.Parse(m.Config, ipmasq.Options{})
		if err != nil {
			return nil, fmt.Errorf("masquerade config: %w", err)
		}
		want := eval.RuleCIDRs()
		d.masqEval = &eval
		start := time.Now()
		d.masqConfig = nil
		if err := d.cl.SetIPMasqConfig(ctx, m.Config); err != nil {
			return nil, fmt.Errorf("masquerade config: %w", err)
		}
		if err := d.cl.WaitIPMasqRules(ctx, want); err != nil {
			return nil, err
		}
		cfg := m.Config
		d.masqConfig = &cfg
		d.log.Info("ip-masq-agent config in effect", "nonMasquerade", want, "elapsed", time.Since(start).Round(100*time.Millisecond))
	}
	if m.ReturnRoute {
		routes, err := d.returnRoutes(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			err := d.addRoute(ctx, r)
			cleanups = append(cleanups, func(ctx context.Context) error { return d.delRoute(ctx, r) })
			if err != nil {
				return cleanups, err
			}
		}
	}
	return cleanups, nil
}

// leaveMasquerade gives the CNI its own masquerading back after masquerade
// checks, for checks that need pod traffic to reach fixtures.
func (d *Driver) leaveMasquerade(ctx context.Context) error {
	if d.cniRestore == nil {
		return nil
	}
	start := time.Now()
	err := d.cniRestore(ctx)
	d.cniRestore, d.cniDisabled, d.masqEval = nil, false, nil
	if err != nil {
		return err
	}
	d.log.Info("CNI masquerade restored", "elapsed", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// route is a route in the echo container's network namespace.
type route struct {
	container, cidr, via string
}

func (r route) String() string {
	return fmt.Sprintf("%s via %s in container %s", r.cidr, r.via, r.container)
}

// returnRoutes are the routes a peered network would learn: each node's
// pod CIDR via that node's address.
func (d *Driver) returnRoutes(ctx context.Context) ([]route, error) {
	if d.cfg.echoContainer == "" {
		return nil, &clusters.NotReadyError{Reason: "a return route needs the echo fixture's container: pass WithEchoContainer"}
	}
	nodes, err := d.cl.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("return route: %w", err)
	}
	var out []route
	for _, n := range nodes {
		if n.PodCIDR == "" || n.InternalIP == "" {
			continue
		}
		out = append(out, route{container: d.cfg.echoContainer, cidr: n.PodCIDR, via: n.InternalIP})
	}
	if len(out) == 0 {
		return nil, &clusters.NotReadyError{Reason: "return route: no node has a pod CIDR and an InternalIP"}
	}
	return out, nil
}

func (d *Driver) addRoute(ctx context.Context, r route) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeouts.Route)
	defer cancel()
	d.routesOutstand = append(d.routesOutstand, r)
	if err := d.router.AddRoute(ctx, r); err != nil {
		return fmt.Errorf("add return route %s: %w", r, err)
	}
	d.log.Debug("return route added", "route", r.String())
	return nil
}

func (d *Driver) delRoute(ctx context.Context, r route) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.timeouts.Route)
	defer cancel()
	if err := d.router.DelRoute(ctx, r); err != nil {
		return fmt.Errorf("remove return route %s: %w", r, err)
	}
	d.routesOutstand = slices.DeleteFunc(d.routesOutstand, func(x route) bool { return x == r })
	d.log.Debug("return route removed", "route", r.String())
	return nil
}

// router changes routes in a container's network namespace; tests fake it.
type router interface {
	AddRoute(ctx context.Context, r route) error
	DelRoute(ctx context.Context, r route) error
}

// nodeImager is the optional part of Cluster that names the kind node
// containers' image (*clusters.Cluster has it).
type nodeImager interface {
	NodeContainerImage(ctx context.Context) (string, error)
}

// dockerRouter runs `ip route` from a helper image in the target
// container's network namespace (the echo image is FROM scratch: no ip).
// Without an image it asks resolve (the node containers' image) once.
type dockerRouter struct {
	image   string
	resolve func(ctx context.Context) (string, error)
}

func (dr *dockerRouter) ip(ctx context.Context, container string, args ...string) ([]byte, error) {
	if dr.image == "" && dr.resolve != nil {
		img, err := dr.resolve(ctx)
		if err != nil {
			return nil, &clusters.NotReadyError{Reason: "a return route needs a local image with iproute2 (the kind node image): " + err.Error()}
		}
		dr.image = img
	}
	if dr.image == "" {
		return nil, &clusters.NotReadyError{Reason: "a return route needs a local image with iproute2: pass WithHelperImage (the cluster has no kind node containers to take it from)"}
	}
	full := append([]string{"run", "--rm", "--network", "container:" + container, "--cap-add", "NET_ADMIN",
		"--label", fixtures.LabelManaged + "=true", "--entrypoint", "ip", dr.image}, args...)
	out, err := exec.CommandContext(ctx, "docker", full...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("docker %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

func (dr *dockerRouter) AddRoute(ctx context.Context, r route) error {
	_, err := dr.ip(ctx, r.container, "route", "replace", r.cidr, "via", r.via)
	return err
}

func (dr *dockerRouter) DelRoute(ctx context.Context, r route) error {
	out, err := dr.ip(ctx, r.container, "route", "del", r.cidr, "via", r.via)
	if err != nil && (strings.Contains(string(out), "No such process") || strings.Contains(err.Error(), "No such container") ||
		strings.Contains(err.Error(), "is not running")) {
		return nil // already gone (or the echo container with it)
	}
	return err
}

// sqlAdmin runs the steps' admin statements; tests fake it.
type sqlAdmin interface {
	Exec(ctx context.Context, stmt string) error
	Close() error
}

// mysqlAdmin runs statements as the database admin from the host.
type mysqlAdmin struct {
	dsn  string
	once sync.Once
	db   *sql.DB
	err  error
}

func (m *mysqlAdmin) Exec(ctx context.Context, stmt string) error {
	m.once.Do(func() {
		m.db, m.err = sql.Open("mysql", m.dsn)
		if m.err != nil {
			// Never include the DSN: it carries the admin password.
			m.err = errors.New("open the admin connection: invalid DSN")
		}
	})
	if m.err != nil {
		return m.err
	}
	_, err := m.db.ExecContext(ctx, stmt)
	return err
}

func (m *mysqlAdmin) Close() error {
	if m.db != nil {
		return m.db.Close()
	}
	return nil
}

// The ip-masq-agent ConfigMap upstream documents (read-only here).
const (
	ipMasqConfigMapNamespace = "kube-system"
	ipMasqConfigMapName      = "ip-masq-agent"
	ipMasqConfigMapKey       = "config"
)

// observeExistingMasquerade is the masquerade setup of an attached
// cluster (WithExistingIPMasqAgent): nothing is changed; the agent's
// config is read once from its ConfigMap to explain observations.
func (d *Driver) observeExistingMasquerade(ctx context.Context) {
	if d.masqNote != "" {
		return
	}
	cfg := ""
	cm, err := d.cl.Client().CoreV1().ConfigMaps(ipMasqConfigMapNamespace).Get(ctx, ipMasqConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d.masqNote = "the cluster's ip-masq-agent as it is (no ConfigMap kube-system/ip-masq-agent: the agent's defaults); read, never changed"
	case err != nil:
		d.masqNote = "the cluster's ip-masq-agent as it is (its ConfigMap could not be read: " + err.Error() + "); never changed"
		return
	default:
		cfg = cm.Data[ipMasqConfigMapKey]
		d.masqNote = "the cluster's ip-masq-agent as it is (ConfigMap kube-system/ip-masq-agent key config); read, never changed"
	}
	eval, err := ipmasq.Parse(cfg, ipmasq.Options{})
	if err != nil {
		d.masqNote += "; its config does not parse as the agent reads it: " + err.Error()
		return
	}
	d.masqEval = &eval
}

// IPMasqNote says which ip-masq-agent config the masquerade checks ran
// against ("" before any ran): on an attached cluster the one read from
// the cluster, never changed; else the checks' own, set by the driver.
func (d *Driver) IPMasqNote() string {
	if d.masqNote != "" {
		return d.masqNote
	}
	if d.masqConfig != nil {
		return "set by the harness from each check's config (ConfigMap kube-system/ip-masq-agent), rules observed on every node"
	}
	return ""
}
