package reports

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/findings"
)

// Report is everything a run produced.
type Report struct {
	// Tool is meshconform's version.
	Tool string
	// Driver is "simulation" or "live".
	Driver string
	// IstioVersion is the Istio release the verdicts come from.
	IstioVersion string
	// MeshPolicy is the mesh outboundTrafficPolicy the run started with
	// (checks may switch it; each check's own policy is in its labels).
	MeshPolicy string
	// Properties are extra key/values for the JUnit properties.
	Properties map[string]string
	// Results, in run order.
	Results []check.Result
	// Started is when the run began.
	Started time.Time
	// SetupPhase and SetupError describe a setup that failed: the report
	// then carries one synthetic failed test case.
	SetupPhase string
	SetupError error
	// Findings are analyzer messages and self-check findings, already
	// suppressed; FindingSources names the sources that ran
	// (findings.Analysis, findings.SelfCheck), each a JUnit testsuite.
	Findings       []findings.Finding
	FindingSources map[string]bool
	// FailOn is the level from which a finding fails the run (exit 1).
	FailOn findings.Level
}

// SetupFailed records that setup failed in phase.
func (r *Report) SetupFailed(phase string, err error) {
	r.SetupPhase, r.SetupError = phase, err
}

// properties returns the JUnit properties, sorted by name.
func (r Report) properties() [][2]string {
	m := map[string]string{
		"meshconform.version":        r.Tool,
		"meshconform.driver":         r.Driver,
		"istio.version":              r.IstioVersion,
		"mesh.outboundTrafficPolicy": r.MeshPolicy,
	}
	for k, v := range r.Properties {
		m[k] = v
	}
	var out [][2]string
	for k, v := range m {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// ExitCode is the process exit code the report implies: 2 for a failed
// setup or an errored check, 1 for a failed check or a finding at or above
// FailOn, else 0.
func (r Report) ExitCode() int {
	if r.SetupError != nil {
		return 2
	}
	code := check.ExitCode(r.Results)
	if code == 0 && r.findingsFail() {
		return 1
	}
	return code
}

// writeAtomic writes data to path through a temporary file and rename.
func writeAtomic(path string, write func(f *os.File) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteDocument writes a JUnit document to path atomically.
func WriteDocument(path string, doc Testsuites) error {
	return writeAtomic(path, func(f *os.File) error { return doc.WriteXML(f) })
}

// WriteMarkdown writes text to path atomically.
func WriteMarkdown(path, text string) error {
	return writeAtomic(path, func(f *os.File) error {
		_, err := f.WriteString(text)
		return err
	})
}
