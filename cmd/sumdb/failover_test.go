package main

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/module"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
)

// TestFailoverLosingCommits runs two serve processes on PostgreSQL through
// a failover that loses commits: replica A logs 250 module versions, the
// standby copies the database, A logs 6 more (a head of 256 records, which
// ends a tile), and the database fails over to the standby. Replica B,
// which never saw A's last head, then logs 6 others up to exactly 256.
//
// A must then extend nothing: a new version looked up through A must not
// be logged on top of B's tree (a fence on the stored size alone let it
// through, with a head that contradicts both), A answers no lookup from a
// tree that contradicts its head and says why on /readyz, and the database
// stays one tree, which a new server opens and which holds every record B
// and A (before the lost commits) answered.
//
// The 6 heads A served past 250 are lost with the commits, and clients
// that saw them would stop with SECURITY ERROR at B: no server can prevent
// that after a failover to a standby that lost acknowledged commits (use
// synchronous replication), but every server that served them refuses to
// go on.
func TestFailoverLosingCommits(t *testing.T) {
	t.Parallel()
	up, mods, flags := faultServer(t, "example.com/failover", 270)
	primary, standby := storetest.PostgresURL(t), storetest.PostgresURL(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	keyFile := filepath.Join(dirA, "signer.key")
	serveOn := func(dir string) []string {
		return append(slices.Clone(flags), "--data-dir", dir, "--key-file", keyFile, "--database-url", primary)
	}

	a, err := startSumdbEnv(t, faultEnv, serveOn(dirA)...)
	if err != nil {
		t.Fatal(err)
	}
	before := newWitness(t, a.vkey, time.Minute) // A's answers the failover keeps
	lookupAll(t, before, a.url, mods[:250])
	copyDatabase(t, primary, standby)
	lost := newWitness(t, a.vkey, time.Minute) // A's answers the failover loses
	lookupAll(t, lost, a.url, mods[250:256])
	if h := latestSize(t, lost, a.url); h != 256 {
		t.Fatalf("A serves a head of size %d, want 256", h)
	}

	failOver(t, primary, standby)

	b, err := startSumdbEnv(t, faultEnv, serveOn(dirB)...)
	if err != nil {
		t.Fatal(err)
	}
	after := newWitness(t, b.vkey, time.Minute) // B's answers
	lookupAll(t, after, b.url, mods[256:262])
	if h := latestSize(t, after, b.url); h != 256 {
		t.Fatalf("B serves a head of size %d, want 256", h)
	}

	// A, which served another tree of size 256, extends nothing, and
	// serves none of B's records with its head. (Its connections died
	// with the failover: until it has new ones, it answers 503.)
	refusedByA := newWitness(t, a.vkey, time.Minute)
	settled := func(mv module.Version) int {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, _ := refusedByA.lookup(t.Context(), a.url, mv)
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return code
			}
		}
	}
	for _, mv := range mods[262:265] {
		if code := settled(mv); code == http.StatusOK {
			t.Errorf("A logged %s on B's tree", mv)
		}
	}
	if code := settled(mods[256]); code == http.StatusOK {
		t.Errorf("A answered the lookup of a record of B's tree")
	}
	code, _, body, err := refusedByA.get(t.Context(), a.url+"/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(string(body), "does not hold the log this server served") {
		t.Errorf("A's /readyz = %d %q, %v; want 503 naming the fork", code, body, err)
	}
	a.stop()
	if !strings.Contains(a.stderr.String(), "does not contain the tree of size 256 this server has committed or served") {
		t.Errorf("A's log does not name the refused fork:\n%s", a.stderr.String())
	}
	line := refused(t, serveOn(dirA))
	if !strings.Contains(line, "published") {
		t.Errorf("A restarted on the failed-over database: %q, want a refusal naming its published head", line)
	}

	// The database is one tree, B's, which a new server opens; it holds
	// what A answered before the lost commits, and all B answered.
	b.stop()
	c, err := startSumdbEnv(t, faultEnv, serveOn(t.TempDir())...)
	if err != nil {
		t.Fatalf("a new server on the database after the failover: %v", err)
	}
	before.check(c.url, up)
	after.check(c.url, up)
	c.stop()
}

// lookupAll looks mods up at the server at base, a few at a time, and
// fails the test unless each is answered 200.
func lookupAll(t *testing.T, w *witness, base string, mods []module.Version) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan module.Version)
	for range 8 {
		wg.Go(func() {
			for mv := range next {
				if code, _ := w.lookup(t.Context(), base, mv); code != http.StatusOK {
					t.Errorf("lookup %s at %s: %d, want 200", mv, base, code)
				}
			}
		})
	}
	for _, mv := range mods {
		next <- mv
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// latestSize returns the size of the head the server at base serves.
func latestSize(t *testing.T, w *witness, base string) int64 {
	t.Helper()
	code, _, body, err := w.get(t.Context(), base+"/latest")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /latest: %d %q %v", code, body, err)
	}
	tree, err := w.see(body)
	if err != nil {
		t.Fatal(err)
	}
	return tree.N
}

// copyDatabase copies the log in the database at from into the empty
// database at to, as a standby replica holds it.
func copyDatabase(t *testing.T, from, to string) {
	t.Helper()
	ctx := t.Context()
	src, err := pgx.Connect(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	dst, err := pgx.Connect(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)
	tx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// The rows go into a database that serve's migrations made.
	s, err := store.OpenPostgres(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, table := range []struct {
		name string
		cols []string
	}{
		{"records", []string{"id", "key", "text"}},
		{"tiles", []string{"level", "idx", "hashes"}},
		{"heads", []string{"size", "hash", "note"}},
	} {
		rows, err := tx.Query(ctx, "SELECT "+strings.Join(table.cols, ", ")+" FROM "+table.name)
		if err != nil {
			t.Fatal(err)
		}
		var all [][]any
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.CopyFrom(ctx, pgx.Identifier{table.name}, table.cols, pgx.CopyFromRows(all)); err != nil {
			t.Fatalf("copy %s: %v", table.name, err)
		}
	}
	var size int64
	var hash, note []byte
	if err := tx.QueryRow(ctx, "SELECT size, hash, note FROM head").Scan(&size, &hash, &note); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Exec(ctx, "UPDATE head SET size = $1, hash = $2, note = $3", size, hash, note); err != nil {
		t.Fatal(err)
	}
}

// failOver makes the database of the URL primary the one of the URL
// standby, as a failover behind one address does: the connections to the
// primary are closed, and new ones reach the standby.
func failOver(t *testing.T, primary, standby string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	name := func(s string) string {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	p, s := name(primary), name(standby)
	admin, err := pgx.Connect(ctx, storetest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// The names are storetest's, [a-z0-9_]: no quoting needed.
	for _, q := range []string{
		"ALTER DATABASE " + p + " WITH ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + p + "'",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The terminated sessions take a moment to end.
	for _, q := range []string{
		"ALTER DATABASE " + p + " RENAME TO " + p + "_lost",
		"ALTER DATABASE " + s + " RENAME TO " + p,
	} {
		for {
			_, err := admin.Exec(ctx, q)
			if err == nil {
				break
			}
			if ctx.Err() != nil || !strings.Contains(err.Error(), "other users") {
				t.Fatalf("%s: %v", q, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), storetest.ServerURL())
		if err != nil {
			t.Errorf("drop database %s_lost: %v", p, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+p+"_lost WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s_lost: %v", p, err)
		}
	})
}
