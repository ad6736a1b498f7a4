package sqlstore_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
)

// errInjected is the failure the fault driver injects.
var errInjected = errors.New("injected fault")

// faultPlan says which statement fails. It counts the statements
// (ExecContext and QueryContext, prepared or not) run on every connection
// of the pool since it was armed; a statement outside a transaction is a
// transaction of its own, which a planned commit failure fails.
//
// It also counts round trips (calls), for the round-trip test: every call
// a driver answers over the wire (begin, commit, rollback, prepare, exec,
// query). A call the driver declines with driver.ErrSkip
// (go-sql-driver/mysql's exec with arguments, which database/sql then
// prepares) is not counted, nor is closing a prepared statement (MySQL
// sends it without waiting for an answer). With mysql set, a BeginTx with
// an isolation level is two (SET TRANSACTION, then START TRANSACTION).
type faultPlan struct {
	calls atomic.Int64
	mysql bool

	mu         sync.Mutex
	failAt     int  // the statement to fail, from 1; 0 fails none
	failCommit bool // make the next Commit roll back and fail
	seen       int  // statements counted since armed
	injected   bool // whether the fault was injected since armed
}

// arm makes the failAt-th statement from now fail (0: none), and Commit
// too if failCommit.
func (p *faultPlan) arm(failAt int, failCommit bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failAt, p.failCommit, p.seen, p.injected = failAt, failCommit, 0, false
}

// fired reports whether the fault was injected since arm.
func (p *faultPlan) fired() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

func (p *faultPlan) statement() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen++
	if p.seen == p.failAt {
		p.injected = true
		return errInjected
	}
	return nil
}

func (p *faultPlan) commit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failCommit {
		p.failCommit = false
		p.injected = true
		return errInjected
	}
	return nil
}

// faultConnector wraps a driver's connector: its connections fail the
// statement its plan says. Open a pool on it with sql.OpenDB, so that no
// driver is registered globally.
type faultConnector struct {
	inner driver.Connector
	plan  *faultPlan
}

func (c *faultConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &faultConn{inner: conn, plan: c.plan}, nil
}

func (c *faultConnector) Driver() driver.Driver { return c.inner.Driver() }

// faultConn passes everything to the real connection, except that a
// statement inside a transaction may fail before it reaches the
// database.
type faultConn struct {
	inner driver.Conn
	plan  *faultPlan
	inTx  bool
}

var (
	_ driver.ConnBeginTx        = (*faultConn)(nil)
	_ driver.ExecerContext      = (*faultConn)(nil)
	_ driver.QueryerContext     = (*faultConn)(nil)
	_ driver.ConnPrepareContext = (*faultConn)(nil)
	_ driver.Pinger             = (*faultConn)(nil)
	_ driver.SessionResetter    = (*faultConn)(nil)
	_ driver.Validator          = (*faultConn)(nil)
	_ driver.NamedValueChecker  = (*faultConn)(nil)
)

func (c *faultConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// called counts a call that reached the database.
func (c *faultConn) called(err error) {
	if !errors.Is(err, driver.ErrSkip) {
		c.plan.calls.Add(1)
	}
}
func (c *faultConn) Close() error { return c.inner.Close() }
func (c *faultConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *faultConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.inner.(driver.ConnBeginTx)
	if !ok {
		return nil, errors.New("faultConn: the driver's connection has no BeginTx")
	}
	tx, err := b.BeginTx(ctx, opts)
	c.called(err)
	if c.plan.mysql && opts.Isolation != 0 {
		c.plan.calls.Add(1)
	}
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return &faultTx{inner: tx, conn: c}, nil
}

func (c *faultConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var (
		st  driver.Stmt
		err error
	)
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	c.called(err)
	if err != nil {
		return nil, err
	}
	return &faultStmt{inner: st, conn: c}, nil
}

// faultStmt is a prepared statement of a faultConn: run inside a
// transaction, it counts (and may fail) as the connection's statements do.
type faultStmt struct {
	inner driver.Stmt
	conn  *faultConn
}

func (s *faultStmt) Close() error  { return s.inner.Close() }
func (s *faultStmt) NumInput() int { return s.inner.NumInput() }

func (s *faultStmt) fault() error { return s.conn.fault() }

// Exec and Query are driver.Stmt's; database/sql calls the Context ones.
func (s *faultStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedValues(args))
}

func (s *faultStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedValues(args))
}

// namedValues numbers positional arguments as database/sql does.
func namedValues(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

func (s *faultStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	res, err := s.inner.(driver.StmtExecContext).ExecContext(ctx, args)
	s.conn.called(err)
	return res, err
}

func (s *faultStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	rows, err := s.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	s.conn.called(err)
	return rows, err
}

func (s *faultStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// fault is the injected failure of one statement, if any: the plan's
// next statement; outside a transaction, a statement is a transaction of
// its own, so a planned commit failure fails it too (before it runs:
// nothing is written).
func (c *faultConn) fault() error {
	if !c.inTx {
		if err := c.plan.commit(); err != nil {
			return err
		}
	}
	return c.plan.statement()
}

func (c *faultConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.fault(); err != nil {
		return nil, err
	}
	if e, ok := c.inner.(driver.ExecerContext); ok {
		res, err := e.ExecContext(ctx, query, args)
		c.called(err)
		return res, err
	}
	return nil, driver.ErrSkip
}

func (c *faultConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.fault(); err != nil {
		return nil, err
	}
	if q, ok := c.inner.(driver.QueryerContext); ok {
		rows, err := q.QueryContext(ctx, query, args)
		c.called(err)
		return rows, err
	}
	return nil, driver.ErrSkip
}

func (c *faultConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *faultConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *faultConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *faultConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type faultTx struct {
	inner driver.Tx
	conn  *faultConn
}

// Commit fails, after rolling the real transaction back, when the plan
// says so: a commit that never reached the database.
func (t *faultTx) Commit() error {
	t.conn.inTx = false
	if err := t.conn.plan.commit(); err != nil {
		_ = t.inner.Rollback()
		return err
	}
	err := t.inner.Commit()
	t.conn.called(err)
	return err
}

func (t *faultTx) Rollback() error {
	t.conn.inTx = false
	err := t.inner.Rollback()
	t.conn.called(err)
	return err
}
