package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/pushed"
	"github.com/meshconform/meshconform/suites/sim"
)

// PhaseExpectations prepares a user's expectations file for the live run:
// the sources' namespaces and the -f objects applied for the run.
const PhaseExpectations = "expectations"

// Expectations is a user's expectations file run live (`meshconform run
// --expectations FILE [-f PATH...]`): the same file, loaded by the same
// loader (suites/expectations) as `meshconform simulate`, so the JUnit
// cases carry the expectation names in both.
type Expectations struct {
	// File is the loaded file; its checks are the run's selection.
	File *expectations.Loaded
	// Objects are the -f objects, already validated by sim.LoadPaths
	// (Istio's validation, file:line errors). They are applied for the run
	// through the API server, so Istio's validating webhook admits them as
	// it would the team's own, and removed after; without them the
	// cluster's own configuration is what is verified.
	Objects []sim.Object
	// DefaultNamespace is where objects without a namespace go (simulate's
	// --namespace, default "default").
	DefaultNamespace string
	// SourceNamespaces are namespaces the user names explicitly (flag
	// --source-namespace) for the probe pods of their sources. On a
	// cluster the harness created it creates every source's namespace
	// itself; on an attached cluster probe pods go only into these, which
	// must exist and are never created, labelled or deleted.
	SourceNamespaces []string
}

// LiveChecks returns the file's checks as the live run observes them: a
// `gateway: true` source calls the ingress gateway from outside (the
// destination's port on the gateway's published address, its host as SNI
// and Host), so its destination targets the "ingress" endpoint; every
// other field is as written (destinations are the real ones).
func LiveChecks(checks []check.Check) []check.Check {
	out := make([]check.Check, 0, len(checks))
	for _, c := range checks {
		c = c.Clone()
		for i := range c.Steps {
			for j := range c.Steps[i].Expect {
				e := &c.Steps[i].Expect[j]
				if e.From.Kind == check.Outside && e.To.Target == "" {
					e.To.Target = "ingress"
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// SourceNamespaces returns the namespaces of the meshed sources of checks,
// sorted.
func SourceNamespaces(checks []check.Check) []string {
	seen := map[string]bool{}
	for _, c := range checks {
		for _, s := range c.Steps {
			for _, e := range s.Expect {
				if (e.From.Kind == "" || e.From.Kind == check.MeshedPod) && e.From.Namespace != "" {
					seen[e.From.Namespace] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// LiveOptions are the live driver's options for x under cfg (put them in
// Config.LiveOptions before Setup): where source probe pods may go, and
// on an attached cluster the ip-masq-agent already there, read and never
// changed.
func (x Expectations) LiveOptions(cfg Config, checks []check.Check) []live.Option {
	if cfg.Attached() {
		return []live.Option{live.WithSourceNamespaces(x.SourceNamespaces...), live.WithExistingIPMasqAgent()}
	}
	return []live.Option{live.WithSourceNamespaces(append(SourceNamespaces(checks), x.SourceNamespaces...)...)}
}

// RunExpectations observes checks (the file's, after selection) with real
// traffic and, when istiod is Ready, on the config it pushes to each
// source (RunPushed). Before, on a cluster the harness created, it creates
// the sources' and objects' namespaces (Istio injection on) and puts the
// file's outboundTrafficPolicy on the checks; on an attached cluster the
// namespaces must exist and the cluster's policy is the one verified. The
// -f objects are applied when istiod is Ready (Istio's webhook validates
// them) — each deletion registered at its apply — and removed before it
// returns, also when ctx is cancelled. It returns the results, report
// properties (what was applied, which policy and ip-masq-agent config were
// verified) and an error only when the preparation failed (a rejected
// object, a namespace that cannot be made): the run then did not happen.
func (e *Env) RunExpectations(ctx context.Context, x Expectations, checks []check.Check, onResult func(check.Result)) (res []check.Result, props map[string]string, err error) {
	start := time.Now()
	props = map[string]string{"expectations.file": x.File.File}
	if e.Cluster == nil || e.Driver == nil {
		return nil, props, errors.New("run expectations: the environment is not set up")
	}
	cl := e.Cluster
	checks = LiveChecks(checks)
	attached := !cl.Managed()

	// Namespaces.
	var allowed []string
	if attached {
		allowed = x.SourceNamespaces
		for _, ns := range x.SourceNamespaces {
			if _, err := cl.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				return nil, props, fail(PhaseExpectations, fmt.Errorf("--source-namespace %s: %w", ns, err))
			}
		}
		props["expectations.sourceNamespaces"] = orNone(strings.Join(x.SourceNamespaces, ","), "none named (--source-namespace): sources outside the harness's namespace are not ready")
	} else {
		nss := SourceNamespaces(checks)
		for _, o := range x.Objects {
			if o.Namespace != "" && !slices.Contains(nss, o.Namespace) {
				nss = append(nss, o.Namespace)
			}
		}
		slices.Sort(nss)
		for _, ns := range nss {
			if err := cl.EnsureNamespace(ctx, ns, map[string]string{"istio-injection": "enabled"}); err != nil {
				return nil, props, fail(PhaseExpectations, err)
			}
		}
		allowed = append(nss, x.SourceNamespaces...)
		props["expectations.sourceNamespaces"] = strings.Join(nss, ",")
	}

	// The mesh policy: the file's on a cluster the harness installed, the
	// cluster's own when attached.
	policy := "Istio's installed default"
	for i := range checks {
		if checks[i].Masquerade != nil {
			continue
		}
		checks[i].Policy = ""
		if !attached && x.File.Policy != "" {
			checks[i].Policy = x.File.Policy
			policy = string(x.File.Policy) + " (the file's meshConfig, set by the harness)"
		}
	}
	if attached {
		policy = "the cluster's own (read, never changed)"
	}
	props["expectations.outboundTrafficPolicy"] = policy

	// The -f objects, for the run only.
	var cleanups []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i](cctx))
		}
		if err := errors.Join(errs...); err != nil {
			props["expectations.cleanup.error"] = err.Error()
			e.p.Phase(PhaseExpectations, "FAILED to remove the -f objects: %v", err)
		}
	}()
	props["expectations.config"] = "none (-f not given): the cluster's own configuration is verified"
	if len(x.Objects) > 0 {
		why := e.istiodNotReady(ctx)
		if why != "" {
			props["expectations.config"] = fmt.Sprintf("%d objects from -f not applied: %s (the mesh expectations report it)", len(x.Objects), why)
		} else {
			n, err := e.applyObjects(ctx, x, &cleanups)
			if err != nil {
				return nil, props, fail(PhaseExpectations, err)
			}
			props["expectations.config"] = fmt.Sprintf("%d objects from -f applied through the API server (Istio's validating webhook admitted them), removed after the run", n)
		}
	}
	e.p.Phase(PhaseExpectations, "%s; policy %s; source namespaces %s (%.1fs)", props["expectations.config"], policy,
		orNone(props["expectations.sourceNamespaces"], "none"), time.Since(start).Seconds())
	e.record(PhaseExpectations, start, props["expectations.config"])

	cstart := time.Now()
	res = check.RunAll(ctx, e.Driver, checks, check.RunOptions{OnResult: onResult})
	c := check.Counts(res)
	e.p.Phase(PhaseChecks, "%d passed, %d failed, %d errors, %d skipped in %.1fs",
		c[check.Passed], c[check.Failed], c[check.Error], c[check.Skipped], time.Since(cstart).Seconds())
	e.record(PhaseChecks, cstart, fmt.Sprintf("%d expectations", len(res)))
	if s := e.Driver.SourcesSummary(); s != "" {
		props["expectations.sourcePods"] = s
	}
	if n := e.Driver.IPMasqNote(); n != "" {
		props["masquerade.ipMasqAgent"] = n
	}
	traffic := res
	res = append(res, e.runPushed(ctx, checks, traffic, onResult, pushed.WithSourcePods(sourcePods(e.AgentImage, allowed)))...)
	return res, props, nil
}

// istiodNotReady says why -f objects cannot be applied now ("" when
// istiod is Ready: its validating webhook answers).
func (e *Env) istiodNotReady(ctx context.Context) string {
	if e.Mesh == nil {
		if e.MeshErr != nil {
			return "Istio is not ready: " + e.MeshErr.Error()
		}
		return "Istio is not installed in this run"
	}
	if _, _, err := e.Mesh.IstiodReadySince(ctx); err != nil {
		return "istiod is not ready: " + err.Error()
	}
	return ""
}

// applyObjects applies the -f files, one file at a time, registering
// each file's deletion as soon as it is applied (before the error check).
func (e *Env) applyObjects(ctx context.Context, x Expectations, cleanups *[]func(context.Context) error) (int, error) {
	var files []string
	for _, o := range x.Objects {
		if o.File != "" && !slices.Contains(files, o.File) {
			files = append(files, o.File)
		}
	}
	ns := orNone(x.DefaultNamespace, "default")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return n, &check.InputError{File: f, Problem: "cannot read: " + err.Error(), Fix: "pass an existing file"}
		}
		objs, err := e.Cluster.ApplyAsWritten(ctx, ns, string(data))
		*cleanups = append(*cleanups, func(ctx context.Context) error { return e.Cluster.Delete(ctx, objs) })
		n += len(objs)
		if err != nil {
			return n, fmt.Errorf("apply %s (Istio's validating webhook answers here): %w", f, err)
		}
		e.p.Logger().Debug("applied for the run", "file", f, "objects", len(objs))
	}
	return n, nil
}

// sourcePods is the pushed-config tier's way to the probe pods of user
// sources (package live names and renders them), in the namespaces the
// live driver may use too (allowed).
func sourcePods(image string, allowed []string) pushed.SourcePodFunc {
	return func(s check.Source) (string, string, string, error) {
		if !slices.Contains(allowed, s.Namespace) {
			return "", "", "", fmt.Errorf("source %s: namespace %s was neither created by the harness nor named with --source-namespace", s, s.Namespace)
		}
		name := live.SourcePodName(s)
		y, err := live.SourcePodManifest(s, image, nil)
		return name, live.LabelSource + "=" + name, y, err
	}
}
