package istiomesh

import (
	"context"
	"fmt"
	"strings"

	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/suites/live"
)

// Wrap returns m as a live.Mesh; nil for a nil m (Istio not installed).
func Wrap(m *istio.Mesh) live.Mesh {
	if m == nil {
		return nil
	}
	return adapter{m}
}

type adapter struct{ m *istio.Mesh }

var _ live.Mesh = adapter{}

func (a adapter) Version() string { return a.m.Version() }

func (a adapter) Preflight(ctx context.Context, namespace, selector string) error {
	return a.m.Preflight(ctx, namespace, selector)
}

func (a adapter) OutboundPolicy(ctx context.Context) (string, error) { return a.m.OutboundPolicy(ctx) }

// SetOutboundPolicy takes the pods to wait for as "namespace/name".
func (a adapter) SetOutboundPolicy(ctx context.Context, policy string, waitFor ...string) (func(context.Context) error, error) {
	refs := make([]istio.PodRef, 0, len(waitFor))
	for _, w := range waitFor {
		ns, name, ok := strings.Cut(w, "/")
		if !ok {
			return nil, fmt.Errorf("set outbound policy: pod %q: want namespace/name", w)
		}
		refs = append(refs, istio.PodRef{Namespace: ns, Name: name})
	}
	return a.m.SetOutboundPolicy(ctx, policy, refs...)
}

func (a adapter) IngressAddress(ctx context.Context) (string, int, error) {
	return a.m.IngressAddress(ctx)
}

func (a adapter) CreateTLSSecret(ctx context.Context, name string, certPEM, keyPEM []byte) error {
	return a.m.CreateTLSSecret(ctx, name, certPEM, keyPEM)
}
