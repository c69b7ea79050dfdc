package main

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/sumdb/fetch"
)

// A requestLog is a module proxy on the loopback that answers 404 to every
// request and remembers the paths asked.
type requestLog struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRequestLog(t *testing.T) *requestLog {
	rl := &requestLog{}
	rl.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rl.mu.Lock()
		rl.seen = append(rl.seen, r.URL.Path)
		rl.mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(rl.srv.Close)
	return rl
}

func (rl *requestLog) paths() []string {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return append([]string(nil), rl.seen...)
}

// TestPrivatePatternWithSpace checks that a --private list written with
// spaces around its commas routes the private paths to the private
// upstream, never to the public --upstream: module.MatchPrefixPatterns,
// which the router uses, trims nothing, so the setting must be trimmed
// (or refused).
func TestPrivatePatternWithSpace(t *testing.T) {
	for _, tt := range []struct {
		name, private, path string
	}{
		{"space after comma", "corp.example.com, code.example.com/corp-private", "code.example.com/corp-private/secret"},
		{"space before comma", "code.example.com/corp-private ,corp.example.com", "code.example.com/corp-private/secret"},
		{"tab after comma", "corp.example.com,\tcode.example.com/corp-private", "code.example.com/corp-private/secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			public := newRequestLog(t)
			private := newRequestLog(t)
			cfg, err := load(t, []string{
				"--upstream", public.srv.URL,
				"--public-sumdb", "off",
				"--private", tt.private,
				"--private-upstream", private.srv.URL,
			}, fixedGoEnv(public.srv.URL))
			if err != nil {
				return // refused: the operator sees the mistake
			}
			up, err := fetch.New(fetch.Config{Proxy: cfg.Upstream})
			if err != nil {
				t.Fatal(err)
			}
			f, err := newFetcher(t.Context(), cfg, up, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			f.Fetch(t.Context(), tt.path, "v1.0.0")
			if got := public.paths(); len(got) != 0 {
				t.Errorf("--private %q accepted (as %q), and Fetch(%s) asked the public upstream %q; want the setting refused or the path routed to the private upstream (which got %q)",
					tt.private, cfg.Private, tt.path, got, private.paths())
			}
		})
	}
}

// TestPublicSetupWaitHonorsContext checks that while the first lookup of a
// public module sets up the cross-check (client.Open, bounded by a minute),
// another lookup of a new public version waits for the set-up no longer
// than its own deadline, even if the proxy asked never answers.
func TestPublicSetupWaitHonorsContext(t *testing.T) {
	release := make(chan struct{})
	var asked atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.NotFound(w, r)
	}))
	defer proxy.Close()
	defer close(release)

	_, vkey := newTestVKey(t, "sum.stall.test")
	p := &publicLog{
		ctx:      t.Context(),
		gosumdb:  vkey, // no URL: found through the proxy, which stalls
		goproxy:  proxy.URL,
		next:     nil,
		logger:   slog.New(slog.DiscardHandler),
		register: prometheus.NewRegistry(),
		now:      time.Now,
	}
	go p.Fetch(context.Background(), "example.com/a", "v1.0.0") // the first: sets up
	for asked.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := p.Fetch(ctx, "example.com/b", "v1.0.0"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, fetch.ErrRetryLater) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Fetch = %v, want ErrRetryLater or its deadline", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("second Fetch with a 200ms deadline still waiting after %v for the first one's set-up; want it to return by its deadline", time.Since(start).Round(time.Millisecond))
	}
}

// newTestVKey returns a new signer key and verifier key named name.
func newTestVKey(t *testing.T, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// TestPrivateDefaultEmptyWarns checks that with the cross-check on and
// neither GONOSUMDB nor GOPRIVATE set in the server's go env (as
// docs/organization.md tells developers and CI to leave them), serve does
// not start silently with no private patterns: every private path a
// developer looks up would go to --upstream and to the public checksum
// database.
func TestPrivateDefaultEmptyWarns(t *testing.T) {
	clearEnv(t)
	_, vkey := newTestVKey(t, "sum.public.test")
	cfg, err := load(t, []string{"--public-sumdb", vkey}, fixedGoEnv("http://proxy.test"))
	if err != nil {
		return // refused: the operator must say --private off
	}
	if cfg.Private == "" && len(cfg.Warnings) == 0 {
		t.Errorf("loadServeConfig with the cross-check on and empty GONOSUMDB and GOPRIVATE = private %q, no warning; want an error asking for --private (or off), or a warning", cfg.Private)
	}
}
