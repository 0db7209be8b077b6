package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/test"
	"k8s.io/apimachinery/pkg/runtime"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/meshconform/meshconform/suites/check"
)

// ProxyIstioVersion is the proxy version the generated config targets.
const ProxyIstioVersion = "1.31.0"

// server is one running in-process istiod config generator for one set
// of objects and one mesh config, with the simulations built per source.
type server struct {
	key  string
	fake *xds.FakeDiscoveryServer
	mu   sync.Mutex
	sims map[string]*simulation.Simulation
	stop chan struct{}
	done chan error
}

// configKey identifies a (mesh config, objects) pair.
func configKey(mc *meshconfig.MeshConfig, objs []Object) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", mc.GetOutboundTrafficPolicy().GetMode())
	var ids []string
	for _, o := range objs {
		if o.Ignored {
			continue
		}
		ids = append(ids, fmt.Sprintf("%s@%s:%d#%p", o.ID(), o.File, o.Line, o.Istio))
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintln(h, id)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// startServer runs Istio's fake discovery server until close is called.
// test.Wrap runs its function to completion and then the registered
// cleanups, so the function blocks on stop.
func startServer(key string, mc *meshconfig.MeshConfig, objs []Object) (*server, error) {
	var configs []config.Config
	var kube []runtime.Object
	for _, o := range objs {
		switch {
		case o.Istio != nil:
			configs = append(configs, *o.Istio)
		case o.Kube != nil:
			kube = append(kube, o.Kube.DeepCopyObject())
		}
	}
	s := &server{key: key, sims: map[string]*simulation.Simulation{}, stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		s.done <- test.Wrap(func(t test.Failer) {
			s.fake = xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
				Configs:           configs,
				KubernetesObjects: kube,
				MeshConfig:        mc,
			})
			close(ready)
			<-s.stop
		})
	}()
	select {
	case <-ready:
		return s, nil
	case err := <-s.done:
		if err == nil {
			err = fmt.Errorf("config generator exited")
		}
		return nil, fmt.Errorf("start Istio config generator: %w", err)
	}
}

func (s *server) close() {
	close(s.stop)
	<-s.done
}

// simulation returns the proxy config simulation for a source, built once.
func (s *server) simulation(src check.Source) *simulation.Simulation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sim, ok := s.sims[src.Key()]; ok {
		return sim
	}
	p := &model.Proxy{
		Labels:          src.Labels,
		ConfigNamespace: src.Namespace,
		IPAddresses:     []string{"10.244.0.5"},
		Metadata:        &model.NodeMetadata{Labels: src.Labels, Namespace: src.Namespace, IstioVersion: ProxyIstioVersion},
	}
	if src.Kind == check.Outside {
		// The ingress gateway: the deployment istioctl installs.
		p.Type = model.Router
		p.ConfigNamespace = "istio-system"
		p.Labels = map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
		p.Metadata.Labels = p.Labels
		p.Metadata.Namespace = "istio-system"
		p.IPAddresses = []string{"10.244.0.9"}
	}
	p = s.fake.SetupProxy(p)
	l := s.fake.Listeners(p)
	sim := &simulation.Simulation{Listeners: l, Clusters: s.fake.Clusters(p)}
	sim.Routes = s.fake.RoutesFromListeners(p, l)
	s.sims[src.Key()] = sim
	return sim
}
