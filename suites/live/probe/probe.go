package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outcome is the classified result of one attempt. The values are the
// strings of check.Outcome.
type Outcome string

// Outcomes a probe reports.
const (
	Allowed       Outcome = "Allowed"
	BlockedByMesh Outcome = "BlockedByMesh"
	Unreachable   Outcome = "Unreachable"
)

// Protocols a probe speaks (the strings of check.Protocol).
const (
	HTTP  = "HTTP"
	HTTPS = "HTTPS"
	TLS   = "TLS"
	TCP   = "TCP"
	MySQL = "MySQL"
	GRPC  = "GRPC"  // over TLS unless Request.Plaintext
	GRPCS = "GRPCS" // always over TLS (check.GRPCS)
)

// Kinds classify the evidence behind an outcome (Result.Kind).
const (
	KindAnswered      = "answered"       // the target answered as itself
	KindHTTPStatus    = "http-status"    // an HTTP status decided it (e.g. Envoy's 502)
	KindGRPCStatus    = "grpc-status"    // a gRPC status the peer sent decided it (e.g. Envoy's local reply)
	KindForeignAnswer = "foreign-answer" // something other than the target answered
	KindReset         = "reset"          // connection reset by peer
	KindEOF           = "eof"            // connection closed without a byte / mid-handshake
	KindTLSAlert      = "tls-alert"      // the peer aborted the TLS handshake with an alert
	KindTLSVerify     = "tls-verify"     // the peer's certificate did not verify against the CA
	KindRefused       = "refused"        // connection refused (nobody listening)
	KindTimeout       = "timeout"        // no answer within the attempt's timeout
	KindNoRoute       = "no-route"       // host or network unreachable
	KindDNS           = "dns"            // the name did not resolve
	KindNoGreeting    = "no-greeting"    // connected, but the MySQL server never spoke
	KindError         = "error"          // anything else (see Detail)
)

// DefaultTimeout bounds each phase of an attempt (dial, handshake, first
// answer). A reset or EOF is immediate; only a timeout verdict waits it out.
const DefaultTimeout = 3 * time.Second

// Request is one connection attempt.
type Request struct {
	// Protocol is HTTP, HTTPS, TLS, TCP, MySQL or GRPC.
	Protocol string
	// Host is the DNS name: HTTP Host header, gRPC authority, default SNI,
	// and the address to dial when Address is empty.
	Host string
	// Address is the IP (or name) to connect to; default Host.
	Address string
	// Port is the destination port.
	Port int
	// SNI overrides the TLS server name (default Host).
	SNI string
	// CAPEM verifies the server certificate (HTTPS, TLS, GRPC over TLS).
	// Empty means the system roots.
	CAPEM []byte
	// Timeout bounds each phase (default DefaultTimeout).
	Timeout time.Duration
	// MySQLUser and MySQLPassword log in; Query is the SQL to run
	// (default "SELECT 1").
	MySQLUser     string
	MySQLPassword string
	Query         string
	// Plaintext makes GRPC skip TLS (GRPCS always uses TLS).
	Plaintext bool
	// Name is sent in SayHello (default "meshconform").
	Name string
	// Path is the HTTP request path (default "/").
	Path string
}

// Duration marshals as milliseconds in JSON.
type Duration time.Duration

// MarshalJSON writes whole milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatInt(time.Duration(d).Milliseconds(), 10)), nil
}

// UnmarshalJSON reads milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration: want milliseconds, got %s", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// Result is what one attempt observed; `meshconform-agent probe --json`
// prints it as one JSON object.
type Result struct {
	// Outcome is Allowed, BlockedByMesh or Unreachable ("" with Error).
	Outcome Outcome `json:"outcome,omitempty"`
	// Kind is the class of evidence (Kind* constants); Detail says it in words.
	Kind   string `json:"kind,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Protocol and Target ("host (address:port)") echo the request.
	Protocol string `json:"protocol"`
	Target   string `json:"target"`
	// HTTPStatus and Server are the HTTP answer's status and server header.
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Server     string `json:"server,omitempty"`
	// TLSAlert is the alert the peer sent, if the handshake was aborted.
	TLSAlert string `json:"tlsAlert,omitempty"`
	// SourceIP and SourcePort are the client address the target reported
	// (echo JSON, TCP echo line, greeter reply).
	SourceIP   string `json:"sourceIP,omitempty"`
	SourcePort int    `json:"sourcePort,omitempty"`
	// Reply is the target's answer (TCP line, gRPC message), shortened.
	Reply string `json:"reply,omitempty"`
	// Rows are the MySQL rows, columns joined by ",".
	Rows []string `json:"rows,omitempty"`
	// SQLError and SQLMessage are the MySQL server error, if the query failed.
	SQLError   int    `json:"sqlError,omitempty"`
	SQLMessage string `json:"sqlMessage,omitempty"`
	// LocalAddr is the client's own address for the connection.
	LocalAddr string `json:"localAddr,omitempty"`
	// Elapsed is the attempt's duration.
	Elapsed Duration `json:"elapsedMs"`
	// Steps trace the attempt ("dial 10.0.0.1:80 ok in 2ms", ...).
	Steps []string `json:"steps,omitempty"`
	// Error is set when the attempt could not be made at all (bad request).
	Error string `json:"error,omitempty"`
}

// String is a one-line summary.
func (r Result) String() string {
	if r.Error != "" {
		return fmt.Sprintf("%s %s: error: %s", r.Protocol, r.Target, r.Error)
	}
	s := fmt.Sprintf("%s %s: %s (%s: %s)", r.Protocol, r.Target, r.Outcome, r.Kind, r.Detail)
	if r.SourceIP != "" {
		s += " seen as " + r.SourceIP
	}
	return s
}

// Validate reports what is wrong with the request.
func (q Request) Validate() error {
	switch q.Protocol {
	case HTTP, HTTPS, TLS, TCP, MySQL, GRPC, GRPCS:
	default:
		return fmt.Errorf("protocol %q: use one of HTTP, HTTPS, TLS, TCP, MySQL, GRPC, GRPCS", q.Protocol)
	}
	if q.Protocol == GRPCS && q.Plaintext {
		return errors.New("GRPCS is gRPC over TLS: drop --plaintext or use GRPC")
	}
	if q.Host == "" && q.Address == "" {
		return errors.New("no destination: set --host or --address")
	}
	if q.Port <= 0 || q.Port > 65535 {
		return fmt.Errorf("port %d: use 1-65535", q.Port)
	}
	if q.Timeout < 0 {
		return fmt.Errorf("timeout %v is negative: use a positive duration", q.Timeout)
	}
	if q.Protocol == MySQL && q.MySQLUser == "" {
		return errors.New("MySQL needs a user: set --mysql-user")
	}
	if len(q.CAPEM) > 0 {
		if _, err := caPool(q.CAPEM); err != nil {
			return err
		}
	}
	return nil
}

func (q Request) addr() string {
	a := q.Address
	if a == "" {
		a = q.Host
	}
	return net.JoinHostPort(a, strconv.Itoa(q.Port))
}

func (q Request) serverName() string {
	if q.SNI != "" {
		return q.SNI
	}
	if q.Host != "" {
		return q.Host
	}
	return q.Address
}

func (q Request) target() string {
	if q.Host != "" && q.Address != "" && q.Host != q.Address {
		return fmt.Sprintf("%s (%s)", q.Host, q.addr())
	}
	return q.addr()
}

func (q Request) timeout() time.Duration {
	if q.Timeout <= 0 {
		return DefaultTimeout
	}
	return q.Timeout
}

// Run makes the attempt and classifies it. It never panics on a bad
// destination; a request that cannot be attempted gets Result.Error.
func Run(ctx context.Context, q Request) Result {
	start := time.Now()
	r := Result{Protocol: q.Protocol, Target: q.target()}
	if err := q.Validate(); err != nil {
		r.Error = "invalid probe request: " + err.Error()
		return r
	}
	a := &attempt{q: q, r: &r, start: start}
	switch q.Protocol {
	case HTTP, HTTPS:
		a.http(ctx)
	case TLS:
		a.tls(ctx)
	case TCP:
		a.tcp(ctx)
	case MySQL:
		a.mysql(ctx)
	case GRPC, GRPCS:
		a.grpc(ctx)
	}
	// A gRPC dial may still be in flight in its own goroutine: stop
	// recording before handing the result out.
	a.mu.Lock()
	a.done = true
	r.Elapsed = Duration(time.Since(start))
	out := r
	out.Steps = append([]string(nil), r.Steps...)
	a.mu.Unlock()
	return out
}

// attempt is one Run in progress.
type attempt struct {
	q     Request
	r     *Result
	start time.Time
	track tracker

	mu   sync.Mutex // guards r.Steps and r.LocalAddr against dial goroutines
	done bool
}

func (a *attempt) step(format string, args ...any) {
	line := fmt.Sprintf("[%4dms] ", time.Since(a.start).Milliseconds()) + fmt.Sprintf(format, args...)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.done {
		a.r.Steps = append(a.r.Steps, line)
	}
}

func (a *attempt) set(o Outcome, kind, detail string) {
	a.r.Outcome, a.r.Kind, a.r.Detail = o, kind, detail
}

// fail classifies err, preferring what the connection itself saw (a reset
// or EOF on read beats the wrapper's message).
func (a *attempt) fail(phase string, err error) {
	if low := a.track.lowLevel(); low != nil {
		err = low
	}
	o, kind := Classify(err)
	if kind == KindTLSAlert && a.r.TLSAlert == "" {
		a.r.TLSAlert = tlsAlertText(err)
	}
	a.set(o, kind, phase+": "+explain(kind, err))
	a.step("%s failed: %v -> %s (%s)", phase, err, o, kind)
}

// dial opens a tracked TCP connection.
func (a *attempt) dial(ctx context.Context) (net.Conn, error) {
	return a.dialContext(ctx, "tcp", a.q.addr())
}

func (a *attempt) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: a.q.timeout()}
	t0 := time.Now()
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		a.track.setDialErr(err)
		a.step("dial %s failed after %dms: %v", addr, time.Since(t0).Milliseconds(), err)
		return nil, err
	}
	a.mu.Lock()
	if !a.done {
		a.r.LocalAddr = c.LocalAddr().String()
	}
	a.mu.Unlock()
	a.step("dial %s ok in %dms (local %s)", addr, time.Since(t0).Milliseconds(), c.LocalAddr())
	return &trackedConn{Conn: c, t: &a.track}, nil
}

// tracker remembers the low-level errors of the attempt's connections.
type tracker struct {
	mu        sync.Mutex
	dialErr   error
	readErr   error
	bytesRead int64
}

func (t *tracker) setDialErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dialErr == nil {
		t.dialErr = err
	}
}

func (t *tracker) read(n int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytesRead += int64(n)
	if err != nil && t.readErr == nil && !errors.Is(err, net.ErrClosed) {
		t.readErr = err
	}
}

// lowLevel is the first dial or read error the connection saw, if any.
func (t *tracker) lowLevel() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dialErr != nil {
		return t.dialErr
	}
	return t.readErr
}

func (t *tracker) read0() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytesRead == 0
}

type trackedConn struct {
	net.Conn
	t *tracker
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.read(n, err)
	return n, err
}

// Classify maps a connection error to an outcome and a Kind:
// reset, EOF and TLS alerts are the mesh closing the connection
// (BlockedByMesh); refused, timeouts, no route and DNS failures are the
// network not delivering it (Unreachable), as is a certificate that does
// not verify (something other than the target answered).
func Classify(err error) (Outcome, string) {
	var alert tls.AlertError
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return Allowed, KindAnswered
	case errors.Is(err, syscall.ECONNREFUSED):
		return Unreachable, KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return BlockedByMesh, KindReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Unreachable, KindNoRoute
	case errors.As(err, &alert):
		return BlockedByMesh, KindTLSAlert
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr):
		return Unreachable, KindTLSVerify
	case errors.As(err, &dnsErr):
		return Unreachable, KindDNS
	case isTimeout(err):
		return Unreachable, KindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return BlockedByMesh, KindEOF
	}
	msg := err.Error()
	switch {
	// Native Windows: WSAECONNRESET (10054) and WSAECONNREFUSED (10061)
	// are not syscall.ECONNRESET/ECONNREFUSED there; their texts say
	// "forcibly closed by the remote host" and "actively refused".
	case strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"), strings.Contains(msg, "forcibly closed"):
		return BlockedByMesh, KindReset
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "actively refused"):
		return Unreachable, KindRefused
	case strings.Contains(msg, "remote error: tls"):
		return BlockedByMesh, KindTLSAlert
	case strings.Contains(msg, "certificate"):
		return Unreachable, KindTLSVerify
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "connection closed"):
		return BlockedByMesh, KindEOF
	case strings.Contains(msg, "no route to host"), strings.Contains(msg, "network is unreachable"):
		return Unreachable, KindNoRoute
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline exceeded"):
		return Unreachable, KindTimeout
	}
	return Unreachable, KindError
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func explain(kind string, err error) string {
	switch kind {
	case KindReset:
		return "connection reset by peer (" + err.Error() + ")"
	case KindEOF:
		return "connection closed by peer without an answer (" + err.Error() + ")"
	case KindRefused:
		return "connection refused (" + err.Error() + ")"
	case KindTimeout:
		return "no answer in time (" + err.Error() + ")"
	case KindNoRoute:
		return "no route (" + err.Error() + ")"
	}
	return err.Error()
}

func caPool(pemData []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemData) {
		return nil, errors.New("CA: no PEM certificate found: pass the run's CA certificate file")
	}
	return p, nil
}

// tlsConfig verifies against the request's CA (or the system roots) and
// sends the SNI. There is deliberately no way to skip verification.
func (a *attempt) tlsConfig(nextProtos ...string) *tls.Config {
	cfg := &tls.Config{ServerName: a.q.serverName(), MinVersion: tls.VersionTLS12, NextProtos: nextProtos}
	if len(a.q.CAPEM) > 0 {
		cfg.RootCAs, _ = caPool(a.q.CAPEM) // validated in Validate
	}
	return cfg
}

// tlsHandshake runs a TLS handshake on c and records what happened.
func (a *attempt) tlsHandshake(ctx context.Context, c net.Conn, nextProtos ...string) (*tls.Conn, error) {
	tc := tls.Client(c, a.tlsConfig(nextProtos...))
	hctx, cancel := context.WithTimeout(ctx, a.q.timeout())
	defer cancel()
	t0 := time.Now()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, err
	}
	st := tc.ConnectionState()
	a.step("TLS handshake ok in %dms (sni %s, %s, alpn %q)", time.Since(t0).Milliseconds(), a.q.serverName(), tls.VersionName(st.Version), st.NegotiatedProtocol)
	return tc, nil
}

// splitHostPort parses "ip:port" as reported by a target.
func splitHostPort(s string) (string, int) {
	h, p, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return strings.TrimSpace(s), 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// MarshalIndent renders r for humans.
func (r Result) MarshalIndent() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}
