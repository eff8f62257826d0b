package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The inbox: events stored durably before the provider is acknowledged,
// and delivered to the shop by payhook, in order per payment.
//
// Each event is one row of payhook_inbox. Its route is the place of the
// route that received it (only that route delivers it); its queue is its
// payment within the route. The events of a queue are delivered one at a
// time in the order of seq, which is the order the store committed them
// (on PostgreSQL, enqueueing into a queue takes a lock on the queue for
// its transaction, so that seq follows the commits). One row per queue,
// its first pending event, is its head (head = 1): only heads are leased,
// so a lease on a queue's head holds the whole queue, and the due heads
// of thousands of queues are found through one index.
//
// A lease is an owner (a random token) and a time: next_at is set to the
// end of the lease, so that a leased head is not due, and one whose holder
// died is due again once its lease runs out. An attempt's outcome and the
// attempt itself are written in one transaction, and so are a finished
// head and the handing of its queue to the next event.

// InboxState is where an event of the inbox stands.
type InboxState int

// The states of an inbox event.
const (
	Pending   InboxState = 0 // waiting for the shop
	Delivered InboxState = 1 // the shop took it
	Failed    InboxState = 2 // not delivered within its retry period, or unreadable
)

func (st InboxState) String() string {
	switch st {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// ParseInboxState reads a state's name.
func ParseInboxState(name string) (InboxState, bool) {
	for _, st := range []InboxState{Pending, Delivered, Failed} {
		if st.String() == name {
			return st, true
		}
	}
	return 0, false
}

// InboxEvent is one event of the inbox.
type InboxEvent struct {
	Seq        int64 // set by the store: the order of the commits
	Route      string
	Queue      string // the payment, within the route
	EventID    string
	Provider   string
	Type       string
	State      InboxState
	ReceivedAt time.Time // when the callback arrived; a replay leaves it
	ReplayedAt time.Time // when it was last replayed; zero when never
	NextAt     time.Time // pending: when it is due (a leased one: when its lease runs out)
	DoneAt     time.Time // delivered or failed: when
	LastAt     time.Time // when it was last tried
	Attempts   int       // attempts since it was received or replayed
	// Refused is set when the shop refused this event while it took
	// others: its refusal is its own, not the shop being down.
	Refused   bool
	LastError string
	Replayed  bool // it was replayed at least once
	// MerchantReference is the shop's reference of the event (its order),
	// empty when the callback carries none.
	MerchantReference string
	// Record is the caller's record of the event (the request to make, the
	// envelope): opaque to the store. List leaves it out.
	Record []byte

	owner string // the lease's holder, set by Lease
}

// AttemptsSince is when the event's attempts began: its last replay, else
// its receipt. Its retry period runs from then.
func (ev *InboxEvent) AttemptsSince() time.Time {
	if !ev.ReplayedAt.IsZero() {
		return ev.ReplayedAt
	}
	return ev.ReceivedAt
}

// EnqueueResult is what Enqueue did.
type EnqueueResult int

// What Enqueue finds.
const (
	// Enqueued: the event is stored, and its claim recorded.
	Enqueued EnqueueResult = iota
	// EnqueueDuplicate: the claim says the event was taken before
	// (delivered or stored); nothing was stored.
	EnqueueDuplicate
	// EnqueueBusy: another holds the event's claim with a running lease (a
	// delivery without the inbox, in a configuration being replaced).
	EnqueueBusy
)

const inboxColumns = `seq, route, queue, event_id, provider, event_type, state, received_at, next_at, done_at,
	last_at, attempts, refused, last_error, replayed, replayed_at, merchant_ref`

// queueLock serialises, on PostgreSQL, the transactions that add to or
// hand on one queue, so that seq follows the commits within a queue and a
// queue never has two heads. SQLite has one writer: nothing to do.
func (s *Store) queueLock(ctx context.Context, ex execer, route, queue string) error {
	if s.dialect.name != "postgres" {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7212024))`, route+"\n"+queue)
	return err
}

// Enqueue stores a pending event at the end of its queue. With a claim
// name it records the claim in the same transaction, kept for keep, so
// that every later copy of the event is a duplicate; an event claimed
// before is not stored again.
func (s *Store) Enqueue(ctx context.Context, ev *InboxEvent, claim string, keep time.Duration) (EnqueueResult, error) {
	result := Enqueued
	err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
		result = Enqueued
		now := s.now()
		if claim != "" {
			state, err := s.takeClaim(ctx, ex, claim, keep, now)
			if err != nil || state != Enqueued {
				result = state
				return err
			}
		}
		if err := s.queueLock(ctx, ex, ev.Route, ev.Queue); err != nil {
			return unavailable("locking a queue", err)
		}
		seq, err := s.insertPending(ctx, ex, ev, now, false)
		if err != nil {
			return err
		}
		ev.Seq, ev.State, ev.NextAt = seq, Pending, now
		return nil
	})
	return result, s.woke(err)
}

// takeClaim records claim as taken until now+keep, unless it is taken.
func (s *Store) takeClaim(ctx context.Context, ex execer, claim string, keep time.Duration, now time.Time) (EnqueueResult, error) {
	key := []byte(claim)
	var took int
	err := ex.QueryRowContext(ctx, s.dialect.q(`
		INSERT INTO payhook_claims (key, state, owner, until) VALUES (?, 2, '', ?)
		ON CONFLICT (key) DO UPDATE SET state = 2, owner = '', until = excluded.until
		WHERE payhook_claims.until <= ?
		RETURNING 1`), key, millis(now)+keep.Milliseconds(), millis(now)).Scan(&took)
	if err == nil {
		return Enqueued, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, unavailable("claiming an event", err)
	}
	var state int
	if err := ex.QueryRowContext(ctx, s.dialect.q(`SELECT state FROM payhook_claims WHERE key = ?`), key).Scan(&state); err != nil {
		return 0, unavailable("reading a claim", err)
	}
	if state == 2 {
		return EnqueueDuplicate, nil
	}
	return EnqueueBusy, nil
}

// insertPending adds ev at the end of its queue (the queue's lock is
// held) and returns its seq.
func (s *Store) insertPending(ctx context.Context, ex execer, ev *InboxEvent, now time.Time, replayed bool) (int64, error) {
	var seq int64
	err := ex.QueryRowContext(ctx, s.dialect.q(`
		INSERT INTO payhook_inbox (route, queue, event_id, provider, event_type, state, head, received_at, next_at,
			done_at, owner, last_at, attempts, refused, last_error, replayed, replayed_at, merchant_ref, record)
		VALUES (?, ?, ?, ?, ?, 0,
			CASE WHEN EXISTS (SELECT 1 FROM payhook_inbox WHERE route = ? AND queue = ? AND state = 0) THEN 0 ELSE 1 END,
			?, ?, 0, '', 0, 0, 0, '', ?, ?, ?, ?)
		RETURNING seq`),
		text(ev.Route), text(ev.Queue), text(ev.EventID), text(ev.Provider), text(ev.Type),
		text(ev.Route), text(ev.Queue),
		millis(ev.ReceivedAt), millis(now), boolInt(replayed || ev.Replayed), zeroMillis(ev.ReplayedAt), text(ev.MerchantReference),
		ev.Record).Scan(&seq)
	return seq, unavailable("storing an event in the inbox", err)
}

// Lease takes up to limit due heads of route's queues for lease: until it
// runs out, no other Lease returns them (nor anything behind them in their
// queues). The holder reports each with Settle, or gives it back with
// Release.
func (s *Store) Lease(ctx context.Context, route string, limit int, lease time.Duration) ([]*InboxEvent, error) {
	var out []*InboxEvent
	err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
		out = out[:0]
		now := millis(s.now())
		owner := newToken()
		pick := `SELECT seq FROM payhook_inbox WHERE route = ? AND state = 0 AND head = 1 AND next_at <= ?
			ORDER BY next_at, seq LIMIT ?`
		statement := `UPDATE payhook_inbox SET owner = ?, next_at = ? WHERE seq IN (` + pick + `) RETURNING ` + inboxColumns + `, record`
		if s.dialect.name == "postgres" {
			// Instances lease side by side: each skips the heads another
			// is leasing instead of waiting for it.
			statement = `UPDATE payhook_inbox SET owner = ?, next_at = ? WHERE seq IN (` + pick + ` FOR UPDATE SKIP LOCKED)
				AND state = 0 AND next_at <= ? RETURNING ` + inboxColumns + `, record`
		}
		args := []any{owner, now + lease.Milliseconds(), text(route), now, limit}
		if s.dialect.name == "postgres" {
			args = append(args, now)
		}
		rows, err := ex.QueryContext(ctx, s.dialect.q(statement), args...)
		if err != nil {
			return unavailable("leasing inbox events", err)
		}
		defer rows.Close()
		for rows.Next() {
			ev, err := scanInbox(rows, true)
			if err != nil {
				return unavailable("leasing inbox events", err)
			}
			ev.owner = owner
			out = append(out, ev)
		}
		return unavailable("leasing inbox events", rows.Err())
	})
	if err != nil {
		return nil, err
	}
	// RETURNING gives no order: deliver the longest waiting first.
	sortBySeq(out)
	return out, nil
}

// Renew extends the lease of an event being delivered. ErrLeaseLost means
// it ran out and another took the event over.
func (s *Store) Renew(ctx context.Context, ev *InboxEvent, lease time.Duration) error {
	return s.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET next_at = ? WHERE seq = ? AND owner = ? AND state = 0`),
			millis(s.now())+lease.Milliseconds(), ev.Seq, ev.owner)
		return affected(res, err, "renewing an inbox lease")
	})
}

// Release gives a leased event back without an attempt: it is due again
// now, for any holder.
func (s *Store) Release(ctx context.Context, ev *InboxEvent) error {
	err := s.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET owner = '', next_at = ? WHERE seq = ? AND owner = ? AND state = 0`),
			millis(s.now()), ev.Seq, ev.owner)
		if err := affected(res, err, "releasing an inbox lease"); err != nil {
			return err
		}
		return nil
	})
	return s.woke(err)
}

// Settlement is the outcome of a leased event's attempt.
type Settlement struct {
	// State is Pending to try again at NextAt; Delivered or Failed to take
	// the event out of its queue, which the next event heads.
	State   InboxState
	NextAt  time.Time
	Refused bool
	// Attempt is recorded with the outcome, in the same transaction; nil
	// when there was none (an unreadable record).
	Attempt *Attempt
	// Error is the event's last error when there is no attempt.
	Error string
}

// Settle records a leased event's attempt and its outcome in one step.
// ErrLeaseLost means its lease ran out and another took the event over:
// nothing was recorded.
func (s *Store) Settle(ctx context.Context, ev *InboxEvent, out Settlement) error {
	err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
		now := s.now()
		lastError, lastAt, attempts := out.Error, int64(0), 0
		if a := out.Attempt; a != nil {
			lastError, lastAt, attempts = a.Error, millis(a.At), 1
			if err := s.insertAttempt(ctx, ex, *a); err != nil {
				return err
			}
		}
		if out.State != Pending {
			if err := s.queueLock(ctx, ex, ev.Route, ev.Queue); err != nil {
				return unavailable("locking a queue", err)
			}
		}
		res, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET state = ?, head = ?, owner = '', next_at = ?, done_at = ?,
			last_at = CASE WHEN CAST(? AS BIGINT) > 0 THEN CAST(? AS BIGINT) ELSE last_at END, attempts = attempts + ?, refused = ?, last_error = ?
			WHERE seq = ? AND owner = ? AND state = 0`),
			int(out.State), boolInt(out.State == Pending), millis(out.NextAt), doneAt(out.State, now),
			lastAt, lastAt, attempts, boolInt(out.Refused), text(lastError), ev.Seq, ev.owner)
		if err := affected(res, err, "recording a delivery attempt"); err != nil {
			return err
		}
		if out.State == Pending {
			return nil
		}
		if err := s.promote(ctx, ex, ev.Route, ev.Queue); err != nil {
			return err
		}
		return nil
	})
	if out.State == Pending {
		return err
	}
	return s.woke(err)
}

// promote makes the first pending event of a queue its head.
func (s *Store) promote(ctx context.Context, ex execer, route, queue string) error {
	_, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET head = 1, next_at = ? WHERE seq =
		(SELECT MIN(seq) FROM payhook_inbox WHERE route = ? AND queue = ? AND state = 0) AND head = 0`),
		millis(s.now()), text(route), text(queue))
	return unavailable("handing a queue to its next event", err)
}

func doneAt(st InboxState, now time.Time) int64 {
	if st == Pending {
		return 0
	}
	return millis(now)
}

// Replay delivers an event again, exactly once more however many ask at
// once: a delivered or failed one goes to the end of its queue, as a new
// pending event (replayed now; its attempts so far stay in the journal);
// a pending one is made due now. The event keeps its receipt time: a
// replay is an attempt, not a new receipt (ReplayedAt says when). seen is the state the caller saw, asked
// when the replay was asked: when the event is no longer in that state,
// or a replay that took effect after asked made it what it is (another
// replay asked at the same time came first, and the shop may even have
// taken it since), nothing is done and ErrNotFound says so. So replays
// asked at once deliver the event once more, not once each. It returns
// the event as it stands after.
func (s *Store) Replay(ctx context.Context, seq int64, seen InboxState, asked time.Time) (*InboxEvent, error) {
	var out *InboxEvent
	err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
		now := s.now()
		ev, err := s.inboxBySeq(ctx, ex, seq, true)
		if err != nil {
			return err
		}
		if ev.State != seen {
			return fmt.Errorf("%w: it is %s now", ErrNotFound, ev.State)
		}
		if ev.Replayed && !ev.ReplayedAt.Before(asked.Truncate(time.Millisecond)) {
			return fmt.Errorf("%w: another replay asked at the same time took effect", ErrNotFound)
		}
		if ev.State == Pending {
			if _, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET next_at = ?, refused = 0
				WHERE seq = ? AND state = 0 AND owner = ''`), millis(now), seq); err != nil {
				return unavailable("replaying an event", err)
			}
			out = ev
			return nil
		}
		if err := s.queueLock(ctx, ex, ev.Route, ev.Queue); err != nil {
			return unavailable("locking a queue", err)
		}
		// Only the replay whose delete takes the row goes on: a concurrent
		// one finds it gone.
		res, err := ex.ExecContext(ctx, s.dialect.q(`DELETE FROM payhook_inbox WHERE seq = ? AND state <> 0`), seq)
		if err := affected(res, err, "replaying an event"); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				return fmt.Errorf("%w: replayed by another meanwhile", ErrNotFound)
			}
			return err
		}
		ev.ReplayedAt, ev.Replayed = now.Truncate(time.Millisecond), true
		if ev.Seq, err = s.insertPending(ctx, ex, ev, now, true); err != nil {
			return err
		}
		ev.State, ev.NextAt, ev.DoneAt, ev.Attempts, ev.Refused, ev.LastError = Pending, now, time.Time{}, 0, false, ""
		out = ev
		return nil
	})
	return out, s.woke(err)
}

// ErrNotFound means no inbox event matched.
var ErrNotFound = errors.New("no such inbox event")

// inboxBySeq reads one event.
func (s *Store) inboxBySeq(ctx context.Context, ex execer, seq int64, record bool) (*InboxEvent, error) {
	rows, err := ex.QueryContext(ctx, s.dialect.q(`SELECT `+inboxColumns+`, record FROM payhook_inbox WHERE seq = ?`), seq)
	if err != nil {
		return nil, unavailable("reading an inbox event", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, unavailable("reading an inbox event", err)
		}
		return nil, ErrNotFound
	}
	ev, err := scanInbox(rows, record)
	return ev, unavailable("reading an inbox event", err)
}

// InboxEvents returns the events with an id, newest first, with their
// records: one per route that received it, and earlier rows of replays
// are gone (a replay moves the event).
func (s *Store) InboxEvents(ctx context.Context, eventID string) ([]*InboxEvent, error) {
	rows, err := s.db.QueryContext(ctx, s.dialect.q(`SELECT `+inboxColumns+`, record FROM payhook_inbox
		WHERE event_id = ? ORDER BY seq DESC LIMIT 100`), text(eventID))
	if err != nil {
		return nil, unavailable("reading inbox events", err)
	}
	return collectInbox(rows, true)
}

// InboxStates returns the events with these ids, without their records:
// their state, for a list of the journal's entries.
func (s *Store) InboxStates(ctx context.Context, eventIDs []string) ([]*InboxEvent, error) {
	if len(eventIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(eventIDs))
	for i, id := range eventIDs {
		args[i] = text(id)
	}
	rows, err := s.db.QueryContext(ctx, s.dialect.q(`SELECT `+inboxColumns+` FROM payhook_inbox
		WHERE event_id IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(eventIDs)), ", ")+`) ORDER BY seq DESC`), args...)
	if err != nil {
		return nil, unavailable("reading inbox events", err)
	}
	return collectInbox(rows, false)
}

// FailedByRoute counts the failed events of every route that has some.
func (s *Store) FailedByRoute(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT route, COUNT(*) FROM payhook_inbox WHERE state = %d GROUP BY route`, Failed))
	if err != nil {
		return nil, unavailable("counting the failed events", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var route string
		var n int
		if err := rows.Scan(&route, &n); err != nil {
			return nil, unavailable("counting the failed events", err)
		}
		out[route] = n
	}
	return out, unavailable("counting the failed events", rows.Err())
}

// InboxQuery selects inbox events to list.
type InboxQuery struct {
	Routes []string    // only these routes; all when empty
	State  *InboxState // only this state; all when nil
	Before int64       // only events with a seq below (a page's end); 0 for the newest
	Limit  int
}

// ListInbox lists events newest first, without their records.
func (s *Store) ListInbox(ctx context.Context, q InboxQuery) ([]*InboxEvent, error) {
	var where []string
	var args []any
	if len(q.Routes) > 0 {
		where = append(where, "route IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(q.Routes)), ", ")+")")
		for _, r := range q.Routes {
			args = append(args, text(r))
		}
	}
	if q.State != nil {
		where = append(where, "state = ?")
		args = append(args, int(*q.State))
	}
	if q.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, q.Before)
	}
	statement := `SELECT ` + inboxColumns + ` FROM payhook_inbox`
	if len(where) > 0 {
		statement += " WHERE " + strings.Join(where, " AND ")
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	statement += fmt.Sprintf(" ORDER BY seq DESC LIMIT %d", limit)
	rows, err := s.db.QueryContext(ctx, s.dialect.q(statement), args...)
	if err != nil {
		return nil, unavailable("listing the inbox", err)
	}
	return collectInbox(rows, false)
}

// RoutePending is a route's pending events.
type RoutePending struct {
	Route    string
	Provider string // of its oldest pending event
	Pending  int
	Oldest   time.Time // since when its oldest pending event waits: its receipt, or its replay
}

// PendingByRoute counts the pending events of every route.
func (s *Store) PendingByRoute(ctx context.Context) ([]RoutePending, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT route, MIN(provider), COUNT(*),
		MIN(CASE WHEN replayed_at > 0 THEN replayed_at ELSE received_at END) FROM payhook_inbox
		WHERE state = 0 GROUP BY route ORDER BY route`)
	if err != nil {
		return nil, unavailable("counting the inbox", err)
	}
	defer rows.Close()
	var out []RoutePending
	for rows.Next() {
		var p RoutePending
		var oldest int64
		if err := rows.Scan(&p.Route, &p.Provider, &p.Pending, &oldest); err != nil {
			return nil, unavailable("counting the inbox", err)
		}
		p.Oldest = time.UnixMilli(oldest).UTC()
		out = append(out, p)
	}
	return out, unavailable("counting the inbox", rows.Err())
}

// NextDue tells when the first head of route's queues is due; ok is false
// when no event waits.
func (s *Store) NextDue(ctx context.Context, route string) (at time.Time, ok bool, err error) {
	var next sql.NullInt64
	err = s.db.QueryRowContext(ctx, s.dialect.q(`SELECT MIN(next_at) FROM payhook_inbox WHERE route = ? AND state = 0 AND head = 1`),
		text(route)).Scan(&next)
	if err != nil {
		return time.Time{}, false, unavailable("reading the inbox's next event", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(next.Int64), true, nil
}

// Refresh makes every pending event of route due now but those the shop
// refused on their own: the shop is back after failing.
func (s *Store) Refresh(ctx context.Context, route string) error {
	return s.write(ctx, func(ctx context.Context, ex execer) error {
		now := millis(s.now())
		_, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET next_at = ?
			WHERE route = ? AND state = 0 AND head = 1 AND owner = '' AND refused = 0 AND next_at > ?`), now, text(route), now)
		return unavailable("making the inbox due", err)
	})
}

// MoveInbox hands the pending events of route from, one no configuration
// runs any more, to route to, which delivers them from then on, merged in
// commit order with its own queues. It returns how many it moved.
func (s *Store) MoveInbox(ctx context.Context, from, to string) (int, error) {
	var moved int64
	err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
		if s.dialect.name == "postgres" {
			// Moving rewrites queues wholesale: no enqueue or settle of
			// either route runs meanwhile.
			if _, err := ex.ExecContext(ctx, `LOCK TABLE payhook_inbox IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return unavailable("locking the inbox", err)
			}
		}
		res, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET route = ? WHERE route = ? AND state = 0 AND owner = ''`), text(to), text(from))
		if err != nil {
			return unavailable("moving inbox events", err)
		}
		moved, _ = res.RowsAffected()
		// One head per queue again: the first pending event.
		if _, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET head = CASE WHEN EXISTS
			(SELECT 1 FROM payhook_inbox p WHERE p.route = payhook_inbox.route AND p.queue = payhook_inbox.queue
				AND p.state = 0 AND p.seq < payhook_inbox.seq) THEN 0 ELSE 1 END
			WHERE route = ? AND state = 0`), text(to)); err != nil {
			return unavailable("moving inbox events", err)
		}
		return nil
	})
	return int(moved), s.woke(err)
}

// ImportInbox stores events an earlier version kept elsewhere, in the
// order given (each queue's events in their order), with their states; an
// event whose route already holds a row of its id is skipped, so that an
// import interrupted and run again stores each once. It returns how many
// it stored.
func (s *Store) ImportInbox(ctx context.Context, events []*InboxEvent) (int, error) {
	stored := 0
	for _, ev := range events {
		var took bool
		err := s.atomic(ctx, func(ctx context.Context, ex execer) error {
			took = false
			var one int
			err := ex.QueryRowContext(ctx, s.dialect.q(`SELECT 1 FROM payhook_inbox WHERE event_id = ? AND route = ? LIMIT 1`),
				text(ev.EventID), text(ev.Route)).Scan(&one)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return unavailable("importing an inbox event", err)
			}
			if err := s.queueLock(ctx, ex, ev.Route, ev.Queue); err != nil {
				return unavailable("locking a queue", err)
			}
			now := s.now()
			seq, err := s.insertPending(ctx, ex, ev, now, ev.Replayed)
			if err != nil {
				return err
			}
			if ev.State != Pending {
				if _, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET state = ?, head = 0, done_at = ?, last_at = ?,
					attempts = ?, last_error = ? WHERE seq = ?`), int(ev.State), millis(ev.DoneAt), millis(ev.LastAt), ev.Attempts,
					text(ev.LastError), seq); err != nil {
					return unavailable("importing an inbox event", err)
				}
			} else if ev.Attempts > 0 {
				if _, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_inbox SET last_at = ?, attempts = ?, last_error = ? WHERE seq = ?`),
					millis(ev.LastAt), ev.Attempts, text(ev.LastError), seq); err != nil {
					return unavailable("importing an inbox event", err)
				}
			}
			took = true
			return nil
		})
		if err != nil {
			return stored, err
		}
		if took {
			stored++
			_ = s.woke(nil)
		}
	}
	return stored, nil
}

// ExpireInbox deletes the delivered and failed events done longer than
// keep ago, and returns how many.
func (s *Store) ExpireInbox(ctx context.Context, keep time.Duration) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, s.dialect.q(fmt.Sprintf(`DELETE FROM payhook_inbox WHERE seq IN
			(SELECT seq FROM payhook_inbox WHERE state <> 0 AND done_at <= ? LIMIT %d)`, expireBatch)), millis(s.now().Add(-keep)))
		if err != nil {
			return total, unavailable("expiring the inbox", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < expireBatch {
			return total, nil
		}
	}
}

type scanner interface{ Scan(dest ...any) error }

func scanInbox(row scanner, record bool) (*InboxEvent, error) {
	ev := new(InboxEvent)
	var state, refused, replayed int
	var received, next, done, last, replayedAt int64
	dest := []any{&ev.Seq, &ev.Route, &ev.Queue, &ev.EventID, &ev.Provider, &ev.Type, &state, &received, &next, &done,
		&last, &ev.Attempts, &refused, &ev.LastError, &replayed, &replayedAt, &ev.MerchantReference}
	if record {
		dest = append(dest, &ev.Record)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	ev.State, ev.Refused, ev.Replayed = InboxState(state), refused != 0, replayed != 0
	ev.ReceivedAt, ev.NextAt = time.UnixMilli(received).UTC(), time.UnixMilli(next).UTC()
	if done > 0 {
		ev.DoneAt = time.UnixMilli(done).UTC()
	}
	if last > 0 {
		ev.LastAt = time.UnixMilli(last).UTC()
	}
	if replayedAt > 0 {
		ev.ReplayedAt = time.UnixMilli(replayedAt).UTC()
	}
	return ev, nil
}

func collectInbox(rows *sql.Rows, record bool) ([]*InboxEvent, error) {
	defer rows.Close()
	var out []*InboxEvent
	for rows.Next() {
		ev, err := scanInbox(rows, record)
		if err != nil {
			return nil, unavailable("reading inbox events", err)
		}
		out = append(out, ev)
	}
	return out, unavailable("reading inbox events", rows.Err())
}

func sortBySeq(events []*InboxEvent) {
	slices.SortFunc(events, func(a, b *InboxEvent) int { return cmp.Compare(a.Seq, b.Seq) })
}

// zeroMillis is a time in Unix milliseconds, 0 for the zero time.
func zeroMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return millis(t)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// affected turns an update that matched no row into ErrLeaseLost.
func affected(res sql.Result, err error, op string) error {
	if err != nil {
		return unavailable(op, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrLeaseLost
	}
	return nil
}
