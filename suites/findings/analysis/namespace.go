package analysis

import (
	"bytes"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// withNamespace returns data with `namespace: ns` added to every document
// whose metadata has none (as the simulation defaults them), and the
// (1-based) line numbers before which a line was inserted, so reported
// lines can be mapped back. Flow-style metadata gets the key on its own
// line without shifting lines. On a YAML error data is returned as is:
// Istio's file source reports the error itself.
func withNamespace(data []byte, ns string) ([]byte, []int) {
	type ins struct {
		line, col int
		flow      bool
	}
	var edits []ins
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if err != io.EOF {
				return data, nil
			}
			break
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		meta := value(doc.Content[0], "metadata")
		if meta == nil || meta.Kind != yaml.MappingNode || value(meta, "namespace") != nil || len(meta.Content) == 0 {
			continue
		}
		if meta.Style&yaml.FlowStyle != 0 {
			edits = append(edits, ins{line: meta.Line, col: meta.Column, flow: true})
		} else {
			k := meta.Content[0]
			edits = append(edits, ins{line: k.Line, col: k.Column})
		}
	}
	if len(edits) == 0 {
		return data, nil
	}
	lines := strings.SplitAfter(string(data), "\n")
	sort.Slice(edits, func(i, j int) bool { return edits[i].line > edits[j].line })
	var inserted []int
	for _, e := range edits {
		i := e.line - 1
		if i < 0 || i >= len(lines) {
			continue
		}
		if e.flow {
			l := lines[i]
			c := e.col - 1 // the '{'
			if c < len(l) && l[c] == '{' {
				lines[i] = l[:c+1] + "namespace: " + ns + ", " + l[c+1:]
			}
			continue
		}
		add := strings.Repeat(" ", e.col-1) + "namespace: " + ns + "\n"
		lines = append(lines[:i], append([]string{add}, lines[i:]...)...)
		inserted = append(inserted, e.line)
	}
	sort.Ints(inserted)
	return []byte(strings.Join(lines, "")), inserted
}

// originalLine maps a line of the rewritten text back to the input.
// inserted holds input line numbers, each with one line inserted before
// it.
func originalLine(line int, inserted []int) int {
	shift := 0
	for _, at := range inserted {
		// After k insertions before earlier lines, input line `at` is at
		// rewritten line at+shift, and the inserted line just before it.
		if line >= at+shift {
			shift++
		}
	}
	return line - shift
}

func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
