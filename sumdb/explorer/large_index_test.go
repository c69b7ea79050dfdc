package explorer

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// TestFeedCostLargeIndex times the feed, a search and the store's
// queries over an index of many records (SQLite store), for prefixes that
// match every record or half of them (refused: more than
// store.MaxPrefixMatches), and one that matches almost that many. The
// work is bounded by MaxPrefixMatches, not by the page size: one request
// must stay well under the request timeout.
func TestFeedCostLargeIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes many records")
	}
	const n = 200_000
	// The race detector slows the pure-Go SQLite many times over: the
	// times are checked without it.
	timed := !raceEnabled
	ev := newEnv(t, Config{}, nil)
	st := ev.db.Store.(*store.SQLite)
	batch := make([]tlog.Record, 0, store.MaxIndexBatch)
	for id := range int64(n) {
		path := fmt.Sprintf("example.com/a/m%d", id%97)
		if id%2 == 1 {
			path = fmt.Sprintf("example.com/b/m%d", id%89)
		}
		batch = append(batch, tlog.Record{ID: id, Path: path, Version: fmt.Sprintf("v1.0.%d", id)})
		if len(batch) == cap(batch) {
			if err := st.IndexRecords(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// example.com/a/m9 matches m9 and m90 to m96: about 8250 records,
	// fewer than store.MaxPrefixMatches.
	for _, tt := range []struct {
		prefix string
		broad  bool
	}{{"example.com/", true}, {"example.com/a/", true}, {"example.com/a/m9", false}} {
		for _, after := range []int64{-1, n / 2} {
			start := time.Now()
			_, err := st.SearchRecords(t.Context(), tt.prefix, false, after, FeedSize+1)
			d := time.Since(start)
			t.Logf("SearchRecords(%q, after %d, %d) took %v", tt.prefix, after, FeedSize+1, d)
			if errors.Is(err, tlog.ErrTooBroad) != tt.broad || (!tt.broad && err != nil) {
				t.Errorf("SearchRecords(%q, after %d) over %d records = %v, want ErrTooBroad %v", tt.prefix, after, n, err, tt.broad)
			}
			if timed && d > 25*time.Millisecond {
				t.Errorf("SearchRecords(%q, after %d, %d) over %d indexed records took %v, want under 25ms (it reads at most %d index entries)", tt.prefix, after, FeedSize+1, n, d, store.MaxPrefixMatches+1)
			}
		}
	}
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/feed?module=example.com/", http.StatusBadRequest},
		{"/feed?module=example.com/a/", http.StatusBadRequest},
		{"/search?q=example.com/a/", http.StatusBadRequest},
		{"/search?q=example.com/a/&format=json", http.StatusBadRequest},
		{"/feed?module=example.com/a/m9", http.StatusOK},
		{"/feed?module=example.com/a/m5&exact=1", http.StatusOK},
	} {
		start := time.Now()
		resp, body := ev.get(t, tt.path, "")
		d := time.Since(start)
		t.Logf("GET %s = %s in %v", tt.path, resp.Status, d)
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s = %s: %.200s, want %d", tt.path, resp.Status, body, tt.code)
		}
		if tt.code == http.StatusBadRequest && !strings.Contains(body, tooBroadMessage) {
			t.Errorf("GET %s = %.300s, want the message %q", tt.path, body, tooBroadMessage)
		}
		if timed && d > 250*time.Millisecond {
			t.Errorf("GET %s over %d indexed records took %v, want under 250ms", tt.path, n, d)
		}
	}
}
