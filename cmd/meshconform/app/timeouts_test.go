package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshconform/meshconform/internal/timeouts"
)

func TestTimeoutsRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := printTimeouts(&b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(p, b.Bytes(), 0o644)
	got, err := loadTimeouts(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got != timeouts.Default().Resolve() {
		t.Fatalf("round trip changed values:\n%s", b.String())
	}
	os.WriteFile(p, []byte("live:\n  converge: 5m\n"), 0o644)
	got, err = loadTimeouts(p)
	if err != nil || got.Live.Converge != 5*time.Minute || got.Cluster.Create != timeouts.DefaultCluster().Create {
		t.Fatalf("partial file: %+v %v", got, err)
	}
	os.WriteFile(p, []byte("live:\n  convrge: 5m\n"), 0o644)
	if _, err := loadTimeouts(p); err == nil || !strings.Contains(err.Error(), "t.yaml:2") {
		t.Fatalf("unknown key must name the line: %v", err)
	}
}

// A bad --timeouts file is a bad input file: exit 2 with file:line and a
// JUnit report holding one synthetic failed Setup case, before anything
// is created.
func TestRunBadTimeoutsFileWritesJUnit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.yaml")
	os.WriteFile(p, []byte("live:\n  attempt: 10s\n"), 0o644)
	junit := filepath.Join(dir, "junit.xml")
	code, _, errs := runCLI(t, "run", "--timeouts", p, "--junit", junit)
	if code != ExitBadInput || !strings.Contains(errs, "live.exec (30s) must be at least 4x live.attempt (10s)") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	data, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(data), "Setup") {
		t.Fatalf("no synthetic JUnit case: %v\n%s", err, data)
	}
}
