package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// execer runs statements: the database itself, or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Group commit. SQLite has one writer, and each commit waits for the disk
// (synchronous=FULL): one commit per claim would let concurrent callbacks
// queue for the disk one by one. The writer runs the writes that arrive
// together in one transaction, each in a savepoint of its own (one that
// fails is undone alone), so that they share one commit and one sync.
// PostgreSQL has many writers and groups commits itself: there each write
// runs on its own.

// groupLimit bounds the writes one commit carries.
const groupLimit = 256

// groupWrite is one write waiting for the group's commit.
type groupWrite struct {
	ctx  context.Context
	fn   func(ctx context.Context, ex execer) error
	done chan error
}

// groupWriter runs the writes of one database in groups.
type groupWriter struct {
	db     *sql.DB
	writes chan *groupWrite
	stop   chan struct{}
	wg     sync.WaitGroup
	// stmts are the writes' statements, each prepared once: SQLite parses
	// a statement's text at every call otherwise, and the parsing cost
	// about as much as running it. Only the writer's goroutine uses it.
	stmts map[string]*sql.Stmt
}

// maxStmts bounds the statements kept prepared: the writes' statements are
// a few dozen constant texts; one built per call would run unprepared.
const maxStmts = 128

func newGroupWriter(db *sql.DB) *groupWriter {
	g := &groupWriter{db: db, writes: make(chan *groupWrite), stop: make(chan struct{}), stmts: map[string]*sql.Stmt{}}
	g.wg.Add(1)
	go g.run()
	return g
}

// write runs fn in the next group and returns its outcome once the group
// committed. Once handed to the writer, a write is waited for even when
// ctx ends (its statements see ctx): the caller must know whether it
// took effect.
func (g *groupWriter) write(ctx context.Context, fn func(ctx context.Context, ex execer) error) error {
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case g.writes <- w:
	case <-ctx.Done():
		return unavailable("waiting for the database", ctx.Err())
	case <-g.stop:
		return unavailable("writing", sql.ErrConnDone)
	}
	return <-w.done
}

func (g *groupWriter) close() {
	close(g.stop)
	g.wg.Wait()
	for _, st := range g.stmts {
		st.Close()
	}
}

func (g *groupWriter) run() {
	defer g.wg.Done()
	group := make([]*groupWrite, 0, groupLimit)
	for {
		select {
		case w := <-g.writes:
			group = append(group[:0], w)
		case <-g.stop:
			return
		}
	collect:
		for len(group) < groupLimit {
			select {
			case w := <-g.writes:
				group = append(group, w)
			default:
				break collect
			}
		}
		g.commit(group)
	}
}

// commit runs a group in one transaction and tells each write its outcome.
// A group of one write needs no savepoint: when it fails, the transaction
// is rolled back.
func (g *groupWriter) commit(group []*groupWrite) {
	results := make([]error, len(group))
	err := func() error {
		sqlTx, err := g.db.BeginTx(context.Background(), nil)
		if err != nil {
			return err
		}
		defer func() { _ = sqlTx.Rollback() }()
		tx := &groupTx{g: g, tx: sqlTx}
		if len(group) == 1 {
			if results[0] = group[0].fn(group[0].ctx, tx); results[0] != nil {
				return nil // rolled back
			}
			return sqlTx.Commit()
		}
		for i, w := range group {
			if _, err := tx.ExecContext(context.Background(), "SAVEPOINT w"); err != nil {
				return err
			}
			if results[i] = w.fn(w.ctx, tx); results[i] != nil {
				if _, err := tx.ExecContext(context.Background(), "ROLLBACK TO w"); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(context.Background(), "RELEASE w"); err != nil {
				return err
			}
		}
		return sqlTx.Commit()
	}()
	for i, w := range group {
		if err != nil {
			results[i] = unavailable(fmt.Sprintf("committing %d writes", len(group)), err)
		}
		w.done <- results[i]
	}
}

// groupTx is a group's transaction as its writes see it: their statements
// run prepared.
type groupTx struct {
	g  *groupWriter
	tx *sql.Tx
}

// stmt is query prepared in the transaction: prepared once on the
// database, and once on each of its connections, then reused.
func (t *groupTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st, ok := t.g.stmts[query]
	if !ok {
		if len(t.g.stmts) >= maxStmts {
			return nil, nil
		}
		var err error
		if st, err = t.g.db.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		t.g.stmts[query] = st
	}
	return t.tx.StmtContext(ctx, st), nil
}

func (t *groupTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	if err != nil || st == nil {
		return t.tx.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (t *groupTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil || st == nil {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (t *groupTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, query)
	if err != nil || st == nil {
		return t.tx.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// write runs fn as one write: grouped with others on SQLite, alone on
// PostgreSQL.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, ex execer) error) error {
	if s.group == nil {
		return fn(ctx, s.db)
	}
	return s.group.write(ctx, fn)
}

// atomic runs fn as one write whose statements take effect together: in
// a savepoint of a group on SQLite, in a transaction of its own on
// PostgreSQL.
func (s *Store) atomic(ctx context.Context, fn func(ctx context.Context, ex execer) error) error {
	if s.group != nil {
		return s.group.write(ctx, fn)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("beginning a transaction", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	return unavailable("committing", tx.Commit())
}
