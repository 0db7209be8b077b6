// Package findings is the vocabulary of problems meshconform reports
// without being asked: messages of Istio's own analyzers (package
// analysis, codes IST0xxx) and the simulation's self-checks (package
// selfcheck, codes MC0001–MC0003) and, in a live run, disagreements between
// the traffic verdict and the pushed-config verdict of the same
// expectation (MC0004, found by package pushed). A Finding names its code, level, object,
// file:line, the text, a documentation link and, for self-checks, the
// trace that proves it.
//
// It owns the Finding type, levels, the --fail-on threshold and
// istioctl-style suppressions (CODE=Kind name.namespace). It observes
// nothing and must not import Istio's config generator.
package findings
