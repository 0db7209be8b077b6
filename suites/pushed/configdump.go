package pushed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"istio.io/istio/istioctl/pkg/util/configdump"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xdstest"
)

// Source is where the tier reads a workload's config: an xDS Watch
// identifying as the workload (no sidecar running), or the workload's own
// Envoy (SidecarDump, its admin config_dump). Both give the same Snapshot,
// judged with the same simulator.
type Source interface {
	// Identity is the workload.
	Identity() Identity
	// Snapshot is the config as of the last observation.
	Snapshot() Snapshot
	// Wait returns the first complete snapshot for which cond holds, or an
	// error wrapping ErrTimeout when ctx ends first.
	Wait(ctx context.Context, what string, cond func(Snapshot) bool) (Snapshot, error)
	// Kind says where the config comes from, for traces: "istiod xDS" or
	// "sidecar config_dump".
	Kind() string
	// Close releases the source.
	Close()
}

// Kinds of Source.
const (
	FromXDS        = "istiod xDS"
	FromConfigDump = "sidecar config_dump"
)

// Kind implements Source.
func (w *Watch) Kind() string { return FromXDS }

// SnapshotFromConfigDump converts an Envoy admin config_dump (the JSON
// Envoy's admin endpoint GET /config_dump serves: an
// envoy.admin.v3.ConfigDump with ClustersConfigDump, ListenersConfigDump
// and RoutesConfigDump sections) into the Snapshot the xDS watch produces:
// the dynamic active clusters, the active state of each dynamic listener
// (a warming or draining copy is never read), and the dynamic route
// configs the listeners name. It is parsed with istioctl's config_dump
// wrapper (istioctl/pkg/util/configdump), as `istioctl proxy-config` does.
// Versions are the dumps' version_info (the last CDS/LDS response Envoy
// accepted); Missing lists route configs named but absent. Seq and At are
// left to the caller.
func SnapshotFromConfigDump(b []byte) (Snapshot, error) {
	var w configdump.Wrapper
	if err := w.UnmarshalJSON(b); err != nil {
		return Snapshot{}, fmt.Errorf("parse config_dump: %w", err)
	}
	s := Snapshot{Versions: map[string]string{}}
	cd, err := w.GetClusterConfigDump()
	if err != nil {
		return Snapshot{}, fmt.Errorf("config_dump clusters: %w", err)
	}
	s.Versions[v3.ClusterType] = cd.GetVersionInfo()
	for _, dc := range cd.GetDynamicActiveClusters() {
		c := &cluster.Cluster{}
		if err := dc.GetCluster().UnmarshalTo(c); err != nil {
			return Snapshot{}, fmt.Errorf("config_dump cluster: %w", err)
		}
		s.Clusters = append(s.Clusters, c)
	}
	ld, err := w.GetListenerConfigDump()
	if err != nil {
		return Snapshot{}, fmt.Errorf("config_dump listeners: %w", err)
	}
	s.Versions[v3.ListenerType] = ld.GetVersionInfo()
	for _, dl := range ld.GetDynamicListeners() {
		if dl.GetActiveState().GetListener() == nil {
			continue // warming only: not serving yet
		}
		l := &listener.Listener{}
		if err := dl.GetActiveState().GetListener().UnmarshalTo(l); err != nil {
			return Snapshot{}, fmt.Errorf("config_dump listener %s: %w", dl.GetName(), err)
		}
		s.Listeners = append(s.Listeners, l)
	}
	routes := map[string]*route.RouteConfiguration{}
	if rd, err := w.GetRouteConfigDump(); err == nil {
		for _, dr := range rd.GetDynamicRouteConfigs() {
			r := &route.RouteConfiguration{}
			if err := dr.GetRouteConfig().UnmarshalTo(r); err != nil {
				return Snapshot{}, fmt.Errorf("config_dump route config: %w", err)
			}
			routes[r.GetName()] = r
			if v := dr.GetVersionInfo(); v > s.Versions[v3.RouteType] {
				s.Versions[v3.RouteType] = v
			}
		}
	} else if !strings.Contains(err.Error(), "not found") {
		return Snapshot{}, fmt.Errorf("config_dump routes: %w", err)
	}
	sort.Slice(s.Clusters, func(i, j int) bool { return s.Clusters[i].GetName() < s.Clusters[j].GetName() })
	sort.Slice(s.Listeners, func(i, j int) bool { return s.Listeners[i].GetName() < s.Listeners[j].GetName() })
	names := xdstest.ExtractRoutesFromListeners(s.Listeners)
	sort.Strings(names)
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		if r, ok := routes[n]; ok {
			s.Routes = append(s.Routes, r)
		} else {
			s.Missing = append(s.Missing, n)
		}
	}
	s.fromDump = true
	return s, nil
}

// EnvoyAdminPort is the port of Envoy's admin API in Istio's sidecars and
// gateways (bound to localhost in the pod: reached with a port-forward).
const EnvoyAdminPort = 15000

// SidecarDump reads a workload's config from its own Envoy: GET
// /config_dump on the admin port, through a port-forward the caller opened
// (client-go pods/portforward: the only verb it needs is create on
// pods/portforward in the workload's namespace; pods/exec of `pilot-agent
// request GET config_dump` would need create on pods/exec, which also runs
// any command). Wait polls every poll interval.
type SidecarDump struct {
	id    Identity
	fetch func(context.Context) ([]byte, error)
	poll  time.Duration
	stop  func()

	mu   sync.Mutex
	last Snapshot
	seq  int
	err  error
}

// NewSidecarDump reads config_dump from Envoy's admin API at addr
// ("127.0.0.1:port", the local end of a port-forward to EnvoyAdminPort);
// stop (may be nil) ends the port-forward on Close. It reads once before
// returning.
func NewSidecarDump(ctx context.Context, id Identity, addr string, poll time.Duration, stop func()) (*SidecarDump, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	fetch := func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/config_dump", nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("envoy admin of %s: %w", id, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("envoy admin of %s: read config_dump: %w", id, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("envoy admin of %s: config_dump: HTTP %d", id, resp.StatusCode)
		}
		return b, nil
	}
	return newSidecarDump(ctx, id, fetch, poll, stop)
}

func newSidecarDump(ctx context.Context, id Identity, fetch func(context.Context) ([]byte, error), poll time.Duration, stop func()) (*SidecarDump, error) {
	if poll <= 0 {
		poll = DefaultTimeouts().Poll
	}
	d := &SidecarDump{id: id, fetch: fetch, poll: poll, stop: stop}
	if _, err := d.read(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// read fetches and converts one config_dump; Seq and At advance when the
// versions or the set of resources changed.
func (d *SidecarDump) read(ctx context.Context) (Snapshot, error) {
	b, err := d.fetch(ctx)
	if err == nil {
		var s Snapshot
		if s, err = SnapshotFromConfigDump(b); err == nil {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.seq == 0 || !sameConfig(d.last, s) {
				d.seq++
				s.Seq, s.At = d.seq, time.Now()
			} else {
				s.Seq, s.At = d.last.Seq, d.last.At
			}
			d.last, d.err = s, nil
			return s, nil
		}
	}
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	return Snapshot{}, err
}

func sameConfig(a, b Snapshot) bool {
	if len(a.Versions) != len(b.Versions) || len(a.Listeners) != len(b.Listeners) || len(a.Clusters) != len(b.Clusters) || len(a.Routes) != len(b.Routes) {
		return false
	}
	for k, v := range a.Versions {
		if b.Versions[k] != v {
			return false
		}
	}
	return true
}

// Identity implements Source.
func (d *SidecarDump) Identity() Identity { return d.id }

// Kind implements Source.
func (d *SidecarDump) Kind() string { return FromConfigDump }

// Snapshot implements Source: the last config_dump read.
func (d *SidecarDump) Snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// Wait implements Source: it reads config_dump every poll interval until
// a complete snapshot satisfies cond or ctx ends (an error wrapping
// ErrTimeout, with the last read error if any).
func (d *SidecarDump) Wait(ctx context.Context, what string, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		s, err := d.read(ctx)
		if err == nil && s.Complete() && cond(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			detail := ""
			if err != nil {
				detail = " (last read: " + err.Error() + ")"
			} else if len(s.Missing) > 0 {
				detail = fmt.Sprintf(" (route configs named but not in config_dump: %s)", strings.Join(s.Missing, ", "))
			}
			if err == nil {
				s = d.Snapshot()
			}
			return s, fmt.Errorf("%s: %s: %w%s", d.id, what, ErrTimeout, detail)
		case <-time.After(d.poll):
		}
	}
}

// Close implements Source: it ends the port-forward.
func (d *SidecarDump) Close() {
	if d.stop != nil {
		d.stop()
		d.stop = nil
	}
}
