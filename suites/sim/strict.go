package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	"istio.io/istio/pkg/config/schema/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Unknown fields are bad input, as `kubectl apply` (the API server's
// strict field validation) treats them: Istio's own decoding
// (crd.ConvertObject) ignores them, so a misspelt `resolutoin:` would
// otherwise be simulated as if it were absent and could pass.

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

// topLevelKeys are the keys a Kubernetes-style object may have.
var topLevelKeys = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "spec": true, "status": true}

// strictObject reports the first unknown field of raw (top level and
// metadata) as "field path", "" when there is none.
func strictObject(raw map[string]any) (string, error) {
	for k := range raw {
		if !topLevelKeys[k] {
			return k, fmt.Errorf("unknown field %q", k)
		}
	}
	if meta, ok := raw["metadata"]; ok {
		js, _ := json.Marshal(meta)
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		var om metav1.ObjectMeta
		if err := dec.Decode(&om); err != nil {
			return fieldOf(err), fmt.Errorf("metadata: %w", err)
		}
	}
	return "", nil
}

// strictSpec decodes spec into s's message with protojson, which rejects
// unknown fields (both JSON and proto field names are accepted).
func strictSpec(s resource.Schema, spec any) (string, error) {
	if spec == nil {
		return "", nil
	}
	inst, err := s.NewInstance()
	if err != nil {
		return "", nil
	}
	msg, ok := inst.(proto.Message)
	if !ok {
		return "", nil
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	if err := protojson.Unmarshal(js, msg); err != nil {
		return fieldOf(err), err
	}
	return "", nil
}

// strictJSON decodes js into v rejecting unknown fields (Kubernetes kinds).
func strictJSON(js []byte, v any) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldOf(err), err
	}
	return "", nil
}

func fieldOf(err error) string {
	if m := unknownFieldRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return ""
}

// keyLine is the line of the first mapping key named key under n (depth
// first), or 0.
func keyLine(n *yaml.Node, key string) int {
	if key == "" || n == nil {
		return 0
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if l := keyLine(c, key); l > 0 {
			return l
		}
	}
	return 0
}

// unknownFieldProblem is the problem text for an unknown field.
func unknownFieldProblem(kind, field string, err error) string {
	if field == "" {
		return "invalid field: " + strings.TrimPrefix(err.Error(), "proto: ")
	}
	return fmt.Sprintf("unknown field %q in %s (kubectl apply would reject it; Istio's decoding would silently drop it)", field, kind)
}
