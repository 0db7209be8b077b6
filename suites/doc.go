// Package suites holds the explicit list of meshconform's checks: five
// suites, one directory each (registryonly, serviceentry, tcpcidr,
// ingress, masquerade), every check a value with its manifests embedded
// beside it and its negative control. It also builds the environments the
// checks are rendered with: the simulation's fixed addresses and, for a
// live run, the fixtures' real endpoints.
//
// It must not observe anything itself: drivers (suites/sim, suites/live)
// do that.
package suites
