package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
	if got != defaultTimeoutConfig() {
		t.Fatalf("round trip changed values:\n%s", b.String())
	}
	// Every key says what it waits for, the pushed-config tier's included.
	var doc map[string]map[string]any
	if err := yaml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for section, keys := range doc {
		for k := range keys {
			d := timeoutDocs[section+"."+k]
			if d == "" || !strings.Contains(b.String(), "# "+d+"\n") {
				t.Errorf("%s.%s has no comment saying what it waits for", section, k)
			}
		}
	}
	for _, k := range []string{"connect", "propagation", "poll"} {
		if _, ok := doc["pushed"][k]; !ok {
			t.Errorf("--print-timeouts lacks pushed.%s:\n%s", k, b.String())
		}
	}
	os.WriteFile(p, []byte("pushed:\n  propagation: 2m\n"), 0o644)
	if got, err = loadTimeouts(p); err != nil || got.Pushed.Propagation != 2*time.Minute || got.Pushed.Connect != 0 {
		t.Fatalf("pushed section: %+v %v", got.Pushed, err)
	}
	os.WriteFile(p, []byte("live:\n  converge: 5m\n"), 0o644)
	got, err = loadTimeouts(p)
	if err != nil || got.Live.Converge != 5*time.Minute || got.Cluster.Create != 0 {
		t.Fatalf("partial file: %+v %v", got, err)
	}
	os.WriteFile(p, []byte("live:\n  convrge: 5m\n"), 0o644)
	if _, err := loadTimeouts(p); err == nil || !strings.Contains(err.Error(), "t.yaml:2") {
		t.Fatalf("unknown key must name the line: %v", err)
	}
}
