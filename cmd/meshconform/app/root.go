package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is the tool version, set with -ldflags "-X ...app.Version=...".
var Version = "dev"

// Exit codes.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitBadInput = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// badInput wraps err as exit code 2.
func badInput(err error) error { return &exitError{code: ExitBadInput, err: err} }

// exitCode wraps a bare exit code (the reason was already printed).
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

type globals struct {
	verbose bool
	stdout  io.Writer
	stderr  io.Writer
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string) int {
	return run(context.Background(), args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "meshconform: %v\n", ee.err)
		}
		return ee.code
	}
	// cobra's own errors: unknown flags, commands, arguments.
	fmt.Fprintf(stderr, "meshconform: %v\n", err)
	return ExitBadInput
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "meshconform",
		Short: "End-to-end conformance harness for Istio egress policy",
		Long: `meshconform verifies Istio egress policy: REGISTRY_ONLY blocking, ServiceEntry
unblocking, TCP CIDR entries, TLS gRPC ingress and ip-masq-agent masquerade routing.

It observes the same checks two ways: "simulate" asks Istio's own config
generator and traffic simulator (no cluster needed); "run" sends real traffic
in a kind cluster (or an existing one) against fixtures outside the mesh.

Exit codes: 0 all checks passed, 1 a check failed, 2 bad input or environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print details (traces, commands, timings)")
	for _, c := range commands(g) {
		root.AddCommand(c)
	}
	return root
}
