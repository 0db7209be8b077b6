package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/expectations"
	"github.com/meshconform/meshconform/suites/findings"
	"github.com/meshconform/meshconform/suites/findings/analysis"
	"github.com/meshconform/meshconform/suites/findings/selfcheck"
	"github.com/meshconform/meshconform/suites/sim"
	"github.com/meshconform/meshconform/suites/sim/fromcluster"
)

type simulateOptions struct {
	checkFlags
	configs      []string
	meshConfig   string
	policy       string
	expectations string
	namespace    string
	fromCluster  bool
	kubeconfig   string
	kubeContext  string
	revision     string
	analyze      bool
	selfChecks   bool
	failOn       string
	suppress     []string
}

func newSimulateCmd(g *globals) *cobra.Command {
	o := &simulateOptions{}
	cmd := &cobra.Command{
		Use:   "simulate [CONFIG_PATH...]",
		Short: "Check egress policy offline with Istio's own config generator and traffic simulator",
		Long: `simulate generates the Envoy configuration istiod would send a sidecar (or the
ingress gateway) for your Istio config, then simulates each expected call
through it: listener → filter chain → virtual host/route → cluster.

Without --expectations it runs the five built-in suites (each check with its
own manifests and policy). With --expectations it checks your own policy:
CONFIG_PATHs (files or directories of ServiceEntry, Sidecar, Gateway,
VirtualService, DestinationRule and Service YAML) are validated with Istio's
own validation, then every expectation in the file is simulated.

Masquerade expectations are evaluated as ip-masq-agent reads its ConfigMap.

--from-cluster reads the deployed policy instead (get/list only, never a
write): ServiceEntry, Sidecar, Gateway, VirtualService, DestinationRule,
WorkloadEntry and Service in all namespaces, the mesh config of istiod
(ConfigMap istio or istio-<rev>; --revision picks one of several control
planes) and kube-system/ip-masq-agent. Files given with -f are added on top,
replacing cluster objects of the same kind/namespace/name (a change under
review); --mesh-config and an expectations file's masquerade.config win
over the cluster's.

Findings, without any expectation written for them: Istio's own analyzers
(what istioctl analyze runs, codes IST0xxx) over the same objects and mesh
config, and self-checks on the simulated config (codes MC0xxx): MC0001 an
entry shadowed by an older one, MC0002 an entry capturing every address on
its port, MC0003 a config Envoy would reject. --fail-on sets the level that
fails the run (default error, as istioctl analyze); --suppress hides one
code on matching objects, as istioctl analyze --suppress.`,
		Example: `  meshconform simulate
  meshconform simulate --suite registry-only --negative-controls
  meshconform simulate -f istio/ --expectations egress-expectations.yaml --outbound-traffic-policy REGISTRY_ONLY
  meshconform simulate --from-cluster --context prod --expectations egress-expectations.yaml
  meshconform simulate --from-cluster -f change/ --expectations egress-expectations.yaml
  meshconform simulate -f istio/ --expectations e.yaml --fail-on warning --suppress "MC0002=ServiceEntry ldap.identity"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.configs = append(o.configs, args...)
			return o.run(cmd, g)
		},
	}
	o.register(cmd, "", "")
	fl := cmd.Flags()
	fl.StringSliceVarP(&o.configs, "config", "f", nil, "Istio YAML file or directory (repeatable; also positional)")
	fl.StringVar(&o.meshConfig, "mesh-config", "", "mesh config YAML file (the `mesh` key of istio-system/istio); default Istio's defaults")
	fl.StringVar(&o.policy, "outbound-traffic-policy", "", "override outboundTrafficPolicy.mode: ALLOW_ANY or REGISTRY_ONLY")
	fl.StringVar(&o.expectations, "expectations", "", "expectations file (apiVersion meshconform.dev/v1alpha1); without it the built-in suites run")
	fl.StringVar(&o.namespace, "namespace", "default", "namespace for config objects that have none")
	fl.BoolVar(&o.fromCluster, "from-cluster", false, "read the deployed config, mesh config and ip-masq-agent config from the cluster (read-only)")
	fl.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for --from-cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fl.StringVar(&o.kubeContext, "context", "", "kubeconfig context for --from-cluster (default: current-context)")
	fl.StringVar(&o.revision, "revision", "", "istio.io/rev of the control plane whose mesh config --from-cluster uses, when several run")
	fl.BoolVar(&o.analyze, "analyze", true, "run Istio's config analyzers (istioctl analyze) over the config")
	fl.BoolVar(&o.selfChecks, "self-checks", true, "run the simulation self-checks (MC0001 shadowed entry, MC0002 whole-port capture, MC0003 Envoy would reject)")
	fl.StringVar(&o.failOn, "fail-on", "error", "findings at this level or above fail the run: error, warning, info or none")
	fl.StringArrayVar(&o.suppress, "suppress", nil, "hide findings of a code on matching objects: CODE=Kind name.namespace ('*' is a wildcard, e.g. 'Kind *.finance'), repeatable")
	return cmd
}

func (o *simulateOptions) run(cmd *cobra.Command, g *globals) error {
	start := time.Now()
	r := reports.Report{Tool: Version, Driver: "simulation", IstioVersion: sim.IstioVersion(), Started: start}
	fail := func(err error) error { return o.setupFailed(g, r, "input", err) }
	if !o.fromCluster && (o.kubeconfig != "" || o.kubeContext != "" || o.revision != "") {
		return fail(fmt.Errorf("--kubeconfig, --context and --revision only apply with --from-cluster: add --from-cluster"))
	}
	var snap *fromcluster.Snapshot
	if o.fromCluster {
		var err error
		if snap, err = o.readCluster(cmd.Context(), g, start, &r); err != nil {
			return o.setupFailed(g, r, "cluster", err)
		}
	}
	mc, err := o.loadMesh(snap)
	if err != nil {
		return fail(err)
	}
	if r.FailOn, err = findings.ParseFailOn(o.failOn); err != nil {
		return fail(fmt.Errorf("--fail-on: %w", err))
	}
	var sups []findings.Suppression
	for _, s := range o.suppress {
		sup, err := findings.ParseSuppression(s)
		if err != nil {
			return fail(fmt.Errorf("--suppress: %w", err))
		}
		sups = append(sups, sup)
	}
	var policy check.OutboundPolicy
	if o.policy != "" {
		if policy, err = check.ParseOutboundPolicy(o.policy); err != nil {
			return fail(fmt.Errorf("--outbound-traffic-policy: %w", err))
		}
	}
	objs, err := sim.LoadPaths(o.configs, o.namespace)
	if err != nil {
		return fail(err)
	}
	if len(o.configs) > 0 {
		progress(g, start, "loaded %d objects from %v (validated with Istio's validation)", len(objs), o.configs)
	}
	if snap != nil {
		var replaced []string
		objs, replaced = fromcluster.Merge(snap.Objects, objs)
		for _, id := range replaced {
			progress(g, start, "%s: the file's version replaces the cluster's", id)
		}
	}
	var all []check.Check
	env := suites.SimEnv()
	reportPolicy := "per check"
	if o.expectations != "" {
		l, err := expectations.Load(o.expectations, sim.IndexHosts(objs))
		if err != nil {
			return fail(err)
		}
		if policy == "" {
			policy = l.Policy
		}
		if policy == "" {
			policy = check.OutboundPolicy(mc.GetOutboundTrafficPolicy().GetMode().String())
		}
		masqFromCluster := false
		for _, c := range l.Checks {
			if c.Masquerade == nil {
				c.Policy = policy
			} else if snap != nil && strings.TrimSpace(c.Masquerade.Config) == "" {
				m := *c.Masquerade
				m.Config = snap.IPMasqConfig
				c.Masquerade = &m
				masqFromCluster = true
			}
			all = append(all, c)
		}
		if masqFromCluster {
			src := "no ConfigMap " + fromcluster.IPMasqNamespace + "/" + fromcluster.IPMasqName + ": the agent's defaults"
			if snap.IPMasqFound {
				src = "ConfigMap " + fromcluster.IPMasqNamespace + "/" + fromcluster.IPMasqName + " key " + fromcluster.IPMasqKey
			}
			progress(g, start, "masquerade expectations: ip-masq-agent config from the cluster (%s)", src)
		}
		reportPolicy = string(policy)
		env.Namespace = o.namespace
	} else {
		all = suites.All()
		if policy != "" {
			// An explicit policy overrides the checks' own: expect failures.
			for i := range all {
				if all[i].Policy != "" {
					all[i].Policy = policy
				}
			}
			reportPolicy = string(policy)
		}
	}
	r.MeshPolicy = reportPolicy
	sel, err := o.selectChecks(all)
	if err != nil {
		return fail(err)
	}
	d, err := sim.New(sim.WithEnv(env), sim.WithMeshConfig(mc), sim.WithObjects(objs))
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	if g.verbose {
		progress(g, start, "simulating %d checks", len(sel))
	}
	if err := d.Prepare(cmd.Context(), sel); err != nil {
		return fail(err)
	}
	r.Results = check.RunAll(cmd.Context(), d, sel, check.RunOptions{
		NegativeControls: o.negativeControls,
		OnResult: func(res check.Result) {
			if g.verbose {
				progress(g, start, "%s %s", res.Status, res.Name)
			}
		},
	})
	st := d.Stats()
	progress(g, start, "simulated %d checks: %d configs generated in %s, %d proxy configs in %s (%s wall, concurrent), %d calls in %s",
		len(r.Results), st.Builds, st.BuildTime.Round(time.Millisecond), st.Proxies, st.ProxyTime.Round(time.Millisecond),
		st.PrepareTime.Round(time.Millisecond), st.Calls, st.CallTime.Round(time.Millisecond))
	if err := o.findings(cmd, g, start, &r, d, mc, objs, sel, sups); err != nil {
		return fail(err)
	}
	return o.finish(g, r)
}

// findings runs Istio's analyzers and the self-checks as asked and puts
// their (suppressed) findings into the report.
func (o *simulateOptions) findings(cmd *cobra.Command, g *globals, start time.Time, r *reports.Report, d *sim.Driver,
	mc *meshconfig.MeshConfig, objs []sim.Object, sel []check.Check, sups []findings.Suppression,
) error {
	r.FindingSources = map[string]bool{}
	var all []findings.Finding
	if o.selfChecks {
		t0 := time.Now()
		scs, err := d.Scenarios(sel)
		if err != nil {
			return err
		}
		fs, err := selfcheck.Run(cmd.Context(), d, scs)
		if err != nil {
			return err
		}
		r.FindingSources[findings.SelfCheck] = true
		all = append(all, fs...)
		progress(g, start, "self-checks: %d configs, %d findings in %s", len(scs), len(fs), time.Since(t0).Round(time.Millisecond))
	}
	if o.analyze {
		t0 := time.Now()
		fs, n, err := analyzeInputs(objs, sel, d, mc, o.namespace)
		if err != nil {
			return err
		}
		r.FindingSources[findings.Analysis] = true
		all = append(all, fs...)
		progress(g, start, "Istio's analyzers: %d configs, %d messages in %s", n, len(fs), time.Since(t0).Round(time.Millisecond))
	}
	r.Findings = findings.Suppress(all, sups)
	for _, s := range findings.Unused(all, sups) {
		fmt.Fprintf(g.stderr, "warning: --suppress %q matched no finding (codes are MC0001-MC0003 and Istio's IST codes; objects are \"Kind name.namespace\" as findings print them)\n", s)
	}
	return nil
}

// analyzeInputs runs Istio's analyzers over the -f files, and, for
// built-in checks, over each check's own manifests with them (one
// analysis per check: checks' manifests are separate configs). Messages
// are deduplicated. n is how many analyses ran.
func analyzeInputs(objs []sim.Object, sel []check.Check, d *sim.Driver, mc *meshconfig.MeshConfig, ns string) ([]findings.Finding, int, error) {
	var base []analysis.Document
	seenFile := map[string]bool{}
	for _, ob := range objs {
		if seenFile[ob.File] {
			continue
		}
		seenFile[ob.File] = true
		data := ob.Doc // an object read from the cluster has no file
		if data == nil {
			var err error
			if data, err = os.ReadFile(ob.File); err != nil {
				return nil, 0, &check.InputError{File: ob.File, Problem: "cannot read: " + err.Error()}
			}
		}
		base = append(base, analysis.Document{Name: ob.File, Data: data})
	}
	sets, err := d.Manifests(sel)
	if err != nil {
		return nil, 0, err
	}
	if len(sets) == 0 {
		sets = [][]sim.Manifest{nil}
	}
	var out []findings.Finding
	seen := map[string]bool{}
	n := 0
	for _, set := range sets {
		docs := append([]analysis.Document(nil), base...)
		for _, m := range set {
			docs = append(docs, analysis.Document{Name: m.File, Data: []byte(m.Text)})
		}
		if len(docs) == 0 {
			continue
		}
		n++
		fs, err := analysis.Run(docs, analysis.WithMeshConfig(mc), analysis.WithDefaultNamespace(ns))
		if err != nil {
			return nil, n, err
		}
		for _, f := range fs {
			if k := f.String(); !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	return out, n, nil
}

func (o *simulateOptions) loadMesh(snap *fromcluster.Snapshot) (*meshconfig.MeshConfig, error) {
	if o.meshConfig == "" && snap != nil && snap.MeshConfig != "" {
		mc, err := mesh.ApplyMeshConfigDefaults(snap.MeshConfig)
		if err != nil {
			ns, name, _ := strings.Cut(snap.MeshConfigSource, "/")
			return nil, &check.InputError{File: fromcluster.PseudoFile(snap.Context, "ConfigMap", ns, name), Object: "key mesh",
				Problem: "invalid mesh config: " + err.Error(), Fix: "pass a corrected copy with --mesh-config (it wins over the cluster's)"}
		}
		return mc, nil
	}
	if o.meshConfig == "" {
		return mesh.DefaultMeshConfig(), nil
	}
	data, err := os.ReadFile(o.meshConfig)
	if err != nil {
		return nil, &check.InputError{File: o.meshConfig, Problem: "cannot read: " + err.Error(), Fix: "pass the mesh config YAML (the `mesh` key of the istio ConfigMap)"}
	}
	mc, err := mesh.ApplyMeshConfigDefaults(string(data))
	if err != nil {
		return nil, &check.InputError{File: o.meshConfig, Problem: "invalid mesh config: " + err.Error(),
			Fix: "the file holds the content of the `mesh` key, e.g. `outboundTrafficPolicy: {mode: REGISTRY_ONLY}`"}
	}
	return mc, nil
}

// readCluster reads the deployed config (--from-cluster), prints what it
// read and records it, with any Istio version mismatch, in the report.
func (o *simulateOptions) readCluster(ctx context.Context, g *globals, start time.Time, r *reports.Report) (*fromcluster.Snapshot, error) {
	snap, err := fromcluster.Read(ctx, fromcluster.WithKubeconfig(o.kubeconfig), fromcluster.WithContext(o.kubeContext),
		fromcluster.WithRevision(o.revision))
	if err != nil {
		return nil, withFix(err, fromClusterFix(err))
	}
	var counts []string
	total := 0
	for _, k := range fromcluster.Kinds {
		counts = append(counts, fmt.Sprintf("%d %s", snap.Counts[k.Kind], k.Kind))
		total += snap.Counts[k.Kind]
	}
	progress(g, start, "read %d objects from cluster %s in %s (validated with Istio's validation): %s",
		total, snap.Context, snap.Elapsed.Round(time.Millisecond), strings.Join(counts, ", "))
	props := map[string]string{
		"cluster.context": snap.Context,
		"cluster.objects": strings.Join(counts, ", "),
	}
	generator := fromcluster.Minor(strings.Fields(sim.IstioVersion())[0])
	if cp := snap.ControlPlane; cp != nil {
		version := cp.Version
		if version == "" {
			version = "unknown (image " + cp.Image + ")"
		}
		mcSrc := "none found: Istio's defaults"
		if snap.MeshConfigSource != "" {
			mcSrc = "ConfigMap " + snap.MeshConfigSource
		}
		if o.meshConfig != "" {
			mcSrc = o.meshConfig + " (--mesh-config wins over the cluster's)"
		}
		progress(g, start, "control plane: istiod %s/%s, revision %s, Istio %s; mesh config: %s", cp.Namespace, cp.Name, cp.Revision, version, mcSrc)
		props["cluster.istio.revision"] = cp.Revision
		props["cluster.istio.version"] = version
		props["cluster.meshConfig"] = mcSrc
		switch m := fromcluster.Minor(cp.Version); {
		case m == "":
			msg := fmt.Sprintf("the cluster's Istio version is unknown; the verdicts come from Istio %s's generator", generator)
			fmt.Fprintf(g.stderr, "warning: %s\n", msg)
			props["cluster.istio.versionWarning"] = msg
		case m != generator:
			msg := fmt.Sprintf("the cluster runs Istio %s, the verdicts come from Istio %s's generator: behaviour that changed between them is not reflected", cp.Version, generator)
			fmt.Fprintf(g.stderr, "warning: %s\n", msg)
			props["cluster.istio.versionWarning"] = msg
		}
	} else {
		msg := "no istiod found (no Deployment labelled app=istiod): Istio's default mesh config"
		fmt.Fprintf(g.stderr, "warning: %s\n", msg)
		props["cluster.istio.versionWarning"] = msg
	}
	if r.Properties == nil {
		r.Properties = map[string]string{}
	}
	for k, v := range props {
		r.Properties[k] = v
	}
	return snap, nil
}

// fixedError is an error with the fix printed under it, as InputError does.
type fixedError struct {
	err error
	fix string
}

func (e *fixedError) Error() string { return e.err.Error() + "\n  fix: " + e.fix }
func (e *fixedError) Unwrap() error { return e.err }

func withFix(err error, fix string) error {
	if fix == "" {
		return err
	}
	return &fixedError{err: err, fix: fix}
}

// fromClusterFix says what to do about a failed --from-cluster read: the
// kubeconfig, the permissions (the shipped ClusterRole), the API server's
// reachability, or the istiod revision.
func fromClusterFix(err error) string {
	msg := err.Error()
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return "bind the read-only ClusterRole clusters/manifests/meshconform-reader.yaml to the identity of this kubeconfig " +
			"(kubectl apply -f it, then kubectl create clusterrolebinding meshconform-reader --clusterrole meshconform-reader --user <you>)"
	case strings.Contains(msg, "load kubeconfig"):
		return "pass --kubeconfig FILE and --context NAME of the cluster to read (kubectl config get-contexts lists them)"
	case strings.Contains(msg, "--revision") || strings.Contains(msg, "istiod revisions"):
		return "pass --revision with one of the revisions named above (the istio.io/rev label of istiod)"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "i/o timeout"):
		return "the API server of this context did not answer: check `kubectl --context <name> get --raw /version` from this machine"
	}
	return ""
}
