package store

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Wake-ups. Whoever delivers the inbox's events sleeps until the next one
// is due, or until a write makes one due sooner: an enqueue, a settle that
// hands a queue on, a release, a replay, a move. Writes in this process
// wake its subscribers directly; on PostgreSQL they also NOTIFY, at their
// commit, the other instances, which LISTEN on a connection of their own.
// No one polls the database to find work.

const wakeChannel = "payhook_inbox"

// wakers are the subscribers of a store.
type wakers struct {
	mu     sync.Mutex
	subs   map[chan struct{}]bool
	listen sync.Once
	stop   chan struct{}
	done   sync.WaitGroup
}

// Subscribe returns a channel that receives a value after each write that
// may have made an inbox event due (values coalesce: one waits at most),
// and the function that ends the subscription.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.wake.mu.Lock()
	if s.wake.subs == nil {
		s.wake.subs = map[chan struct{}]bool{}
	}
	s.wake.subs[ch] = true
	s.wake.mu.Unlock()
	if s.dialect.name == "postgres" {
		s.wake.listen.Do(func() {
			s.wake.done.Add(1)
			go s.listen()
		})
	}
	return ch, func() {
		s.wake.mu.Lock()
		delete(s.wake.subs, ch)
		s.wake.mu.Unlock()
	}
}

// wakeAll wakes this process's subscribers.
func (s *Store) wakeAll() {
	s.wake.mu.Lock()
	defer s.wake.mu.Unlock()
	for ch := range s.wake.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// notify is called by a write that may make an event due: on PostgreSQL
// it notifies the other instances at its commit. The method that made the
// write wakes this process's subscribers once it committed.
func (s *Store) notify(ctx context.Context, ex execer) error {
	if s.dialect.name != "postgres" {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT pg_notify('`+wakeChannel+`', '')`)
	return unavailable("notifying", err)
}

// woke wakes this process's subscribers after a write that succeeded.
func (s *Store) woke(err error) error {
	if err == nil {
		s.wakeAll()
	}
	return err
}

// listen holds a connection that LISTENs for the other instances'
// notifications, reconnecting after a failure, until the store closes.
func (s *Store) listen() {
	defer s.wake.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.wake.stop
		cancel()
	}()
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		if s.listenOnce(ctx) {
			wait = 100 * time.Millisecond
		}
		// After a break, what was notified meanwhile was lost: look.
		s.wakeAll()
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// listenOnce listens on one connection until it fails; it reports whether
// it received anything.
func (s *Store) listenOnce(ctx context.Context) (received bool) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return sql.ErrConnDone
		}
		pg := c.Conn()
		if _, err := pg.Exec(ctx, "LISTEN "+wakeChannel); err != nil {
			return err
		}
		for {
			if _, err := pg.WaitForNotification(ctx); err != nil {
				// The connection is spent either way: close it rather than
				// hand a listening connection back to the pool.
				_ = pg.Close(context.Background())
				return err
			}
			received = true
			s.wakeAll()
		}
	})
	return received
}
