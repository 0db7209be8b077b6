package timeouts

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every key Print writes has a comment saying what it waits for, and the
// printed file parses back to the defaults.
func TestPrintDocumentsEveryKeyAndParsesBack(t *testing.T) {
	var b bytes.Buffer
	if err := Print(&b, Default()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	keys := 0
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasSuffix(trimmed, ":") {
			continue
		}
		keys++
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("key without its comment: %q", l)
		}
	}
	if keys < 30 {
		t.Errorf("only %d keys printed:\n%s", keys, b.String())
	}
	c, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("printed defaults parse back as %+v", c)
	}
}

// Poll and ImagePullGrace are set once and reach every section that waits.
func TestOnePollAndGrace(t *testing.T) {
	c := Config{Poll: 250 * time.Millisecond, ImagePullGrace: 7 * time.Second, Live: Live{Attempt: 2 * time.Second}}.Resolve()
	if c.Cluster.Poll != 250*time.Millisecond || c.Istio.Poll != 250*time.Millisecond || c.Live.Poll != 250*time.Millisecond ||
		c.Cluster.ImagePullGrace != 7*time.Second || c.Istio.ImagePullGrace != 7*time.Second {
		t.Errorf("poll/grace not shared: %+v", c)
	}
	if c.Live.Attempt != 2*time.Second || c.Live.Exec != 30*time.Second || c.Live.Consecutive != 3 {
		t.Errorf("a set field must stay, zero fields take defaults: %+v", c.Live)
	}
}

func TestParseRejects(t *testing.T) {
	for in, want := range map[string]string{
		"live:\n  exec: 5s\n  attempt: 3s\n": "live.exec (5s) must be at least 4x live.attempt",
		"live:\n  attempt: 10s\n":            "live.exec (30s) must be at least 4x live.attempt (10s): one probe may take a dial, a handshake and an answer (with the defaults",
		"cluster:\n  create: -1m\n":          "cluster.create is negative",
		"live:\n  consecutive: -2\n":         "live.consecutive is negative (-2)",
		"cluster:\n  craete: 1m\n":           "line 2",
		"poll: soon\n":                       "invalid timeouts",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", in, err, want)
		}
	}
}
