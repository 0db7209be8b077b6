package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshconform/meshconform/fixtures"
	"github.com/meshconform/meshconform/fixtures/mysql"
)

// requireDocker skips without a Docker engine, or fails when CI=true.
func requireDocker(t *testing.T) {
	t.Helper()
	fixtures.DisableReaper()
	if err := fixtures.DockerAvailable(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Docker is unavailable: %v", err)
		}
		t.Skipf("Docker is unavailable (%v): run ../shared/testenv/up and eval \"$(../shared/testenv/env)\"", err)
	}
	if os.Getenv(mysql.EnvImage) == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is not set", mysql.EnvImage)
		}
		t.Skipf("set %s to a local MySQL/MariaDB image (../shared/testenv exports one)", mysql.EnvImage)
	}
}

// TestMySQLAgainstTheFixture runs the probe's MySQL path against the real
// database fixture as the least-privilege user: rows for the SELECT it
// may run, error 1142 for what it may not, 1045 for a wrong password.
func TestMySQLAgainstTheFixture(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runID := fixtures.NewRunID()
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		if _, err := fixtures.Down(cctx, runID); err != nil {
			t.Errorf("remove the database: %v", err)
		}
	})
	m, err := mysql.Start(ctx, mysql.WithRunID(runID))
	if err != nil {
		t.Fatal(err)
	}
	ep := m.Endpoint()
	port := ep.PublishedPorts[mysql.PortName]
	b := m.Bookinfo()
	q := Request{Protocol: MySQL, Host: fixtures.MySQLHost, Address: ep.PublishedAddress, Port: port, MySQLUser: b.User, MySQLPassword: b.Password, Timeout: 5 * time.Second}

	sel := q
	sel.Query = "SELECT ReviewID, Rating FROM test.ratings ORDER BY ReviewID"
	r := run(t, sel)
	want(t, r, Allowed, KindAnswered)
	if len(r.Rows) != 2 || r.Rows[0] != "1,5" || r.Rows[1] != "2,4" {
		t.Errorf("rows %v, want [1,5 2,4]", r.Rows)
	}

	upd := q
	upd.Query = "UPDATE test.ratings SET Rating = 1 WHERE ReviewID = 1"
	r = run(t, upd)
	want(t, r, Allowed, KindAnswered)
	if r.SQLError != mysql.ErrTableAccessDenied {
		t.Errorf("UPDATE as bookinfo: SQL error %d (%s), want %d", r.SQLError, r.SQLMessage, mysql.ErrTableAccessDenied)
	}

	bad := q
	bad.MySQLPassword = "wrong-" + strconv.Itoa(port)
	r = run(t, bad)
	want(t, r, Allowed, KindAnswered)
	if r.SQLError != 1045 {
		t.Errorf("wrong password: SQL error %d, want 1045 (access denied)", r.SQLError)
	}
	// The wrong password and the real one must appear nowhere in what the
	// probe reports: steps, detail, SQL message or the marshalled result.
	all, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{b.Password, bad.MySQLPassword} {
		for _, s := range append(append([]string{}, r.Steps...), r.Detail, r.SQLMessage, string(all)) {
			if strings.Contains(s, secret) {
				t.Fatalf("a password is in the probe's result: %q", s)
			}
		}
	}
	// The agent's command line on the same auth path (server greeting, then
	// 1045): neither stdout nor stderr carries the password read
	// from the environment.
	args := []string{"--json", "--protocol", "mysql", "--address", ep.PublishedAddress, "--port", strconv.Itoa(port),
		"--mysql-user", b.User, "--mysql-password-env", "PW", "--query", "SELECT 1", "--timeout", "5s"}
	var out, errb bytes.Buffer
	code := runMain(ctx, args, &out, &errb, func(k string) string {
		if k == "PW" {
			return bad.MySQLPassword
		}
		return ""
	})
	if code != 0 || !strings.Contains(out.String(), `"sqlError": 1045`) && !strings.Contains(out.String(), `"sqlError":1045`) {
		t.Fatalf("agent probe with a wrong password: exit %d, want a 1045 result\n%s\n%s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), bad.MySQLPassword) {
		t.Fatalf("the agent printed the password:\n%s\n%s", out.String(), errb.String())
	}
}
