// Package probe makes one connection attempt to a destination and
// classifies what happened: the destination answered (Allowed), the mesh
// refused it (BlockedByMesh: Envoy's 502, a reset or EOF right after
// connect, a TLS handshake cut short) or the network did not deliver it
// (Unreachable: timeout, no route, connection refused, an answer from
// something other than the target).
//
// It speaks HTTP, HTTPS, opaque TLS, the echo fixture's client-first TCP
// line protocol, MySQL (a real query, e.g. as the least-privilege user) and
// gRPC (the greeter's SayHello, plaintext or TLS with SNI), and reports the
// source address the target saw where the protocol tells it.
//
// It is used two ways: in-process by the live driver for connections that
// start outside the cluster, and as `meshconform-agent probe --json` inside
// the probe pods, whose JSON output is a Result. `meshconform-agent sleep`
// keeps those pods alive.
//
// It must stay light enough for the FROM scratch agent image: no
// Kubernetes, Docker, Istio or testcontainers imports, and it must not
// import suites/check (whose fixtures dependency pulls in Docker's client);
// outcomes are the same strings as check.Outcome. It never skips TLS
// verification and never prints passwords: the MySQL password comes from an
// environment variable named on the command line, never from argv.
package probe
