package explorer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// A memIndex is an Index of records kept in memory, as the tests give it,
// for the tests that need entries the log does not have.
type memIndex struct {
	mu      sync.Mutex
	entries []tlog.IndexEntry // guarded by mu; in increasing id
	queries int               // guarded by mu: SearchRecords calls
}

func (m *memIndex) add(es ...tlog.IndexEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, es...)
	slices.SortFunc(m.entries, func(a, b tlog.IndexEntry) int { return int(a.ID - b.ID) })
}

func (m *memIndex) SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queries++
	var out []tlog.IndexEntry
	for _, e := range m.entries {
		if e.ID > afterID && len(out) < limit && (e.Path == prefix || !exact && strings.HasPrefix(e.Path, prefix)) {
			out = append(out, e)
		}
	}
	return out, ctx.Err()
}

func (m *memIndex) NewestRecords(ctx context.Context, prefix string, exact bool, limit int) ([]tlog.IndexEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []tlog.IndexEntry
	for _, e := range slices.Backward(m.entries) {
		if len(out) < limit && (e.Path == prefix || !exact && strings.HasPrefix(e.Path, prefix)) {
			out = append(out, e)
		}
	}
	return out, ctx.Err()
}

func (m *memIndex) RecentRecords(ctx context.Context, beforeID int64, limit int) ([]tlog.IndexEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []tlog.IndexEntry
	for _, e := range slices.Backward(m.entries) {
		if (e.ID < beforeID || beforeID <= 0) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, ctx.Err()
}

// baseTime is when the tests' first record was logged; record i was
// logged i minutes later.
var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// An env is an explorer over a sumdbtest log, indexed by its SQLite
// store, and a server of both the explorer and the log's protocol paths.
type env struct {
	db  *sumdbtest.DB
	ex  *Explorer
	srv *httptest.Server
}

// newEnv starts a log with the records of paths (each "path@version"), in
// order, each in a batch of its own, and an explorer with cfg (its Log,
// Index and VKey set here). The store indexes the first indexed records
// (all if indexed is omitted); record i was logged i minutes after
// baseTime.
func newEnv(t *testing.T, cfg Config, paths []string, indexed ...int) *env {
	t.Helper()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	st := db.Store.(*store.SQLite)
	var recs []tlog.Record
	for _, pv := range paths {
		path, version, _ := strings.Cut(pv, "@")
		rec, _, err := db.Log.Append(t.Context(), path, version, sumdbtest.SynthText(path, version))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutHeadTime(t.Context(), rec.ID+1, baseTime.Add(time.Duration(rec.ID)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if len(indexed) > 0 {
		recs = recs[:indexed[0]]
	}
	for chunk := range slices.Chunk(recs, store.MaxIndexBatch) {
		if err := st.IndexRecords(t.Context(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	ev := &env{db: db}
	if cfg.Index == nil {
		cfg.Index = st
	}
	cfg.Log, cfg.VKey = db.Log, db.Key.VKey
	ex, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev.ex = ex
	ev.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsExplorerPath(r.URL.Path) {
			ex.ServeHTTP(w, r)
			return
		}
		db.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(ev.srv.Close)
	return ev
}

// get requests path with the given Accept header and returns the answer
// and its body.
func (ev *env) get(t *testing.T, path, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ev.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// getJSON requests the JSON twin of path, which must answer want, and
// decodes it into v.
func (ev *env) getJSON(t *testing.T, path string, want int, v any) {
	t.Helper()
	resp, body := ev.get(t, path, "application/json")
	if resp.StatusCode != want {
		t.Fatalf("GET %s = %s: %s, want %d", path, resp.Status, body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("GET %s: Content-Type = %q, want JSON", path, ct)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
}

// modules returns n paths "example.com/<prefix>/m<i>@v1.0.0".
func modules(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, "example.com/"+prefix+"/m"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"@v1.0.0")
	}
	return out
}
