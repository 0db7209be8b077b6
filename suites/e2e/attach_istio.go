package e2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pkg/config/mesh"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

// EffectivePolicy is the outbound traffic policy a pod in the probe
// namespace gets: the mesh config of the control plane's revision,
// overridden by a root-namespace Sidecar without workloadSelector (Istio
// applies it to every namespace without a Sidecar of its own).
type EffectivePolicy struct {
	// Mode is "ALLOW_ANY" or "REGISTRY_ONLY" ("" when unknown).
	Mode string
	// Source names where Mode comes from ("ConfigMap istio-system/istio",
	// "Sidecar istio-system/default", "Istio's default").
	Source string
}

// findIstio finds Istio as installed (never installs or changes it): the
// control plane and its revision (fromcluster.Read: istiod Deployments
// labelled app=istiod, istio.io/rev, Config.Revision when several), the
// injection label for the probe namespace and the effective outbound
// policy. A cluster without a usable istiod is not fatal: the mesh checks
// report why.
func (e *Env) findIstio(ctx context.Context) error {
	start := time.Now()
	cfg, p, cl := e.cfg, e.p, e.Cluster
	if !cfg.InstallIstio {
		e.MeshErr = errors.New("Istio was not looked for: no selected check needs it")
		p.Phase(PhaseIstio, "skipped: no selected check needs the mesh")
		return nil
	}
	opts := []fromcluster.Option{fromcluster.WithRESTConfig(cl.RESTConfig(), cl.Name)}
	if cfg.Revision != "" {
		opts = append(opts, fromcluster.WithRevision(cfg.Revision))
	}
	snap, err := fromcluster.Read(ctx, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return fail(PhaseIstio, ctx.Err())
		}
		e.MeshErr = &clusters.NotReadyError{Reason: "read Istio as installed: " + err.Error()}
		p.Phase(PhaseIstio, "%v", e.MeshErr)
		e.record(PhaseIstio, start, e.MeshErr.Error())
		return nil
	}
	e.Policy = effectivePolicy(snap)
	cp := snap.ControlPlane
	switch {
	case cp == nil:
		e.MeshErr = &clusters.NotReadyError{Reason: "no istiod found (no Deployment labelled app=istiod)"}
	default:
		// The control plane as installed: a revision's istiod (istiod-1-31)
		// in any namespace, its pods found by its Deployment's selector.
		e.Revision = cp.Revision
		e.Mesh, e.MeshErr = istio.Attach(ctx, cl, istio.WithControlPlane(cp.Namespace, cp.Name))
	}
	detail := fmt.Sprintf("istiod %s, revision %s, injection %v, effective outbound policy %s (%s)", cpName(cp), orNone(e.Revision, "-"), e.injectionLabels(), e.Policy.Mode, e.Policy.Source)
	if e.MeshErr != nil {
		detail += "; not ready: " + e.MeshErr.Error()
	}
	p.Phase(PhaseIstio, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseIstio, start, detail)
	return nil
}

func cpName(cp *fromcluster.ControlPlane) string {
	if cp == nil {
		return "none"
	}
	return cp.Namespace + "/" + cp.Name + " " + cp.Version
}

// injectionLabels are the probe namespace's labels that make Istio inject
// its sidecars: istio-injection=enabled for the default revision, else
// istio.io/rev=<revision> (istio-injection would win over it and select
// only the default revision's webhook).
func (e *Env) injectionLabels() map[string]string {
	if e.Revision == "" || e.Revision == "default" {
		return map[string]string{"istio-injection": "enabled"}
	}
	return map[string]string{"istio.io/rev": e.Revision}
}

// effectivePolicy computes EffectivePolicy from a snapshot.
func effectivePolicy(s *fromcluster.Snapshot) EffectivePolicy {
	mc := mesh.DefaultMeshConfig()
	src := "Istio's default"
	if s.MeshConfig != "" {
		if m, err := mesh.ApplyMeshConfigDefaults(s.MeshConfig); err == nil {
			mc, src = m, "ConfigMap "+s.MeshConfigSource
		} else {
			return EffectivePolicy{Source: "invalid mesh config in " + s.MeshConfigSource + ": " + err.Error()}
		}
	}
	mode := meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY
	if mc.GetOutboundTrafficPolicy() != nil {
		mode = mc.GetOutboundTrafficPolicy().GetMode()
	}
	out := EffectivePolicy{Mode: mode.String(), Source: src}
	root := mc.GetRootNamespace()
	if root == "" {
		root = istio.Namespace
	}
	for _, o := range s.Objects {
		if o.Kind != "Sidecar" || o.Namespace != root || o.Istio == nil {
			continue
		}
		sc, ok := o.Istio.Spec.(*networking.Sidecar)
		if !ok || sc.GetWorkloadSelector() != nil || sc.GetOutboundTrafficPolicy() == nil {
			continue
		}
		out = EffectivePolicy{Mode: sc.GetOutboundTrafficPolicy().GetMode().String(), Source: "Sidecar " + root + "/" + o.Name + " (root namespace)"}
	}
	return out
}
