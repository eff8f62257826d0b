package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

func init() {
	caddy.RegisterModule(App{})
	httpcaddyfile.RegisterGlobalOption("payhook", parsePayhookOption)
}

// Defaults of the payhook app.
const (
	// DefaultJournalKeep is how long the journal keeps a callback's entry.
	DefaultJournalKeep = 30 * 24 * time.Hour
	// appJanitorInterval spaces the deletions of what ran out.
	appJanitorInterval = time.Hour
)

// App is payhook's Caddy app: it owns payhook's state (the database of
// delivery claims, transmission bindings and the journal of every
// callback) for every payhook route of the configuration. Without a
// "payhook" global option it runs with its defaults: an SQLite database in
// Caddy's data directory.
type App struct {
	// Store is where payhook keeps its state. Default: SQLite at
	// <Caddy's data directory>/payhook/payhook.db.
	Store *StoreConfig `json:"store,omitempty"`

	// JournalKeep is how long the journal keeps each callback's entry: a
	// duration such as 30d. Default: 30 days.
	JournalKeep caddy.Duration `json:"journal_keep,omitempty"`

	state     *store.Store
	storeKey  string            // the store's key in stores
	legacy    certmagic.Storage // Caddy's storage, where earlier versions kept their records
	journal   *journalWriter
	deliverer *deliverer // the inbox's deliveries, for the routes of this configuration
	dedupers  []*deduper // the routes' dedupers: Stop waits for the records they write
	ctx       caddy.Context
	logger    *zap.Logger
	stop      chan struct{}
	done      *sync.WaitGroup
}

// StoreConfig names the database.
type StoreConfig struct {
	// Engine is "sqlite" (embedded, the default) or "postgres" (one
	// database for every instance of a cluster).
	Engine string `json:"engine,omitempty"`
	// Path is the SQLite database's file. Default: payhook/payhook.db in
	// Caddy's data directory.
	Path string `json:"path,omitempty"`
	// DSN is PostgreSQL's connection string (postgres://user:password@host/db).
	// It holds a password: use a placeholder ({env.PAYHOOK_DATABASE_URL}).
	DSN string `json:"dsn,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "payhook", New: func() caddy.Module { return new(App) }}
}

// Provision opens the database and brings its schema up to date, so that
// every payhook route finds it ready before the servers start.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.Validate(); err != nil {
		return err
	}
	cfg := StoreConfig{Engine: "sqlite"}
	if a.Store != nil {
		cfg = *a.Store
	}
	var key string
	var opener func(ctx context.Context) (*store.Store, error)
	switch cfg.Engine {
	case "", "sqlite":
		path := filepath.Join(caddy.AppDataDir(), "payhook", "payhook.db")
		if cfg.Path != "" {
			var err error
			if path, err = Setting("store sqlite", cfg.Path); err != nil {
				return err
			}
		}
		key = "sqlite\x00" + path
		opener = func(ctx context.Context) (*store.Store, error) { return store.OpenSQLite(ctx, path, store.Options{}) }
	case "postgres":
		dsn, err := Secret(a.logger, "store postgres", cfg.DSN)
		if err != nil {
			return err
		}
		key = "postgres\x00" + string(dsn)
		opener = func(ctx context.Context) (*store.Store, error) {
			s, err := store.OpenPostgres(ctx, string(dsn), store.Options{})
			// The DSN's password must not reach the log through the driver's error.
			return s, redactDSN(err, string(dsn))
		}
	}
	pooled, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		open, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := opener(open)
		if err != nil {
			return nil, err
		}
		return pooledStore{s}, nil
	})
	if err != nil {
		return fmt.Errorf("payhook store %s: %w", cmp.Or(cfg.Engine, "sqlite"), err)
	}
	a.state, a.storeKey = pooled.(pooledStore).Store, key
	a.legacy = ctx.Storage()
	a.journal = newJournalWriter(a.state, a.logger)
	a.deliverer = newDeliverer(a.state, a.logger)
	if err := registerInboxMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	a.ctx = ctx
	a.stop, a.done = make(chan struct{}), new(sync.WaitGroup)
	return nil
}

// Validate checks what needs no provisioning.
func (a *App) Validate() error {
	if a.JournalKeep < 0 {
		return errors.New("payhook journal_keep must be positive")
	}
	if a.Store == nil {
		return nil
	}
	switch a.Store.Engine {
	case "", "sqlite":
		if a.Store.DSN != "" {
			return errors.New("payhook store sqlite takes a path, not a dsn")
		}
	case "postgres":
		if a.Store.DSN == "" {
			return errors.New("payhook store postgres needs its connection string: store postgres {env.PAYHOOK_DATABASE_URL}")
		}
	default:
		return fmt.Errorf("payhook store: unknown engine %q (sqlite or postgres)", a.Store.Engine)
	}
	return nil
}

// Start runs the journal's writer, the janitor and the inbox's
// deliveries, and imports once the delivery records and inbox events an
// earlier version kept in Caddy's storage.
func (a *App) Start() error {
	a.deliverer.start(func(ctx context.Context, routes map[string]*inbox) {
		importLegacyInbox(ctx, a.legacy, a.state, routes, a.logger)
	})
	a.done.Add(3)
	go func() { defer a.done.Done(); a.journal.run() }()
	go func() { defer a.done.Done(); a.janitor() }()
	go func() {
		defer a.done.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-a.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := importLegacyDedupe(ctx, a.legacy, a.state, a.logger); err != nil && ctx.Err() == nil {
			a.logger.Warn("importing the delivery records of Caddy's storage; trying again at the next start", zap.Error(err))
		}
	}()
	return nil
}

// Stop lets the inbox's deliveries under way finish within the servers'
// grace period, writes what the journal still holds and stops the
// janitor. The database stays open for the callbacks a graceful stop lets
// finish; it closes at Cleanup.
func (a *App) Stop() error {
	a.deliverer.stop(a.gracePeriod())
	for _, d := range a.dedupers {
		d.flush() // before Cleanup lets go of the database
	}
	close(a.stop)
	a.journal.close()
	a.done.Wait()
	return nil
}

// gracePeriod is how long a stop waits for the deliveries under way: the
// HTTP servers' grace_period, or one attempt's timeout when it is unset
// (Caddy then waits for its connections without end).
func (a *App) gracePeriod() time.Duration {
	if app, err := a.ctx.AppIfConfigured("http"); err == nil {
		if http, ok := app.(*caddyhttp.App); ok && http.GracePeriod > 0 {
			return time.Duration(http.GracePeriod)
		}
	}
	return inboxAttemptTimeout
}

// Cleanup lets go of the database: it closes once no configuration uses it
// any more.
func (a *App) Cleanup() error {
	if a.storeKey != "" {
		_, err := stores.Delete(a.storeKey)
		return err
	}
	return nil
}

// stores holds the open databases, shared by the configurations that name
// the same one: a reload hands the new configuration the database the old
// one has open, so a callback still in flight through the old one records
// its outcome in it, and nothing is opened or migrated again.
var stores = caddy.NewUsagePool()

// pooledStore is a store in stores.
type pooledStore struct{ *store.Store }

func (p pooledStore) Destruct() error { return p.Close() }

// janitor deletes, once an hour and at start, the claims and bindings
// whose time ran out and the journal's entries past journal_keep.
func (a *App) janitor() {
	keep := time.Duration(a.JournalKeep)
	if keep == 0 {
		keep = DefaultJournalKeep
	}
	ticker := time.NewTicker(appJanitorInterval)
	defer ticker.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if n, err := a.state.ExpireInbox(ctx, inboxKeep); err != nil {
			a.logger.Warn("deleting the inbox's old events", zap.Error(err))
		} else if n > 0 {
			a.logger.Debug("deleted the inbox's old events", zap.Int64("events", n))
		}
		if n, err := a.state.Expire(ctx, keep); err != nil {
			a.logger.Warn("deleting expired records", zap.Error(err))
		} else if n != (store.Expired{}) {
			a.logger.Debug("deleted expired records", zap.Int64("claims", n.Claims), zap.Int64("bindings", n.Bindings),
				zap.Int64("journal", n.Journal), zap.Int64("attempts", n.Attempts))
		}
		cancel()
		select {
		case <-a.stop:
			return
		case <-ticker.C:
		}
	}
}

// redactDSN removes the connection string from an error's text.
func redactDSN(err error, dsn string) error {
	if err == nil || dsn == "" || !strings.Contains(err.Error(), dsn) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), dsn, "(the dsn)"))
}

// parsePayhookOption reads the payhook global option:
//
//	{
//		payhook {
//			store sqlite [<path>]
//			store postgres <dsn>
//			journal_keep <duration>
//		}
//	}
func parsePayhookOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				return nil, d.Err("store takes an engine: store sqlite [<path>], or store postgres <dsn>")
			case args[0] == "sqlite" && len(args) <= 2:
				app.Store = &StoreConfig{Engine: "sqlite"}
				if len(args) == 2 {
					app.Store.Path = args[1]
				}
			case args[0] == "postgres" && len(args) == 2:
				app.Store = &StoreConfig{Engine: "postgres", DSN: args[1]}
			default:
				return nil, d.Errf("store takes sqlite [<path>] or postgres <dsn>; got %d arguments", len(args))
			}
		case "journal_keep":
			var err error
			if app.JournalKeep, err = durationArg(d, "journal_keep"); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unrecognized payhook global option %q (it takes: store, journal_keep)", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "payhook", Value: caddyconfig.JSON(app, nil)}, nil
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
