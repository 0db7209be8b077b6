package app

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/meshconform/meshconform/suites"
)

// Every location --explain prints is a real line of this repository that
// says what the output claims: the check's name, its NegativeControl
// field, or the function named in parentheses.
func TestExplainPointsAtRealLines(t *testing.T) {
	loc := regexp.MustCompile(`(suites/[a-z0-9/_-]+\.(go|yaml))(?::(\d+))?(?: \((\S+)\))?`)
	root := filepath.Join("..", "..", "..")
	for _, c := range suites.All() {
		code, out, errOut := runCLI(t, "checks", "--explain", c.Name)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.Name, code, errOut)
		}
		if !strings.Contains(out, "traffic:") || !strings.Contains(out, "simulation:") || !strings.Contains(out, "negative control: "+c.NegativeControl.Description) {
			t.Errorf("%s: missing a tier or the control:\n%s", c.Name, out)
		}
		if c.Suite != "masquerade" && !strings.Contains(out, "pushed config:") {
			t.Errorf("%s: mesh check without its pushed-config observer:\n%s", c.Name, out)
		}
		for _, m := range loc.FindAllStringSubmatch(out, -1) {
			b, err := os.ReadFile(filepath.Join(root, m[1]))
			if err != nil {
				t.Errorf("%s: %s: %v", c.Name, m[0], err)
				continue
			}
			if m[3] == "" {
				continue
			}
			n, _ := strconv.Atoi(m[3])
			lines := strings.Split(string(b), "\n")
			if n < 1 || n > len(lines) {
				t.Errorf("%s: %s: no such line", c.Name, m[0])
				continue
			}
			line := lines[n-1]
			switch fn := m[4]; {
			case fn != "":
				name := fn[strings.LastIndex(fn, ".")+1:]
				if !strings.HasPrefix(line, "func ") || !strings.Contains(line, " "+name+"(") {
					t.Errorf("%s: %s is %q, not func %s", c.Name, m[0], line, name)
				}
			case strings.Contains(line, "NegativeControl:"):
			case !strings.Contains(line, `"`+c.Name+`"`):
				t.Errorf("%s: %s is %q, which names neither the check nor its control", c.Name, m[0], line)
			}
		}
	}
	if code, _, errOut := runCLI(t, "checks", "--explain", "NoSuchCheck"); code != 2 || !strings.Contains(errOut, "no such check") {
		t.Errorf("unknown check: exit %d, %q", code, errOut)
	}
}
