package probe

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/examples/helloworld/helloworld"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// greeting matches the greeter fixture's reply "Hello <name> from <ip>:<port>".
var greeting = regexp.MustCompile(`^Hello (.*) from (\S+)$`)

var httpStatusInGRPC = regexp.MustCompile(`HTTP status code received from server: (\d+)`)

// GreeterHeader is the response header the greeter fixture sets on every
// answer, OK or error status (fixtures/greeter/server.Header), so that a
// gRPC status from anything else (Envoy's local replies) is never taken
// for the greeter's.
const GreeterHeader = "x-meshconform-greeter"

// grpcSeen records, through a gRPC stats handler, the header and trailer
// frames that came over the wire from the peer. A status with a trailer
// frame was sent by the peer; one without was made by the client itself
// (connection failures).
type grpcSeen struct {
	mu                    sync.Mutex
	header, trailer       metadata.MD
	gotHeader, gotTrailer bool
}

func (s *grpcSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (s *grpcSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (s *grpcSeen) HandleConn(context.Context, stats.ConnStats)                       {}
func (s *grpcSeen) HandleRPC(_ context.Context, st stats.RPCStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := st.(type) {
	case *stats.InHeader:
		s.header, s.gotHeader = v.Header.Copy(), true
	case *stats.InTrailer:
		s.trailer, s.gotTrailer = v.Trailer.Copy(), true
	}
}

// get returns the first value of key in the header, else the trailer.
func (s *grpcSeen) get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, md := range []metadata.MD{s.header, s.trailer} {
		if v := md.Get(key); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// trailersOnly: the peer answered with a single HEADERS frame carrying the
// status (how Envoy sends every local reply to a gRPC client).
func (s *grpcSeen) trailersOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gotTrailer && !s.gotHeader
}

func (s *grpcSeen) peerStatus() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gotTrailer
}

// envoyLocalReply are the statuses Envoy gives a gRPC client for its own
// local replies (Envoy source/common/http/utility.cc sendLocalReply with
// source/common/grpc/status.cc httpToGrpcStatus): 404 (no route, Istio's
// gateway "blackhole" vhost) is UNIMPLEMENTED, 403 (RBAC deny)
// PERMISSION_DENIED, 502/503/504 (no upstream, block_all direct response)
// UNAVAILABLE.
var envoyLocalReply = map[codes.Code]string{
	codes.Unimplemented:    "no route (HTTP 404 NR)",
	codes.PermissionDenied: "denied (HTTP 403, e.g. RBAC)",
	codes.Unavailable:      "no upstream or a direct 502/503 (e.g. block_all)",
}

// grpc calls helloworld.Greeter/SayHello once, over TLS with the CA and SNI
// unless Plaintext, and classifies the answer:
//
//   - the greeter's header (GreeterHeader) on the reply, with status OK and
//     the greeting, or with an error status: the greeter answered (Allowed);
//   - a status the peer sent without that header: UNIMPLEMENTED,
//     PERMISSION_DENIED or UNAVAILABLE are Envoy's local replies
//     (BlockedByMesh; the evidence names the status, whether the reply was
//     trailers-only and the server header, if any); any other status is an
//     answer from something that is not the greeter (Unreachable,
//     foreign-answer);
//   - an HTTP status instead of gRPC: 502 is a proxy's refusal
//     (BlockedByMesh), others foreign;
//   - no status from the peer (dial, reset, handshake, deadline): decided by
//     the connection's own errors, as for the other protocols.
func (a *attempt) grpc(ctx context.Context) {
	creds := insecure.NewCredentials() // plaintext on purpose (--plaintext), not a skipped verification
	if !a.q.Plaintext {
		creds = credentials.NewTLS(a.tlsConfig("h2"))
	}
	seen := &grpcSeen{}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return a.dialContext(ctx, "tcp", addr)
		}),
		grpc.WithStatsHandler(seen),
	}
	switch {
	case a.q.Plaintext && a.q.Host != "":
		opts = append(opts, grpc.WithAuthority(a.q.Host))
	case a.q.SNI != "" && a.q.SNI != a.q.Host && a.q.Host != "":
		// gRPC insists that :authority matches the TLS server name.
		a.step("authority %s (gRPC requires it to match the SNI; host %s not sent)", a.q.SNI, a.q.Host)
	case a.q.Host != "":
		opts = append(opts, grpc.WithAuthority(a.q.Host))
	}
	cc, err := grpc.NewClient("passthrough:///"+a.q.addr(), opts...)
	if err != nil {
		a.r.Error = "grpc client: " + err.Error()
		return
	}
	defer cc.Close()
	name := a.q.Name
	if name == "" {
		name = "meshconform"
	}
	cctx, cancel := context.WithTimeout(ctx, 2*a.q.timeout())
	defer cancel()
	reply, err := helloworld.NewGreeterClient(cc).SayHello(cctx, &helloworld.HelloRequest{Name: name})
	server := seen.get("server")
	a.r.Server = server
	fromGreeter := seen.get(GreeterHeader) == "1"
	serverText := "no server header"
	if server != "" {
		serverText = "server: " + server
	}
	if err == nil {
		a.r.Reply = shorten(reply.GetMessage(), 200)
		a.step("SayHello: %q (%s %q, %s)", a.r.Reply, GreeterHeader, seen.get(GreeterHeader), serverText)
		m := greeting.FindStringSubmatch(reply.GetMessage())
		if fromGreeter && m != nil && m[1] == name {
			a.r.SourceIP, a.r.SourcePort = splitHostPort(m[2])
			a.set(Allowed, KindAnswered, "the greeter answered SayHello ("+GreeterHeader+" present)")
			return
		}
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("reply %q without the greeter's %s header: something other than the target answered", a.r.Reply, GreeterHeader))
		return
	}
	st, _ := status.FromError(err)
	shape := "headers and trailers"
	if seen.trailersOnly() {
		shape = "trailers-only"
	}
	a.step("SayHello: %s: %s (%s, %s %q, %s)", st.Code(), st.Message(), shape, GreeterHeader, seen.get(GreeterHeader), serverText)
	if fromGreeter {
		a.set(Allowed, KindAnswered, fmt.Sprintf("the greeter answered with gRPC status %s: %s (%s present)", st.Code(), st.Message(), GreeterHeader))
		return
	}
	if m := httpStatusInGRPC.FindStringSubmatch(st.Message()); m != nil {
		code, _ := strconv.Atoi(m[1])
		a.r.HTTPStatus = code
		if code == 502 {
			a.set(BlockedByMesh, KindHTTPStatus, fmt.Sprintf("HTTP 502 instead of a gRPC answer (a proxy refused it; %s): %s", serverText, st.Message()))
			return
		}
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("HTTP %d instead of a gRPC answer (%s): %s", code, serverText, st.Message()))
		return
	}
	if seen.peerStatus() {
		if why, ok := envoyLocalReply[st.Code()]; ok {
			a.set(BlockedByMesh, KindGRPCStatus, fmt.Sprintf("gRPC status %s %q as a %s reply without the greeter's %s header, %s: the proxy's own local reply, %s",
				st.Code(), st.Message(), shape, GreeterHeader, serverText, why))
			return
		}
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("gRPC status %s %q without the greeter's %s header (%s, %s): something other than the target answered",
			st.Code(), st.Message(), GreeterHeader, shape, serverText))
		return
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		if low := a.track.lowLevel(); low != nil {
			a.fail("gRPC connect", low)
			return
		}
		if strings.Contains(st.Message(), "handshake") || strings.Contains(st.Message(), "tls:") || strings.Contains(st.Message(), "certificate") {
			a.fail("TLS handshake", fmt.Errorf("%s", st.Message()))
			return
		}
		a.fail("gRPC call", err)
	default:
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("gRPC status %s %q made by the client, no answer from the peer", st.Code(), st.Message()))
	}
}
