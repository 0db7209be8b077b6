// Command meshconform-agent is the one small static binary behind every
// program meshconform runs in a container or pod: the external echo target,
// the gRPC greeter and (later) the probe. It is built with CGO_ENABLED=0
// into a FROM scratch image by fixtures/images and only dispatches: the
// programs live in their packages.
//
//	meshconform-agent greeter [flags]
//	meshconform-agent echo [flags]
//	meshconform-agent probe --json [flags]
//	meshconform-agent sleep
package main
