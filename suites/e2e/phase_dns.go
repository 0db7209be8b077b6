package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/meshconform/meshconform/suites"
)

// fixtureNames makes the fixtures' names (and the suites' own, e.g. the
// unregistered "blocked" host) resolve from pods by editing CoreDNS
// (clusters.SetExternalHosts, which registers its own restore with the
// cluster's Teardown). Kind clusters only: an attached cluster's DNS is
// never edited.
func (e *Env) fixtureNames(ctx context.Context) error {
	start := time.Now()
	hosts := map[string]string{}
	for _, ep := range suites.Env(e.Fixtures.Endpoints(), nil).Endpoints {
		if ep.Host != "" && ep.IP != "" {
			hosts[ep.Host] = ep.IP
		}
	}
	if _, err := e.Cluster.SetExternalHosts(ctx, hosts); err != nil {
		return fail(PhaseDNS, err)
	}
	e.p.Phase(PhaseDNS, "%d names resolve from pods in %.1fs", len(hosts), time.Since(start).Seconds())
	e.record(PhaseDNS, start, fmt.Sprintf("%d names", len(hosts)))
	return nil
}
