package app

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/internal/srcloc"
	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
	"github.com/meshconform/meshconform/suites/live"
	"github.com/meshconform/meshconform/suites/live/probe"
	"github.com/meshconform/meshconform/suites/pushed"
	"github.com/meshconform/meshconform/suites/sim"
)

func newChecksCmd(g *globals) *cobra.Command {
	var f checkFlags
	var explain string
	cmd := &cobra.Command{
		Use:   "checks",
		Short: "List the built-in checks, their labels, requirements and negative controls",
		Long: `List the built-in checks, their labels, requirements and negative controls.

--explain NAME prints where one check is defined (file:line), its steps and
manifests, its negative control, and the code that observes each of its
expectations in every tier (traffic probe, simulation, pushed config).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if explain != "" {
				for _, c := range suites.All() {
					if c.Name == explain {
						return explainCheck(g.stdout, c)
					}
				}
				return badInput(fmt.Errorf("--explain %q: no such check; `meshconform checks` lists them", explain))
			}
			sel, err := f.selectChecks(suites.All())
			if err != nil {
				return badInput(err)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SUITE\tCHECK\tPOLICY\tREQUIRES\tLABELS")
			for _, c := range sel {
				var req []string
				for _, r := range c.Requires {
					req = append(req, string(r))
				}
				pol := string(c.Policy)
				if pol == "" {
					pol = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Suite, c.Name, pol, strings.Join(req, ","), check.SortedLabels(c.Labels))
			}
			tw.Flush()
			if g.verbose {
				for _, c := range sel {
					fmt.Fprintf(g.stdout, "\n%s (%s)\n  %s\n  negative control: %s\n", c.Name, c.Suite, c.Description, c.NegativeControl.Description)
					for _, f := range c.NegativeControl.Flips {
						if f.Step < len(c.Steps) && f.Expect < len(c.Steps[f.Step].Expect) {
							e := c.Steps[f.Step].Expect[f.Expect]
							to := e.To
							if to.Host == "" && to.Address == "" {
								to.Host = to.Target // not rendered: name the fixture
							}
							fmt.Fprintf(g.stdout, "    flips [%s] %s -> %s: %s to %s\n", c.Steps[f.Step].Name, e.From.Kind, to, e.WantString(), check.Expectation{Want: f.Observed, WantSourceIP: f.SeenAs}.WantString())
						}
					}
				}
			}
			return nil
		},
	}
	f.registerSelection(cmd)
	cmd.Flags().StringVar(&explain, "explain", "", "print one check's definition (file:line), manifests, negative control and the code observing each expectation")
	return cmd
}

// explainCheck prints where c is defined and what observes it.
func explainCheck(w io.Writer, c check.Check) error {
	def, err := suites.Define(c.Name)
	if err != nil {
		return err
	}
	dir := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(def.Check, ":", 2)[0], "suites/"), "/checks.go")
	pol := string(c.Policy)
	if pol == "" {
		pol = "- (the check does not switch outboundTrafficPolicy)"
	}
	var req []string
	for _, r := range c.Requires {
		req = append(req, string(r))
	}
	// Rendered with the simulation's addresses, so names read as in a report.
	r, err := suites.Env(suites.SimEndpoints(), nil).Resolve(c)
	if err != nil {
		return fmt.Errorf("check %s: %w", c.Name, err)
	}
	fmt.Fprintf(w, "%s (suite %s)\n  %s\n", c.Name, c.Suite, c.Description)
	fmt.Fprintf(w, "  defined:   %s\n  policy:    %s\n  requires:  %s\n", def.Check, pol, strings.Join(req, ", "))
	if c.Masquerade != nil {
		fmt.Fprintf(w, "  masquerade: %+v\n", *c.Masquerade)
	}
	for i, s := range c.Steps {
		fmt.Fprintf(w, "  step %d %q\n", i+1, s.Name)
		for _, d := range s.Delete {
			fmt.Fprintf(w, "    delete   %s\n", d)
		}
		for _, m := range s.Apply {
			fmt.Fprintf(w, "    apply    %s (%s)\n", m.Name, orDash(suites.ManifestFile(dir, m.Name)))
		}
		for _, q := range s.AdminSQL {
			fmt.Fprintf(w, "    admin SQL %s\n", q)
		}
		for j, e := range r.Steps[i].Expect {
			fmt.Fprintf(w, "    expect %d.%d %s (target %q)\n", i+1, j+1, e, s.Expect[j].To.Target)
			if e.WantCluster != "" {
				fmt.Fprintf(w, "      Envoy cluster  %s\n", e.WantCluster)
			}
			if len(e.WantRows) > 0 || e.WantSQLError != 0 {
				fmt.Fprintf(w, "      query %q rows %v SQL error %d\n", e.Query, e.WantRows, e.WantSQLError)
			}
			for _, o := range observers(c, e) {
				fmt.Fprintf(w, "      %-14s %s\n", o[0], o[1])
			}
		}
	}
	fmt.Fprintf(w, "  negative control: %s\n    defined: %s\n", c.NegativeControl.Description, orDash(def.NegativeControl))
	fmt.Fprintf(w, "  addresses above are the simulation's (suites.SimEndpoints); live runs render the fixtures' own addresses\n")
	return nil
}

// observers names the code that observes e in each tier.
func observers(c check.Check, e check.Expectation) [][2]string {
	var out [][2]string
	if c.Masquerade != nil {
		out = append(out,
			[2]string{"traffic:", srcloc.Func(live.Code.Masquerade) + " then " + srcloc.Func(live.Code.Observe) + " → " + srcloc.Func(probe.Observer(string(e.To.Protocol)))},
			[2]string{"simulation:", srcloc.Func(sim.Code.Masquerade)})
		return out
	}
	traffic := srcloc.Func(live.Code.Observe) + " → " + srcloc.Func(probe.Observer(string(e.To.Protocol)))
	if e.From.Kind == check.MeshedPod || e.From.Kind == "" {
		traffic += "; blocked calls repeated from the control pod: " + srcloc.Func(live.Code.Control)
	}
	out = append(out,
		[2]string{"traffic:", traffic},
		[2]string{"simulation:", srcloc.Func(sim.Code.Observe) + " → " + srcloc.Func(sim.Code.Judge)})
	if c.Needs(check.NeedsIstio) {
		out = append(out, [2]string{"pushed config:", srcloc.Func(pushed.Code.Observe) + " → " + srcloc.Func(sim.Code.Judge)})
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
