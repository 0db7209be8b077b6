package timeouts

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseError is a --timeouts file that cannot be used: Line is 1-based, 0
// when unknown.
type ParseError struct {
	Line    int
	Problem string
}

func (e *ParseError) Error() string { return e.Problem }

// Parse reads a --timeouts file: sections cluster, istio, live, pushed and
// fixtures plus the top-level poll and imagepullgrace; keys are the field
// names in lower case, durations Go durations ("90s", "3m"). Unknown keys
// are errors. The result is validated (see Config.Validate) and not yet
// resolved: zero fields mean "default".
func Parse(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err != io.EOF {
		var n int
		if i := strings.Index(err.Error(), "line "); i >= 0 {
			fmt.Sscanf(err.Error()[i+len("line "):], "%d", &n)
		}
		return Config{}, &ParseError{Line: n, Problem: "invalid timeouts: " + err.Error()}
	}
	// Validated as it will run: a rule between two bounds (live.exec ≥
	// 4×live.attempt) also holds against the default of the one left out.
	if err := c.Validate(); err != nil {
		return Config{}, &ParseError{Problem: err.Error()}
	}
	if err := c.Resolve().Validate(); err != nil {
		return Config{}, &ParseError{Problem: err.Error() + " (with the defaults of the keys the file leaves out)"}
	}
	return c, nil
}

// Print writes c as a --timeouts file, each key with the condition it
// waits for as a comment.
func Print(w io.Writer, c Config) error {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	encode(doc, reflect.ValueOf(c))
	root := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc},
		HeadComment: "meshconform run --timeouts FILE: every bound of a live run, with its default and what it waits for.\n" +
			"Zero or absent keys keep the default; durations like 90s or 3m."}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return err
	}
	return enc.Close()
}

func encode(m *yaml.Node, v reflect.Value) {
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "-" {
			continue
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: key(f)}
		var val *yaml.Node
		switch fv := v.Field(i); {
		case fv.Kind() == reflect.Struct:
			val = &yaml.Node{Kind: yaml.MappingNode}
			encode(val, fv)
		case fv.Type() == reflect.TypeOf(time.Duration(0)):
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: fv.Interface().(time.Duration).String()}
		default:
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(fv.Interface())}
		}
		if d := f.Tag.Get("doc"); d != "" {
			k.HeadComment = d
		}
		m.Content = append(m.Content, k, val)
	}
}

// key is the field's YAML key: its yaml tag, else its name in lower case
// (yaml.v3's default).
func key(f reflect.StructField) string {
	if n, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); n != "" && n != "-" {
		return n
	}
	return strings.ToLower(f.Name)
}
