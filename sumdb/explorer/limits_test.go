package explorer

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

// TestFeedAlternateExact checks that the alternate (HTML) link of an
// exact feed leads to the search of the same module.
func TestFeedAlternateExact(t *testing.T) {
	ev := newEnv(t, Config{}, []string{"example.com/org/ma@v1.0.0", "example.com/org/ma@v1.1.0"})
	_, body := ev.get(t, "/feed?module=example.com/org/ma&exact=1", "")
	var f atomFeed
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	var alt string
	for _, l := range f.Links {
		if l.Rel == "alternate" {
			alt = l.Href
		}
	}
	u, err := url.Parse(alt)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("q") != "example.com/org/ma" || q.Get("exact") != "1" {
		t.Errorf("exact feed: alternate link %q, want the search q=example.com/org/ma&exact=1", alt)
	}
	resp, _ := ev.get(t, u.RequestURI(), "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s (the exact feed's alternate link) = %s, want 200", u.RequestURI(), resp.Status)
	}
}

// A blockingIndex holds every query until release is closed, counting how
// many wait at once.
type blockingIndex struct {
	Index
	release     chan struct{}
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

func (b *blockingIndex) SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error) {
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		m := b.maxInFlight.Load()
		if n <= m || b.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.Index.SearchRecords(ctx, prefix, exact, afterID, limit)
}

// TestConcurrentSearchesBounded checks that many concurrent searches
// do not all reach the store at once: the explorer shares the store (and
// its connection pool) with the protocol, whose speed must not suffer.
func TestConcurrentSearchesBounded(t *testing.T) {
	bi := &blockingIndex{release: make(chan struct{})}
	ev := newEnv(t, Config{}, modules("org", 3))
	bi.Index = ev.ex.index
	ev.ex.index = bi
	const clients, bound = 64, 16
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ev.srv.URL+fmt.Sprintf("/search?q=example.com/%d", i), nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for bi.inFlight.Load() < clients && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(bi.release)
	wg.Wait()
	if got := bi.maxInFlight.Load(); got > bound {
		t.Errorf("%d concurrent searches: %d store queries at once, want at most %d", clients, got, bound)
	}
}

// A cappedIndex returns at most max records a query, as Index allows.
type cappedIndex struct {
	Index
	max int
}

func (c cappedIndex) SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error) {
	return c.Index.SearchRecords(ctx, prefix, exact, afterID, min(limit, c.max))
}

func (c cappedIndex) RecentRecords(ctx context.Context, beforeID int64, limit int) ([]tlog.IndexEntry, error) {
	return c.Index.RecentRecords(ctx, beforeID, min(limit, c.max))
}

// TestNewestCappedIndex checks newest against an index whose cap is
// below the feed's size, which the Index contract allows.
func TestNewestCappedIndex(t *testing.T) {
	idx := &memIndex{}
	for id := range int64(200) {
		idx.add(tlog.IndexEntry{ID: id, Path: "example.com/m", Version: fmt.Sprintf("v1.0.%d", id)})
	}
	ev := newEnv(t, Config{Index: cappedIndex{idx, 20}}, modules("org", 1))
	es, err := ev.ex.newest(t.Context(), "example.com/", false, FeedSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].ID != 199 {
		var ids []int64
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		t.Errorf("newest(example.com/) with an index capped at 20 = %v, want the newest first (199, 198, ...)", ids)
	}
}

// TestFeedUnknownTime checks the feed's times when the index does
// not know when records were logged (records logged before the store kept
// head times): Atom requires a meaningful updated.
func TestFeedUnknownTime(t *testing.T) {
	idx := &memIndex{}
	idx.add(tlog.IndexEntry{ID: 0, Path: "example.com/m", Version: "v1.0.0"})
	ev := newEnv(t, Config{Index: idx}, modules("org", 1))
	_, body := ev.get(t, "/feed?module=example.com/", "")
	var f atomFeed
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	for _, s := range append([]string{f.Updated}, entryTimes(f)...) {
		if strings.HasPrefix(s, "0001-") {
			t.Errorf("GET /feed of a record of unknown time: updated %q, want a real time (such as the newest head's), not year 1", s)
			break
		}
	}
}

func entryTimes(f atomFeed) []string {
	var out []string
	for _, e := range f.Entries {
		out = append(out, e.Updated)
	}
	return out
}
