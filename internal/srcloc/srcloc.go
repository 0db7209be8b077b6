package srcloc

import (
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
)

// Func returns "path/file.go:line (Name)" for a function or method
// expression (e.g. (*T).m), with the path relative to the module root and
// slash-separated; it returns "?" if fn is not a function. The line is the
// function's declaration as the Go runtime records it.
func Func(fn any) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return "?"
	}
	f := runtime.FuncForPC(v.Pointer())
	if f == nil {
		return "?"
	}
	file, line := f.FileLine(f.Entry())
	name := f.Name()
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return Rel(file) + ":" + strconv.Itoa(line) + " (" + name + ")"
}

// Rel turns a source path the runtime recorded (absolute, or module-path
// based under -trimpath) into a path relative to the module root.
func Rel(file string) string {
	file = filepath.ToSlash(file)
	if rest, ok := strings.CutPrefix(file, modulePath+"/"); ok {
		return rest
	}
	if root := moduleRoot(); root != "" {
		if rest, ok := strings.CutPrefix(file, root+"/"); ok {
			return rest
		}
	}
	return file
}

// modulePath is this module's path (as -trimpath writes it).
const modulePath = "github.com/meshconform/meshconform"

// moduleRoot is derived from this file's own recorded path.
func moduleRoot() string {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	self = filepath.ToSlash(self)
	root, ok := strings.CutSuffix(self, "/internal/srcloc/srcloc.go")
	if !ok {
		return ""
	}
	return root
}
