package explorer

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// TestReviewFeedCostLargeIndex times the feed and a search page over an
// index of many records (SQLite store), for prefixes that match every
// record or half of them: one request must stay well under the request
// timeout, since nothing bounds how many run at once.
func TestReviewFeedCostLargeIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes many records")
	}
	const n = 200_000
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
	// One query of the bisection: the 51 records of a prefix after an id.
	// It and a search page's query must cost about the rows they return,
	// not the rows the prefix matches.
	for _, prefix := range []string{"example.com/"} { // every record matches
		for _, after := range []int64{-1, n / 2} {
			start := time.Now()
			if _, err := st.SearchRecords(t.Context(), prefix, false, after, FeedSize+1); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			t.Logf("SearchRecords(%q, after %d, %d) took %v", prefix, after, FeedSize+1, d)
			if d > 25*time.Millisecond {
				t.Errorf("SearchRecords(%q, after %d, %d) over %d indexed records took %v, want under 25ms (the query sorts every match)", prefix, after, FeedSize+1, n, d)
			}
		}
	}
	for _, path := range []string{
		"/feed?module=example.com/",
		"/feed?module=example.com/a/",
		"/feed?module=example.com/a/m5&exact=1",
	} {
		start := time.Now()
		resp, body := ev.get(t, path, "")
		d := time.Since(start)
		t.Logf("GET %s = %s in %v", path, resp.Status, d)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %s: %.200s", path, resp.Status, body)
		}
		if d > 250*time.Millisecond {
			t.Errorf("GET %s over %d indexed records took %v, want under 250ms (an exact feed takes about 10ms)", path, n, d)
		}
	}
}
