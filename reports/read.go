package reports

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/meshconform/meshconform/suites/check"
)

// DocumentName is the name attribute of the <testsuites> element of every
// report a meshconform command writes; ReadJUnit refuses other files.
const DocumentName = "meshconform"

// Read is a report read back from its JUnit XML.
type Read struct {
	// File is the path it was read from.
	File string
	// Properties are the run properties (meshconform writes the same set on
	// every suite: meshconform.version, meshconform.driver, istio.version,
	// mesh.outboundTrafficPolicy, ...).
	Properties map[string]string
	// Cases, in file order.
	Cases []Case
}

// Case is one testcase: a check's verdict and what it observed.
type Case struct {
	Suite, Name string
	// Line is where the testcase starts in the file.
	Line   int
	Status check.Status
	// Type and Reason are the failure/error type and the first line of the
	// failure, error or skip message ("" for a pass).
	Type, Reason    string
	NegativeControl bool
	// Expectations are the recorded observations, in the check's order;
	// empty for reports written before testcase properties existed, and for
	// checks that observed nothing.
	Expectations []ExpectationRecord
}

// Key identifies the check across reports: "suite/name".
func (c Case) Key() string { return c.Suite + "/" + c.Name }

// ExpectationRecord is one expectation's expect.<i>.* properties.
type ExpectationRecord struct {
	Name, Want, Observed, Cluster, SeenAs, Error string
	// Failure is how a failed connection failed; Judged and NotJudged the
	// facets judged and not observable ("outcome,cluster"); FlippedFrom
	// the original expectation of a negative control's flipped one.
	Failure, Judged, NotJudged, FlippedFrom string
}

// ReadJUnit reads a report written by any meshconform command. Errors are
// *check.InputError naming the file, the line and the fix: unreadable
// file, malformed XML, a JUnit file not written by meshconform, a check
// present twice, a bad status property.
func ReadJUnit(path string) (*Read, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &check.InputError{File: path, Problem: "cannot read: " + err.Error(), Fix: "pass the JUnit file a meshconform command wrote (--junit)"}
	}
	return ParseJUnit(path, data)
}

const readFix = "pass a JUnit file written by `meshconform simulate --junit` or `meshconform run --junit`"

// ParseJUnit is ReadJUnit on bytes; name is used in errors.
func ParseJUnit(name string, data []byte) (*Read, error) {
	bad := func(line int, problem, fix string) error {
		return &check.InputError{File: name, Line: line, Problem: problem, Fix: fix}
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	out := &Read{File: name, Properties: map[string]string{}}
	seen := map[string]int{}
	var suite string
	rootSeen := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, xmlError(name, dec, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		line, _ := dec.InputPos()
		if !rootSeen {
			rootSeen = true
			if start.Name.Local != "testsuites" {
				return nil, bad(line, fmt.Sprintf("root element <%s> is not <testsuites>: not a JUnit report of meshconform", start.Name.Local), readFix)
			}
			if n := attr(start, "name"); n != DocumentName {
				fix := readFix
				if n == DocumentName+"-diff" {
					fix = "this is the output of `meshconform diff --junit`; compare the two reports it was made from"
				}
				return nil, bad(line, fmt.Sprintf("<testsuites name=%q> is not a meshconform report (meshconform writes name=%q)", n, DocumentName), fix)
			}
			continue
		}
		switch start.Name.Local {
		case "testsuite":
			suite = attr(start, "name")
		case "properties":
			var p struct {
				Props []junit.Property `xml:"property"`
			}
			if err := dec.DecodeElement(&p, &start); err != nil {
				return nil, xmlError(name, dec, err)
			}
			for _, kv := range p.Props {
				if _, ok := out.Properties[kv.Name]; !ok {
					out.Properties[kv.Name] = kv.Value
				}
			}
		case "testcase":
			var tc Testcase
			if err := dec.DecodeElement(&tc, &start); err != nil {
				return nil, xmlError(name, dec, err)
			}
			c, err := readCase(suite, tc)
			if err != nil {
				return nil, bad(line, fmt.Sprintf("testcase %s: %v", tc.Name, err), readFix)
			}
			c.Line = line
			if first, dup := seen[c.Key()]; dup {
				return nil, bad(line, fmt.Sprintf("check %s appears twice (first at line %d)", c.Key(), first),
					"compare one run's report with another's; do not concatenate reports")
			}
			seen[c.Key()] = line
			out.Cases = append(out.Cases, c)
		}
	}
	if !rootSeen {
		problem := "not a JUnit XML report: no <testsuites> element"
		if len(bytes.TrimSpace(data)) == 0 {
			problem = "empty file: no <testsuites> element"
		}
		return nil, bad(1, problem, readFix)
	}
	if len(out.Cases) == 0 {
		return nil, bad(1, "the report holds no testcase (meshconform always writes at least one, even when setup failed)", readFix)
	}
	if out.Properties["meshconform.driver"] == "" {
		return nil, bad(1, "no meshconform.driver property: not written by a meshconform command", readFix)
	}
	return out, nil
}

// xmlError is a decoding error as an input error on its line.
func xmlError(name string, dec *xml.Decoder, err error) error {
	line, _ := dec.InputPos()
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		line = se.Line
	}
	return &check.InputError{File: name, Line: line,
		Problem: "not well-formed XML: " + strings.TrimPrefix(err.Error(), "XML syntax error on line "+strconv.Itoa(line)+": "),
		Fix:     readFix + " (a truncated or hand-edited file cannot be compared)"}
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func readCase(suite string, tc Testcase) (Case, error) {
	c := Case{Suite: suite, Name: tc.Name, Status: check.Passed}
	switch {
	case tc.Error != nil:
		c.Status, c.Type, c.Reason = check.Error, tc.Error.Type, firstLine(tc.Error.Message)
	case tc.Failure != nil:
		c.Status, c.Type, c.Reason = check.Failed, tc.Failure.Type, firstLine(tc.Failure.Message)
	case tc.Skipped != nil:
		c.Status, c.Reason = check.Skipped, firstLine(tc.Skipped.Message)
	}
	if tc.Properties == nil {
		return c, nil
	}
	exps := map[int]*ExpectationRecord{}
	for _, p := range *tc.Properties {
		switch {
		case p.Name == PropStatus:
			s := check.Status(p.Value)
			switch s {
			case check.Passed, check.Failed, check.Error, check.Skipped:
			default:
				return c, fmt.Errorf("property %s=%q is not Passed, Failed, Error or Skipped", PropStatus, p.Value)
			}
			if s != c.Status {
				return c, fmt.Errorf("property %s=%s contradicts the testcase's result (%s)", PropStatus, s, c.Status)
			}
		case p.Name == PropNegativeControl:
			c.NegativeControl = p.Value == "true"
		case strings.HasPrefix(p.Name, "expect."):
			rest := strings.TrimPrefix(p.Name, "expect.")
			idx, field, ok := strings.Cut(rest, ".")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 0 {
				return c, fmt.Errorf("property %s: want expect.<index>.<field>", p.Name)
			}
			e := exps[i]
			if e == nil {
				e = &ExpectationRecord{}
				exps[i] = e
			}
			switch field {
			case ExpectName:
				e.Name = p.Value
			case ExpectWant:
				e.Want = p.Value
			case ExpectObserved:
				e.Observed = p.Value
			case ExpectCluster:
				e.Cluster = p.Value
			case ExpectSeenAs:
				e.SeenAs = p.Value
			case ExpectError:
				e.Error = p.Value
			case ExpectFailure:
				e.Failure = p.Value
			case ExpectJudged:
				e.Judged = p.Value
			case ExpectNotJudged:
				e.NotJudged = p.Value
			case ExpectFlippedFrom:
				e.FlippedFrom = p.Value
			}
			// Unknown fields are ignored: a newer writer may add some.
		}
	}
	idx := make([]int, 0, len(exps))
	for i := range exps {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		c.Expectations = append(c.Expectations, *exps[i])
	}
	return c, nil
}
