package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Printer writes progress lines with the time since the run started:
//
//	[ 12.3s] cluster: created meshconform (kind, node image ...)
//	[ 14.0s]   loaded image image=meshconform/agent:1a2b nodes=1
//
// Phase lines are always printed; library log lines (Logger) at Info and
// above are indented under them, Debug only when verbose.
type Printer struct {
	mu      sync.Mutex
	w       io.Writer
	start   time.Time
	verbose bool
}

// NewPrinter prints to w, timing from start.
func NewPrinter(w io.Writer, start time.Time, verbose bool) *Printer {
	if w == nil {
		w = io.Discard
	}
	return &Printer{w: w, start: start, verbose: verbose}
}

// Verbose reports whether details are printed.
func (p *Printer) Verbose() bool { return p.verbose }

// Phase prints one progress line of phase.
func (p *Printer) Phase(phase, format string, args ...any) {
	p.line(phase+": "+fmt.Sprintf(format, args...), "")
}

func (p *Printer) line(msg, indent string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s%s\n", time.Since(p.start).Seconds(), indent, msg)
}

// Logger returns a slog.Logger printing through p: Info and above always,
// Debug when verbose.
func (p *Printer) Logger() *slog.Logger { return slog.New(&printerHandler{p: p}) }

// Printf is fixtures.Logger: details, shown when verbose.
func (p *Printer) Printf(format string, args ...any) {
	if p.verbose {
		p.line(fmt.Sprintf(format, args...), "  ")
	}
}

type printerHandler struct {
	p     *Printer
	attrs []slog.Attr
	group string
}

func (h *printerHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.p.verbose
}

func (h *printerHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if r.Level >= slog.LevelWarn {
		b.WriteString(strings.ToLower(r.Level.String()) + ": ")
	}
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		k := a.Key
		if h.group != "" {
			k = h.group + "." + k
		}
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t\n\"") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.p.line(b.String(), "  ")
	return nil
}

func (h *printerHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}

func (h *printerHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}
