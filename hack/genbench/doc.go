// Command genbench writes the simulation benchmark's input: N
// ServiceEntries (HTTP/DNS, TLS/DNS and TCP with /32 addresses) and M
// expectations from 10 source workloads, a quarter of them to
// unregistered hosts. Used by hack/bench-simulate.sh and the Go benchmark.
package main
