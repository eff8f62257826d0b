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
	notify chan struct{} // PostgreSQL: a NOTIFY to send
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

// woke wakes the subscribers after a write that may have made an event
// due, once it committed: this process's directly, the other instances'
// on PostgreSQL by a NOTIFY sent after the commit. A NOTIFY inside each
// transaction would serialise the commits (PostgreSQL queues
// notifications under one lock at commit: 32 writers enqueued 755
// events/s with it, 1,422 without).
func (s *Store) woke(err error) error {
	if err == nil {
		s.wakeAll()
		if s.wake.notify != nil {
			select {
			case s.wake.notify <- struct{}{}:
			default: // one is pending: it covers this write too
			}
		}
	}
	return err
}

// notifier sends the other instances a NOTIFY for the writes that asked,
// one for all those that asked while the previous one was sent.
func (s *Store) notifier() {
	defer s.wake.done.Done()
	for {
		select {
		case <-s.wake.stop:
			return
		case <-s.wake.notify:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// A lost notification delays the others until their next look
		// (at most deliveryIdle): nothing is lost.
		_, _ = s.db.ExecContext(ctx, `SELECT pg_notify('`+wakeChannel+`', '')`)
		cancel()
	}
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
