package tlog_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// openSQLiteIn opens a new SQLite store in a directory of the test's own.
func openSQLiteIn(t *testing.T) *store.SQLite {
	t.Helper()
	s := openSQLiteAt(t, filepath.Join(t.TempDir(), "sumdb.db"))
	t.Cleanup(func() { s.Close() })
	return s
}

// forkedStore returns a store holding records 0 to common-1 of the log the
// tests serve, then others: a tree of size common+extra that does not
// contain the served trees larger than common.
func forkedStore(t *testing.T, k keys, common, extra int) *store.SQLite {
	t.Helper()
	s := openSQLiteIn(t)
	fork(t, s, k, common, extra)
	return s
}

// fork appends to the empty store s, through a log of its own, records 0
// to common-1 of the log the tests serve, then others from record 1000,
// making a tree of size common+extra, and returns its head.
func fork(t *testing.T, s tlog.Store, k keys, common, extra int) tlog.Head {
	t.Helper()
	l, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendInOrder(t, l, 0, common)
	appendInOrder(t, l, 1000, 1000+extra)
	return l.Head()
}

const forkRefusal = "does not contain the tree of size"

// appendInOrder appends records from to to-1 one at a time, so that two
// logs given the same get the same tree.
func appendInOrder(t *testing.T, l *tlog.Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		p, v, text := gosum(i)
		if _, _, err := l.Append(context.Background(), p, v, text); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefreshRefusesFork checks that a larger stored head whose tree does
// not contain the served head is neither served nor recorded as published,
// so that the next start refuses the database too.
func TestRefreshRefusesFork(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	file := filepath.Join(t.TempDir(), "published-head")
	sw := storetest.NewSwitch(openSQLiteIn(t))
	cfg := tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1, PublishedFile: file}
	l, err := tlog.Open(context.Background(), sw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendInOrder(t, l, 0, 10)
	forked := forkedStore(t, k, 8, 5)
	sw.Set(forked)
	if _, err := l.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), forkRefusal) {
		t.Errorf("Refresh of a forked store of size 13 = %v, want a refusal", err)
	}
	if h := l.Head(); h.Size != 10 {
		t.Errorf("served head %d after the refusal, want 10", h.Size)
	}
	l.Close()
	if pub, err := tlog.ReadPublished(file, k.verifier); err != nil || pub.Size != 10 {
		t.Errorf("published head %d, %v; want 10", pub.Size, err)
	}
	if _, err := tlog.Open(context.Background(), forked, cfg); err == nil {
		t.Errorf("Open of the forked store with the published-head file succeeded")
	}
}

// TestAppendRefusesFork checks that the sequencer does not extend a larger
// stored head whose tree does not contain the served head.
func TestAppendRefusesFork(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	sw := storetest.NewSwitch(openSQLiteIn(t))
	l, err := tlog.Open(context.Background(), sw, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendInOrder(t, l, 0, 10)
	sw.Set(forkedStore(t, k, 8, 5))
	p, v, text := gosum(50)
	if rec, h, err := l.Append(context.Background(), p, v, text); err == nil || !strings.Contains(err.Error(), forkRefusal) {
		t.Errorf("Append to a forked store = record %d, head %d, %v; want a refusal", rec.ID, h.Size, err)
	}
	if h := l.Head(); h.Size != 10 {
		t.Errorf("served head %d after the refusal, want 10", h.Size)
	}
}

// TestRefreshRefusesForkBeforePublish checks that a refresh between a
// batch's commit and its publication does not serve a larger stored head
// that contains the served head but not the committed one, and that the
// append is acknowledged with its own head, recorded as published.
func TestRefreshRefusesForkBeforePublish(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	file := filepath.Join(t.TempDir(), "published-head")
	sw := storetest.NewSwitch(openSQLiteIn(t))
	forked := forkedStore(t, k, 10, 20)
	var (
		l          *tlog.Log
		armed      bool
		refreshErr error
	)
	cfg := tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1, PublishedFile: file,
		OnCommit: func(int, time.Duration) {
			if !armed {
				return
			}
			armed = false
			sw.Set(forked) // the batch just committed is lost; another process appended
			_, refreshErr = l.Refresh(context.Background())
		}}
	l, err := tlog.Open(context.Background(), sw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendInOrder(t, l, 0, 10)
	armed = true
	p, v, text := gosum(10)
	_, h, err := l.Append(context.Background(), p, v, text)
	if refreshErr == nil || !strings.Contains(refreshErr.Error(), "does not contain the tree of size 11") {
		t.Errorf("Refresh of a forked store holding the served head but not the committed one = %v, want a refusal", refreshErr)
	}
	if err != nil || h.Size != 11 {
		t.Fatalf("Append = head %d, %v; want head 11", h.Size, err)
	}
	if pub, err := tlog.ReadPublished(file, k.verifier); err != nil || pub.Hash != h.Hash {
		t.Errorf("published head %d, %v; want the acknowledged head 11", pub.Size, err)
	}
}

// TestFailoverToTreeOfSameSize is the failover that a fence on the stored
// size alone let through: replica A serves a head whose size ends a tile;
// the database fails over to a standby that lost A's last commits, where
// replica B, which never saw A's head, appends others up to exactly that
// size. A must not extend B's tree: the head it would sign contradicts the
// one it served, and its tiles, B's, would not reproduce it, so that no
// server could open the database again. A refuses, on every path, and the
// database stays one tree, B's.
func TestFailoverToTreeOfSameSize(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			file := filepath.Join(t.TempDir(), "published-head")
			primary := be.open(t)
			sw := storetest.NewSwitch(primary)
			cfg := tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1, PublishedFile: file}
			a, err := tlog.Open(ctx, sw, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			appendInOrder(t, a, 0, tlog.TileWidth)
			served := a.Head()

			standby := be.open(t)
			b := fork(t, standby, k, tlog.TileWidth-6, 6)
			if b.Size != served.Size || b.Hash == served.Hash {
				t.Fatalf("B's head has size %d, root %v; want size %d and a root other than A's", b.Size, b.Hash, served.Size)
			}
			sw.Set(standby)

			if _, err := a.Refresh(ctx); err == nil || !strings.Contains(err.Error(), forkRefusal) {
				t.Errorf("A's Refresh of B's tree of its size = %v, want a refusal", err)
			}
			if err := a.Ready(ctx); err == nil || !strings.Contains(err.Error(), forkRefusal) {
				t.Errorf("A's Ready on B's tree of its size = %v, want a refusal", err)
			}
			for i := range 3 { // the sequencer's fast path, then the locked path
				p, v, text := gosum(2000 + i)
				if rec, h, err := a.Append(ctx, p, v, text); err == nil || !strings.Contains(err.Error(), forkRefusal) {
					t.Errorf("A's Append %d on B's tree = record %d, head %d, %v; want a refusal", i, rec.ID, h.Size, err)
				}
			}
			if h := a.Head(); h.Size != served.Size || h.Hash != served.Hash {
				t.Errorf("A serves head %d %v after the refusals, want its own %d %v", h.Size, h.Hash, served.Size, served.Hash)
			}
			// B's records and tiles do not verify against A's head: A
			// serves none.
			p, v, _ := gosum(0)
			if _, _, err := a.Lookup(ctx, p, v); !errors.Is(err, tlog.ErrFork) {
				t.Errorf("A's Lookup on B's tree = %v, want ErrFork", err)
			}
			if _, err := a.ReadTile(ctx, xtlog.Tile{H: tlog.TileHeight, L: 0, N: 0, W: tlog.TileWidth}); !errors.Is(err, tlog.ErrFork) {
				t.Errorf("A's ReadTile on B's tree = %v, want ErrFork", err)
			}
			if pub, err := tlog.ReadPublished(file, k.verifier); err != nil || pub.Hash != served.Hash {
				t.Errorf("A's published head = %d %v, %v; want its own %d %v", pub.Size, pub.Hash, err, served.Size, served.Hash)
			}

			// The database holds B's tree alone: every head in its history
			// is a prefix of the stored head, which a new server opens.
			h, err := standby.ReadHead(ctx)
			if err != nil || h.Hash != b.Hash {
				t.Fatalf("stored head after A's refusals = %d %v, %v; want B's %d %v", h.Size, h.Hash, err, b.Size, b.Hash)
			}
			checkOneTree(t, standby)
			c, err := tlog.Open(ctx, standby, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
			if err != nil {
				t.Fatalf("Open of the database after A's refusals: %v", err)
			}
			c.Close()
			if _, err := tlog.Open(ctx, standby, cfg); err == nil {
				t.Errorf("Open with A's published head of a database that does not hold it succeeded")
			}

			// Back on the database that holds A's tree, A serves again.
			sw.Set(primary)
			if err := a.Ready(ctx); err != nil {
				t.Errorf("A's Ready back on its own tree = %v", err)
			}
			if _, h, err := a.Lookup(ctx, p, v); err != nil || h.Hash != served.Hash {
				t.Errorf("A's Lookup back on its own tree = head %d, %v; want its own", h.Size, err)
			}
			appendInOrder(t, a, 3000, 3001)
		})
	}
}

// checkOneTree fails the test unless every head in the history of s is a
// prefix of its current head, proven from its stored tiles.
func checkOneTree(t *testing.T, s tlog.Store) {
	t.Helper()
	ctx := context.Background()
	head, err := s.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heads, err := s.ReadHeads(ctx, 1, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	hr := xtlog.TileHashReader(xtlog.Tree{N: head.Size, Hash: head.Hash}, storeTiles{ctx, s})
	for _, h := range heads {
		root, err := xtlog.TreeHash(h.Size, hr)
		if err != nil || root != h.Hash {
			t.Errorf("history head of size %d has root %v; the stored tree of size %d gives %v, %v", h.Size, h.Hash, head.Size, root, err)
		}
	}
}

// TestReplicasSeeNoFork runs three logs on one store, as three replicas
// on one database, each appending while the others refresh, look up and
// check readiness, and checks that none ever takes the store for a fork:
// a head read from the store may be older than one the reader committed or
// adopted meanwhile, which is no sign that the store went back in time.
func TestReplicasSeeNoFork(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t)
			s := be.open(t)
			var logs []*tlog.Log
			for range 3 {
				l, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier,
					RefreshInterval: 5 * time.Millisecond, PublishedFile: filepath.Join(t.TempDir(), "published-head")})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				logs = append(logs, l)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			var (
				wg    sync.WaitGroup
				next  atomic.Int64
				mu    sync.Mutex
				forks []string
			)
			fork := func(what string, err error) {
				if errors.Is(err, tlog.ErrFork) {
					mu.Lock()
					forks = append(forks, what+": "+err.Error())
					mu.Unlock()
				}
			}
			for w := range 24 {
				wg.Go(func() {
					l, other := logs[w%3], logs[(w+1)%3]
					for ctx.Err() == nil {
						p, v, text := gosum(int(next.Add(1)))
						_, _, err := l.Append(ctx, p, v, text)
						fork("Append", err)
						_, _, err = other.Lookup(ctx, p, v)
						fork("Lookup", err)
						_, err = l.Refresh(ctx)
						fork("Refresh", err)
						fork("Ready", l.Ready(ctx))
					}
				})
			}
			wg.Wait()
			t.Logf("%d appends", next.Load())
			if len(forks) > 0 {
				t.Errorf("%d false forks, the first: %s", len(forks), forks[0])
			}
		})
	}
}
