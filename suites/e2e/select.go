package e2e

import (
	"regexp"

	"github.com/meshconform/meshconform/suites/check"
)

// FrameworkSelect returns the checks e2e-framework will run as features
// (one feature per check, named after it, labelled with its labels), by
// the same rules as its --feature, --skip-features, --labels (every key
// must match one of its values) and --skip-labels (any match skips). The
// e2e tests use it to set up only what the selected checks need.
func FrameworkSelect(all []check.Check, labels, skipLabels map[string][]string, feature, skipFeature *regexp.Regexp) []check.Check {
	var out []check.Check
next:
	for _, c := range all {
		if feature != nil && !feature.MatchString(c.Name) {
			continue
		}
		if skipFeature != nil && skipFeature.MatchString(c.Name) {
			continue
		}
		have := c.AllLabels()
		for k, vals := range labels {
			ok := false
			for _, v := range vals {
				if have[k] == v {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		for k, vals := range skipLabels {
			for _, v := range vals {
				if have[k] == v {
					continue next
				}
			}
		}
		out = append(out, c)
	}
	return out
}
