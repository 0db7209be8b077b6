package pushed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	xdsstatus "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"istio.io/istio/pilot/pkg/model"
	pilotxds "istio.io/istio/pilot/pkg/xds"
	v3 "istio.io/istio/pilot/pkg/xds/v3"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/suites/check"
)

// Sync states of one xDS type of a proxy, as `istioctl proxy-status` shows
// them. istiod computes them per watched type (pilot/pkg/xds/statusgen.go
// debugSyncStatus): NACK is its ERROR (the proxy rejected the last push).
const (
	Synced  = "SYNCED"   // the proxy ACKed the last push of that type
	Stale   = "STALE"    // sent, not (yet) ACKed
	NACK    = "NACK"     // the proxy rejected it (error detail kept)
	NotSent = "NOT SENT" // subscribed, nothing sent yet
)

// SyncStatus is a proxy's sync status as istiod reports it: the answer to
// a debug xDS request of type istio.io/debug/syncz (what `istioctl
// proxy-status` asks), one state per xDS type the proxy watches.
type SyncStatus struct {
	// Proxy is istiod's proxy id ("<pod>.<namespace>", Identity.ProxyID);
	// IstioVersion the proxy's.
	Proxy, IstioVersion string
	// Types maps the short type (CDS, LDS, RDS, EDS, …) to Synced, Stale,
	// NACK or NotSent.
	Types map[string]string
	// Errors holds the proxy's NACK detail per short type.
	Errors map[string]string
}

// InSync reports whether every type the proxy watches is SYNCED.
func (s SyncStatus) InSync() bool {
	for _, v := range s.Types {
		if v != Synced {
			return false
		}
	}
	return len(s.Types) > 0
}

// String is "CDS SYNCED, LDS NACK (detail), …", types sorted.
func (s SyncStatus) String() string {
	if len(s.Types) == 0 {
		return "no xDS type watched"
	}
	var ts []string
	for t := range s.Types {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	var out []string
	for _, t := range ts {
		v := t + " " + s.Types[t]
		if e := s.Errors[t]; e != "" {
			v += " (" + e + ")"
		}
		out = append(out, v)
	}
	return strings.Join(out, ", ")
}

// syncStatusFromClientConfig reads one ClientConfig of istiod's syncz
// answer (envoy.service.status.v3, generic xDS configs).
func syncStatusFromClientConfig(cc *xdsstatus.ClientConfig) SyncStatus {
	s := SyncStatus{Proxy: cc.GetNode().GetId(), Types: map[string]string{}, Errors: map[string]string{}}
	if md, err := model.ParseMetadata(cc.GetNode().GetMetadata()); err == nil {
		s.IstioVersion = md.IstioVersion
	}
	for _, g := range cc.GetGenericXdsConfigs() {
		t := v3.GetShortType(g.GetTypeUrl())
		switch g.GetConfigStatus() {
		case xdsstatus.ConfigStatus_SYNCED:
			s.Types[t] = Synced
		case xdsstatus.ConfigStatus_STALE:
			s.Types[t] = Stale
		case xdsstatus.ConfigStatus_ERROR:
			s.Types[t] = NACK
			s.Errors[t] = g.GetErrorState().GetDetails()
		case xdsstatus.ConfigStatus_NOT_SENT:
			s.Types[t] = NotSent
		default:
			continue // UNKNOWN: istioctl shows IGNORED
		}
	}
	return s
}

// QuerySyncz asks istiod, on conn, for the sync status of the proxies it
// serves (a debug xDS request of type istio.io/debug/syncz, as istioctl
// proxy-status sends it, identifying as a client in namespace with
// service account sa and Istio's "event" generator). istiod answers only
// an authenticated caller (ENABLE_DEBUG_ENDPOINT_AUTH, on by default):
// over its TLS port 15012 with a Kubernetes token (see DialIstiodTLS), and
// only about proxies in the caller's namespace unless that is istiod's
// root namespace. The result maps proxy id (Identity.ProxyID) to status.
func QuerySyncz(ctx context.Context, conn grpc.ClientConnInterface, namespace, sa string) (map[string]SyncStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("syncz: open ADS stream: %w", err)
	}
	md := model.NodeMetadata{Generator: "event", Namespace: namespace, ServiceAccount: sa}
	node := &core.Node{Id: fmt.Sprintf("%s~0.0.0.0~meshconform-syncz.%s~%s.svc.cluster.local", model.SidecarProxy, namespace, namespace), Metadata: md.ToStruct()}
	if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: pilotxds.TypeDebugSyncronization, Node: node}); err != nil {
		return nil, fmt.Errorf("syncz: send: %w", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("syncz (istio.io/debug/syncz): %w", err)
	}
	out := map[string]SyncStatus{}
	for _, a := range resp.GetResources() {
		cc := &xdsstatus.ClientConfig{}
		if err := a.UnmarshalTo(cc); err != nil {
			return nil, fmt.Errorf("syncz: decode %s: %w", a.GetTypeUrl(), err)
		}
		s := syncStatusFromClientConfig(cc)
		out[s.Proxy] = s
	}
	return out, nil
}

// Istiod's TLS xDS port and the name its serving certificate carries.
const (
	xdsTLSPort = 15012
	istiodSAN  = "istiod.istio-system.svc"
	// rootCertConfigMap is the ConfigMap istiod writes into every
	// namespace with its root certificate (key root-cert.pem).
	rootCertConfigMap = "istio-ca-root-cert"
	tokenAudience     = "istio-ca"
)

// tokenCreds sends a Kubernetes service account token as the bearer token
// of every RPC, over TLS only.
type tokenCreds struct{ token string }

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + c.token}, nil
}
func (c tokenCreds) RequireTransportSecurity() bool { return true }

// DialIstiodTLS connects to istiod's TLS xDS port at target (the local end
// of a port-forward to istiod's port 15012) as istioctl does, but
// verifying istiod's certificate: against the root certificate istiod
// publishes in ConfigMap istio-ca-root-cert of namespace, for the name
// istiod.istio-system.svc. Every RPC carries a short-lived token (10 min,
// audience istio-ca) of service account sa in namespace, which istiod
// reviews (TokenReview) and maps to the identity
// spiffe://…/ns/<namespace>/sa/<sa>. RBAC needed: get configmaps
// istio-ca-root-cert and create serviceaccounts/token in namespace; create
// pods/portforward on istiod in istio-system.
func DialIstiodTLS(ctx context.Context, cl *clusters.Cluster, target, namespace, sa string) (*grpc.ClientConn, error) {
	cm, err := cl.Client().CoreV1().ConfigMaps(namespace).Get(ctx, rootCertConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("istiod root certificate (ConfigMap %s/%s): %w", namespace, rootCertConfigMap, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cm.Data["root-cert.pem"])) {
		return nil, fmt.Errorf("istiod root certificate: ConfigMap %s/%s has no PEM certificate in root-cert.pem", namespace, rootCertConfigMap)
	}
	exp := int64((10 * time.Minute).Seconds())
	tr, err := cl.Client().CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{tokenAudience}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of service account %s/%s for istiod: %w", namespace, sa, err)
	}
	if tr.Status.Token == "" {
		return nil, errors.New("token request returned no token")
	}
	tc := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: istiodSAN, MinVersion: tls.VersionTLS12})
	return grpc.NewClient(target, grpc.WithTransportCredentials(tc), grpc.WithPerRPCCredentials(tokenCreds{tr.Status.Token}))
}

// SyncStatus returns the sync status istiod reports for the proxy of the
// kind of source (the meshed client, or the ingress gateway for Outside),
// asked over istiod's TLS port as service account default of the proxy's
// namespace (so istiod answers only about that namespace's proxies). An
// error says why there is none (e.g. the proxy is not connected to this
// istiod).
func (d *Driver) SyncStatus(ctx context.Context, kind check.SourceKind) (SyncStatus, error) {
	if kind == "" {
		kind = check.MeshedPod
	}
	src := d.watches[kind]
	if src == nil {
		return SyncStatus{}, fmt.Errorf("no %s workload observed", kind)
	}
	id := src.Identity()
	conn, err := d.syncConn(ctx, id.Namespace)
	if err != nil {
		return SyncStatus{}, err
	}
	all, err := QuerySyncz(ctx, conn, id.Namespace, "default")
	if err != nil {
		return SyncStatus{}, err
	}
	s, ok := all[id.ProxyID()]
	if !ok {
		return SyncStatus{}, fmt.Errorf("istiod reports no proxy %s (not connected to this istiod)", id.ProxyID())
	}
	return s, nil
}

// syncConn is the TLS connection to istiod for callers of namespace ns
// (one port-forward to istiod's 15012, one token per namespace).
func (d *Driver) syncConn(ctx context.Context, ns string) (*grpc.ClientConn, error) {
	if c := d.syncConns[ns]; c != nil {
		return c, nil
	}
	if d.tlsAddr == "" {
		_, pod, err := d.mesh.IstiodReadySince(ctx)
		if err != nil {
			return nil, err
		}
		addr, stop, err := d.cl.PortForward(ctx, d.mesh.IstiodNamespace(), pod, xdsTLSPort)
		if err != nil {
			return nil, fmt.Errorf("port-forward to istiod %s:%d: %w", pod, xdsTLSPort, err)
		}
		d.tlsAddr = addr
		d.cleanups = append(d.cleanups, func(context.Context) error { stop(); return nil })
	}
	c, err := DialIstiodTLS(ctx, d.cl, d.tlsAddr, ns, "default")
	if err != nil {
		return nil, err
	}
	if d.syncConns == nil {
		d.syncConns = map[string]*grpc.ClientConn{}
	}
	d.syncConns[ns] = c
	d.cleanups = append(d.cleanups, func(context.Context) error { return c.Close() })
	return c, nil
}
