package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// This file gives the tests a Caddy storage on Redis, as the community
// modules do (github.com/pberkel/caddy-storage-redis,
// github.com/gamalan/caddy-tlsredis; this machine's module proxy serves
// neither): values in hashes with their modification time, locks with
// SET NX and an expiry that the holder keeps fresh. It is test code, for
// the cluster tests against a real redis-server.

func init() {
	caddy.RegisterModule(testRedisStorage{})
}

// testRedisStorage is the caddy.storage.payhook_test_redis module.
type testRedisStorage struct {
	Address string `json:"address"`
}

func (testRedisStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.payhook_test_redis", New: func() caddy.Module { return new(testRedisStorage) }}
}

// UnmarshalCaddyfile reads "storage payhook_test_redis <address>".
func (s *testRedisStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.AllArgs(&s.Address) {
		return d.ArgErr()
	}
	return nil
}

// CertMagicStorage connects to Redis.
func (s *testRedisStorage) CertMagicStorage() (certmagic.Storage, error) {
	client := redis.NewClient(&redis.Options{Addr: s.Address})
	if err := client.Ping(context.Background()).Err(); err != nil {
		return nil, err
	}
	return &redisStorage{client: client, locks: map[string]context.CancelFunc{}}, nil
}

// redisStorage is a certmagic.Storage (and TryLocker) on Redis.
type redisStorage struct {
	client *redis.Client
	mu     sync.Mutex
	locks  map[string]context.CancelFunc // held here: stops the refresh
	tokens sync.Map                      // lock name → this holder's token
}

const (
	redisPrefix   = "certmagic/"
	redisLockTTL  = 10 * time.Second
	redisLockPoll = 100 * time.Millisecond
)

func redisKey(key string) string { return redisPrefix + strings.Trim(key, "/") }

func (r *redisStorage) Store(ctx context.Context, key string, value []byte) error {
	return r.client.HSet(ctx, redisKey(key), "value", value, "modified", time.Now().UnixNano()).Err()
}

func (r *redisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	value, err := r.client.HGet(ctx, redisKey(key), "value").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fs.ErrNotExist
	}
	return value, err
}

func (r *redisStorage) Delete(ctx context.Context, key string) error {
	n, err := r.client.Del(ctx, redisKey(key)).Result()
	if err == nil && n == 0 {
		return fs.ErrNotExist
	}
	return err
}

func (r *redisStorage) Exists(ctx context.Context, key string) bool {
	n, err := r.client.Exists(ctx, redisKey(key)).Result()
	return err == nil && n > 0
}

// List scans the keys under prefix: all of them when recursive, else the
// prefix's direct children (files and directories).
func (r *redisStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	base := redisKey(prefix) + "/"
	seen := map[string]bool{}
	iter := r.client.Scan(ctx, 0, base+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rest := strings.TrimPrefix(iter.Val(), base)
		if !recursive {
			rest, _, _ = strings.Cut(rest, "/")
		}
		seen[path.Join(strings.Trim(prefix, "/"), rest)] = true
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	if len(seen) == 0 {
		return nil, fs.ErrNotExist
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

func (r *redisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	values, err := r.client.HMGet(ctx, redisKey(key), "value", "modified").Result()
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if values[0] == nil {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	nanos, _ := strconv.ParseInt(fmt.Sprint(values[1]), 10, 64)
	return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, nanos), Size: int64(len(fmt.Sprint(values[0]))), IsTerminal: true}, nil
}

func (r *redisStorage) lockKey(name string) string { return "certmagic-lock/" + name }

// TryLock takes the lock if it is free: SET NX with an expiry, which a
// goroutine refreshes while this process holds it.
func (r *redisStorage) TryLock(ctx context.Context, name string) (bool, error) {
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	tok := hex.EncodeToString(token)
	ok, err := r.client.SetNX(ctx, r.lockKey(name), tok, redisLockTTL).Result()
	if err != nil || !ok {
		return false, err
	}
	r.tokens.Store(name, tok)
	refresh, stop := context.WithCancel(context.Background())
	r.mu.Lock()
	r.locks[name] = stop
	r.mu.Unlock()
	go func() {
		ticker := time.NewTicker(redisLockTTL / 3)
		defer ticker.Stop()
		for {
			select {
			case <-refresh.Done():
				return
			case <-ticker.C:
				_ = refreshLock.Run(refresh, r.client, []string{r.lockKey(name)}, tok, redisLockTTL.Milliseconds()).Err()
			}
		}
	}()
	return true, nil
}

// Lock waits for the lock.
func (r *redisStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := r.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(redisLockPoll):
		}
	}
}

// Unlock releases the lock if this process still holds it.
func (r *redisStorage) Unlock(ctx context.Context, name string) error {
	r.mu.Lock()
	if stop := r.locks[name]; stop != nil {
		stop()
		delete(r.locks, name)
	}
	r.mu.Unlock()
	tok, ok := r.tokens.LoadAndDelete(name)
	if !ok {
		return fmt.Errorf("lock %s not held here", name)
	}
	return releaseLock.Run(ctx, r.client, []string{r.lockKey(name)}, tok).Err()
}

var (
	refreshLock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseLock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// startRedis runs a real redis-server for a test, on a free port, without
// persistence; it is installed by .ci/run (Debian's redis-server). Without
// it the test is skipped, except in CI, where it fails.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is needed (.ci/run installs it)")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// The test storage behaves as certmagic's storages must: values, listing,
// stat, and a lock one holder at a time.
func TestRedisStorage(t *testing.T) {
	addr := startRedis(t)
	storage, err := (&testRedisStorage{Address: addr}).CertMagicStorage()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"a/b/c", "a/b/d", "a/e"} {
		if err := storage.Store(ctx, key, []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := storage.Load(ctx, "a/b/c"); err != nil || string(v) != "a/b/c" {
		t.Errorf("Load = %q, %v", v, err)
	}
	if _, err := storage.Load(ctx, "a/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of nothing: %v", err)
	}
	if keys, _ := storage.List(ctx, "a", false); !slices.Equal(keys, []string{"a/b", "a/e"}) {
		t.Errorf("List = %v", keys)
	}
	if keys, _ := storage.List(ctx, "a", true); !slices.Equal(keys, []string{"a/b/c", "a/b/d", "a/e"}) {
		t.Errorf("List recursive = %v", keys)
	}
	if info, err := storage.Stat(ctx, "a/e"); err != nil || time.Since(info.Modified) > time.Minute {
		t.Errorf("Stat = %+v, %v", info, err)
	}
	other, _ := (&testRedisStorage{Address: addr}).CertMagicStorage()
	if ok, _ := storage.(certmagic.TryLocker).TryLock(ctx, "l"); !ok {
		t.Fatal("TryLock of a free lock failed")
	}
	if ok, _ := other.(certmagic.TryLocker).TryLock(ctx, "l"); ok {
		t.Fatal("two holders of one lock")
	}
	if err := storage.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := other.(certmagic.TryLocker).TryLock(ctx, "l"); !ok {
		t.Fatal("a released lock could not be taken")
	}
	_ = other.Unlock(ctx, "l")
}

// Interface guards.
var (
	_ certmagic.Storage      = (*redisStorage)(nil)
	_ certmagic.TryLocker    = (*redisStorage)(nil)
	_ caddy.StorageConverter = (*testRedisStorage)(nil)
	_ caddyfile.Unmarshaler  = (*testRedisStorage)(nil)
)
