package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumdb/sumdb/store/storetest"
)

// TestReplicas runs three sumdb serve processes on one PostgreSQL database,
// with one key file: every one serves every endpoint and accepts new module
// versions; concurrent appends through all of them never fork the log and
// log each module version once; when one is killed, the others go on.
func TestReplicas(t *testing.T) {
	t.Parallel()
	up, mods, flags := faultServer(t, "example.com/replica", 3000)
	url := storetest.PostgresURL(t)
	keyFile := filepath.Join(t.TempDir(), "signer.key")
	replicas := make([]*sumdbProcess, 3)
	for i := range replicas {
		// Each has its own data directory, with its own published-head file.
		args := append(slices.Clone(flags), "--database-url", url, "--data-dir", t.TempDir(), "--key-file", keyFile)
		p, err := startSumdbEnv(t, faultEnv, args...)
		if err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
		if i > 0 && p.vkey != replicas[0].vkey {
			t.Fatalf("replica %d has verifier key %s, replica 0 %s", i, p.vkey, replicas[0].vkey)
		}
		replicas[i] = p
	}
	w := newWitness(t, replicas[0].vkey, time.Minute)
	var mu sync.Mutex
	live := []string{replicas[0].url, replicas[1].url, replicas[2].url} // guarded by mu
	servers := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(live)
	}
	var next atomic.Int64

	// The same new module versions through every replica at once: one
	// record each, the same answer everywhere.
	var wg sync.WaitGroup
	for range 100 {
		mv := mods[next.Add(1)-1]
		for _, p := range replicas {
			wg.Go(func() {
				if code, _ := w.lookup(t.Context(), p.url, mv); code != http.StatusOK {
					t.Errorf("lookup %s at %s: %d", mv, p.url, code)
				}
			})
		}
	}
	wg.Wait()

	// Appends through one replica, then through all three: how much do they
	// slow each other down?
	rate := func(servers []string) float64 {
		const n = 400
		batch := mods[next.Load():][:n]
		next.Add(n)
		var i atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range 24 {
			wg.Go(func() {
				for j := i.Add(1) - 1; j < n; j = i.Add(1) - 1 {
					if code, _ := w.lookup(t.Context(), servers[j%int64(len(servers))], batch[j]); code != http.StatusOK {
						t.Errorf("lookup %s: %d", batch[j], code)
					}
				}
			})
		}
		wg.Wait()
		return n / time.Since(start).Seconds()
	}
	one := rate(servers()[:1])
	all := rate(servers())
	t.Logf("new module versions logged: %.0f/s through one replica, %.0f/s through three", one, all)

	// Every replica serves every endpoint, the same bytes, for what any
	// other appended.
	checkEndpoints(t, w, replicas, mods[:next.Load()])

	// Kill one under load: the others go on serving and appending.
	ctx, cancel := context.WithCancel(t.Context())
	var loaded sync.WaitGroup
	// (The last two module versions are kept for the survivors.)
	loaded.Go(func() { w.load(ctx, servers, mods[:len(mods)-2], &next, 16, 20*time.Millisecond) })
	time.Sleep(500 * time.Millisecond)
	victim := replicas[1]
	victim.kill()
	killedAt := next.Load()
	mu.Lock()
	live = []string{replicas[0].url, replicas[2].url}
	mu.Unlock()
	for k, p := range []*sumdbProcess{replicas[0], replicas[2]} {
		before := w.n("lookup", 200)
		waitFor(t, 30*time.Second, "lookups answered after the kill", func() bool { return w.n("lookup", 200) > before+20 })
		if code, _ := w.lookup(t.Context(), p.url, mods[len(mods)-1-k]); code != http.StatusOK {
			t.Errorf("first lookup at %s after replica 1 was killed: %d", p.url, code)
		}
	}
	cancel()
	loaded.Wait()
	if next.Load() <= killedAt {
		t.Errorf("no new module version was handed out after the kill")
	}

	// Both survivors serve the same final tree.
	var latest []byte
	waitFor(t, 10*time.Second, "the same /latest from both surviving replicas", func() bool {
		_, _, a, err1 := w.get(t.Context(), replicas[0].url+"/latest")
		_, _, b, err2 := w.get(t.Context(), replicas[2].url+"/latest")
		latest = a
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	})
	if _, err := w.see(latest); err != nil {
		t.Fatal(err)
	}
	w.check(replicas[0].url, up)
	w.check(replicas[2].url, up)
	t.Logf("answers: %s", w.counts())
	if n := w.n("lookup", 500); n > 0 {
		t.Errorf("%d lookups answered 500", n)
	}
	replicas[0].stop()
	replicas[2].stop()
}

// checkEndpoints checks that every replica answers /latest, lookups of
// mods (appended through any replica) and every tile of the tree, with the
// same tile bytes.
func checkEndpoints(t *testing.T, w *witness, replicas []*sumdbProcess, mods []module.Version) {
	t.Helper()
	ctx := t.Context()
	// The largest tree any replica serves, which every replica must reach.
	var n int64
	for _, p := range replicas {
		code, _, body, err := w.get(ctx, p.url+"/latest")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /latest at %s: %d %v", p.url, code, err)
		}
		tree, err := w.see(body)
		if err != nil {
			t.Fatal(err)
		}
		n = max(n, tree.N)
	}
	for i, p := range replicas {
		for j, mv := range mods {
			if j%7 != i%7 { // a sample, different for each replica
				continue
			}
			if code, _ := w.lookup(ctx, p.url, mv); code != http.StatusOK {
				t.Errorf("lookup %s at replica %d: %d", mv, i, code)
			}
		}
	}
	var paths []string
	for k := int64(0); k*256 < n; k++ {
		w := min(256, n-k*256)
		suffix := ""
		if w < 256 {
			suffix = fmt.Sprintf(".p/%d", w)
		}
		paths = append(paths, fmt.Sprintf("tile/8/0/%03d%s", k, suffix), fmt.Sprintf("tile/8/data/%03d%s", k, suffix))
	}
	if n >= 256 {
		paths = append(paths, fmt.Sprintf("tile/8/1/000.p/%d", n/256))
	}
	for _, path := range paths {
		var first []byte
		for i, p := range replicas {
			code, _, body, err := w.get(ctx, p.url+"/"+path)
			if err != nil || code != http.StatusOK {
				t.Errorf("GET /%s at replica %d: %d %s %v", path, i, code, body, err)
				continue
			}
			if first == nil {
				first = body
			} else if !bytes.Equal(body, first) {
				t.Errorf("GET /%s: replica %d serves other bytes than replica 0", path, i)
			}
		}
	}
}
