package check

import "fmt"

// InputError is bad input: it names the file, the line (or object), what
// is wrong and how to fix it. Commands exit 2 on it.
type InputError struct {
	File    string
	Line    int
	Object  string // e.g. "ServiceEntry default/httpbin"
	Problem string
	Fix     string
}

func (e *InputError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	s := loc + ": "
	if e.Object != "" {
		s += e.Object + ": "
	}
	s += e.Problem
	if e.Fix != "" {
		s += "\n  fix: " + e.Fix
	}
	return s
}
