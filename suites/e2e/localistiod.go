package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/meshconform/meshconform/fixtures/images"
)

// PhaseIstiodImage builds the local istiod image (Config.LocalIstiod), in
// parallel with the cluster and the fixtures.
const PhaseIstiodImage = "istiod-image"

// EnvLocalIstiod set to 1 turns Config.LocalIstiod on in hack/e2e.sh
// (`meshconform run --local-istiod`).
const EnvLocalIstiod = "MESHCONFORM_LOCAL_ISTIOD"

// localIstiod reports whether this run builds and installs its own istiod:
// asked for, Istio needed, and a kind cluster meshconform manages (an
// existing cluster keeps its own Istio).
func (e *Env) localIstiod() bool {
	return e.cfg.LocalIstiod && e.cfg.InstallIstio && e.cfg.Kubeconfig == "" && e.cfg.Context == ""
}

// buildIstiod builds (or finds) the local istiod image into e.Istiod.
func (e *Env) buildIstiod(ctx context.Context) error {
	start := time.Now()
	e.p.Phase(PhaseIstiodImage, "building istiod from the pinned istio module (%s)", images.IstiodPackage)
	img, err := images.Istiod(ctx, images.WithLogger(e.p))
	if err != nil {
		return err
	}
	e.Istiod = img
	how := "already present"
	if img.Built {
		how = fmt.Sprintf("built (binary %.1fs, image %.1fs)", img.BinaryTime.Seconds(), img.ImageTime.Seconds())
	}
	detail := fmt.Sprintf("%s %s", img.Ref, how)
	e.p.Phase(PhaseIstiodImage, "%s in %.1fs", detail, time.Since(start).Seconds())
	e.record(PhaseIstiodImage, start, detail)
	return nil
}

// recordIstiodReady records phase "istiod-ready": from the start of the
// install until istiod's pod turned Ready, as Kubernetes recorded it. The
// ingress gateway and sidecars need proxyv2, which is not built here: the
// install's own error (e.MeshErr) keeps saying so.
func (e *Env) recordIstiodReady(ctx context.Context, installStart time.Time) {
	since, pod, err := e.Mesh.IstiodReadySince(ctx)
	if err != nil {
		e.p.Phase(PhaseIstio, "istiod from %s is not Ready: %v", e.Istiod.Ref, err)
		return
	}
	d := since.Sub(installStart)
	if d < 0 {
		d = 0
	}
	e.p.Phase(PhaseIstio, "istiod %s Ready %.0fs after the install started (%s); data plane: %s", pod, d.Seconds(), e.Istiod.Ref, errString(e.MeshErr, "ready"))
	e.mu.Lock()
	e.phases = append(e.phases, PhaseTime{Name: "istiod-ready", Elapsed: d, Detail: pod + " from " + e.Istiod.Ref})
	e.mu.Unlock()
}
