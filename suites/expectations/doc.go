// Package expectations reads the file in which users state what their own
// egress policy must do: a small versioned YAML format (apiVersion
// meshconform.dev/v1alpha1, kind Expectations) listing source workloads,
// destinations and expected outcomes, plus ip-masq-agent expectations.
// Each entry becomes a check.Check in suite "expectations" (or
// "masquerade-expectations"), observed by the same drivers as the
// built-in suites.
//
// It owns parsing and validating that file (every error names the file,
// the line and the fix); it does not observe anything.
package expectations
