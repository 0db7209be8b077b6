package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/set"
)

type fixturesUpOptions struct {
	network    string
	runID      string
	mysqlImage string
	out        string
}

func newFixturesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fixtures",
		Short: "Start or remove the services outside the mesh (echo, MySQL, gRPC greeter)",
		Long: `fixtures manages the services that sit outside the mesh the way a Cloud SQL
database or a public API does: an echo target (HTTP 80, HTTPS 443, TCP 9000
and 3306, reporting the source address it saw), a MySQL database seeded with
Bookinfo's test.ratings (admin and least-privilege bookinfo users), and a gRPC
greeter (plaintext 50051, TLS 50443 signed by the run's CA).

They run as Docker containers on one network (default "kind", so pods reach
them by IP), labelled meshconform.dev/managed=true and
meshconform.dev/run-id=<id>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newFixturesUpCmd(g), newFixturesDownCmd(g))
	return cmd
}

func newFixturesUpCmd(g *globals) *cobra.Command {
	o := &fixturesUpOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the fixtures in parallel and print their endpoints",
		Long: `up starts echo, MySQL and greeter in parallel (building the agent image
first if this source tree's version is not in the Docker engine yet), waits
until each answers its real protocol, prints the endpoints, and writes
endpoints.json, ca.pem and a 0600 secrets.env (database DSNs) into --out.

The containers keep running after up returns; remove them with
"meshconform fixtures down --run-id <id>". If anything fails, or on Ctrl-C at
any moment, up removes everything it started before exiting.`,
		Example: `  meshconform fixtures up
  meshconform fixtures up --mysql-image testenv/mariadb:10.11 --out /tmp/fx
  meshconform fixtures down --run-id mc-5f2c9a1be0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.execute(cmd.Context(), g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.network, "network", fixtures.DefaultNetwork, "Docker network to join (created if missing)")
	f.StringVar(&o.runID, "run-id", "", "run id for labels and names (default: generated)")
	f.StringVar(&o.mysqlImage, "mysql-image", "", "database image (default $MYSQL_IMAGE, else mysql:8.4)")
	f.StringVar(&o.out, "out", "", "directory for endpoints.json, ca.pem and secrets.env (default: $TMPDIR/meshconform-<run id>)")
	return cmd
}

func (o *fixturesUpOptions) execute(ctx context.Context, g *globals) error {
	if o.runID == "" {
		o.runID = fixtures.NewRunID()
	}
	if err := fixtures.ValidateRunID(o.runID); err != nil {
		return badInput(fmt.Errorf("--run-id: %w", err))
	}
	if o.network == "" {
		return badInput(errors.New("--network is empty: pass a Docker network name such as kind"))
	}
	if o.out == "" {
		o.out = filepath.Join(os.TempDir(), "meshconform-"+o.runID)
	}
	quietTestcontainers(g)
	if err := fixtures.DockerAvailable(ctx); err != nil {
		return badInput(fmt.Errorf("docker is needed for fixtures: %w", err))
	}

	fmt.Fprintf(g.stderr, "starting echo, mysql and greeter (run %s, network %s)...\n", o.runID, o.network)
	s, err := set.Up(ctx, set.WithRunID(o.runID), set.WithNetwork(o.network),
		set.WithMySQLImage(o.mysqlImage), set.WithLogger(progressLogger(g)))
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: ExitFailed, err: fmt.Errorf("interrupted: removed every container of run %s", o.runID)}
		}
		return &exitError{code: ExitFailed, err: err}
	}
	paths, err := s.WriteFiles(o.out)
	if err != nil {
		// The fixtures are useless to the caller without their files.
		if cerr := s.Close(ctx); cerr != nil {
			err = fmt.Errorf("%w (cleanup: %v)", err, cerr)
		}
		return &exitError{code: ExitFailed, err: err}
	}
	fmt.Fprintf(g.stdout, "fixtures of run %s ready in %s (agent image %s)\n\n",
		s.RunID, s.Elapsed().Round(1e6), s.AgentImage)
	fmt.Fprint(g.stdout, s.Table())
	fmt.Fprintf(g.stdout, "\nendpoints: %s\nCA:        %s\nsecrets:   %s (0600: database DSNs)\n", paths[0], paths[1], paths[2])
	fmt.Fprintf(g.stdout, "\ntear down: meshconform fixtures down --run-id %s\n", s.RunID)
	return nil
}

func newFixturesDownCmd(g *globals) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove fixture containers by label (one run, or every run)",
		Long: `down removes every container labelled meshconform.dev/run-id=<id>, or with
no --run-id every container labelled meshconform.dev/managed=true, including
leftovers of crashed or interrupted runs, and then the Docker network if
meshconform created it and nothing uses it any more.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runID != "" {
				if err := fixtures.ValidateRunID(runID); err != nil {
					return badInput(fmt.Errorf("--run-id: %w", err))
				}
			}
			if err := fixtures.DockerAvailable(cmd.Context()); err != nil {
				return badInput(fmt.Errorf("docker is needed for fixtures: %w", err))
			}
			// Finish removing even if interrupted: a half-done down is worse.
			removed, err := fixtures.Down(context.WithoutCancel(cmd.Context()), runID)
			scope := "every run"
			if runID != "" {
				scope = "run " + runID
			}
			if len(removed) == 0 {
				fmt.Fprintf(g.stdout, "no fixture containers of %s\n", scope)
			} else {
				fmt.Fprintf(g.stdout, "removed %d container(s) of %s: %s\n", len(removed), scope, strings.Join(removed, ", "))
			}
			if err != nil {
				return &exitError{code: ExitFailed, err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run-id", "", "remove only this run's containers (default: every meshconform container)")
	return cmd
}

// progressLogger prints fixture progress to stderr with -v, else nothing.
func progressLogger(g *globals) fixtures.Logger {
	if g.verbose {
		return log.New(g.stderr, "  ", 0)
	}
	return fixtures.Discard
}

// quietTestcontainers routes testcontainers-go's own banner and progress
// lines to stderr with -v and drops them otherwise.
func quietTestcontainers(g *globals) {
	var w io.Writer = io.Discard
	if g.verbose {
		w = g.stderr
	}
	tclog.SetDefault(log.New(w, "  ", 0))
}
