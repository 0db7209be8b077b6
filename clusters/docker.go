package clusters

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// dockerOutput runs the docker CLI (as kind does) and returns its stdout;
// the error carries stderr.
func dockerOutput(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("docker %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
