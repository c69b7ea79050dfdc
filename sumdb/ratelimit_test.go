package sumdb

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// TestLookupStorm checks that a storm of lookups of distinct module
// versions unknown to the log costs the upstream at most the client's
// burst, that the others are refused with 429 and Retry-After, and that
// lookups that need no new fetch are never refused.
func TestLookupStorm(t *testing.T) {
	var now atomic.Int64 // seconds after t0, the server's clock
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, backends[0], envOptions{cfg: ServerConfig{
		FetchRate:         0.5,
		FetchBurst:        5,
		MaxFetches:        2,
		TrustProxyHeaders: true,
		Now:               func() time.Time { return t0.Add(time.Duration(now.Load()) * time.Second) },
	}})
	e.add(modproxy.Module{Path: "example.com/known", Version: "v1.0.0", Files: map[string]string{"k.go": "package k\n"}})
	e.add(modproxy.Module{Path: "example.com/slow", Version: "v1.0.0", Files: map[string]string{"s.go": "package s\n"}})
	get := func(path, client string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, body
	}

	// Client A logs one module version: one token.
	if code, _, body := get("/lookup/example.com/known@v1.0.0", "192.0.2.1"); code != 200 {
		t.Fatalf("lookup: %d %q", code, body)
	}
	// Then storms with 50 unknown versions, concurrently.
	const storm = 50
	codes := make([]int, storm)
	retry := make([]string, storm)
	var g sync.WaitGroup
	for i := range storm {
		g.Go(func() {
			var h http.Header
			codes[i], h, _ = get(fmt.Sprintf("/lookup/example.com/unknown@v1.0.%d", i), "192.0.2.1")
			retry[i] = h.Get("Retry-After")
		})
	}
	g.Wait()
	counts := make(map[int]int)
	cached := "" // a version the upstream said it does not have
	for i, c := range codes {
		counts[c]++
		if c == 404 {
			cached = fmt.Sprintf("/lookup/example.com/unknown@v1.0.%d", i)
		}
		if c == 429 && retry[i] != "2" {
			t.Errorf("429 with Retry-After %q, want 2 (a token every 2s)", retry[i])
		}
	}
	if counts[404] != 4 || counts[429] != storm-4 {
		t.Errorf("storm answers: %v, want 4 × 404 and %d × 429", counts, storm-4)
	}
	if n := e.proxy.Requests("example.com/unknown").Info; n != 4 {
		t.Errorf("upstream requests during the storm = %d, want 4", n)
	}
	if n := metric(t, e.reg, "sumdb_rate_limited_requests_total"); n != storm-4 {
		t.Errorf("sumdb_rate_limited_requests_total = %v, want %d", n, storm-4)
	}
	if n := strings.Count(e.logs.String(), "status=429 client=192.0.2.1"); n != storm-4 {
		t.Errorf("%d log lines for 429s, want %d", n, storm-4)
	}

	// With its bucket empty, A is still answered from the log and from the
	// not-found cache...
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/lookup/example.com/known@v1.0.0", 200},
		{cached, 404},
		{"/lookup/example.com/unknown@v1.0", 400},
		{"/latest", 200},
		{"/tile/8/0/000.p/1", 200},
	} {
		if code, _, body := get(tc.path, "192.0.2.1"); code != tc.code {
			t.Errorf("GET %s with an empty bucket = %d %q, want %d", tc.path, code, body, tc.code)
		}
	}
	// ...another client is not affected, and A may join its fetch.
	const slow = "example.com/slow@v1.0.0"
	release := e.fetcher.hold(slow)
	done := make(chan int, 2)
	go func() { code, _, _ := get("/lookup/"+slow, "198.51.100.7"); done <- code }()
	waitFor(t, "the fetch", func() bool { return e.fetcher.count(slow) == 1 })
	go func() { code, _, _ := get("/lookup/"+slow, "192.0.2.1"); done <- code }()
	waitFor(t, "A to join", func() bool { return e.flightWaiters(slow) == 2 })
	release()
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("lookup of %s = %d, want 200", slow, code)
		}
	}
	// And after 2s, A has a token again.
	now.Add(2)
	if code, _, body := get("/lookup/example.com/unknown@v1.1.0", "192.0.2.1"); code != 404 {
		t.Errorf("lookup after the refill = %d %q, want 404", code, body)
	}
	if code, _, _ := get("/lookup/example.com/unknown@v1.1.1", "192.0.2.1"); code != 429 {
		t.Errorf("second lookup after the refill = %d, want 429", code)
	}
}

func TestNewServerRateLimit(t *testing.T) {
	for _, cfg := range []ServerConfig{
		{FetchRate: 1, FetchBurst: -1},
		{FetchBurst: -1},
		{FetchRate: math.NaN(), FetchBurst: 1},
		{FetchRate: math.Inf(1), FetchBurst: 1},
		{FetchRate: math.Inf(-1), FetchBurst: 1},
	} {
		cfg.Log, cfg.Fetcher = new(tlog.Log), fetcherFunc(nil)
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(FetchRate %v, FetchBurst %d): no error", cfg.FetchRate, cfg.FetchBurst)
		}
	}
}

// TestNotFoundCacheFull checks that the not-found cache forgets the
// expired entries, and when full of live ones the oldest, to remember a
// new one.
func TestNotFoundCacheFull(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	s, err := NewServer(ServerConfig{Log: new(tlog.Log), Fetcher: fetcherFunc(nil), NotFoundTTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	remember := func(key string, wantLen int) {
		t.Helper()
		s.rememberNotFound(key, fetch.ErrNotFound)
		if n, m := len(s.notFound), s.notFoundOrder.Len(); n != wantLen || m != n {
			t.Fatalf("after remembering %s: %d entries in the map and %d in the order, want %d", key, n, m, wantLen)
		}
	}
	held := func(key string, want bool) {
		t.Helper()
		if _, ok := s.notFound[key]; ok != want {
			t.Errorf("%s cached: %v, want %v", key, ok, want)
		}
	}
	for i := range maxNotFound { // k<i> expires at t0 + i ms + 1 min
		now = t0.Add(time.Duration(i) * time.Millisecond)
		remember(fmt.Sprintf("k%d", i), i+1)
	}
	// Full of live entries: the oldest goes.
	now = t0.Add(maxNotFound * time.Millisecond)
	remember("a", maxNotFound)
	held("k0", false)
	held("k1", true)
	held("a", true)
	// k1 to k100 have expired: they go, and nothing else.
	now = t0.Add(time.Minute + 100*time.Millisecond)
	remember("b", maxNotFound-99)
	held("k100", false)
	held("k101", true)
	held("a", true)
	// Remembering a key again replaces its entry.
	remember("k101", maxNotFound-99)
	if e := s.notFound["k101"]; e != s.notFoundOrder.Back() || !e.Value.(*notFoundEntry).expires.Equal(now.Add(time.Minute)) {
		t.Errorf("k101 remembered again: not the newest entry, or expires at %v, want %v", e.Value.(*notFoundEntry).expires, now.Add(time.Minute))
	}
}

// BenchmarkRememberNotFoundFull measures remembering a "not found" in a
// not-found cache full of entries none of which has expired.
func BenchmarkRememberNotFoundFull(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := NewServer(ServerConfig{Log: new(tlog.Log), Fetcher: fetcherFunc(nil), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range maxNotFound {
		s.rememberNotFound("fill"+strconv.Itoa(i), fetch.ErrNotFound)
	}
	i := 0
	for b.Loop() {
		s.rememberNotFound("new"+strconv.Itoa(i), fetch.ErrNotFound)
		i++
	}
	if n := len(s.notFound); n != maxNotFound {
		b.Fatalf("%d entries, want %d", n, maxNotFound)
	}
}
