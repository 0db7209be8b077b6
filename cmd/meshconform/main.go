// Command meshconform is an end-to-end conformance harness for Istio
// egress policy. See the README for the commands.
package main

import (
	"os"

	"github.com/meshconform/meshconform/cmd/meshconform/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:]))
}
