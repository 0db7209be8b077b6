package suites

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// The suites' sources, embedded so that `meshconform checks --explain`
// can name where a check, its negative control and its manifests are
// defined, also from an installed binary.
//
//go:embed registryonly/checks.go serviceentry/checks.go tcpcidr/checks.go ingress/checks.go masquerade/checks.go
//go:embed */manifests/*.yaml
var sources embed.FS

// Definition says where a built-in check is defined; paths are relative to
// the module root ("suites/registryonly/checks.go").
type Definition struct {
	// Check is "file:line" of the check's Name field in its suite's list.
	Check string
	// NegativeControl is "file:line" of its NegativeControl field.
	NegativeControl string
}

// Define finds the check named name in the suites' sources. A check
// declared as a literal is found by its Name field, its negative control as
// the first NegativeControl field at the same indentation before the next
// check's Name; a check built by a function (`unblocks("Name", ...)`) is
// found at that call, its negative control in that function. It returns an
// error when no suite's checks.go names the check in either way.
func Define(name string) (Definition, error) {
	q := regexp.QuoteMeta(name)
	fieldRE := regexp.MustCompile(`^(\t*)Name:\s*"` + q + `",`)
	callRE := regexp.MustCompile(`^\t*(\w+)\("` + q + `",`)
	files, _ := fs.Glob(sources, "*/checks.go")
	for _, f := range files {
		b, err := sources.ReadFile(f)
		if err != nil {
			return Definition{}, err
		}
		lines := strings.Split(string(b), "\n")
		at := func(i int) string { return fmt.Sprintf("suites/%s:%d", f, i+1) }
		for i, l := range lines {
			if m := fieldRE.FindStringSubmatch(l); m != nil {
				d := Definition{Check: at(i)}
				for j := i + 1; j < len(lines); j++ {
					field, ok := strings.CutPrefix(lines[j], m[1])
					if !ok || strings.HasPrefix(field, "\t") {
						continue
					}
					if strings.HasPrefix(field, "Name:") {
						break
					}
					if strings.HasPrefix(field, "NegativeControl:") {
						d.NegativeControl = at(j)
						break
					}
				}
				return d, nil
			}
			if m := callRE.FindStringSubmatch(l); m != nil {
				d := Definition{Check: at(i)}
				inBuilder := false
				for j, l2 := range lines {
					if strings.HasPrefix(l2, "func "+m[1]+"(") {
						inBuilder = true
					} else if inBuilder && strings.HasPrefix(l2, "func ") {
						break
					}
					if inBuilder && strings.HasPrefix(strings.TrimSpace(l2), "NegativeControl:") {
						d.NegativeControl = at(j)
						break
					}
				}
				return d, nil
			}
		}
	}
	return Definition{}, fmt.Errorf("check %q is not declared by name in any suite's checks.go", name)
}

// ManifestFile returns the file of the embedded manifest name, preferring
// the directory of suite dir ("serviceentry"); "" if there is none.
func ManifestFile(dir, name string) string {
	if _, err := fs.Stat(sources, dir+"/manifests/"+name+".yaml"); err == nil {
		return "suites/" + dir + "/manifests/" + name + ".yaml"
	}
	m, _ := fs.Glob(sources, "*/manifests/"+name+".yaml")
	if len(m) > 0 {
		return "suites/" + m[0]
	}
	return ""
}
