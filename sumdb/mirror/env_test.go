package mirror

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/client"
)

var (
	_ Store = (*store.SQLite)(nil)
	_ Store = (*store.Postgres)(nil)
)

// An env is a mirror of an upstream checksum database, on a SQLite store
// of its own, served at the root of a loopback server.
type env struct {
	t     *testing.T
	up    *sumdbtest.DB
	st    *store.SQLite
	m     *Mirror
	srv   *httptest.Server
	logs  *logRecorder
	reg   *prometheus.Registry
	clock *clock
}

// newEnv starts a mirror of up on a new store.
func newEnv(t *testing.T, up *sumdbtest.DB) *env {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "mirror.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvOn(t, up, st)
}

// newEnvOn starts a mirror of up on st.
func newEnvOn(t *testing.T, up *sumdbtest.DB, st *store.SQLite) *env {
	t.Helper()
	e := &env{t: t, up: up, st: st, logs: &logRecorder{}, reg: prometheus.NewRegistry(), clock: &clock{now: time.Unix(1_700_000_000, 0)}}
	remote, err := client.Open(t.Context(), client.Config{GOSUMDB: up.GOSUMDB(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.m, err = New(Config{
		Remote:     remote,
		Store:      st,
		Logger:     slog.New(e.logs),
		Registerer: e.reg,
		Timeout:    5 * time.Second,
		Now:        e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.m)
	t.Cleanup(e.srv.Close)
	return e
}

// startUpstream starts a checksum database holding n synthetic records,
// example.com/a/m<i>@v1.0.0.
func startUpstream(t *testing.T, n int) *sumdbtest.DB {
	t.Helper()
	up := sumdbtest.MustStart(t, sumdbtest.Options{})
	if n > 0 {
		up.AppendSynthetic("a", n)
	}
	return up
}

// get returns the status, body and Cache-Control of the answer to a GET
// of url.
func get(t *testing.T, url string) (int, []byte, string) {
	t.Helper()
	code, body, cc, err := fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body, cc
}

// fetch returns the status, body and Cache-Control of the answer to a GET
// of url.
func fetch(url string) (code int, body []byte, cacheControl string, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header.Get("Cache-Control"), err
}

// mustGet returns the body of a 200 answer to a GET of url.
func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	code, body, _ := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %q, want 200", url, code, body)
	}
	return body
}

// countRequests returns how many of the upstream's requests were of path.
func countRequests(up *sumdbtest.DB, path string) int {
	n := 0
	for _, p := range up.Requests() {
		if p == path {
			n++
		}
	}
	return n
}

// A logRecorder is a slog.Handler that keeps what is logged at ERROR,
// one line each: the message and the attributes, as key=value.
type logRecorder struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelError
}

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%q", a.Key, a.Value.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { panic("not used by the mirror") }
func (l *logRecorder) WithGroup(string) slog.Handler      { panic("not used by the mirror") }

// errorLines returns the lines logged at ERROR.
func (l *logRecorder) errorLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// A clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// httptestRecorder returns h's answer to a GET of path.
func httptestRecorder(h http.Handler, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}
