// Package e2eflags lets a test binary accept, and ignore, the flags of
// sigs.k8s.io/e2e-framework, so that
//
//	go test ./suites/... -args --labels suite=masquerade
//
// filters the e2e-framework tests of package suites while the unit tests
// of every other package under suites/ still run (without it their test
// binaries stop at "flag provided but not defined: -labels"). Import it for
// its side effect from one _test.go file of each test package under
// suites/, except package suites itself, whose TestMain parses the real
// flags:
//
//	import _ "github.com/meshconform/meshconform/suites/e2e/e2eflags"
//
// It owns nothing else and must not be imported by non-test code.
package e2eflags
