package check

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/meshconform/meshconform/fixtures"
)

// Env is what a driver knows about the environment: the fixture endpoints
// and a few addresses. Manifests and destinations are rendered with it, so
// one Check works against the simulation's fixed addresses and a live
// run's real containers alike.
type Env struct {
	// Endpoints by fixture name ("echo", "mysql", "greeter", "ingress").
	Endpoints map[string]fixtures.Endpoint
	// Namespace where the checks' client pods and manifests live.
	Namespace string
	// Vars are extra named values (e.g. "otherIP", "podCIDR").
	Vars map[string]string
}

func (e Env) endpoint(name string) (fixtures.Endpoint, error) {
	ep, ok := e.Endpoints[name]
	if !ok {
		var names []string
		for n := range e.Endpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		return ep, fmt.Errorf("no endpoint %q (have %s)", name, strings.Join(names, ", "))
	}
	return ep, nil
}

// Funcs are the template functions manifests may use:
// {{ip "mysql"}}, {{host "echo"}}, {{port "echo" "http"}}, {{var "otherIP"}}, {{ns}}.
func (e Env) Funcs() template.FuncMap {
	return template.FuncMap{
		"ip": func(name string) (string, error) {
			ep, err := e.endpoint(name)
			return ep.IP, err
		},
		"host": func(name string) (string, error) {
			ep, err := e.endpoint(name)
			return ep.Host, err
		},
		"port": func(name, port string) (int, error) {
			ep, err := e.endpoint(name)
			if err != nil {
				return 0, err
			}
			return ep.Port(port)
		},
		"var": func(name string) (string, error) {
			v, ok := e.Vars[name]
			if !ok {
				return "", fmt.Errorf("no variable %q", name)
			}
			return v, nil
		},
		"ns": func() string { return e.Namespace },
	}
}

// Render executes text as a template with Env's functions.
func (e Env) Render(name, text string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(e.Funcs()).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// Resolve returns a copy of c with manifests and destinations rendered and
// destination defaults filled from their Target endpoint.
func (e Env) Resolve(c Check) (Check, error) {
	out := c.Clone()
	for i := range out.Steps {
		s := &out.Steps[i]
		for j := range s.Apply {
			txt, err := e.Render(c.Name+"/"+s.Apply[j].Name, s.Apply[j].Text)
			if err != nil {
				return out, fmt.Errorf("check %s: %w", c.Name, err)
			}
			s.Apply[j].Text = txt
		}
		for j := range s.AdminSQL {
			v, err := e.Render(c.Name+"/adminSQL", s.AdminSQL[j])
			if err != nil {
				return out, fmt.Errorf("check %s: %w", c.Name, err)
			}
			s.AdminSQL[j] = v
		}
		for j := range s.Expect {
			x := &s.Expect[j]
			if err := e.resolveExpectation(c.Name, x); err != nil {
				return out, err
			}
		}
	}
	if out.Masquerade != nil {
		txt, err := e.Render(c.Name+"/masquerade", out.Masquerade.Config)
		if err != nil {
			return out, fmt.Errorf("check %s: %w", c.Name, err)
		}
		out.Masquerade.Config = txt
	}
	return out, nil
}

func (e Env) resolveExpectation(check string, x *Expectation) error {
	if x.From.Kind == "" {
		x.From.Kind = MeshedPod
	}
	if x.From.Namespace == "" && x.From.Kind != Outside {
		x.From.Namespace = e.Namespace
	}
	d := &x.To
	for _, f := range []*string{&d.Host, &d.Address, &d.SNI, &x.WantCluster, &x.Query} {
		v, err := e.Render(check, *f)
		if err != nil {
			return fmt.Errorf("check %s: %w", check, err)
		}
		*f = v
	}
	for i := range x.WantRows {
		v, err := e.Render(check, x.WantRows[i])
		if err != nil {
			return fmt.Errorf("check %s: %w", check, err)
		}
		x.WantRows[i] = v
	}
	if d.Target != "" {
		ep, err := e.endpoint(d.Target)
		if err != nil {
			return fmt.Errorf("check %s: destination: %w", check, err)
		}
		if d.Host == "" {
			d.Host = ep.Host
		}
		if d.Address == "" {
			d.Address = ep.IP
		}
	}
	if d.Port == 0 {
		return fmt.Errorf("check %s: destination %s has no port", check, d)
	}
	return nil
}
