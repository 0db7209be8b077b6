package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	var buf bytes.Buffer
	if code := dispatch([]string{"nope"}, &buf); code != 2 || !strings.Contains(buf.String(), "echo|greeter") {
		t.Errorf("unknown command: exit %d, output %q", code, buf.String())
	}
	buf.Reset()
	if code := dispatch(nil, &buf); code != 2 || !strings.Contains(buf.String(), "usage") {
		t.Errorf("no command: exit %d, output %q", code, buf.String())
	}
	if code := dispatch([]string{"greeter", "--bogus"}, &bytes.Buffer{}); code != 2 {
		t.Errorf("greeter with a bad flag: exit %d, want 2", code)
	}
}
