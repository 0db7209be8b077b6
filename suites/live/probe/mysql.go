package probe

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysql runs one query. MySQL is server-first, so the attempt first waits
// for the server's greeting on a connection of its own: EOF or a reset
// before it is the mesh closing the connection (BlockedByMesh); silence
// until the timeout means nothing that speaks MySQL answered (Unreachable,
// e.g. the echo target's client-first port 3306, or a proxy still
// connecting upstream). Then the driver logs in over that same connection
// and runs the query: rows or a server error (SQLError, e.g. 1142 for a
// command denied to the least-privilege user) are both the destination
// answering (Allowed).
//
// It uses the driver's connector directly, not database/sql, which would
// silently redial on a bad connection and blur the classification.
func (a *attempt) mysql(ctx context.Context) {
	c, err := a.dial(ctx)
	if err != nil {
		a.fail("dial", err)
		return
	}
	// Wait for the greeting without consuming it.
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(a.q.timeout()))
	t0 := time.Now()
	if _, err := br.Peek(1); err != nil {
		c.Close()
		if isTimeout(err) {
			a.set(Unreachable, KindNoGreeting, fmt.Sprintf("connected, but no MySQL greeting within %v: nothing that speaks MySQL answered (a client-first server, or a proxy still connecting upstream)", a.q.timeout()))
			a.step("no greeting within %v", a.q.timeout())
			return
		}
		a.fail("read greeting", err)
		return
	}
	a.step("greeting received after %dms", time.Since(t0).Milliseconds())
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}

	cfg := mysql.NewConfig()
	cfg.User = a.q.MySQLUser
	cfg.Passwd = a.q.MySQLPassword
	cfg.Net = "tcp"
	cfg.Addr = a.q.addr()
	cfg.Timeout = a.q.timeout()
	cfg.ReadTimeout = a.q.timeout()
	cfg.WriteTimeout = a.q.timeout()
	cfg.Logger = discardLogger{}
	used := false
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if used {
			return nil, errors.New("probe: one connection per attempt")
		}
		used = true
		return pc, nil
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		pc.Close()
		a.r.Error = "mysql config: " + err.Error()
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 3*a.q.timeout())
	defer cancel()
	conn, err := connector.Connect(qctx)
	if err != nil {
		pc.Close()
		a.mysqlFail("log in as "+a.q.MySQLUser, err)
		return
	}
	defer conn.Close()
	a.step("logged in as %s", a.q.MySQLUser)
	query := a.q.Query
	if query == "" {
		query = "SELECT 1"
	}
	qc, ok := conn.(driver.QueryerContext)
	if !ok {
		a.r.Error = "mysql driver: connection cannot query"
		return
	}
	rows, err := qc.QueryContext(qctx, query, nil)
	if err != nil {
		a.mysqlFail("query", err)
		return
	}
	defer rows.Close()
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		err := rows.Next(vals)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.mysqlFail("read rows", err)
			return
		}
		cols := make([]string, len(vals))
		for i, v := range vals {
			cols[i] = sqlText(v)
		}
		a.r.Rows = append(a.r.Rows, strings.Join(cols, ","))
	}
	a.step("query %q returned %d rows", query, len(a.r.Rows))
	a.set(Allowed, KindAnswered, fmt.Sprintf("query returned %d rows", len(a.r.Rows)))
}

// mysqlFail classifies a failure after the greeting: a server error is
// the destination answering; anything else is classified by what the
// connection saw.
func (a *attempt) mysqlFail(phase string, err error) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		a.r.SQLError, a.r.SQLMessage = int(me.Number), me.Message
		a.set(Allowed, KindAnswered, fmt.Sprintf("%s: the server answered with error %d: %s", phase, me.Number, me.Message))
		a.step("%s: MySQL error %d: %s", phase, me.Number, me.Message)
		return
	}
	if a.track.lowLevel() == nil && !isTimeout(err) && !errors.Is(err, mysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) {
		// The server spoke MySQL but the session failed for another reason
		// (an unsupported auth plugin, a malformed packet).
		a.set(Allowed, KindAnswered, fmt.Sprintf("%s: the server answered but the session failed: %v", phase, err))
		a.step("%s: %v", phase, err)
		return
	}
	a.fail(phase, err)
}

func sqlText(v driver.Value) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// peekedConn replays bytes already buffered while waiting for the greeting.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

type discardLogger struct{}

func (discardLogger) Print(...any) {}
