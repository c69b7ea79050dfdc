package index

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/tlog"
)

// A fullStore is the store of package store as the tests use it.
type fullStore interface {
	Store
	SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error)
}

// A recorder is a Store that records the batches it is asked to index, and
// fails the first calls of IndexRecords it is told to.
type recorder struct {
	fullStore
	mu      sync.Mutex
	batches [][2]int64 // [first id, records] of each IndexRecords
	fail    int        // IndexRecords calls left to fail
}

func (r *recorder) IndexRecords(ctx context.Context, recs []tlog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return fmt.Errorf("index records: %w", tlog.ErrUnavailable)
	}
	if len(recs) > 0 {
		r.batches = append(r.batches, [2]int64{recs[0].ID, int64(len(recs))})
	}
	return r.fullStore.IndexRecords(ctx, recs)
}

func (r *recorder) calls() [][2]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]int64(nil), r.batches...)
}

// A logFile is the log output of a test: a file, safe for concurrent
// writes and reads.
type logFile struct{ f *os.File }

func newLogFile(t *testing.T) logFile {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return logFile{f}
}

func (l logFile) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

// start runs an Indexer of db on st until the test ends or the returned
// stop is called; tune adjusts it before it runs.
func start(t *testing.T, db *sumdbtest.DB, st Store, logs logFile, tune func(*Indexer)) (*Indexer, func()) {
	t.Helper()
	ix := New(db.Log, st, slog.New(slog.NewTextHandler(logs.f, nil)))
	ix.minRetry = 10 * time.Millisecond
	if tune != nil {
		tune(ix)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ix.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return ix, stop
}

// waitIndexed waits until ix has indexed n records.
func waitIndexed(t *testing.T, ix *Indexer, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ix.Indexed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("Indexed() = %d after 30s, want %d", ix.Indexed(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := ix.Indexed(); got != n {
		t.Fatalf("Indexed() = %d, want %d", got, n)
	}
}

// search returns the records of prefix, all of them.
func search(t *testing.T, st fullStore, prefix string, exact bool) []tlog.IndexEntry {
	t.Helper()
	list, err := st.SearchRecords(t.Context(), prefix, exact, -1, 1000)
	if err != nil {
		t.Fatalf("SearchRecords(%q, %v) = %v", prefix, exact, err)
	}
	return list
}

// TestIndexer checks that an indexer catches up with a log in batches,
// follows it, times the records it sees committed and no others, and
// resumes where it stopped.
func TestIndexer(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	st := &recorder{fullStore: db.Store.(fullStore)}
	db.AppendSynthetic("a", 1100)

	logs := newLogFile(t)
	ix, stop := start(t, db, st, logs, func(ix *Indexer) { ix.progress = 0 })
	waitIndexed(t, ix, 1100)
	if got, want := fmt.Sprint(st.calls()), "[[0 1000] [1000 100]]"; got != want {
		t.Errorf("IndexRecords calls while catching up = %s, want %s", got, want)
	}
	for _, want := range []string{`msg="indexing the log's records" indexed=1000 size=1100`, `msg="indexed the log's records" indexed=1100`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log = %q, want it to contain %q", logs.String(), want)
		}
	}
	a := search(t, st, "example.com/a/", false)
	if len(a) != 1000 { // a page of the 1100
		t.Errorf("SearchRecords(example.com/a/) = %d entries, want 1000", len(a))
	}
	for _, e := range a {
		if !e.Time.IsZero() {
			t.Errorf("record %d (%s), logged before the indexer ran, has time %v, want unknown", e.ID, e.Path, e.Time)
			break
		}
	}
	if got := search(t, st, "example.com/a/m7", true); len(got) != 1 || got[0].Path != "example.com/a/m7" || got[0].Version != "v1.0.0" {
		t.Errorf("SearchRecords(example.com/a/m7, exact) = %v, want example.com/a/m7@v1.0.0", got)
	}

	// Follows: records appended now are indexed, with a time.
	before := time.Now()
	db.AppendSynthetic("b", 20)
	waitIndexed(t, ix, 1120)
	after := time.Now()
	b := search(t, st, "example.com/b/", false)
	if len(b) != 20 {
		t.Fatalf("SearchRecords(example.com/b/) = %d entries, want 20", len(b))
	}
	for _, e := range b {
		if e.Time.Before(before.Add(-time.Millisecond)) || e.Time.After(after) {
			t.Errorf("record %d (%s) has time %v, want between %v and %v", e.ID, e.Path, e.Time, before, after)
		}
	}
	stop()

	// Restart: the records appended while no indexer ran are indexed, from
	// where the index ended, without a time.
	db.AppendSynthetic("c", 30)
	n := len(st.calls())
	ix2, _ := start(t, db, st, logs, nil)
	waitIndexed(t, ix2, 1150)
	if calls := st.calls()[n:]; len(calls) != 1 || calls[0] != [2]int64{1120, 30} {
		t.Errorf("IndexRecords calls after a restart = %v, want [[1120 30]]", calls)
	}
	c := search(t, st, "example.com/c/", false)
	if len(c) != 30 || !c[0].Time.IsZero() {
		t.Errorf("SearchRecords(example.com/c/) = %d entries, first %v, want 30 of unknown time", len(c), c)
	}
	if b2 := search(t, st, "example.com/b/", false); len(b2) != 20 || !b2[0].Time.Equal(b[0].Time) {
		t.Errorf("SearchRecords(example.com/b/) after a restart = %v, want the times of before", b2)
	}
}

// TestIndexerNotify checks that Notify wakes an indexer without waiting
// for its poll.
func TestIndexerNotify(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	st := db.Store.(fullStore)
	logs := newLogFile(t)
	ix, _ := start(t, db, st, logs, func(ix *Indexer) { ix.poll = time.Hour })
	waitIndexed(t, ix, 0)
	time.Sleep(50 * time.Millisecond) // let Run reach its wait
	db.AppendSynthetic("n", 3)
	ix.Notify()
	ix.Notify() // never blocks
	waitIndexed(t, ix, 3)
	if got := search(t, st, "example.com/n/", false); len(got) != 3 || got[0].Time.IsZero() {
		t.Errorf("SearchRecords(example.com/n/) = %v, want 3 entries with a time", got)
	}
}

// TestIndexerRetry checks that an indexer whose store fails logs the
// failure and retries.
func TestIndexerRetry(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("r", 10)
	st := &recorder{fullStore: db.Store.(fullStore), fail: 2}
	logs := newLogFile(t)
	ix, _ := start(t, db, st, logs, nil)
	waitIndexed(t, ix, 10)
	if got := strings.Count(logs.String(), "retrying"); got != 2 {
		t.Errorf("log has %d retries, want 2: %s", got, logs.String())
	}
	if !strings.Contains(logs.String(), tlog.ErrUnavailable.Error()) {
		t.Errorf("log = %q, want the store's error", logs.String())
	}
	if got := search(t, st, "example.com/r/", false); len(got) != 10 {
		t.Errorf("SearchRecords(example.com/r/) = %d entries, want 10", len(got))
	}
}
