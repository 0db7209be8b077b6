package app

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/meshconform/meshconform/clusters"
	"github.com/meshconform/meshconform/clusters/istio"
	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live"
)

// timeoutConfig is the one timeout config of a live run: every bound and
// retry count, by the package that applies it, with documented defaults
// (see each package's Timeouts). `meshconform run --timeouts FILE` reads
// it (keys are the field names in lower case, durations like "90s");
// `--print-timeouts` prints the defaults in that form. Zero or absent
// fields keep their defaults.
type timeoutConfig struct {
	Cluster  clusters.Timeouts `yaml:"cluster"`
	Istio    istio.Timeouts    `yaml:"istio"`
	Live     live.Timeouts     `yaml:"live"`
	Fixtures fixtures.Timeouts `yaml:"fixtures"`
}

func defaultTimeoutConfig() timeoutConfig {
	return timeoutConfig{
		Cluster:  clusters.DefaultTimeouts(),
		Istio:    istio.DefaultTimeouts(),
		Live:     live.DefaultTimeouts(),
		Fixtures: fixtures.DefaultTimeouts(),
	}
}

// loadTimeouts reads path ("" = all defaults).
func loadTimeouts(path string) (timeoutConfig, error) {
	if path == "" {
		return timeoutConfig{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return timeoutConfig{}, &check.InputError{File: path, Problem: "cannot read: " + err.Error(), Fix: "pass an existing file; --print-timeouts prints one"}
	}
	var t timeoutConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil && err != io.EOF {
		var n int
		fmt.Sscanf(trimAfter(err.Error(), "line "), "%d", &n)
		return timeoutConfig{}, &check.InputError{File: path, Line: n, Problem: "invalid timeouts: " + err.Error(),
			Fix: "sections cluster, istio, live, fixtures; durations like 90s or 3m; --print-timeouts shows every key"}
	}
	return t, nil
}

func trimAfter(s, marker string) string {
	if i := bytes.Index([]byte(s), []byte(marker)); i >= 0 {
		return s[i+len(marker):]
	}
	return ""
}

// printTimeouts writes the defaults as a --timeouts file.
func printTimeouts(w io.Writer) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	fmt.Fprintln(w, "# meshconform run --timeouts FILE: every bound of a live run, with its default.")
	return enc.Encode(defaultTimeoutConfig())
}
