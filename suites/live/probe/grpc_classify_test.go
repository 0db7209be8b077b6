package probe

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	greeterserver "github.com/meshconform/meshconform/fixtures/greeter/server"
)

// startGreeter runs the real greeter fixture server on loopback (h2c).
func startGreeter(t *testing.T) (string, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- greeterserver.Run(ctx, greeterserver.Config{PlainAddr: "127.0.0.1:0"}, log.New(io.Discard, "", 0),
			func(p, _ net.Addr) { ready <- p })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return hostPort(t, (<-ready).String())
}

// startEnvoyLocalReply runs a real HTTP/2 (h2c) server that answers every
// request the way Envoy answers a gRPC client with a local reply
// (sendLocalReply for a gRPC request): one HEADERS frame with END_STREAM
// carrying :status 200, content-type application/grpc, grpc-status and
// grpc-message (trailers-only), and a server header unless server is "".
func startEnvoyLocalReply(t *testing.T, grpcStatus int, message, server string) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/grpc")
			h.Set("Grpc-Status", strconv.Itoa(grpcStatus))
			h.Set("Grpc-Message", message)
			if server != "" {
				h.Set("Server", server)
			}
			w.WriteHeader(http.StatusOK) // no body, no flush: trailers-only
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return hostPort(t, ln.Addr().String())
}

// TestGRPCClassification: a gRPC verdict of Allowed only when the greeter
// itself answered (its header on OK and error statuses); Envoy's
// trailers-only local replies, with or without a server header, are the
// mesh's block with the status and the server header in the evidence.
func TestGRPCClassification(t *testing.T) {
	gh, gp := startGreeter(t)
	for _, tc := range []struct {
		name     string
		addr     func(t *testing.T) (string, int)
		request  string // HelloRequest name ("" = default)
		want     Outcome
		kind     string
		evidence []string
	}{
		{"greeter OK", func(*testing.T) (string, int) { return gh, gp }, "", Allowed, KindAnswered, []string{GreeterHeader}},
		{"greeter error status", func(*testing.T) (string, int) { return gh, gp }, greeterserver.FailPrefix + "NOT_FOUND", Allowed, KindAnswered, []string{"NotFound", GreeterHeader}},
		{"greeter UNAVAILABLE is still the greeter", func(*testing.T) (string, int) { return gh, gp }, greeterserver.FailPrefix + "UNAVAILABLE", Allowed, KindAnswered, []string{"Unavailable"}},
		{"envoy UNIMPLEMENTED (no route) with server: envoy", func(t *testing.T) (string, int) { return startEnvoyLocalReply(t, 12, "", "envoy") }, "",
			BlockedByMesh, KindGRPCStatus, []string{"Unimplemented", "trailers-only", "server: envoy", "no route"}},
		{"envoy UNIMPLEMENTED without server header", func(t *testing.T) (string, int) { return startEnvoyLocalReply(t, 12, "", "") }, "",
			BlockedByMesh, KindGRPCStatus, []string{"Unimplemented", "trailers-only", "no server header"}},
		{"envoy PERMISSION_DENIED (RBAC) with server: envoy", func(t *testing.T) (string, int) {
			return startEnvoyLocalReply(t, 7, "RBAC: access denied", "envoy")
		}, "", BlockedByMesh, KindGRPCStatus, []string{"PermissionDenied", "RBAC: access denied", "server: envoy"}},
		{"envoy PERMISSION_DENIED without server header", func(t *testing.T) (string, int) {
			return startEnvoyLocalReply(t, 7, "RBAC: access denied", "")
		}, "", BlockedByMesh, KindGRPCStatus, []string{"PermissionDenied", "no server header"}},
		{"envoy UNAVAILABLE (no healthy upstream) with server: envoy", func(t *testing.T) (string, int) {
			return startEnvoyLocalReply(t, 14, "no healthy upstream", "envoy")
		}, "", BlockedByMesh, KindGRPCStatus, []string{"Unavailable", "no healthy upstream", "server: envoy"}},
		{"envoy UNAVAILABLE with a renamed server header", func(t *testing.T) (string, int) {
			return startEnvoyLocalReply(t, 14, "", "istio-envoy")
		}, "", BlockedByMesh, KindGRPCStatus, []string{"Unavailable", "server: istio-envoy"}},
		{"foreign NOT_FOUND without the greeter header", func(t *testing.T) (string, int) { return startEnvoyLocalReply(t, 5, "nope", "nginx") }, "",
			Unreachable, KindForeignAnswer, []string{"NotFound", "server: nginx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, p := tc.addr(t)
			r := run(t, Request{Protocol: GRPC, Address: h, Port: p, Plaintext: true, Name: tc.request})
			want(t, r, tc.want, tc.kind)
			all := r.Detail + " " + strings.Join(r.Steps, " ")
			for _, e := range tc.evidence {
				if !strings.Contains(all, e) {
					t.Errorf("evidence lacks %q: %s", e, all)
				}
			}
		})
	}
}

func TestGreeterHeaderMatchesFixture(t *testing.T) {
	if GreeterHeader != greeterserver.Header {
		t.Fatalf("probe.GreeterHeader %q != greeter server.Header %q", GreeterHeader, greeterserver.Header)
	}
}

// TestClassifyWindowsTexts: on native Windows a reset and a refusal are
// WSAECONNRESET/WSAECONNREFUSED, known here only by their texts.
func TestClassifyWindowsTexts(t *testing.T) {
	for text, want := range map[string]string{
		"read tcp 127.0.0.1:5000->127.0.0.1:443: wsarecv: An existing connection was forcibly closed by the remote host.": KindReset,
		"dial tcp 127.0.0.1:443: connectex: No connection could be made because the target machine actively refused it.":  KindRefused,
	} {
		if _, kind := Classify(errors.New(text)); kind != want {
			t.Errorf("%q: %s, want %s", text, kind, want)
		}
	}
}
