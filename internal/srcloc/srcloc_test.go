package srcloc

import (
	"strings"
	"testing"
)

type recv struct{}

func (*recv) method() {}

func TestFuncNamesTheDeclaration(t *testing.T) {
	for _, tc := range []struct {
		fn   any
		want string
	}{
		{Func, "internal/srcloc/srcloc.go:"},
		{(*recv).method, "internal/srcloc/srcloc_test.go:10 (srcloc.(*recv).method)"},
	} {
		if got := Func(tc.fn); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Func = %q, want prefix %q", got, tc.want)
		}
	}
	if got := Func(42); got != "?" {
		t.Errorf("Func(42) = %q, want ?", got)
	}
}

func TestRelUnderTrimpath(t *testing.T) {
	if got := Rel("github.com/meshconform/meshconform/suites/x.go"); got != "suites/x.go" {
		t.Errorf("Rel = %q", got)
	}
	if got := Rel("/elsewhere/y.go"); got != "/elsewhere/y.go" {
		t.Errorf("Rel outside the module = %q", got)
	}
}
