package reports

import (
	"encoding/xml"
	"fmt"
	"io"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// Testsuites is the JUnit document meshconform writes: go-junit-report's
// junit.Testsuites, plus <properties> on each testcase (the form pytest's
// and Testmo's JUnit documentation use), which carry the observed outcome
// of every expectation (see the Prop* names). Readers that do not know
// testcase properties ignore them.
type Testsuites struct {
	XMLName xml.Name `xml:"testsuites"`

	Name     string `xml:"name,attr,omitempty"`
	Time     string `xml:"time,attr,omitempty"`
	Tests    int    `xml:"tests,attr,omitempty"`
	Errors   int    `xml:"errors,attr,omitempty"`
	Failures int    `xml:"failures,attr,omitempty"`
	Skipped  int    `xml:"skipped,attr,omitempty"`
	Disabled int    `xml:"disabled,attr,omitempty"`

	Suites []Testsuite `xml:"testsuite,omitempty"`
}

// Testsuite is junit.Testsuite with Testcase elements that have properties.
type Testsuite struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	ID       int    `xml:"id,attr"`

	Disabled  int    `xml:"disabled,attr,omitempty"`
	Hostname  string `xml:"hostname,attr,omitempty"`
	Package   string `xml:"package,attr,omitempty"`
	Skipped   int    `xml:"skipped,attr,omitempty"`
	Time      string `xml:"time,attr"`
	Timestamp string `xml:"timestamp,attr,omitempty"`

	Properties *[]junit.Property `xml:"properties>property,omitempty"`
	Testcases  []Testcase        `xml:"testcase,omitempty"`
	SystemOut  *junit.Output     `xml:"system-out,omitempty"`
	SystemErr  *junit.Output     `xml:"system-err,omitempty"`
}

// Testcase is junit.Testcase with properties (written first, before the
// result elements).
type Testcase struct {
	Name      string `xml:"name,attr"`
	Classname string `xml:"classname,attr"`
	Time      string `xml:"time,attr,omitempty"`
	Status    string `xml:"status,attr,omitempty"`

	Properties *[]junit.Property `xml:"properties>property,omitempty"`
	Skipped    *junit.Result     `xml:"skipped,omitempty"`
	Error      *junit.Result     `xml:"error,omitempty"`
	Failure    *junit.Result     `xml:"failure,omitempty"`
	SystemOut  *junit.Output     `xml:"system-out,omitempty"`
	SystemErr  *junit.Output     `xml:"system-err,omitempty"`
}

// AddProperty appends a property to the testcase.
func (t *Testcase) AddProperty(name, value string) {
	if t.Properties == nil {
		t.Properties = &[]junit.Property{}
	}
	*t.Properties = append(*t.Properties, junit.Property{Name: name, Value: value})
}

// AddProperty appends a property to the suite.
func (t *Testsuite) AddProperty(name, value string) {
	if t.Properties == nil {
		t.Properties = &[]junit.Property{}
	}
	*t.Properties = append(*t.Properties, junit.Property{Name: name, Value: value})
}

// AddTestcase appends tc and updates the suite's totals.
func (t *Testsuite) AddTestcase(tc Testcase) {
	t.Testcases = append(t.Testcases, tc)
	t.Tests++
	if tc.Error != nil {
		t.Errors++
	}
	if tc.Failure != nil {
		t.Failures++
	}
	if tc.Skipped != nil {
		t.Skipped++
	}
}

// AddSuite appends ts (with the next id) and updates the totals.
func (t *Testsuites) AddSuite(ts Testsuite) {
	ts.ID = len(t.Suites)
	t.Suites = append(t.Suites, ts)
	t.Tests += ts.Tests
	t.Errors += ts.Errors
	t.Failures += ts.Failures
	t.Skipped += ts.Skipped
	t.Disabled += ts.Disabled
}

// WriteXML writes the document (with the XML declaration) to w.
func (t *Testsuites) WriteXML(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "\t")
	if err := enc.Encode(t); err != nil {
		return err
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}
