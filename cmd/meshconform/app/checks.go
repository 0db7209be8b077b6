package app

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/suites"
	"github.com/meshconform/meshconform/suites/check"
)

func newChecksCmd(g *globals) *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "checks",
		Short: "List the built-in checks, their labels, requirements and negative controls",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
	f.register(cmd, "", "")
	return cmd
}
