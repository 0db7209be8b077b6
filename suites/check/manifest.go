package check

import (
	"fmt"
	"io/fs"
)

// ManifestFS reads the named manifests (file "<name>.yaml") from an
// embedded directory. A missing file is a programming error caught by
// the suites' tests, so it panics.
func ManifestFS(fsys fs.FS, names ...string) []Manifest {
	var out []Manifest
	for _, n := range names {
		b, err := fs.ReadFile(fsys, "manifests/"+n+".yaml")
		if err != nil {
			panic(fmt.Sprintf("embedded manifest %s: %v", n, err))
		}
		out = append(out, Manifest{Name: n, Text: string(b)})
	}
	return out
}
