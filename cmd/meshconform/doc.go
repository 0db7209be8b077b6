// Command meshconform is an end-to-end conformance harness for Istio
// egress policy. See the README for the commands.
package main
