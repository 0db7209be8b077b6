package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/reports"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/e2e"
	"github.com/meshconform/meshconform/suites/findings"
)

type runOptions struct {
	checkFlags
	runExpectFlags
	name        string
	nodeImage   string
	kindConfig  string
	reuse       bool
	retain      bool
	kubeconfig  string
	kubeContext string
	agentImage  string
	revision    string
	istioHub    string
	istioTag    string
	noPull      bool
	localIstiod bool
	ipMasqImage string
	mysqlImage  string
	network     string
	namespace   string
	timeouts    string
	printTOs    bool
}

func newRunCmd(g *globals) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the checks with real traffic in a kind cluster with Istio",
		Long: `run observes the checks with real traffic: it creates a kind cluster (or
reuses one, or attaches to an existing cluster), builds the agent image and
loads it into the nodes, starts the fixtures outside the mesh (echo, MySQL,
greeter) on the kind network, makes their names resolve from pods, installs
Istio when a selected check needs it, starts the probe pods and runs the
checks. It writes JUnit and a Markdown summary even when setup fails (one
synthetic failed case names the phase), and tears everything down in reverse
order, also on Ctrl-C, unless --retain. The next run sweeps leftovers of
crashed runs.

With --kubeconfig/--context it attaches to an existing cluster (attach mode)
and changes only what it creates: it first checks every permission it will
use (SelfSubjectAccessReview; missing ones are listed, exit 2, nothing
changed; the ClusterRole is clusters/manifests/meshconform-attach.yaml),
sweeps namespaces of crashed attach runs (label meshconform.dev/mode=attach,
Lease expired), reads Istio as installed (revision, injection label,
effective outbound policy), creates its own namespaces, runs the echo target
inside the cluster outside the mesh (a bare pod addressed by pod IP), and
never edits CoreDNS, CNI, kube-system, the mesh-wide policy or shared
gateways: checks that would need that are Skipped with the reason. The
agent image comes from --agent-image (see "meshconform image push").

A check whose environment is missing (Istio's images cannot be pulled, no
sidecar) is an error "environment not ready: <reason>", never a pass.

--expectations FILE runs your own expectations file (the format simulate
reads) live instead of the built-in suites: each source gets a probe pod
with exactly its labels in its namespace, destinations are dialled as
written, -f objects are applied for the run through the API server and
removed after (without -f the cluster's own config is verified), and
masquerade expectations run against ip-masq-agent (the file's config on a
cluster the harness created; the cluster's own, read and never changed,
on an existing one). JUnit cases carry the expectation names, as simulate.

Exit codes: 0 all selected checks passed, 1 a check failed, 2 a check
errored, setup or teardown failed, the run was interrupted, or bad input.`,
		Example: `  meshconform run
  meshconform run --suite masquerade
  meshconform run --labels suite=registry-only --negative-controls -v
  meshconform run --reuse --retain --name dev
  meshconform run --kubeconfig staging.yaml --context stg --agent-image registry.example/meshconform/agent@sha256:<digest from image push>
  meshconform run --expectations egress-expectations.yaml -f istio/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.execute(cmd.Context(), g) },
	}
	o.register(cmd, "reports/junit.xml", "reports/summary.md")
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "kind cluster name (default meshconform)")
	f.StringVar(&o.nodeImage, "node-image", "", "kind node image (default $KIND_NODE_IMAGE)")
	f.StringVar(&o.kindConfig, "kind-config", "", "kind config file (kind.x-k8s.io/v1alpha4)")
	f.BoolVar(&o.reuse, "reuse", false, "use an existing kind cluster of that name instead of creating one")
	f.BoolVar(&o.retain, "retain", false, "keep the cluster and fixtures after the run (and after a failure or Ctrl-C)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "run against the existing cluster of this kubeconfig (never created or deleted)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context of an existing cluster")
	f.StringVar(&o.agentImage, "agent-image", "", "with --kubeconfig/--context: the agent image pushed to a registry the cluster pulls from (see meshconform image push; pin it by digest)")
	f.StringVar(&o.revision, "revision", "", "with --kubeconfig/--context: istio.io/rev of the control plane to use when several run")
	f.StringVar(&o.istioHub, "istio-hub", "", "Istio image hub (default docker.io/istio)")
	f.StringVar(&o.istioTag, "istio-tag", "", "Istio image tag (default: the release of the pinned istio module)")
	f.BoolVar(&o.noPull, "no-pull", false, "never pull Istio's images: use only what is in the host's Docker (they are loaded into the kind nodes)")
	f.BoolVar(&o.localIstiod, "local-istiod", false, "build istiod from the pinned istio module into a local image and install with it (kind only; the gateway and sidecars still need proxyv2)")
	f.StringVar(&o.ipMasqImage, "ip-masq-agent-image", "", "ip-masq-agent image (default $IP_MASQ_AGENT_IMAGE, else upstream's)")
	f.StringVar(&o.mysqlImage, "mysql-image", "", "MySQL/MariaDB image of the database fixture (default $MYSQL_IMAGE, else mysql:8.4)")
	f.StringVar(&o.network, "network", "", "Docker network of the fixtures: the kind nodes' network (default kind)")
	f.StringVar(&o.namespace, "namespace", "", "namespace of the probe pods and the checks' manifests (default meshconform)")
	f.StringVar(&o.timeouts, "timeouts", "", "YAML file overriding any bound of the run (see --print-timeouts)")
	f.BoolVar(&o.printTOs, "print-timeouts", false, "print every timeout with its default, as a --timeouts file, and exit")
	o.registerExpectations(f)
	return cmd
}

func (o *runOptions) execute(ctx context.Context, g *globals) error {
	start := time.Now()
	if o.printTOs {
		return printTimeouts(g.stdout)
	}
	// Misused flags write nothing (exit 2); a bad input file (--timeouts,
	// --expectations, -f) writes the JUnit report with one synthetic failed
	// Setup case naming file and line, as simulate does.
	rep := reports.Report{Tool: Version, Driver: "live", Started: start}
	if (o.agentImage != "" || o.revision != "") && o.kubeconfig == "" && o.kubeContext == "" {
		return badInput(errors.New("--agent-image and --revision are for an existing cluster: add --kubeconfig FILE or --context NAME (on a kind cluster the harness builds and loads the agent image itself)"))
	}
	tos, err := loadTimeouts(o.timeouts)
	if err != nil {
		return o.setupFailed(g, rep, "input", err)
	}
	p := e2e.NewPrinter(g.stderr, start, g.verbose)
	x, checks, err := o.loadExpectations()
	if err != nil {
		return o.setupFailed(g, rep, "input", err) // as simulate: file:line, fix, a synthetic JUnit case
	}
	if x == nil {
		all := suites.All()
		if err := check.ValidateList(all); err != nil {
			return badInput(fmt.Errorf("check definitions: %w", err))
		}
		if checks, err = o.selectChecks(all); err != nil {
			return badInput(err)
		}
	}
	p.Phase(e2e.PhaseChecks, "%d checks selected (suites %s)%s", len(checks), strings.Join(check.Suites(checks), ", "),
		map[bool]string{true: " with negative controls", false: ""}[o.negativeControls])

	cfg := e2e.Config{
		ClusterName: o.name, NodeImage: o.nodeImage, KindConfig: o.kindConfig, Reuse: o.reuse, Retain: o.retain,
		Kubeconfig: o.kubeconfig, Context: o.kubeContext, AgentImage: o.agentImage, Revision: o.revision,
		InstallIstio: e2e.NeedsMesh(checks), IstioHub: o.istioHub, IstioTag: o.istioTag, NoPull: o.noPull, LocalIstiod: o.localIstiod,
		MasqueradeChecks: e2e.HasMasquerade(checks), IPMasqAgentImage: o.ipMasqImage, MySQLImage: o.mysqlImage,
		Network: o.network, Namespace: o.namespace, Printer: p,
		LiveTimeouts: tos.Live, ClusterTimeouts: tos.Cluster, IstioTimeouts: tos.Istio, FixtureTimeouts: tos.Fixtures, PushedTimeouts: tos.Pushed,
	}
	if x != nil {
		cfg.LiveOptions = x.LiveOptions(cfg, checks)
	}
	env, setupErr := e2e.Setup(ctx, cfg)
	var xprops map[string]string
	if setupErr != nil {
		var pe *e2e.PhaseError
		phase := "setup"
		if errors.As(setupErr, &pe) {
			phase = pe.Phase
		}
		rep.SetupFailed(phase, setupErr)
	} else if x != nil {
		xprops = runExpectations(ctx, env, x, checks, &rep, func(r check.Result) { printResult(p, r) })
	} else {
		cstart := time.Now()
		// On an attached cluster, checks that need a change the run does
		// not own are Skipped with the reason, before anything runs.
		checks, rep.Results = env.SkipNotApplicable(checks, o.negativeControls)
		for _, r := range rep.Results {
			printResult(p, r)
		}
		rep.Results = append(rep.Results, check.RunAll(ctx, env.Driver, checks, check.RunOptions{
			NegativeControls: o.negativeControls,
			OnResult:         func(r check.Result) { printResult(p, r) },
		})...)
		c := check.Counts(rep.Results)
		p.Phase(e2e.PhaseChecks, "%d passed, %d failed, %d errors, %d skipped in %.1fs",
			c[check.Passed], c[check.Failed], c[check.Error], c[check.Skipped], time.Since(cstart).Seconds())
		env.RecordPhase(e2e.PhaseChecks, cstart, fmt.Sprintf("%d checks", len(rep.Results)))
		// The pushed-config tier: its own results, never mixed with the
		// traffic results (suite "<suite> (pushed config)").
		rep.Results = append(rep.Results, env.RunPushed(ctx, checks, rep.Results, func(r check.Result) { printResult(p, r) })...)
		// Where the two tiers disagree on an expectation: findings MC0004.
		if fs, compared := env.PushedFindings(); compared {
			rep.FindingSources = map[string]bool{findings.PushedConfig: true}
			rep.Findings, rep.FailOn = append(rep.Findings, fs...), findings.Error
		}
	}
	rep.IstioVersion = env.MeshVersion()
	rep.Properties = withProps(env.Properties(), xprops)
	interrupted := ctx.Err() != nil
	if interrupted {
		rep.Properties["run.interrupted"] = "true"
	}
	// Reports first, so they exist even if teardown hangs or is killed.
	writeErr := o.writeReports(rep)

	tearErr := env.Teardown(ctx)
	rep.Properties = withProps(env.Properties(), xprops)
	if interrupted {
		rep.Properties["run.interrupted"] = "true"
	}
	if tearErr != nil {
		rep.Properties["teardown.error"] = tearErr.Error()
	}
	if err := o.writeReports(rep); err != nil {
		writeErr = err
	}

	fmt.Fprintln(g.stdout)
	reports.WriteTable(g.stdout, rep)
	reports.WriteDetails(g.stdout, rep, g.verbose)
	reports.WriteFindings(g.stdout, rep, g.verbose)
	fmt.Fprintf(g.stdout, "JUnit: %s, summary: %s (%.1fs)\n", o.junit, o.summary, time.Since(start).Seconds())
	code := rep.ExitCode()
	if writeErr != nil {
		fmt.Fprintf(g.stderr, "meshconform: %v\n", writeErr)
		code = max(code, ExitBadInput)
	}
	if tearErr != nil {
		fmt.Fprintf(g.stderr, "meshconform: teardown: %v\n", tearErr)
		code = max(code, ExitBadInput)
	}
	if interrupted {
		// Skipped checks of an interrupted run are not a pass.
		fmt.Fprintln(g.stderr, "meshconform: interrupted")
		code = max(code, ExitBadInput)
	}
	return exitCode(code)
}

// writeReports writes the JUnit and summary files ("" skips one).
func (o *runOptions) writeReports(rep reports.Report) error {
	if o.junit != "" {
		if err := reports.WriteJUnit(o.junit, rep); err != nil {
			return err
		}
	}
	if o.summary != "" {
		return reports.WriteSummary(o.summary, rep)
	}
	return nil
}

// printResult prints one progress line per check (and its details with -v).
func printResult(p *e2e.Printer, r check.Result) {
	name := r.Suite + "/" + r.Name
	line := fmt.Sprintf("%-7s %s (%.1fs)", strings.ToUpper(string(r.Status)), name, r.Duration.Seconds())
	if r.Status != check.Passed && r.Message != "" {
		msg, _, _ := strings.Cut(r.Message, "\n")
		line += ": " + msg
	}
	for _, o := range r.Observations {
		if o.Converged >= 50*time.Millisecond {
			line += fmt.Sprintf(" [%s: took effect after %.1fs]", o.Step, o.Converged.Seconds())
		}
	}
	p.Phase(e2e.PhaseChecks, "%s", line)
	if p.Verbose() {
		for _, l := range strings.Split(strings.TrimRight(r.Trace(), "\n"), "\n") {
			if l != "" {
				p.Printf("%s", l)
			}
		}
	}
}
