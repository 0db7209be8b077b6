package livetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Reason says why live tests cannot run here ("" when they can): -short,
// no KIND_NODE_IMAGE (eval "$(../shared/testenv/env)" on machines without a
// registry), or no Docker engine answering `docker info`.
func Reason() string {
	switch {
	case testing.Short():
		return "-short"
	case os.Getenv("KIND_NODE_IMAGE") == "":
		return `KIND_NODE_IMAGE is not set: eval "$(../shared/testenv/env)"`
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("Docker is not available: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

// Need skips t with Reason, or fails it when CI=true.
func Need(t testing.TB) {
	t.Helper()
	r := Reason()
	if r == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("live test needs Docker and a kind node image: %s", r)
	}
	t.Skip(r)
}
