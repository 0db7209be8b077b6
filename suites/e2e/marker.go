package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meshconform/meshconform/fixtures"
)

// marker records that a `meshconform run` (or e2e test) owns the fixtures
// of run RunID, so a later run can sweep them if the owner died.
type marker struct {
	RunID    string    `json:"runID"`
	PID      int       `json:"pid"`
	Hostname string    `json:"hostname"`
	Retain   bool      `json:"retain"`
	Started  time.Time `json:"started"`
	path     string
}

// markerDir holds one marker per run.
func markerDir() string { return filepath.Join(os.TempDir(), "meshconform-runs") }

func writeMarker(runID string) (*marker, error) {
	host, _ := os.Hostname()
	m := &marker{RunID: runID, PID: os.Getpid(), Hostname: host, Started: time.Now().UTC(), path: filepath.Join(markerDir(), runID+".json")}
	if err := os.MkdirAll(markerDir(), 0o700); err != nil {
		return nil, fmt.Errorf("write run marker: %w", err)
	}
	return m, m.save()
}

func (m *marker) save() error {
	b, _ := json.Marshal(m)
	if err := os.WriteFile(m.path, b, 0o600); err != nil {
		return fmt.Errorf("write run marker: %w", err)
	}
	return nil
}

// retain marks the run's fixtures as kept on purpose.
func (m *marker) retain() error {
	m.Retain, m.PID = true, 0
	return m.save()
}

func (m *marker) remove() { _ = os.Remove(m.path) }

// sweepMarkers removes the fixtures of runs whose owner process is gone
// and that were not retained, and their markers; it returns their run ids.
func sweepMarkers(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(markerDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep fixtures: %w", err)
	}
	host, _ := os.Hostname()
	var swept []string
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(markerDir(), e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var m marker
		if err := json.Unmarshal(b, &m); err != nil || fixtures.ValidateRunID(m.RunID) != nil {
			continue
		}
		if m.Retain || m.Hostname != host || (m.PID != 0 && processAlive(m.PID)) {
			continue
		}
		if _, err := fixtures.Down(ctx, m.RunID); err != nil {
			errs = append(errs, fmt.Errorf("sweep fixtures of run %s: %w", m.RunID, err))
			continue
		}
		_ = os.Remove(path)
		swept = append(swept, m.RunID)
	}
	return swept, errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
