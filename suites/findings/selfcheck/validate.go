package selfcheck

import (
	"fmt"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"istio.io/istio/pilot/test/xdstest"
)

// recorder is the testing.TB Istio's xdstest validators report to: it
// records Errorf/Error and stops the validator on Fatal/Fatalf. Only the
// methods those validators call are implemented; the embedded nil TB is
// never reached (xdstest uses Helper, Errorf, Fatalf).
type recorder struct {
	testing.TB
	errs []string
}

type stop struct{}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(stop{})
}
func (r *recorder) Fatal(args ...any)   { r.Error(args...); panic(stop{}) }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Log(...any)          {}

// run calls fn with the recorder and returns what it reported.
func (r *recorder) run(fn func(t testing.TB)) []string {
	r.errs = nil
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stop); !ok {
					r.errs = append(r.errs, fmt.Sprintf("validator panicked: %v", p))
				}
			}
		}()
		fn(r)
	}()
	return r.errs
}

// rejection is one reason Envoy would refuse a generated resource.
type rejection struct {
	resource string // "listener 0.0.0.0_443" / "cluster outbound|..."
	problem  string
}

// validate applies Istio's own xDS validation to one proxy's listeners
// and clusters.
func validate(ls []*listener.Listener, cs []*cluster.Cluster) []rejection {
	var out []rejection
	r := &recorder{}
	for _, l := range ls {
		for _, e := range r.run(func(t testing.TB) { xdstest.ValidateListener(t, l) }) {
			out = append(out, rejection{"listener " + l.GetName(), firstLine(e)})
		}
	}
	// Duplicate names and addresses across listeners.
	for _, e := range r.run(func(t testing.TB) { dupListeners(t, ls) }) {
		out = append(out, rejection{"listeners", firstLine(e)})
	}
	for _, e := range r.run(func(t testing.TB) { xdstest.ValidateClusters(t, cs) }) {
		out = append(out, rejection{"clusters", firstLine(e)})
	}
	return out
}

// dupListeners is the cross-listener part of xdstest.ValidateListeners
// (duplicate names and addresses), without re-validating each listener.
func dupListeners(t testing.TB, ls []*listener.Listener) {
	names := map[string]bool{}
	addrs := map[string]bool{}
	for _, l := range ls {
		for _, a := range xdstest.ExtractListenerAddresses(l) {
			if addrs[a] {
				t.Errorf("found duplicate address %s", a)
			}
			addrs[a] = true
		}
		if names[l.GetName()] {
			t.Errorf("duplicate listener name %v", l.GetName())
		}
		names[l.GetName()] = true
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
