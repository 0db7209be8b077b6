package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	echoserver "github.com/meshconform/meshconform/fixtures/echo/server"
	greeterserver "github.com/meshconform/meshconform/fixtures/greeter/server"
	"github.com/meshconform/meshconform/suites/live/probe"
)

// commands is the explicit dispatch table: name -> Main(args) exit code.
// Add a program here with one line, e.g. "probe": probe.Main,
var commands = map[string]func(args []string) int{
	"echo":    echoserver.Main,
	"greeter": greeterserver.Main,
	"probe":   probe.Main,
	"sleep":   probe.SleepMain,
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stderr))
}

func dispatch(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "meshconform-agent: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd(args[1:])
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "usage: meshconform-agent <%s> [flags]\n", strings.Join(names, "|"))
}
