package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/store/storetest"
)

// kill ends the server with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no deferred function, whatever it was doing.
func (p *sumdbProcess) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill sumdb serve: %v", err)
	}
	<-p.exited
	if out := p.stderr.String(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
		p.t.Errorf("sumdb serve reported a data race or panicked:\n%s", out)
	}
}

// faultServer is a module proxy with n module versions under prefix, and
// the serve flags of a log fetching from it.
func faultServer(t *testing.T, prefix string, n int) (up *modproxy.Proxy, mods []module.Version, args []string) {
	up = modproxy.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	mods = addModules(t, prefix, n, up)
	return up, mods, []string{"--listen", "127.0.0.1:0", "--upstream", srv.URL, "--name", "faults.example.com"}
}

func TestCrashSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testCrash(t, []string{"--data-dir", dir})
}

func TestCrashPostgres(t *testing.T) {
	t.Parallel()
	testCrash(t, []string{"--data-dir", t.TempDir(), "--database-url", storetest.PostgresURL(t)})
}

// testCrash drives concurrent first lookups of module versions at a server,
// kills it with SIGKILL at a random moment, restarts it on the same store
// and data directory, many times; then checks that the log contradicts
// nothing any client saw and lost nothing it answered.
func testCrash(t *testing.T, storeArgs []string) {
	rounds, nmods := 20, 2000
	if testing.Short() {
		rounds, nmods = 4, 400
	}
	up, mods, args := faultServer(t, "example.com/crash", nmods)
	args = append(args, storeArgs...)
	seed := [2]uint64{mrand.Uint64(), mrand.Uint64()}
	rng := mrand.New(mrand.NewPCG(seed[0], seed[1]))
	t.Logf("random kill times from seed %d, %d", seed[0], seed[1])

	var w *witness
	var vkey string
	var next atomic.Int64
	var killed []string
	for round := range rounds {
		p, err := startSumdbEnv(t, faultEnv, args...)
		if err != nil {
			t.Fatalf("round %d: restart after SIGKILL: %v", round, err)
		}
		if w == nil {
			w, vkey = newWitness(t, p.vkey, time.Minute), p.vkey
		} else if p.vkey != vkey {
			t.Fatalf("round %d: the verifier key changed from %s to %s", round, vkey, p.vkey)
		}
		ctx, cancel := context.WithCancel(t.Context())
		loaded := make(chan struct{})
		before := w.n("lookup", 200)
		go func() {
			defer close(loaded)
			w.load(ctx, func() []string { return []string{p.url} }, mods, &next, 16, 60*time.Millisecond)
		}()
		// Most kills while appends are in full flow, some just after start.
		wait := time.Duration(20+rng.IntN(900)) * time.Millisecond
		time.Sleep(wait)
		p.kill()
		cancel()
		<-loaded
		killed = append(killed, fmt.Sprintf("%v (%d answered)", wait, w.n("lookup", 200)-before))
	}
	t.Logf("killed after: %s", strings.Join(killed, ", "))

	// The last start: the server checks its store and goes on.
	p, err := startSumdbEnv(t, faultEnv, args...)
	if err != nil {
		t.Fatalf("start after the last SIGKILL: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	w.load(ctx, func() []string { return []string{p.url} }, mods, &next, 8, 0)
	cancel()
	// Every module version answered before is answered the same now.
	w.mu.Lock()
	var again []module.Version
	for key := range w.records {
		path, version, _ := strings.Cut(key, "@")
		again = append(again, module.Version{Path: path, Version: version})
	}
	w.mu.Unlock()
	for _, mv := range again {
		if code, _ := w.lookup(t.Context(), p.url, mv); code != http.StatusOK {
			t.Errorf("lookup %s after the crashes: %d, want 200", mv, code)
		}
	}
	ids := w.check(p.url, up)
	p.stop()
	t.Logf("%d rounds; %d module versions handed out, %d logged; answers: %s", rounds, min(next.Load(), int64(len(mods))), len(ids), w.counts())
	if w.n("lookup", 200) < rounds {
		t.Errorf("only %d lookups answered 200 in %d rounds: the server hardly ran", w.n("lookup", 200), rounds)
	}
	if n := w.n("lookup", 500); n > 0 {
		t.Errorf("%d lookups answered 500", n)
	}
}

// sqliteExec runs statements on the embedded store in dir, as someone
// with access to the file would.
func sqliteExec(t *testing.T, dir string, queries ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// fill starts a server, looks up n new module versions (from the next of
// mods) and stops it cleanly. It returns the witness of its answers.
func fill(t *testing.T, w *witness, args []string, mods []module.Version, next *atomic.Int64, n int) *witness {
	t.Helper()
	p, err := startSumdbEnv(t, faultEnv, args...)
	if err != nil {
		t.Fatal(err)
	}
	if w == nil {
		w = newWitness(t, p.vkey, time.Minute)
	}
	for range n {
		mv := mods[next.Add(1)-1]
		if code, _ := w.lookup(t.Context(), p.url, mv); code != http.StatusOK {
			t.Fatalf("lookup %s: %d", mv, code)
		}
	}
	p.stop()
	return w
}

// refused starts a server that must refuse to start, and returns its
// one-line error.
func refused(t *testing.T, args []string) string {
	t.Helper()
	p, err := startSumdbEnv(t, faultEnv, args...)
	if err == nil {
		p.stop()
		t.Fatalf("sumdb serve %s started; want a refusal", strings.Join(args, " "))
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "sumdb: ") {
		t.Fatalf("sumdb serve refused to start, but its last line is %q, want \"sumdb: <why>\"; all:\n%s", last, err)
	}
	t.Logf("sumdb serve refused to start: %s", last)
	return last
}

// TestStartupCheck damages a stopped server's store as a faulty disk, a
// bad restore or an attacker would, and checks that the server refuses to
// start, saying why in one line, rather than serve a log that contradicts
// what it served before.
func TestStartupCheck(t *testing.T) {
	t.Parallel()
	_, mods, flags := faultServer(t, "example.com/check", 700)

	t.Run("tampered tile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		args := append(slices.Clone(flags), "--data-dir", dir)
		var next atomic.Int64
		fill(t, nil, args, mods, &next, 300)
		// Flip a hash of the right edge, which appends build on: the last,
		// partial, tile of level 0.
		sqliteExec(t, dir,
			`DROP TRIGGER tiles_grow_only`,
			`UPDATE tiles SET hashes = unhex('00' || substr(hex(hashes), 3)) WHERE level = 0 AND idx = 1`)
		line := refused(t, args)
		for _, want := range []string{"stored tiles do not reproduce the signed head of size 300", "restore it from a backup"} {
			if !strings.Contains(line, want) {
				t.Errorf("error line %q does not say %q", line, want)
			}
		}
	})

	t.Run("head of another key", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		args := append(slices.Clone(flags), "--data-dir", dir)
		var next atomic.Int64
		w := fill(t, nil, args, mods[300:], &next, 20)
		// The same tree, signed by another key of the same name.
		name := w.verifier.Name()
		skey, _, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		var tree xtlog.Tree
		for _, h := range w.heads {
			if h.N > tree.N {
				tree = h
			}
		}
		msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		sqliteExec(t, dir, fmt.Sprintf(`UPDATE head SET note = x'%x' WHERE size = %d`, msg, tree.N))
		line := refused(t, args)
		if want := "is not signed by key " + name; !strings.Contains(line, want) {
			t.Errorf("error line %q does not say %q", line, want)
		}
	})

	t.Run("older backup", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		args := append(slices.Clone(flags), "--data-dir", dir)
		var next atomic.Int64
		w := fill(t, nil, args, mods[400:], &next, 30)
		backup := filepath.Join(t.TempDir(), "backup.db")
		sqliteExec(t, dir, fmt.Sprintf(`VACUUM INTO '%s'`, backup))
		fill(t, w, args, mods[400:], &next, 20)
		// Restore the backup.
		db := filepath.Join(dir, "sumdb.db")
		for _, f := range []string{db + "-wal", db + "-shm"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, data, 0o600); err != nil {
			t.Fatal(err)
		}
		line := refused(t, args)
		published := filepath.Join(dir, "published-head")
		for _, want := range []string{
			"the database holds a tree of size 30 but this server published a tree of size 50",
			"restored from an older backup",
			"remove " + published,
		} {
			if !strings.Contains(line, want) {
				t.Errorf("error line %q does not say %q", line, want)
			}
		}
		// The operator chooses to serve the older tree.
		if err := os.Remove(published); err != nil {
			t.Fatal(err)
		}
		p, err := startSumdbEnv(t, faultEnv, args...)
		if err != nil {
			t.Fatalf("start after removing the published-head file: %v", err)
		}
		if tree := p.latest(); tree.N != 30 {
			t.Errorf("serving the restored backup: tree of size %d, want 30", tree.N)
		}
		p.stop()
	})

	t.Run("empty database", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: skipping the PostgreSQL case")
		}
		t.Parallel()
		dir := t.TempDir()
		args := append(slices.Clone(flags), "--data-dir", dir, "--database-url", storetest.PostgresURL(t))
		var next atomic.Int64
		fill(t, nil, args, mods[500:], &next, 10)
		// A new, empty database where the log's database was: a restore
		// that was forgotten, or a wrong URL.
		args = append(slices.Clone(flags), "--data-dir", dir, "--database-url", storetest.PostgresURL(t))
		line := refused(t, args)
		if want := "the database holds a tree of size 0 but this server published a tree of size 10"; !strings.Contains(line, want) {
			t.Errorf("error line %q does not say %q", line, want)
		}
	})
}

// TestDatabaseOutage stops PostgreSQL under load and starts it again: while
// it is down, what needs it answers 503 with Retry-After, at once, and
// /readyz says not ready; once it is back the server recovers by itself,
// with nothing lost.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t)
	up, mods, args := faultServer(t, "example.com/outage", 1200)
	args = append(args, "--data-dir", t.TempDir(), "--database-url", c.URL)
	p, err := startSumdbEnv(t, faultEnv, args...)
	if err != nil {
		t.Fatal(err)
	}
	w := newWitness(t, p.vkey, time.Minute)
	servers := func() []string { return []string{p.url} }
	var next atomic.Int64

	// Load before, during and after the outage.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var loaded sync.WaitGroup
	loaded.Go(func() { w.load(ctx, servers, mods, &next, 8, 20*time.Millisecond) })
	waitFor(t, 30*time.Second, "lookups answered before the outage", func() bool { return w.n("lookup", 200) >= 50 })

	c.Stop()
	t.Logf("PostgreSQL stopped after %d lookups answered", w.n("lookup", 200))
	// What needs the database, while it is down: answered 503 with
	// Retry-After (or 200 from memory), within a bound, never 500.
	probe := newWitness(t, p.vkey, 30*time.Second)
	old := mods[0]
	fresh := mods[len(mods)-1] // never handed out to the load
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		for _, path := range []string{
			"/lookup/" + old.Path + "@" + old.Version,
			"/lookup/" + fresh.Path + "@" + fresh.Version,
			"/tile/8/0/000.p/1",
			"/tile/8/data/000.p/1",
			"/readyz",
		} {
			start := time.Now()
			code, h, body, err := probe.get(t.Context(), p.url+path)
			elapsed := time.Since(start)
			switch {
			case err != nil:
				t.Errorf("GET %s with the database down: %v after %v", path, err, elapsed)
			case elapsed > 15*time.Second:
				t.Errorf("GET %s with the database down took %v", path, elapsed)
			case path == "/readyz" && code == http.StatusOK:
				t.Errorf("GET /readyz with the database down: 200 %q, want not ready", body)
			case code == http.StatusServiceUnavailable && h.Get("Retry-After") == "" && path != "/readyz":
				t.Errorf("GET %s with the database down: 503 without Retry-After", path)
			case code != http.StatusOK && code != http.StatusServiceUnavailable:
				t.Errorf("GET %s with the database down: %d %q, want 503 (or 200 from memory)", path, code, body)
			}
			probe.count(path, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _, _, _ := probe.get(t.Context(), p.url+"/latest"); code != http.StatusOK {
		t.Errorf("GET /latest with the database down: %d, want 200 from memory", code)
	}
	t.Logf("with the database down: %s", probe.counts())
	if probe.n("/lookup/"+fresh.Path+"@"+fresh.Version, http.StatusServiceUnavailable) == 0 {
		t.Errorf("a first lookup with the database down was never answered 503")
	}

	c.Start()
	// The server recovers by itself: the load's new lookups succeed again.
	during := w.n("lookup", 200)
	waitFor(t, 60*time.Second, "lookups answered after the database came back", func() bool { return w.n("lookup", 200) >= during+50 })
	waitFor(t, 10*time.Second, "/readyz 200 after the database came back", func() bool {
		code, _, _, _ := probe.get(t.Context(), p.url+"/readyz")
		return code == http.StatusOK
	})
	if code, _ := probe.lookup(t.Context(), p.url, fresh); code != http.StatusOK {
		t.Errorf("first lookup of %s after the outage: %d, want 200", fresh, code)
	}
	cancel()
	loaded.Wait()
	w.check(p.url, up)
	t.Logf("load: %s", w.counts())
	if n := w.n("lookup", 500); n > 0 {
		t.Errorf("%d lookups of the load answered 500", n)
	}
	p.stop()
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
