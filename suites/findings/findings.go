package findings

import (
	"fmt"
	"path"
	"strings"
)

// Level is a finding's severity, as Istio's analyzers grade messages.
type Level string

// Levels, most severe first.
const (
	Error   Level = "Error"
	Warning Level = "Warning"
	Info    Level = "Info"
	// None is only a --fail-on threshold: nothing fails the run.
	None Level = "None"
)

func (l Level) rank() int {
	switch l {
	case Error:
		return 3
	case Warning:
		return 2
	case Info:
		return 1
	}
	return 0
}

// AtLeast reports whether l is as severe as t or more.
func (l Level) AtLeast(t Level) bool { return t != None && l.rank() >= t.rank() }

// ParseFailOn reads a --fail-on value: error, warning, info or none
// (case-insensitive), as istioctl analyze's --failure-threshold.
func ParseFailOn(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "error":
		return Error, nil
	case "warning":
		return Warning, nil
	case "info":
		return Info, nil
	case "none":
		return None, nil
	}
	return "", fmt.Errorf("%q is not a level: use error, warning, info or none", s)
}

// Source names where findings come from; each is one JUnit testsuite.
const (
	// Analysis: Istio's analyzers (istioctl analyze).
	Analysis = "analysis"
	// SelfCheck: meshconform's simulation self-checks.
	SelfCheck = "self-checks"
	// PushedConfig: a live run's traffic verdict and the verdict on the
	// config the mesh pushed to the same proxy disagree (code MC0004).
	PushedConfig = "pushed-config"
)

// Sources are every finding source, in report order.
var Sources = []string{Analysis, SelfCheck, PushedConfig}

// MC0004 ConfigNotInEffect: traffic from a proxy was handled otherwise
// than the config istiod pushed to it says (stale or rejected config); the
// finding carries the proxy's sync status as istiod reports it.
const (
	CodeConfigNotInEffect = "MC0004"
	NameConfigNotInEffect = "ConfigNotInEffect"
)

// Finding is one reported problem.
type Finding struct {
	// Source is Analysis or SelfCheck.
	Source string
	// Code is IST0xxx (Istio's analyzers) or MC0xxx (self-checks).
	Code string
	// Name is the code's name (e.g. ConflictingMeshGatewayVirtualServiceHosts, ShadowedServiceEntry).
	Name  string
	Level Level
	// Kind, Namespace and ObjectName identify the object ("" when none).
	Kind, Namespace, ObjectName string
	// File and Line locate the object's document (Line 0: unknown).
	File string
	Line int
	// Message is the text.
	Message string
	// DocURL is the code's documentation page.
	DocURL string
	// Trace is the evidence (self-checks: the simulated calls).
	Trace []string
}

// Object renders the object as istioctl does ("ServiceEntry name.namespace").
func (f Finding) Object() string {
	if f.Kind == "" {
		return ""
	}
	if f.Namespace == "" {
		return f.Kind + " " + f.ObjectName
	}
	return f.Kind + " " + f.ObjectName + "." + f.Namespace
}

// Where renders file:line ("" when unknown).
func (f Finding) Where() string {
	switch {
	case f.File == "":
		return ""
	case f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

// String renders the finding as istioctl analyze prints a message:
// "Warning [IST0101] (VirtualService ns/name file.yaml:3) text".
func (f Finding) String() string {
	var where []string
	if o := f.Object(); o != "" {
		where = append(where, o)
	}
	if w := f.Where(); w != "" {
		where = append(where, w)
	}
	s := fmt.Sprintf("%s [%s]", f.Level, f.Code)
	if len(where) > 0 {
		s += " (" + strings.Join(where, " ") + ")"
	}
	return s + " " + f.Message
}

// Suppression hides findings of one code on matching objects, as
// istioctl analyze --suppress does.
type Suppression struct {
	// Code is the finding code (IST0xxx or MC0xxx).
	Code string
	// Object is "Kind name.namespace" (or "Kind name" for cluster-scoped
	// objects); '*' matches any run of characters.
	Object string
}

// ParseSuppression reads "CODE=Kind name.namespace" (istioctl's form, e.g.
// "MC0002=ServiceEntry ldap.identity" or "IST0102=Namespace *").
func ParseSuppression(s string) (Suppression, error) {
	code, obj, ok := strings.Cut(s, "=")
	code, obj = strings.TrimSpace(code), strings.TrimSpace(obj)
	if !ok || code == "" || obj == "" {
		return Suppression{}, fmt.Errorf("suppression %q: want CODE=Kind name.namespace, e.g. MC0002=ServiceEntry ldap.identity", s)
	}
	if _, err := path.Match(obj, ""); err != nil {
		return Suppression{}, fmt.Errorf("suppression %q: bad pattern: %v", s, err)
	}
	return Suppression{Code: code, Object: obj}, nil
}

// Matches reports whether the suppression hides f.
func (s Suppression) Matches(f Finding) bool {
	if s.Code != f.Code || f.Object() == "" {
		return false
	}
	ok, _ := path.Match(s.Object, f.Object())
	return ok
}

// Suppress drops the findings any suppression matches.
func Suppress(fs []Finding, sups []Suppression) []Finding {
	var out []Finding
next:
	for _, f := range fs {
		for _, s := range sups {
			if s.Matches(f) {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}

// Unused returns the suppressions that match none of fs, in their given
// order, each as the user wrote it ("CODE=Kind name.namespace"): a typo in a
// suppression would otherwise pass silently.
func Unused(fs []Finding, sups []Suppression) []string {
	var out []string
	for _, s := range sups {
		used := false
		for _, f := range fs {
			if s.Matches(f) {
				used = true
				break
			}
		}
		if !used {
			out = append(out, s.Code+"="+s.Object)
		}
	}
	return out
}

// Fails reports whether f fails a run with threshold failOn.
func Fails(f Finding, failOn Level) bool { return f.Level.AtLeast(failOn) }

// AnyFails reports whether any finding fails the run.
func AnyFails(fs []Finding, failOn Level) bool {
	for _, f := range fs {
		if Fails(f, failOn) {
			return true
		}
	}
	return false
}
