package app

import (
	"errors"
	"io"
	"os"

	"github.com/meshconform/meshconform/internal/timeouts"
	"github.com/meshconform/meshconform/suites/check"
)

// loadTimeouts reads a --timeouts file ("" = all defaults) and resolves it:
// zero fields take the defaults, poll and imagepullgrace reach every
// section (see package timeouts).
func loadTimeouts(path string) (timeouts.Config, error) {
	if path == "" {
		return timeouts.Config{}.Resolve(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return timeouts.Config{}, &check.InputError{File: path, Problem: "cannot read: " + err.Error(), Fix: "pass an existing file; --print-timeouts prints one"}
	}
	c, err := timeouts.Parse(data)
	var pe *timeouts.ParseError
	if errors.As(err, &pe) {
		return timeouts.Config{}, &check.InputError{File: path, Line: pe.Line, Problem: pe.Problem,
			Fix: "top-level poll and imagepullgrace, sections cluster, istio, live, pushed, fixtures; durations like 90s or 3m; --print-timeouts shows every key"}
	}
	if err != nil {
		return timeouts.Config{}, err
	}
	return c.Resolve(), nil
}

// printTimeouts writes the defaults as a --timeouts file, every key with
// the condition it waits for.
func printTimeouts(w io.Writer) error { return timeouts.Print(w, timeouts.Default()) }
