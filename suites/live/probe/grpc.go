package probe

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/examples/helloworld/helloworld"
	"google.golang.org/grpc/status"
)

// greeting matches the greeter fixture's reply "Hello <name> from <ip>:<port>".
var greeting = regexp.MustCompile(`^Hello (.*) from (\S+)$`)

var httpStatusInGRPC = regexp.MustCompile(`HTTP status code received from server: (\d+)`)

// grpc calls helloworld.Greeter/SayHello once, over TLS with the CA and SNI
// unless Plaintext. The connection's own dial and read errors decide a
// failure (a reset or EOF during the handshake is the gateway or sidecar
// closing it: BlockedByMesh); a gRPC status from the server is the
// destination answering.
func (a *attempt) grpc(ctx context.Context) {
	creds := insecure.NewCredentials() // plaintext on purpose (--plaintext), not a skipped verification
	if !a.q.Plaintext {
		creds = credentials.NewTLS(a.tlsConfig("h2"))
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return a.dialContext(ctx, "tcp", addr)
		}),
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
	if err == nil {
		a.r.Reply = shorten(reply.GetMessage(), 200)
		a.step("SayHello: %q", a.r.Reply)
		if m := greeting.FindStringSubmatch(reply.GetMessage()); m != nil && m[1] == name {
			a.r.SourceIP, a.r.SourcePort = splitHostPort(m[2])
			a.set(Allowed, KindAnswered, "the greeter answered SayHello")
			return
		}
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("reply %q is not the greeter's: something other than the target answered", a.r.Reply))
		return
	}
	st, _ := status.FromError(err)
	a.step("SayHello: %s: %s", st.Code(), st.Message())
	if m := httpStatusInGRPC.FindStringSubmatch(st.Message()); m != nil {
		code, _ := strconv.Atoi(m[1])
		a.r.HTTPStatus = code
		if code == 502 {
			a.set(BlockedByMesh, KindHTTPStatus, "HTTP 502 instead of a gRPC answer (a proxy refused it): "+st.Message())
			return
		}
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("HTTP %d instead of a gRPC answer: %s", code, st.Message()))
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
		// The server (or the proxy in front of it, speaking gRPC) answered
		// with a status: the destination was reached.
		a.set(Allowed, KindAnswered, fmt.Sprintf("the server answered with gRPC status %s: %s", st.Code(), st.Message()))
	}
}
