package suites

import (
	"strings"
	"testing"
)

// Every built-in check is found where it is declared, with its negative
// control after it, and every manifest it applies has a file.
func TestEveryCheckHasADefinition(t *testing.T) {
	for _, c := range All() {
		d, err := Define(c.Name)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		file, _, _ := strings.Cut(d.Check, ":")
		if !strings.HasSuffix(file, "/checks.go") || d.NegativeControl == "" || !strings.HasPrefix(d.NegativeControl, file+":") {
			t.Errorf("%s: definition %+v", c.Name, d)
		}
		dir := strings.TrimSuffix(strings.TrimPrefix(file, "suites/"), "/checks.go")
		for _, s := range c.Steps {
			for _, m := range s.Apply {
				if ManifestFile(dir, m.Name) == "" {
					t.Errorf("%s: manifest %s has no file", c.Name, m.Name)
				}
			}
		}
	}
	if _, err := Define("NoSuchCheck"); err == nil {
		t.Error("Define(NoSuchCheck) found something")
	}
}
