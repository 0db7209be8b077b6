package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshconform/meshconform/fixtures"
)

// requireDocker skips without Docker, or fails when CI=true.
func requireDocker(t *testing.T) {
	t.Helper()
	if err := fixtures.DockerAvailable(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Docker is unavailable: %v", err)
		}
		t.Skipf("Docker is unavailable (%v): run ../shared/testenv/up and eval \"$(../shared/testenv/env)\"", err)
	}
	if os.Getenv("MYSQL_IMAGE") == "" && os.Getenv("CI") != "true" {
		t.Skip("MYSQL_IMAGE is not set (mysql:8.4 cannot be pulled here): eval \"$(../shared/testenv/env)\"")
	}
}

func countRun(t *testing.T, runID string) int {
	t.Helper()
	cli, err := fixtures.NewDockerClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cs, err := fixtures.ManagedContainers(context.Background(), cli, runID)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func sweep(t *testing.T, runID string) {
	t.Cleanup(func() {
		if removed, err := fixtures.Down(context.Background(), runID); err != nil || len(removed) > 0 {
			t.Errorf("run %s left %v (%v)", runID, removed, err)
		}
	})
}

func TestFixturesUpThenDown(t *testing.T) {
	requireDocker(t)
	runID := fixtures.NewRunID()
	sweep(t, runID)
	out := filepath.Join(t.TempDir(), "fx")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"fixtures", "up", "--run-id", runID, "--out", out}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("up exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	secrets, err := os.ReadFile(filepath.Join(out, "secrets.env"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(secrets), "\n") {
		v, ok := strings.CutPrefix(line, "MYSQL_BOOKINFO_PASSWORD=")
		if !ok {
			continue
		}
		found = true
		if pw := strings.Trim(v, "'"); pw == "" || strings.Contains(stdout.String()+stderr.String(), pw) {
			t.Fatalf("up printed the bookinfo password (or it is empty: %q)", pw)
		}
	}
	if !found {
		t.Fatalf("secrets.env has no MYSQL_BOOKINFO_PASSWORD line, so the leak check would assert nothing:\n%s", secrets)
	}
	for _, want := range []string{"echo.external.test", "mysql.external.test", "greeter.external.test", "fixtures down --run-id " + runID} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("up output lacks %q:\n%s", want, stdout.String())
		}
	}
	if n := countRun(t, runID); n != 3 {
		t.Fatalf("%d containers after up, want 3", n)
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"fixtures", "down", "--run-id", runID}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("down exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "removed 3 container(s)") {
		t.Errorf("down output %q", stdout.String())
	}
	if n := countRun(t, runID); n != 0 {
		t.Fatalf("%d containers after down", n)
	}
}

func TestFixturesUpInterruptedLeavesNothing(t *testing.T) {
	requireDocker(t)
	runID := fixtures.NewRunID()
	sweep(t, runID)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"fixtures", "up", "--run-id", runID, "--out", t.TempDir()}, &stdout, &stderr)
	}()
	// Interrupt as soon as a container of the run exists (as Ctrl-C would:
	// run's context is the one cancelled on SIGINT).
	var code int
	finished := false
	for !finished && countRun(t, runID) == 0 {
		select {
		case code = <-done:
			finished = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	if finished {
		t.Fatalf("up finished (exit %d) before any container existed:\n%s", code, stderr.String())
	}
	cancel()
	code = <-done
	if code != ExitFailed || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want 1 and an interrupted message", code, stderr.String())
	}
	if n := countRun(t, runID); n != 0 {
		t.Fatalf("%d containers left after an interrupted up", n)
	}
}

func TestFixturesBadInput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"fixtures", "up", "--run-id", "Bad_ID"}, &stdout, &stderr); code != ExitBadInput {
		t.Errorf("bad run id: exit %d, want %d", code, ExitBadInput)
	}
	if !strings.Contains(stderr.String(), "--run-id") {
		t.Errorf("stderr %q does not name the flag", stderr.String())
	}
}
