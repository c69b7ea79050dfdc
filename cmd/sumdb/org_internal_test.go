package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

// TestPublicLogFound checks the cross-check's set-up when the public
// checksum database must be found through a proxy that does not answer at
// first: new public versions are refused with ErrRetryLater, the proxy is
// not asked again before publicRetry, and once it answers the versions are
// cross-checked.
func TestPublicLogFound(t *testing.T) {
	pub := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.public.test"})
	m := pkg("example.com/found/a", "v1.0.0", "module example.com/found/a\n")
	pub.Add(m)
	pub.GoSum(m)

	var down atomic.Bool
	var asked atomic.Int64
	down.Store(true)
	name := pub.Key.Verifier.Name()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/"+name+"/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rest == "supported" {
			asked.Add(1)
			if down.Load() {
				http.Error(w, "down", http.StatusBadGateway)
				return
			}
			return
		}
		// The proxy serves the database's paths.
		resp, err := http.Get(pub.URL + "/" + rest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()

	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	up, err := fetch.New(fetch.Config{Proxy: pub.ProxyURL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p := &publicLog{
		ctx:      t.Context(),
		gosumdb:  pub.Key.VKey, // no URL: found through the proxy
		goproxy:  proxy.URL,
		next:     up,
		state:    st,
		logger:   slog.New(slog.DiscardHandler),
		register: prometheus.NewRegistry(),
		now:      func() time.Time { return now },
	}
	ctx := context.Background()
	if _, err := p.Fetch(ctx, m.Path, m.Version); !errors.Is(err, fetch.ErrRetryLater) || !strings.Contains(err.Error(), "cannot be reached") {
		t.Fatalf("Fetch with the proxy down = %v, want ErrRetryLater saying the database cannot be reached", err)
	}
	first := asked.Load()
	down.Store(false)
	if _, err := p.Fetch(ctx, m.Path, m.Version); !errors.Is(err, fetch.ErrRetryLater) || asked.Load() != first {
		t.Fatalf("Fetch right after the failure = %v, %d more requests; want ErrRetryLater and none", err, asked.Load()-first)
	}
	now = now.Add(publicRetry)
	text, err := p.Fetch(ctx, m.Path, m.Version)
	if want, _ := pub.Proxy.GoSum(m.Path, m.Version); err != nil || string(text) != string(want) {
		t.Fatalf("Fetch once the proxy answers = %q, %v; want %q", text, err, want)
	}
}
