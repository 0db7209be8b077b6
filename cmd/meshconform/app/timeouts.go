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
	"github.com/meshconform/meshconform/suites/pushed"
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
	Pushed   pushed.Timeouts   `yaml:"pushed"`
}

func defaultTimeoutConfig() timeoutConfig {
	return timeoutConfig{
		Cluster:  clusters.DefaultTimeouts(),
		Istio:    istio.DefaultTimeouts(),
		Live:     live.DefaultTimeouts(),
		Fixtures: fixtures.DefaultTimeouts(),
		Pushed:   pushed.DefaultTimeouts(),
	}
}

// timeoutDocs says, per "section.key", what condition the bound waits for
// (from each package's Timeouts); --print-timeouts writes it above the key.
var timeoutDocs = map[string]string{
	"cluster.create":          "kind's create until every node is Ready",
	"cluster.cancelgrace":     "an interrupted create noticing its nodes were deleted",
	"cluster.rollout":         "a DaemonSet or Deployment rollout (CoreDNS, pod network, ip-masq-agent)",
	"cluster.apply":           "retries of an apply whose kind is not served yet; deleted objects gone",
	"cluster.namespacedelete": "namespaces gone",
	"cluster.dns":             "every CoreDNS pod answering the fixtures' names",
	"cluster.ipmasqrules":     "ip-masq-agent's rules matching its ConfigMap on every node",
	"cluster.cnimasquerade":   "the CNI baseline masquerade chain gone or back on every node",
	"cluster.imageload":       "an image loaded into the nodes",
	"cluster.imagepullgrace":  "how long a pod may fail to pull an image before a wait stops with the reason",
	"cluster.poll":            "interval between observations",
	"istio.ready":             "istiod and the ingress gateway Ready after install",
	"istio.preflight":         "a client pod's sidecar injected and ready",
	"istio.proxyconfig":       "a sidecar's config_dump showing the outbound policy (WaitProxyPolicy)",
	"istio.imagepullgrace":    "how long a pod problem may persist before a wait stops with the reason",
	"istio.poll":              "interval between observations",
	"live.pods":               "the probe pods ready",
	"live.attempt":            "each phase of one probe attempt (dial, handshake, first answer)",
	"live.exec":               "one exec of the probe in a pod",
	"live.converge":           "a step's expectations holding Consecutive times (policy propagation)",
	"live.settled":            "the same for a step whose change was already observed in effect",
	"live.consecutive":        "matching observations in a row that make an expectation converged (a count)",
	"live.poll":               "pause between observation rounds",
	"live.adminsql":           "a step's admin SQL statements",
	"live.route":              "adding or removing the echo container's return route",
	"live.close":              "restoring what the live driver changed",
	"fixtures.imagebuild":     "building the agent binary and its image",
	"fixtures.start":          "one fixture container from create to ready",
	"fixtures.cleanup":        "removing a run's containers (not cut short by Ctrl-C)",
	"fixtures.poll":           "interval between readiness probes",
	"fixtures.probe":          "one readiness probe (dial, handshake, request)",
	"pushed.connect":          "pushed-config tier: port-forward to istiod, the workloads' IPs and the first complete config (xDS or a sidecar's config_dump)",
	"pushed.propagation":      "pushed-config tier: a policy switch or an applied/deleted object showing in the pushed config (xDS push, or a sidecar's config_dump)",
	"pushed.poll":             "pushed-config tier: interval between two reads of a sidecar's config_dump",
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
			Fix: "sections cluster, istio, live, fixtures, pushed; durations like 90s or 3m; --print-timeouts shows every key"}
	}
	return t, nil
}

func trimAfter(s, marker string) string {
	if i := bytes.Index([]byte(s), []byte(marker)); i >= 0 {
		return s[i+len(marker):]
	}
	return ""
}

// printTimeouts writes the defaults as a --timeouts file, each key with
// a comment saying what it waits for.
func printTimeouts(w io.Writer) error {
	var doc yaml.Node
	if err := doc.Encode(defaultTimeoutConfig()); err != nil {
		return err
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		section := doc.Content[i].Value
		keys := doc.Content[i+1]
		for j := 0; j+1 < len(keys.Content); j += 2 {
			k := keys.Content[j]
			if d := timeoutDocs[section+"."+k.Value]; d != "" {
				k.HeadComment = d
			}
		}
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	fmt.Fprintln(w, "# meshconform run --timeouts FILE: every bound of a live run, with its default and what it waits for.")
	return enc.Encode(&doc)
}
