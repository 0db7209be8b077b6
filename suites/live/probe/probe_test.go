package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	echoserver "github.com/meshconform/meshconform/fixtures/echo/server"
	greeterserver "github.com/meshconform/meshconform/fixtures/greeter/server"
	"github.com/meshconform/meshconform/fixtures/tlsgen"
)

// The servers below are real local sockets behaving like the things the
// probe meets in a cluster: the echo fixture, Envoy's block_all 502, a
// BlackHoleCluster reset, a peer that closes, a port nobody listens on, a
// listener that never answers. The verdict never depends on how long the
// machine takes; only the timeout case needs the (generous) timeout to pass.

const testTimeout = 2 * time.Second

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func run(t *testing.T, q Request) Result {
	t.Helper()
	if q.Timeout == 0 {
		q.Timeout = testTimeout
	}
	r := Run(context.Background(), q)
	t.Logf("%s", r)
	for _, s := range r.Steps {
		t.Logf("  %s", s)
	}
	return r
}

func want(t *testing.T, r Result, o Outcome, kind string) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("probe error: %s", r.Error)
	}
	if r.Outcome != o || r.Kind != kind {
		t.Fatalf("got %s/%s (%s), want %s/%s", r.Outcome, r.Kind, r.Detail, o, kind)
	}
}

// listen starts a TCP listener whose connections are handled by h.
func listen(t *testing.T, h func(net.Conn)) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h(c)
		}
	}()
	return hostPort(t, ln.Addr().String())
}

// resetAfterConnect accepts and resets at once, as Envoy's BlackHoleCluster
// (tcp_proxy to a cluster without endpoints) does.
func resetAfterConnect(c net.Conn) {
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// resetAfterFirstRead waits for the client's first bytes, then resets.
func resetAfterFirstRead(c net.Conn) {
	buf := make([]byte, 1)
	_, _ = c.Read(buf)
	resetAfterConnect(c)
}

func closeAfterConnect(c net.Conn) { c.Close() }

// silent accepts and never answers.
func silent(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(io.Discard, c)
}

func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p := hostPort(t, ln.Addr().String())
	ln.Close()
	return p
}

func TestHTTPEchoAllowed(t *testing.T) {
	srv := httptest.NewServer(echoserver.Handler())
	defer srv.Close()
	h, p := hostPort(t, srv.Listener.Addr().String())
	r := run(t, Request{Protocol: HTTP, Host: "echo.external.test", Address: h, Port: p})
	want(t, r, Allowed, KindAnswered)
	if r.SourceIP != "127.0.0.1" || r.SourcePort == 0 {
		t.Errorf("source %s:%d, want 127.0.0.1:<port>", r.SourceIP, r.SourcePort)
	}
	if r.HTTPStatus != 200 {
		t.Errorf("status %d", r.HTTPStatus)
	}
}

// TestHTTP502Classification: Istio's block_all is an Envoy direct
// response 502 without a body; it is the mesh's block with or without a
// server header (meshConfig proxyHeaders can drop or rename it). A 502 with
// a body or with x-envoy-upstream-service-time came from an upstream.
func TestHTTP502Classification(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   string
		upstream string
		body     string
		want     Outcome
		kind     string
		evidence []string
	}{
		{"block_all with server: envoy", "envoy", "", "", BlockedByMesh, KindHTTPStatus, []string{"empty body", "content-length 0", "no x-envoy-upstream-service-time", "server: envoy"}},
		{"block_all without server header", "", "", "", BlockedByMesh, KindHTTPStatus, []string{"empty body", "no server header"}},
		{"block_all with a renamed server header", "istio-envoy", "", "", BlockedByMesh, KindHTTPStatus, []string{"server: istio-envoy"}},
		{"upstream 502 through envoy", "envoy", "3", "", Unreachable, KindForeignAnswer, []string{"x-envoy-upstream-service-time 3"}},
		{"502 with a body", "nginx", "", "Bad Gateway", Unreachable, KindForeignAnswer, []string{"11-byte body", "server: nginx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.server != "" {
					w.Header().Set("Server", tc.server)
				}
				if tc.upstream != "" {
					w.Header().Set("X-Envoy-Upstream-Service-Time", tc.upstream)
				}
				if tc.body == "" {
					w.Header().Set("Content-Length", "0")
				}
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			h, p := hostPort(t, srv.Listener.Addr().String())
			r := run(t, Request{Protocol: HTTP, Host: "example.com", Address: h, Port: p})
			want(t, r, tc.want, tc.kind)
			if r.Server != tc.server || r.HTTPStatus != 502 {
				t.Errorf("evidence: status %d server %q", r.HTTPStatus, r.Server)
			}
			for _, e := range tc.evidence {
				if !strings.Contains(r.Detail, e) {
					t.Errorf("detail lacks %q: %s", e, r.Detail)
				}
			}
		})
	}
}

func TestHTTPForeignAnswersAreNotAllowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		server string
	}{
		{"200 without echo header", 200, "nginx"},
		{"502 not from envoy", 502, "nginx"},
		{"503 from envoy", 503, "envoy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Server", tc.server)
				w.WriteHeader(tc.status)
				io.WriteString(w, "hello")
			}))
			defer srv.Close()
			h, p := hostPort(t, srv.Listener.Addr().String())
			want(t, run(t, Request{Protocol: HTTP, Address: h, Port: p}), Unreachable, KindForeignAnswer)
		})
	}
}

func TestConnectionLevelClassification(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(net.Conn)
		proto   string
		want    Outcome
		kinds   []string
	}{
		{"HTTP reset after connect", resetAfterConnect, HTTP, BlockedByMesh, []string{KindReset, KindEOF}},
		{"HTTP reset after request", resetAfterFirstRead, HTTP, BlockedByMesh, []string{KindReset}},
		{"HTTP closed without answer", closeAfterConnect, HTTP, BlockedByMesh, []string{KindEOF, KindReset}},
		{"HTTP silent", silent, HTTP, Unreachable, []string{KindTimeout}},
		{"TCP reset after connect", resetAfterConnect, TCP, BlockedByMesh, []string{KindReset, KindEOF}},
		{"TCP reset after line", resetAfterFirstRead, TCP, BlockedByMesh, []string{KindReset}},
		{"TCP closed", closeAfterConnect, TCP, BlockedByMesh, []string{KindEOF, KindReset}},
		{"TCP silent", silent, TCP, Unreachable, []string{KindTimeout}},
		{"TLS reset during handshake", resetAfterFirstRead, TLS, BlockedByMesh, []string{KindReset}},
		{"TLS closed during handshake", closeAfterConnect, TLS, BlockedByMesh, []string{KindEOF, KindReset}},
		{"HTTPS reset during handshake", resetAfterFirstRead, HTTPS, BlockedByMesh, []string{KindReset}},
		{"MySQL reset before greeting", resetAfterConnect, MySQL, BlockedByMesh, []string{KindReset, KindEOF}},
		{"MySQL closed before greeting", closeAfterConnect, MySQL, BlockedByMesh, []string{KindEOF, KindReset}},
		{"MySQL client-first server", silent, MySQL, Unreachable, []string{KindNoGreeting}},
		{"gRPC reset", resetAfterFirstRead, GRPC, BlockedByMesh, []string{KindReset}},
		{"gRPC closed", closeAfterConnect, GRPC, BlockedByMesh, []string{KindEOF, KindReset}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, p := listen(t, tc.handler)
			q := Request{Protocol: tc.proto, Host: "target.test", Address: h, Port: p, MySQLUser: "bookinfo", Plaintext: true}
			if tc.proto == GRPC {
				q.Plaintext = false // a TLS handshake the peer cuts
			}
			r := run(t, q)
			if r.Error != "" {
				t.Fatalf("probe error: %s", r.Error)
			}
			if r.Outcome != tc.want || !contains(tc.kinds, r.Kind) {
				t.Fatalf("got %s/%s (%s), want %s/%v", r.Outcome, r.Kind, r.Detail, tc.want, tc.kinds)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRefusedIsUnreachable(t *testing.T) {
	for _, proto := range []string{HTTP, HTTPS, TLS, TCP, MySQL, GRPC} {
		t.Run(proto, func(t *testing.T) {
			r := run(t, Request{Protocol: proto, Address: "127.0.0.1", Port: closedPort(t), MySQLUser: "x", Plaintext: true})
			want(t, r, Unreachable, KindRefused)
		})
	}
}

func TestClassifyErrors(t *testing.T) {
	op := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: &osSyscallError{err}} }
	for _, tc := range []struct {
		err  error
		o    Outcome
		kind string
	}{
		{op(syscall.EHOSTUNREACH), Unreachable, KindNoRoute},
		{op(syscall.ENETUNREACH), Unreachable, KindNoRoute},
		{op(syscall.ECONNREFUSED), Unreachable, KindRefused},
		{op(syscall.ECONNRESET), BlockedByMesh, KindReset},
		{io.EOF, BlockedByMesh, KindEOF},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), BlockedByMesh, KindEOF},
		{context.DeadlineExceeded, Unreachable, KindTimeout},
		{&net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}, Unreachable, KindDNS},
		{tls.AlertError(40), BlockedByMesh, KindTLSAlert},
		{errors.New("something odd"), Unreachable, KindError},
	} {
		o, k := Classify(tc.err)
		if o != tc.o || k != tc.kind {
			t.Errorf("Classify(%v) = %s/%s, want %s/%s", tc.err, o, k, tc.o, tc.kind)
		}
	}
}

type osSyscallError struct{ err error }

func (e *osSyscallError) Error() string { return "connect: " + e.err.Error() }
func (e *osSyscallError) Unwrap() error { return e.err }

func TestTCPEchoAllowed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan echoserver.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- echoserver.Run(ctx, echoserver.Config{TCPAddrs: []string{"127.0.0.1:0"}}, log.New(io.Discard, "", 0), func(a echoserver.Addrs) { ready <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	a := <-ready
	h, p := hostPort(t, a.TCP[0].String())
	r := run(t, Request{Protocol: TCP, Address: h, Port: p})
	want(t, r, Allowed, KindAnswered)
	if r.SourceIP != "127.0.0.1" {
		t.Errorf("source %q", r.SourceIP)
	}
	// A line-echo server that is not the echo fixture is a foreign answer.
	h2, p2 := listen(t, func(c net.Conn) { defer c.Close(); io.Copy(c, c) })
	want(t, run(t, Request{Protocol: TCP, Address: h2, Port: p2}), Unreachable, KindForeignAnswer)
}

// tlsFixture issues a CA and a certificate for names into dir.
func tlsFixture(t *testing.T, names ...string) (*tlsgen.CA, *tlsgen.Cert, string, string) {
	t.Helper()
	ca, err := tlsgen.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(names)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := cert.WriteFiles(t.TempDir(), "tls.crt", "tls.key")
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert, certFile, keyFile
}

func TestTLSAndHTTPS(t *testing.T) {
	ca, cert, _, _ := tlsFixture(t, "echo.external.test")
	tc, err := cert.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(echoserver.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	h, p := hostPort(t, srv.Listener.Addr().String())
	base := Request{Host: "echo.external.test", Address: h, Port: p, CAPEM: ca.CertPEM()}

	for _, proto := range []string{HTTPS, TLS} {
		q := base
		q.Protocol = proto
		r := run(t, q)
		want(t, r, Allowed, KindAnswered)
		if r.SourceIP != "127.0.0.1" {
			t.Errorf("%s: source %q", proto, r.SourceIP)
		}
	}

	other, _ := tlsgen.NewCA()
	q := base
	q.Protocol, q.CAPEM = TLS, other.CertPEM()
	want(t, run(t, q), Unreachable, KindTLSVerify)

	q = base
	q.Protocol, q.SNI = HTTPS, "wrong.example"
	want(t, run(t, q), Unreachable, KindTLSVerify)
}

func TestTLSAlertIsBlocked(t *testing.T) {
	ca, _, _, _ := tlsFixture(t, "x.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate for this SNI")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	h, p := hostPort(t, ln.Addr().String())
	r := run(t, Request{Protocol: TLS, Host: "x.test", Address: h, Port: p, CAPEM: ca.CertPEM()})
	want(t, r, BlockedByMesh, KindTLSAlert)
	if r.TLSAlert == "" {
		t.Error("no TLS alert recorded")
	}
}

func TestGRPCGreeter(t *testing.T) {
	ca, _, certFile, keyFile := tlsFixture(t, "greeter.external.test")
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ plain, tls net.Addr }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- greeterserver.Run(ctx, greeterserver.Config{PlainAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile},
			log.New(io.Discard, "", 0), func(p, s net.Addr) { ready <- addrs{p, s} })
	}()
	t.Cleanup(func() { cancel(); <-done })
	a := <-ready
	h, p := hostPort(t, a.plain.String())
	r := run(t, Request{Protocol: GRPC, Address: h, Port: p, Plaintext: true})
	want(t, r, Allowed, KindAnswered)
	if r.SourceIP != "127.0.0.1" {
		t.Errorf("plaintext: source %q", r.SourceIP)
	}
	h, p = hostPort(t, a.tls.String())
	r = run(t, Request{Protocol: GRPC, Host: "greeter.external.test", Address: h, Port: p, CAPEM: ca.CertPEM()})
	want(t, r, Allowed, KindAnswered)
	if r.SourceIP != "127.0.0.1" {
		t.Errorf("tls: source %q", r.SourceIP)
	}
	// A wrong SNI against a server that presents its certificate anyway
	// fails verification (a gateway would close instead: see the reset cases).
	r = run(t, Request{Protocol: GRPC, Host: "greeter.external.test", SNI: "wrong.test", Address: h, Port: p, CAPEM: ca.CertPEM()})
	want(t, r, Unreachable, KindTLSVerify)
}

// TestMainJSONAndPasswordFromEnv tests the agent's command line: one JSON
// result, the password taken from the environment, usage errors exit 2.
// The server resets on connect, so the password never reaches an auth
// exchange here; that it is never printed on the auth path is asserted
// against the real database in TestMySQLAgainstTheFixture.
func TestMainJSONAndPasswordFromEnv(t *testing.T) {
	h, p := listen(t, resetAfterConnect)
	var out, errb bytes.Buffer
	args := []string{"--json", "--protocol", "mysql", "--address", h, "--port", strconv.Itoa(p), "--mysql-user", "bookinfo", "--mysql-password-env", "PW", "--query", "SELECT 1"}
	code := runMain(context.Background(), args, &out, &errb, func(k string) string {
		if k == "PW" {
			return "s3cret-never-printed"
		}
		return ""
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), "s3cret") {
		t.Fatal("the password was printed")
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not one JSON Result: %v\n%s", err, out.String())
	}
	if r.Outcome != BlockedByMesh || r.Protocol != MySQL {
		t.Fatalf("got %+v", r)
	}
	// Missing password variable and bad flags are usage errors (exit 2).
	if code := runMain(context.Background(), args, io.Discard, io.Discard, func(string) string { return "" }); code != 2 {
		t.Errorf("empty password env: exit %d, want 2", code)
	}
	if code := runMain(context.Background(), []string{"--protocol", "smtp", "--port", "25", "--host", "x"}, io.Discard, io.Discard, func(string) string { return "" }); code != 2 {
		t.Errorf("bad protocol: exit %d, want 2", code)
	}
}
