package probe

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main is `meshconform-agent probe [flags]`: one attempt, its Result on
// stdout (one JSON object with --json). The exit code is 0 whenever an
// attempt was made, whatever its outcome, and 2 for a bad request, so the
// caller reads the verdict from the JSON, not the exit code.
func Main(args []string) int {
	return runMain(context.Background(), args, os.Stdout, os.Stderr, os.Getenv)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q Request
	var caFile, passEnv string
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	fs.StringVar(&q.Protocol, "protocol", HTTP, "HTTP, HTTPS, TLS, TCP, MySQL, GRPC (TLS unless --plaintext) or GRPCS")
	fs.StringVar(&q.Host, "host", "", "DNS name: Host header, gRPC authority, default SNI and dial address")
	fs.StringVar(&q.Address, "address", "", "IP to connect to (default --host)")
	fs.IntVar(&q.Port, "port", 0, "destination port")
	fs.StringVar(&q.SNI, "sni", "", "TLS server name (default --host)")
	fs.StringVar(&caFile, "ca", "", "PEM CA certificate file that verifies the server")
	fs.DurationVar(&q.Timeout, "timeout", DefaultTimeout, "bound of each phase (dial, handshake, first answer)")
	fs.StringVar(&q.MySQLUser, "mysql-user", "", "MySQL user")
	fs.StringVar(&passEnv, "mysql-password-env", "", "name of the environment variable holding the MySQL password")
	fs.StringVar(&q.Query, "query", "", "SQL to run (default SELECT 1)")
	fs.BoolVar(&q.Plaintext, "plaintext", false, "GRPC without TLS")
	fs.StringVar(&q.Name, "name", "", "name sent in SayHello (default meshconform)")
	fs.StringVar(&q.Path, "path", "/", "HTTP request path")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "probe: unexpected arguments %q\n", fs.Args())
		return 2
	}
	// Accept check.Protocol spellings case-insensitively.
	for _, p := range []string{HTTP, HTTPS, TLS, TCP, MySQL, GRPC, GRPCS} {
		if strings.EqualFold(q.Protocol, p) {
			q.Protocol = p
		}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			fmt.Fprintf(stderr, "probe: read CA: %v\n", err)
			return 2
		}
		q.CAPEM = b
	}
	if passEnv != "" {
		v := getenv(passEnv)
		if v == "" {
			fmt.Fprintf(stderr, "probe: environment variable %s is empty: set it to the MySQL password\n", passEnv)
			return 2
		}
		q.MySQLPassword = v
	}
	if err := q.Validate(); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := Run(ctx, q)
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(r); err != nil {
			fmt.Fprintf(stderr, "probe: %v\n", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, r.String())
		for _, s := range r.Steps {
			fmt.Fprintln(stdout, "  "+s)
		}
	}
	if r.Error != "" {
		return 2
	}
	return 0
}

// SleepMain is `meshconform-agent sleep`: it waits until SIGTERM or
// SIGINT, so a probe pod stays up for exec and stops at once when deleted.
func SleepMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "sleep: takes no arguments, got %q\n", args)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}
