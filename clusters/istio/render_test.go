package istio

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"istio.io/istio/operator/pkg/render"
	"istio.io/istio/operator/pkg/util/clog"
	istiolog "istio.io/istio/pkg/log"
)

// renderManifests renders the IOP for opts with Istio's own renderer (the
// charts embedded in the module, no cluster), as Install does.
func renderManifests(t *testing.T, opts ...Option) string {
	t.Helper()
	quietIstioLogs()
	cfg, err := newConfig(opts...)
	if err != nil {
		t.Fatal(err)
	}
	iop, err := renderIOP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "iop.yaml")
	if err := os.WriteFile(file, []byte(iop), 0o600); err != nil {
		t.Fatal(err)
	}
	sets, _, err := render.GenerateManifest([]string{file}, nil, false, nil, clog.NewConsoleLogger(io.Discard, io.Discard, istiolog.RegisterScope("meshconform-test", "test")))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range sets {
		for _, m := range s.Manifests {
			b.WriteString(m.Content)
			b.WriteString("\n---\n")
		}
	}
	return b.String()
}

// WithNeverPull reaches every image Istio's charts run: istiod's and the
// gateway's Deployments and the sidecar injection template all say Never,
// so no node asks a registry; without it the charts' default is kept.
func TestNeverPullReachesEveryImage(t *testing.T) {
	policy := regexp.MustCompile(`(?m)imagePullPolicy: *"?([A-Za-z]+)`)
	count := func(s string) map[string]int {
		out := map[string]int{}
		for _, m := range policy.FindAllStringSubmatch(s, -1) {
			out[m[1]]++
		}
		return out
	}
	never := renderManifests(t, WithHub("meshconform"), WithTag("local"), WithNeverPull())
	got := count(never)
	if got["Never"] < 2 || len(got) != 1 {
		t.Errorf("with WithNeverPull: imagePullPolicy values %v, want only Never (istiod, gateway)", got)
	}
	if !strings.Contains(never, `"imagePullPolicy": "Never"`) && !strings.Contains(never, `imagePullPolicy: Never`) {
		t.Error("the injection values do not carry imagePullPolicy Never")
	}
	if got := count(renderManifests(t, WithHub("meshconform"), WithTag("local"))); got["Never"] != 0 {
		t.Errorf("without WithNeverPull: %v", got)
	}
}
