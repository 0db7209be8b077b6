package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// EchoHeader is the header the echo fixture sets on every answer
// (fixtures/echo/server.Header), so an answer from anything else (Envoy,
// a captive proxy) is never mistaken for the target's.
const EchoHeader = "x-meshconform-echo"

// echoReply is the echo fixture's JSON answer (fixtures/echo/server.Reply).
type echoReply struct {
	SourceIP   string `json:"sourceIP"`
	SourcePort int    `json:"sourcePort"`
	Host       string `json:"host"`
	SNI        string `json:"sni"`
	Proto      string `json:"proto"`
}

// http sends one GET and classifies the answer: the echo header means the
// target answered (Allowed); a 502 with the hallmarks of Istio's block_all
// route (see meshBlock) is the mesh's block (BlockedByMesh); any other
// answer comes from something that is not the target (Unreachable,
// foreign-answer).
func (a *attempt) http(ctx context.Context) {
	tr := &http.Transport{
		DialContext:           a.dialContext,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: a.q.timeout(),
		TLSHandshakeTimeout:   a.q.timeout(),
		TLSClientConfig:       a.tlsConfig(), // ServerName is the SNI, not the dialled address
		ForceAttemptHTTP2:     false,
		Proxy:                 nil,
	}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if a.q.Protocol == HTTPS {
		scheme = "https"
	}
	path := a.q.Path
	if path == "" {
		path = "/"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, a.q.addr(), path)
	rctx, cancel := context.WithTimeout(ctx, 3*a.q.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		a.r.Error = "build request: " + err.Error()
		return
	}
	if a.q.Host != "" {
		req.Host = a.q.Host
	}
	req.Header.Set("User-Agent", "meshconform-probe")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		phase := "HTTP request"
		if scheme == "https" && strings.Contains(err.Error(), "tls") {
			phase = "TLS handshake"
		}
		a.fail(phase, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a.r.HTTPStatus = resp.StatusCode
	a.r.Server = resp.Header.Get("Server")
	a.step("HTTP %s %s: %d, server %q, %s %q", req.Method, req.Host, resp.StatusCode, a.r.Server, EchoHeader, resp.Header.Get(EchoHeader))
	a.classifyHTTP(resp.StatusCode, resp.Header, body)
}

func (a *attempt) classifyHTTP(status int, h http.Header, body []byte) {
	server := h.Get("Server")
	switch {
	case h.Get(EchoHeader) == "1":
		var rep echoReply
		if err := json.Unmarshal(body, &rep); err != nil {
			a.set(Allowed, KindAnswered, fmt.Sprintf("HTTP %d from the echo target (body not understood: %v)", status, err))
			return
		}
		a.r.SourceIP, a.r.SourcePort = rep.SourceIP, rep.SourcePort
		a.r.Reply = shorten(string(body), 300)
		a.set(Allowed, KindAnswered, fmt.Sprintf("HTTP %d from the echo target (host %q, sni %q, %s)", status, rep.Host, rep.SNI, rep.Proto))
	case status == http.StatusBadGateway:
		seen, block := meshBlock(h, body)
		if block {
			a.set(BlockedByMesh, KindHTTPStatus, "HTTP 502 with "+seen+": the proxy's block_all direct response")
			return
		}
		a.set(Unreachable, KindForeignAnswer, "HTTP 502 with "+seen+": an upstream's error passed through, not the mesh's block")
	default:
		desc := fmt.Sprintf("HTTP %d", status)
		if server != "" {
			desc += " from server " + server
		}
		a.set(Unreachable, KindForeignAnswer, desc+" without the "+EchoHeader+" header: something other than the target answered ("+shorten(string(body), 120)+")")
	}
}

// meshBlock says whether a 502 without the echo header is Istio's
// block_all route and what was seen. That route is an Envoy
// direct_response 502 without a body (istio pilot/pkg/networking/core
// httproute.go), so: an empty body (content-length 0) and no
// x-envoy-upstream-service-time (no upstream was asked). The server header
// is reported but not required: meshConfig proxyHeaders can remove or
// rename it.
func meshBlock(h http.Header, body []byte) (seen string, block bool) {
	var parts []string
	block = len(body) == 0
	if block {
		parts = append(parts, "an empty body")
	} else {
		parts = append(parts, fmt.Sprintf("a %d-byte body %q", len(body), shorten(string(body), 60)))
	}
	if cl := h.Get("Content-Length"); cl != "" {
		parts = append(parts, "content-length "+cl)
	}
	if v := h.Get("X-Envoy-Upstream-Service-Time"); v != "" {
		block = false
		parts = append(parts, "x-envoy-upstream-service-time "+v+" (an upstream answered)")
	} else {
		parts = append(parts, "no x-envoy-upstream-service-time")
	}
	parts = append(parts, "no "+EchoHeader)
	if sv := h.Get("Server"); sv != "" {
		parts = append(parts, "server: "+sv)
	} else {
		parts = append(parts, "no server header")
	}
	return strings.Join(parts, ", "), block
}

func tlsAlertText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "remote error: "); i >= 0 {
		return s[i+len("remote error: "):]
	}
	return s
}

// tls completes a TLS handshake with SNI (opaque to the mesh: Allowed once
// the target's certificate verified), then asks the echo target over the
// same connection who it saw (best effort: a target that does not speak
// HTTP stays Allowed without a source address).
func (a *attempt) tls(ctx context.Context) {
	c, err := a.dial(ctx)
	if err != nil {
		a.fail("dial", err)
		return
	}
	defer c.Close()
	tc, err := a.tlsHandshake(ctx, c, "http/1.1")
	if err != nil {
		a.fail("TLS handshake", err)
		return
	}
	a.set(Allowed, KindAnswered, "TLS handshake completed; the certificate for "+a.q.serverName()+" verified against the CA")
	_ = tc.SetDeadline(time.Now().Add(a.q.timeout()))
	host := a.q.Host
	if host == "" {
		host = a.q.serverName()
	}
	if _, err := fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshconform-probe\r\nConnection: close\r\n\r\n", host); err != nil {
		a.step("HTTP over TLS: write: %v (ignored)", err)
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		a.step("HTTP over TLS: %v (ignored: the handshake decided)", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.Header.Get(EchoHeader) == "1" {
		var rep echoReply
		if json.Unmarshal(body, &rep) == nil {
			a.r.SourceIP, a.r.SourcePort = rep.SourceIP, rep.SourcePort
			a.step("echo over TLS: seen as %s:%d", rep.SourceIP, rep.SourcePort)
		}
	}
}

// tcp speaks the echo fixture's client-first line protocol: send a line,
// expect "source=<ip>:<port> <line>" back. A reset or EOF before the answer
// is the mesh closing the connection (BlackHoleCluster).
func (a *attempt) tcp(ctx context.Context) {
	c, err := a.dial(ctx)
	if err != nil {
		a.fail("dial", err)
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	line := fmt.Sprintf("meshconform-probe %d", time.Now().UnixNano())
	_ = c.SetDeadline(time.Now().Add(a.q.timeout()))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		a.fail("write", err)
		return
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && reply == "" {
		a.fail("read", err)
		return
	}
	a.r.Reply = shorten(reply, 200)
	a.step("read %q", a.r.Reply)
	rest, ok := strings.CutPrefix(strings.TrimRight(reply, "\r\n"), "source=")
	src, echoed, _ := strings.Cut(rest, " ")
	if !ok || echoed != line {
		a.set(Unreachable, KindForeignAnswer, fmt.Sprintf("answer %q is not the echo target's: something other than the target answered", a.r.Reply))
		return
	}
	a.r.SourceIP, a.r.SourcePort = splitHostPort(src)
	a.set(Allowed, KindAnswered, "the echo target answered the line")
}
