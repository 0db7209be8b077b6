package reports

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/suites/check"
)

// SetupSuite and SetupCase name the synthetic test case of a failed setup.
const (
	SetupSuite = "meshconform"
	SetupCase  = "Setup"
)

// JUnit builds the JUnit document: one testsuite per suite (in run order),
// one testcase per check (classname meshconform.<suite>), the trace in the
// failure text, skips with their reasons, run properties on every suite,
// and on every testcase the properties of CaseProperties (status and, per
// expectation, what was expected and observed).
func JUnit(r Report) Testsuites {
	var doc Testsuites
	doc.Name = "meshconform"
	props := r.properties()
	newSuite := func(name string) Testsuite {
		ts := Testsuite{Name: name, Package: "meshconform." + name}
		if !r.Started.IsZero() {
			ts.Timestamp = r.Started.Format(time.RFC3339)
		}
		for _, p := range props {
			ts.AddProperty(p[0], p[1])
		}
		return ts
	}
	if r.SetupError != nil {
		ts := newSuite(SetupSuite)
		ts.AddTestcase(Testcase{
			Properties: &[]junit.Property{{Name: PropStatus, Value: string(check.Failed)}},
			Name:       SetupCase,
			Classname:  "meshconform." + SetupSuite,
			Time:       "0.000",
			Failure: &junit.Result{
				Message: fmt.Sprintf("setup failed in phase %s", r.SetupPhase),
				Type:    "SetupFailure",
				Data:    clean(fmt.Sprintf("phase: %s\nerror: %v\nNo check was run; this is not a pass.", r.SetupPhase, r.SetupError)),
			},
		})
		ts.Time = "0.000"
		doc.AddSuite(ts)
	}
	var order []string
	bySuite := map[string][]check.Result{}
	for _, res := range r.Results {
		if _, ok := bySuite[res.Suite]; !ok {
			order = append(order, res.Suite)
		}
		bySuite[res.Suite] = append(bySuite[res.Suite], res)
	}
	for _, name := range order {
		ts := newSuite(name)
		var total float64
		for _, res := range bySuite[name] {
			tc := Testcase{
				Name:      res.Name,
				Classname: "meshconform." + name,
				Time:      fmt.Sprintf("%.3f", res.Duration.Seconds()),
			}
			for _, p := range CaseProperties(res) {
				tc.AddProperty(p[0], p[1])
			}
			total += res.Duration.Seconds()
			trace := clean(res.Trace())
			switch res.Status {
			case check.Failed:
				tc.Failure = &junit.Result{Message: firstLine(res.Message), Type: "CheckFailed", Data: clean(res.Message) + "\n\n" + trace}
			case check.Error:
				tc.Error = &junit.Result{Message: firstLine(res.Message), Type: errorType(res.Message), Data: clean(res.Message) + "\n\n" + trace}
			case check.Skipped:
				tc.Skipped = &junit.Result{Message: clean(res.Message)}
			default:
				if trace != "" {
					tc.SystemOut = &junit.Output{Data: trace}
				}
			}
			ts.AddTestcase(tc)
		}
		ts.Time = fmt.Sprintf("%.3f", total)
		doc.AddSuite(ts)
	}
	for _, ts := range findingSuites(r, props) {
		doc.AddSuite(ts)
	}
	return doc
}

func errorType(msg string) string {
	if strings.HasPrefix(msg, check.ErrNotReady) {
		return "EnvironmentNotReady"
	}
	return "CheckError"
}

func firstLine(s string) string {
	s = clean(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// clean drops characters XML 1.0 cannot carry.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0x09 || r == 0x0A || r == 0x0D,
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
			return r
		}
		return '\uFFFD'
	}, s)
}

// WriteJUnit writes the JUnit XML to path atomically.
func WriteJUnit(path string, r Report) error {
	doc := JUnit(r)
	return writeAtomic(path, func(f *os.File) error { return doc.WriteXML(f) })
}
