package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ClaimState is what a claim found.
type ClaimState int

// What a claim finds.
const (
	// ClaimNew: the event was neither delivered nor being delivered; the
	// caller holds it now, and must Finish it.
	ClaimNew ClaimState = iota
	// ClaimDelivered: the shop took the event before, and the record is
	// still kept; the caller acknowledges without forwarding.
	ClaimDelivered
	// ClaimBusy: another claim holds the event and its lease runs; the
	// caller waits for its outcome or answers "try again later".
	ClaimBusy
)

func (c ClaimState) String() string {
	switch c {
	case ClaimNew:
		return "new"
	case ClaimDelivered:
		return "delivered"
	case ClaimBusy:
		return "busy"
	}
	return "unknown"
}

// Claim is the outcome of claiming an event.
type Claim struct {
	State ClaimState
	// Until is when the delivered record expires (ClaimDelivered).
	Until time.Time
	key   []byte
	owner string // set when State is ClaimNew
}

// Claim claims the event named key for delivery, for lease: until the
// lease runs out, every other claim of key finds it busy; afterwards a
// claim takes it over (its holder died or hung). A delivered event's
// record, kept until it expires, makes every later claim find it
// delivered.
func (s *Store) Claim(ctx context.Context, name string, lease time.Duration) (Claim, error) {
	var c Claim
	err := s.write(ctx, func(ctx context.Context, ex execer) (err error) {
		c, err = s.claim(ctx, ex, name, lease)
		return err
	})
	return c, err
}

func (s *Store) claim(ctx context.Context, ex execer, name string, lease time.Duration) (Claim, error) {
	// Keys are bytes: a name may hold any byte (PostgreSQL's text holds no NUL).
	key := []byte(name)
	for {
		now := millis(s.now())
		owner := newToken()
		// One statement takes a key that is new, whose lease ran out or
		// whose record expired; it returns the owner only when it took it.
		var got string
		err := ex.QueryRowContext(ctx, s.dialect.q(`
			INSERT INTO payhook_claims (key, state, owner, until) VALUES (?, 1, ?, ?)
			ON CONFLICT (key) DO UPDATE SET state = 1, owner = excluded.owner, until = excluded.until
			WHERE payhook_claims.until <= ?
			RETURNING owner`), key, owner, now+lease.Milliseconds(), now).Scan(&got)
		switch {
		case err == nil && got == owner:
			return Claim{State: ClaimNew, key: key, owner: owner}, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return Claim{}, unavailable("claiming an event", err)
		}
		// Another claim holds it, or it was delivered and is kept.
		var state int
		var until int64
		err = ex.QueryRowContext(ctx, s.dialect.q(`SELECT state, until FROM payhook_claims WHERE key = ?`), key).Scan(&state, &until)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // expired and deleted between the two statements
		case err != nil:
			return Claim{}, unavailable("reading a claim", err)
		case state == 2 && until > now:
			return Claim{State: ClaimDelivered, Until: time.UnixMilli(until), key: key}, nil
		case until > now:
			return Claim{State: ClaimBusy, key: key}, nil
		}
		// The lease or the record ran out between the two statements.
	}
}

// Finish records the outcome of a claim this caller holds: delivered, the
// record is kept for keep (later claims find the event delivered);
// otherwise the claim is released at once, and the next claim delivers
// the event. ErrLeaseLost means the lease ran out and another claim took
// the event over meanwhile: nothing was recorded.
func (s *Store) Finish(ctx context.Context, c Claim, delivered bool, keep time.Duration) error {
	if c.State != ClaimNew {
		return nil
	}
	return s.write(ctx, func(ctx context.Context, ex execer) error {
		var res sql.Result
		var err error
		if delivered {
			res, err = ex.ExecContext(ctx, s.dialect.q(`
				UPDATE payhook_claims SET state = 2, owner = '', until = ? WHERE key = ? AND owner = ?`),
				millis(s.now())+keep.Milliseconds(), c.key, c.owner)
		} else {
			res, err = ex.ExecContext(ctx, s.dialect.q(`DELETE FROM payhook_claims WHERE key = ? AND owner = ?`), c.key, c.owner)
		}
		if err != nil {
			return unavailable("recording a claim's outcome", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrLeaseLost
		}
		return nil
	})
}

// Extend renews a claim's lease, for a delivery that takes longer than the
// lease it was claimed with. ErrLeaseLost means it was taken over.
func (s *Store) Extend(ctx context.Context, c Claim, lease time.Duration) error {
	return s.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, s.dialect.q(`UPDATE payhook_claims SET until = ? WHERE key = ? AND owner = ? AND state = 1`),
			millis(s.now())+lease.Milliseconds(), c.key, c.owner)
		if err != nil {
			return unavailable("extending a claim", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrLeaseLost
		}
		return nil
	})
}

// Delivered tells whether the event named key was delivered and its
// record is still kept, without claiming it.
func (s *Store) Delivered(ctx context.Context, name string) (bool, error) {
	key := []byte(name)
	var one int
	err := s.db.QueryRowContext(ctx, s.dialect.q(`SELECT 1 FROM payhook_claims WHERE key = ? AND state = 2 AND until > ?`),
		key, millis(s.now())).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("reading a delivery record", err)
	}
	return true, nil
}

// Bind binds the transmission named key to the body whose digest is
// given, for keep: the first body bound is the only one the transmission
// may carry while the binding is kept. It reports whether digest is the
// bound body's (true for the first body too).
func (s *Store) Bind(ctx context.Context, name string, digest []byte, keep time.Duration) (bool, error) {
	var bound []byte
	err := s.write(ctx, func(ctx context.Context, ex execer) error {
		key := []byte(name)
		for {
			now := millis(s.now())
			err := ex.QueryRowContext(ctx, s.dialect.q(`
				INSERT INTO payhook_bindings (key, digest, until) VALUES (?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET digest = excluded.digest, until = excluded.until
				WHERE payhook_bindings.until <= ?
				RETURNING digest`), key, digest, now+keep.Milliseconds(), now).Scan(&bound)
			if errors.Is(err, sql.ErrNoRows) {
				err = ex.QueryRowContext(ctx, s.dialect.q(`SELECT digest FROM payhook_bindings WHERE key = ?`), key).Scan(&bound)
				if errors.Is(err, sql.ErrNoRows) {
					continue // expired and deleted meanwhile
				}
			}
			return unavailable("binding a transmission", err)
		}
	})
	if err != nil {
		return false, err
	}
	return string(bound) == string(digest), nil
}

// Import records events delivered before, under their keys, until their
// records expire: the delivery records of an earlier version's storage. A
// key already in the store keeps its row. It reports how many it took.
func (s *Store) Import(ctx context.Context, delivered map[string]time.Time) (int, error) {
	now := s.now()
	taken := 0
	for name, until := range delivered {
		if !until.After(now) {
			continue
		}
		var n int64
		err := s.write(ctx, func(ctx context.Context, ex execer) error {
			res, err := ex.ExecContext(ctx, s.dialect.q(`INSERT INTO payhook_claims (key, state, owner, until) VALUES (?, 2, '', ?)
				ON CONFLICT (key) DO NOTHING`), []byte(name), millis(until))
			if err != nil {
				return unavailable("importing a delivery record", err)
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return taken, err
		}
		taken += int(n)
	}
	return taken, nil
}
