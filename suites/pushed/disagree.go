package pushed

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
)

// StatusFunc returns the sync status istiod reports for the proxy of a
// source kind (Driver.SyncStatus).
type StatusFunc func(ctx context.Context, kind check.SourceKind) (SyncStatus, error)

// Disagreements compares, expectation by expectation, the traffic results
// of a live run with the pushed-config results of the same checks (suite
// "<suite> (pushed config)", negative controls with negative controls) and
// returns one finding MC0004 ConfigNotInEffect per expectation where the
// traffic was Allowed and the pushed config blocks it, or the reverse:
// the proxy did not act on what istiod pushed to it — a config it has not
// applied yet (STALE, NOT SENT) or rejected (NACK) — and the finding
// carries the proxy's sync status (status may be nil: "unknown").
//
// Only real observations are compared: an expectation the traffic tier
// could not observe (environment not ready, Inconclusive, an error) or
// that either tier saw as Unreachable (a target down is not a config
// matter) yields nothing, so a run without sidecars yields no finding.
func Disagreements(ctx context.Context, traffic, pushed []check.Result, status StatusFunc) []findings.Finding {
	type key struct {
		suite, name string
		negative    bool
	}
	byKey := map[key]check.Result{}
	for _, r := range pushed {
		if base, ok := strings.CutSuffix(r.Suite, SuiteSuffix); ok {
			byKey[key{base, r.Name, r.NegativeControl}] = r
		}
	}
	cache := map[check.SourceKind]string{}
	syncOf := func(kind check.SourceKind) string {
		if s, ok := cache[kind]; ok {
			return s
		}
		s := "unknown (no sync status source)"
		if status != nil {
			if st, err := status(ctx, kind); err != nil {
				s = "unknown: " + err.Error()
			} else {
				s = st.String() + " — " + explain(st)
			}
		}
		cache[kind] = s
		return s
	}
	var out []findings.Finding
	for _, t := range traffic {
		if t.Status == check.Error || t.Status == check.Skipped {
			continue
		}
		p, ok := byKey[key{t.Suite, t.Name, t.NegativeControl}]
		if !ok {
			continue
		}
		pobs := map[string]check.Observation{}
		for _, po := range p.Observations {
			if _, dup := pobs[po.Step+"\x00"+po.Expect.String()]; !dup {
				pobs[po.Step+"\x00"+po.Expect.String()] = po
			}
		}
		for _, to := range t.Observations {
			po, ok := pobs[to.Step+"\x00"+to.Expect.String()]
			if !ok || !decisive(to) || !decisive(po) || to.Observed == po.Observed {
				continue
			}
			kind := to.Expect.From.Kind
			if kind == "" {
				kind = check.MeshedPod
			}
			name := t.Name
			if t.NegativeControl {
				name += "/NegativeControl"
			}
			via := po.Cluster
			if via == "" {
				via = "no cluster"
			}
			sync := syncOf(kind)
			f := findings.Finding{
				Source: findings.PushedConfig, Code: findings.CodeConfigNotInEffect, Name: findings.NameConfigNotInEffect,
				Level: findings.Error, Kind: "Check", ObjectName: t.Suite + "/" + name,
				Message: fmt.Sprintf("[%s] %s: traffic was %s, but the config istiod pushed to the proxy says %s (via %s): the proxy is not applying that config; sync status: %s",
					to.Step, to.Expect, to.Observed, po.Observed, via, sync),
			}
			f.Trace = append(f.Trace, "traffic: "+string(to.Observed)+" "+to.Evidence)
			f.Trace = append(f.Trace, po.Trace...)
			out = append(out, f)
		}
	}
	return out
}

// decisive: an observation that says what the proxy does with the call.
func decisive(o check.Observation) bool {
	return o.Err == "" && (o.Observed == check.Allowed || o.Observed == check.BlockedByMesh)
}

// explain says what a sync status means for a disagreement.
func explain(s SyncStatus) string {
	var nack, stale []string
	for t, v := range s.Types {
		switch v {
		case NACK:
			nack = append(nack, t)
		case Stale, NotSent:
			stale = append(stale, t)
		}
	}
	switch {
	case len(nack) > 0:
		sort.Strings(nack)
		return "rejected config: the proxy NACKed " + strings.Join(nack, ", ") + " and keeps its previous config"
	case len(stale) > 0:
		sort.Strings(stale)
		return "stale config: " + strings.Join(stale, ", ") + " pushed but not acknowledged yet"
	case len(s.Types) == 0:
		return "istiod reports no xDS type for the proxy"
	}
	return "every type SYNCED: the proxy acknowledged this config, so the difference lies outside it (e.g. a NetworkPolicy, DNS, or the traffic path bypassing the sidecar)"
}
