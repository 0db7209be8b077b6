package pushed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xdstest"
)

// ProxyIstioVersion is the proxy version the watch announces (the config
// istiod generates depends on it): the release of the pinned module.
const ProxyIstioVersion = "1.31.0"

// Identity is the workload a Watch identifies as: istiod generates the
// config of the proxy with this node id and metadata, exactly as for the
// workload's own sidecar or gateway.
type Identity struct {
	// Router makes the node a gateway ("router~…"), else a sidecar.
	Router bool
	// Namespace, Pod and IP of the workload; Labels are its pod's labels
	// (the injected ones included).
	Namespace, Pod, IP string
	Labels             map[string]string
	// ServiceAccount of the pod (optional).
	ServiceAccount string
	// ProxyMetadata is the sidecar's proxy metadata as ISTIO_META_*
	// variables (a source's proxyMetadata): each is sent as node metadata
	// under its name without the prefix, as Istio's agent does.
	ProxyMetadata map[string]string
}

// NodeID is Envoy's node id for the identity:
// "<sidecar|router>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local".
func (id Identity) NodeID() string {
	t := model.SidecarProxy
	if id.Router {
		t = model.Router
	}
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", t, id.IP, id.Pod, id.Namespace, id.Namespace)
}

// ProxyID is the id istiod knows the proxy by ("<pod>.<namespace>", the
// third part of the node id), the key of its sync status.
func (id Identity) ProxyID() string { return id.Pod + "." + id.Namespace }

func (id Identity) String() string {
	kind := "sidecar"
	if id.Router {
		kind = "gateway"
	}
	return fmt.Sprintf("%s %s/%s (%s)", kind, id.Namespace, id.Pod, id.IP)
}

func (id Identity) node() *core.Node {
	md := &model.NodeMetadata{
		Namespace:      id.Namespace,
		Labels:         id.Labels,
		InstanceIPs:    []string{id.IP},
		IstioVersion:   ProxyIstioVersion,
		ClusterID:      "Kubernetes",
		ServiceAccount: id.ServiceAccount,
		WorkloadName:   id.Labels["app"],
		// Sidecars and gateways send their proxy config; istiod's sync
		// status (syncz) lists only connections that carry one. Empty: the
		// mesh's defaults apply as for a proxy without overrides.
		ProxyConfig: &model.NodeMetaProxyConfig{},
	}
	st := md.ToStruct()
	for k, v := range id.ProxyMetadata {
		if name, ok := strings.CutPrefix(k, "ISTIO_META_"); ok && st != nil {
			st.Fields[name] = structpb.NewStringValue(v)
		}
	}
	return &core.Node{Id: id.NodeID(), Metadata: st}
}

// Snapshot is the config istiod pushed to the watched workload, as of one
// moment: every CDS and LDS resource, and the RDS resources the listeners
// name.
type Snapshot struct {
	Listeners []*listener.Listener
	Clusters  []*cluster.Cluster
	Routes    []*route.RouteConfiguration
	// Versions are the version_info of the last response of each type
	// (istiod's push version).
	Versions map[string]string
	// Seq counts the responses applied; At is when the last arrived.
	Seq int
	At  time.Time
	// Missing lists route configs the listeners name that have not
	// arrived (yet): the snapshot is Complete only when it is empty.
	Missing []string
	// fromDump: read from a sidecar's config_dump (see Complete).
	fromDump bool
}

// Complete reports whether clusters, listeners and every route config the
// listeners name have arrived, all from the same push: istiod sends CDS,
// LDS, then RDS with the push's version, and between those responses the
// snapshot is half old, half new. (A push of a kind that does not touch
// routes, e.g. an AuthorizationPolicy alone, skips RDS: the snapshot is
// then not complete until the next push that includes it.) A snapshot read
// from a sidecar's config_dump is complete when Envoy has accepted
// clusters and listeners and every route config the active listeners name
// is in the dump (Envoy applies each type as a whole; the version of each
// is the last it accepted).
func (s Snapshot) Complete() bool {
	cds, lds := s.Versions[v3.ClusterType], s.Versions[v3.ListenerType]
	if s.fromDump {
		return cds != "" && lds != "" && len(s.Missing) == 0
	}
	if cds == "" || cds != lds || len(s.Missing) > 0 {
		return false
	}
	return len(s.Routes) == 0 || s.Versions[v3.RouteType] == lds
}

// HasCluster reports whether a cluster of that name was pushed.
func (s Snapshot) HasCluster(name string) bool {
	return slices.ContainsFunc(s.Clusters, func(c *cluster.Cluster) bool { return c.GetName() == name })
}

// Watch is one SotW ADS stream to istiod identifying as a workload. It
// subscribes to every cluster and listener (wildcard) and to the route
// configs the listeners name, ACKs every response, and keeps the latest
// config. Create it with Dial; Close ends the stream.
type Watch struct {
	id     Identity
	conn   *grpc.ClientConn
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every applied response
	listeners map[string]*listener.Listener
	clusters  map[string]*cluster.Cluster
	routes    map[string]*route.RouteConfiguration
	versions  map[string]string
	nonces    map[string]string // last nonce received, per type
	rdsNames  []string          // the route configs subscribed, sorted
	seq       int
	at        time.Time
	err       error // why the stream ended
	sendMu    sync.Mutex
	sent      []*discovery.DiscoveryRequest // requests sent, for tests

	// Test hooks reproducing a client with the pitfall (see apply):
	// subscribeNonce picks the nonce of an RDS subscription change, and
	// ackReceived ACKs RDS with the names received instead of subscribed.
	subscribeNonce func(w *Watch) string
	ackReceived    bool
}

// Dial opens the stream on an established gRPC target (e.g. the
// 127.0.0.1 end of a port-forward to istiod's plaintext xDS port 15010)
// and sends the initial CDS and LDS subscriptions. opts are extra dial
// options (the default: plaintext). The stream runs until ctx ends or
// Close.
func Dial(ctx context.Context, target string, id Identity, opts ...grpc.DialOption) (*Watch, error) {
	return dialWith(ctx, target, id, nil, opts...)
}

// dialWith is Dial with a test hook applied before the first request.
func dialWith(ctx context.Context, target string, id Identity, tweak func(*Watch), opts ...grpc.DialOption) (*Watch, error) {
	if id.IP == "" || id.Namespace == "" || id.Pod == "" {
		return nil, fmt.Errorf("xds watch: identity %+v needs namespace, pod and IP", id)
	}
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(plaintext())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("xds watch %s: %w", target, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("xds watch %s: open ADS stream: %w", target, err)
	}
	w := &Watch{id: id, conn: conn, stream: stream, cancel: cancel, changed: make(chan struct{}),
		listeners: map[string]*listener.Listener{}, clusters: map[string]*cluster.Cluster{},
		routes: map[string]*route.RouteConfiguration{}, versions: map[string]string{}, nonces: map[string]string{}}
	if tweak != nil {
		tweak(w)
	}
	for _, t := range []string{v3.ClusterType, v3.ListenerType} {
		if err := w.send(&discovery.DiscoveryRequest{TypeUrl: t, Node: id.node()}); err != nil {
			w.Close()
			return nil, fmt.Errorf("xds watch %s: subscribe %s: %w", target, t, err)
		}
	}
	go w.recv()
	go func() {
		<-ctx.Done()
		w.Close()
	}()
	return w, nil
}

// Identity is who the watch identifies as.
func (w *Watch) Identity() Identity { return w.id }

// Close ends the stream.
func (w *Watch) Close() {
	w.cancel()
	w.conn.Close()
}

func (w *Watch) send(r *discovery.DiscoveryRequest) error {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	w.sent = append(w.sent, proto.Clone(r).(*discovery.DiscoveryRequest))
	return w.stream.Send(r)
}

func (w *Watch) recv() {
	for {
		resp, err := w.stream.Recv()
		if err != nil {
			w.mu.Lock()
			w.err = fmt.Errorf("xds stream of %s ended: %w", w.id, err)
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
			return
		}
		if err := w.apply(resp); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}
}

// apply stores a response, ACKs it, and (for LDS) subscribes to the route
// configs the listeners name.
//
// The ACK of a type carries that type's nonce and the names subscribed for
// it. A change of the RDS subscription is sent with the nonce of the last
// RDS response — never the LDS response's: istiod drops a request whose
// nonce is not the last one it sent for that type as stale
// (pkg/xds ShouldRespond), so route configs first named by a later LDS push
// would never arrive.
func (w *Watch) apply(resp *discovery.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	w.mu.Lock()
	var newRDS []string
	switch t {
	case v3.ClusterType:
		m := map[string]*cluster.Cluster{}
		for _, a := range resp.GetResources() {
			c := &cluster.Cluster{}
			if err := unmarshal(a, c); err != nil {
				w.mu.Unlock()
				return err
			}
			m[c.GetName()] = c
		}
		w.clusters = m
	case v3.ListenerType:
		m := map[string]*listener.Listener{}
		var ll []*listener.Listener
		for _, a := range resp.GetResources() {
			l := &listener.Listener{}
			if err := unmarshal(a, l); err != nil {
				w.mu.Unlock()
				return err
			}
			m[l.GetName()] = l
			ll = append(ll, l)
		}
		w.listeners = m
		names := xdstest.ExtractRoutesFromListeners(ll)
		sort.Strings(names)
		names = slices.Compact(names)
		if !slices.Equal(names, w.rdsNames) {
			w.rdsNames, newRDS = names, names
		}
	case v3.RouteType:
		for _, a := range resp.GetResources() {
			r := &route.RouteConfiguration{}
			if err := unmarshal(a, r); err != nil {
				w.mu.Unlock()
				return err
			}
			w.routes[r.GetName()] = r
		}
	}
	w.versions[t] = resp.GetVersionInfo()
	w.nonces[t] = resp.GetNonce()
	ack := &discovery.DiscoveryRequest{TypeUrl: t, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
	if t == v3.RouteType {
		ack.ResourceNames = slices.Clone(w.rdsNames)
		if w.ackReceived {
			ack.ResourceNames = nil
			for _, a := range resp.GetResources() {
				r := &route.RouteConfiguration{}
				_ = a.UnmarshalTo(r)
				ack.ResourceNames = append(ack.ResourceNames, r.GetName())
			}
		}
	}
	var sub *discovery.DiscoveryRequest
	if newRDS != nil {
		nonce := w.nonces[v3.RouteType]
		if w.subscribeNonce != nil {
			nonce = w.subscribeNonce(w)
		}
		sub = &discovery.DiscoveryRequest{TypeUrl: v3.RouteType, VersionInfo: w.versions[v3.RouteType], ResponseNonce: nonce, ResourceNames: slices.Clone(newRDS)}
		if nonce == "" {
			sub.Node = w.id.node()
		}
	}
	w.seq++
	w.at = time.Now()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	if err := w.send(ack); err != nil {
		return fmt.Errorf("xds watch: ack %s: %w", t, err)
	}
	if sub != nil {
		if err := w.send(sub); err != nil {
			return fmt.Errorf("xds watch: subscribe routes %v: %w", sub.ResourceNames, err)
		}
	}
	return nil
}

func unmarshal(a *anypb.Any, m proto.Message) error {
	if err := a.UnmarshalTo(m); err != nil {
		return fmt.Errorf("xds watch: decode %s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

// Snapshot returns the config as of now.
func (w *Watch) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snapshotLocked()
}

func (w *Watch) snapshotLocked() Snapshot {
	s := Snapshot{Versions: map[string]string{}, Seq: w.seq, At: w.at}
	for k, v := range w.versions {
		s.Versions[k] = v
	}
	for _, name := range sortedKeys(w.listeners) {
		s.Listeners = append(s.Listeners, w.listeners[name])
	}
	for _, name := range sortedKeys(w.clusters) {
		s.Clusters = append(s.Clusters, w.clusters[name])
	}
	for _, name := range w.rdsNames {
		if r, ok := w.routes[name]; ok {
			s.Routes = append(s.Routes, r)
		} else {
			s.Missing = append(s.Missing, name)
		}
	}
	return s
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrTimeout is returned by Wait when the condition did not hold in time.
var ErrTimeout = errors.New("pushed config did not reach the expected state in time")

// Wait returns the first complete snapshot (see Snapshot.Complete) for
// which cond holds, checking the current one first and then every
// response, until ctx ends (then an error wrapping ErrTimeout and the
// last snapshot) or the stream fails.
func (w *Watch) Wait(ctx context.Context, what string, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		w.mu.Lock()
		s := w.snapshotLocked()
		ch, err := w.changed, w.err
		w.mu.Unlock()
		if s.Complete() && cond(s) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			detail := ""
			if len(s.Missing) > 0 {
				detail = fmt.Sprintf(" (route configs named but not received: %s)", strings.Join(s.Missing, ", "))
			}
			return s, fmt.Errorf("%s: %s: %w%s", w.id, what, ErrTimeout, detail)
		}
	}
}
