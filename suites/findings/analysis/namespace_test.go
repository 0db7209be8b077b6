package analysis

import (
	"strings"
	"testing"
)

func TestWithNamespaceKeepsLines(t *testing.T) {
	in := "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n---\napiVersion: v1\nkind: C\nmetadata:\n  name: c\n  namespace: own\n---\napiVersion: v1\nkind: D\nmetadata:\n  name: d\n"
	out, ins := withNamespace([]byte(in), "shop")
	got := string(out)
	for _, want := range []string{"metadata:\n  namespace: shop\n  name: a", "metadata: {namespace: shop, name: b}", "  name: c\n  namespace: own\n", "metadata:\n  namespace: shop\n  name: d"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	outLines := strings.Split(got, "\n")
	inLines := strings.Split(in, "\n")
	// Every original line maps back to itself.
	for i, l := range outLines {
		if strings.Contains(l, "namespace: shop") && !strings.Contains(l, "{") {
			continue
		}
		j := originalLine(i+1, ins) - 1
		if j < 0 || j >= len(inLines) || (inLines[j] != l && !strings.Contains(l, "namespace: shop")) {
			t.Errorf("line %d %q maps to %d", i+1, l, j+1)
		}
	}
}
