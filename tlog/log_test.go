package tlog_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// backends opens a fresh store of each kind for a test.
var backends = []struct {
	name string
	open func(t *testing.T) tlog.Store
}{
	{"sqlite", func(t *testing.T) tlog.Store {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sumdb.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) tlog.Store {
		s, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

type keys struct {
	skey     string
	signer   note.Signer
	verifier note.Verifier
}

func newKeys(t testing.TB) keys {
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return keys{skey, signer, verifier}
}

func openLog(t testing.TB, s tlog.Store, k keys) *tlog.Log {
	l, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// gosum returns a well-formed record text for module i.
func gosum(i int) (path, version string, text []byte) {
	path = fmt.Sprintf("example.com/mod%d", i)
	version = "v1.0.0"
	h := xtlog.RecordHash([]byte(path))
	text = fmt.Appendf(nil, "%s %s h1:%x=\n%s %s/go.mod h1:%x=\n", path, version, h[:8], path, version, h[8:16])
	return path, version, text
}

// appendN appends records [from, to) concurrently, so that the sequencer
// batches them, and fails the test on any error.
func appendN(t testing.TB, l *tlog.Log, from, to int) {
	const workers = 512
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += workers {
				p, v, text := gosum(i)
				rec, head, err := l.Append(context.Background(), p, v, text)
				if err == nil && (head.Size <= rec.ID || !bytes.Equal(rec.Text, text)) {
					err = fmt.Errorf("append %s: record %d, head %d", p, rec.ID, head.Size)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestOracle appends the same records, in the same order, to a Log and to
// x/mod's in-memory sumdb.TestServer and checks that heads and every hash and
// data tile are byte for byte the same at the boundary sizes of the tiling.
func TestOracle(t *testing.T) {
	sizes := []int{1, 255, 256, 257, 65536, 65537, 70000}
	if testing.Short() {
		sizes = sizes[:4]
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			s := b.open(t)
			l := openLog(t, s, k)
			if l.Head().Size != 0 || l.Head().Note != nil {
				t.Fatalf("empty log has head %+v", l.Head())
			}
			texts := make(map[string][]byte)
			ref := sumdb.NewTestServer(k.skey, func(path, version string) ([]byte, error) {
				return texts[path+"@"+version], nil
			})
			n := 0
			for _, size := range sizes {
				appendN(t, l, n, size)
				// Feed the reference the records in the order the log assigned.
				recs, err := s.ReadRecords(ctx, int64(n), size-n)
				if err != nil || len(recs) != size-n {
					t.Fatalf("ReadRecords(%d, %d) = %d records, %v", n, size-n, len(recs), err)
				}
				for _, r := range recs {
					texts[r.Key()] = r.Text
					id, err := ref.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
					if err != nil || id != r.ID {
						t.Fatalf("reference Lookup(%s) = %d, %v; want %d", r.Key(), id, err, r.ID)
					}
				}
				n = size
				compareWithReference(t, l, ref, int64(size))
			}
		})
	}
}

func compareWithReference(t *testing.T, l *tlog.Log, ref *sumdb.TestServer, size int64) {
	t.Helper()
	ctx := context.Background()
	want, err := ref.Signed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head := l.Head()
	if head.Size != size || !bytes.Equal(head.Note, want) {
		t.Fatalf("size %d: head note\n%s\nwant\n%s", size, head.Note, want)
	}
	for _, tile := range xtlog.NewTiles(tlog.TileHeight, 0, size) {
		for _, tt := range []xtlog.Tile{tile, dataTile(tile)} {
			if tt.L < 0 && tile.L != 0 {
				continue
			}
			got, err := l.ReadTile(ctx, tt)
			if err != nil {
				t.Fatalf("size %d: ReadTile(%s): %v", size, tt.Path(), err)
			}
			var want []byte
			if tt.L < 0 {
				recs, err := ref.ReadRecords(ctx, tt.N*tlog.TileWidth, int64(tt.W))
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					want = append(append(want, r...), '\n')
				}
			} else if want, err = ref.ReadTileData(ctx, tt); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d: tile %s differs from the reference", size, tt.Path())
			}
		}
	}
	// Beyond the tree: not found.
	past := xtlog.Tile{H: tlog.TileHeight, L: 0, N: size / tlog.TileWidth, W: int(size%tlog.TileWidth) + 1}
	if past.W > tlog.TileWidth {
		past.N, past.W = past.N+1, 1
	}
	if _, err := l.ReadTile(ctx, past); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("size %d: ReadTile(%s) = %v, want ErrNotFound", size, past.Path(), err)
	}
}

func dataTile(t xtlog.Tile) xtlog.Tile {
	t.L = -1
	return t
}

// TestAppendSameModuleOnce appends one module version from many goroutines
// and checks that it is logged once, with one id for every caller, and that
// a later append of it, even with other text, returns the logged record.
func TestAppendSameModuleOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			l := openLog(t, b.open(t), newKeys(t))
			p, v, text := gosum(7)
			var wg sync.WaitGroup
			ids := make([]int64, 50)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec, _, err := l.Append(context.Background(), p, v, text)
					if err != nil {
						t.Error(err)
					}
					ids[i] = rec.ID
				}()
			}
			wg.Wait()
			for _, id := range ids {
				if id != 0 {
					t.Fatalf("ids = %v, want all 0", ids)
				}
			}
			other := bytes.Replace(text, []byte("h1:"), []byte("h1:0"), 1)
			rec, head, err := l.Append(context.Background(), p, v, other)
			if err != nil || rec.ID != 0 || !bytes.Equal(rec.Text, text) || head.Size != 1 {
				t.Fatalf("second Append = %d %q size %d, %v; want the first record", rec.ID, rec.Text, head.Size, err)
			}
		})
	}
}

// TestTwoWritersNeverFork runs two Logs on one store, appending concurrently
// as two server processes would, and checks that every head either of them
// produced is consistent with the final tree, that every record is there
// exactly once, and that the appends computed under the store's lock
// (AppendLocked), where a writer goes after its Append found the head
// changed, never conflict.
func TestTwoWritersNeverFork(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testTwoWriters(t, b.open(t))
		})
	}
}

func testTwoWriters(t *testing.T, bs tlog.Store) {
	ctx := context.Background()
	s := &countingStore{Store: bs}
	k := newKeys(t)
	l1, l2 := openLog(t, s, k), openLog(t, s, k)
	const n = 600
	var mu sync.Mutex
	var heads []tlog.Head
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Workers w and w+8 append overlapping modules, through different logs.
			l := l1
			if w >= 8 {
				l = l2
			}
			for i := w; i < n; i += 8 {
				p, v, text := gosum(i)
				rec, head, err := l.Append(ctx, p, v, text)
				if err != nil {
					t.Error(err)
					return
				}
				if head.Size <= rec.ID {
					t.Errorf("%s: record %d not covered by head %d", p, rec.ID, head.Size)
				}
				mu.Lock()
				heads = append(heads, head)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	final, err := s.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.Size != n {
		t.Fatalf("final size %d, want %d", final.Size, n)
	}
	hr := xtlog.TileHashReader(xtlog.Tree{N: final.Size, Hash: final.Hash}, storeTiles{ctx, s})
	for _, h := range heads {
		p, err := xtlog.ProveTree(final.Size, h.Size, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := xtlog.CheckTree(p, final.Size, final.Hash, h.Size, h.Hash); err != nil {
			t.Fatalf("head %d is not consistent with the final tree: %v", h.Size, err)
		}
	}
	recs, err := s.ReadRecords(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for i, r := range recs {
		if r.ID != int64(i) || seen[r.Key()] {
			t.Fatalf("record %d: id %d key %s (seen before: %v)", i, r.ID, r.Key(), seen[r.Key()])
		}
		seen[r.Key()] = true
	}
	if n := s.lockedConflicts.Load(); n > 0 {
		t.Errorf("%d conflicts with AppendLocked, want none", n)
	}
	conflicts := s.conflicts.Load()
	t.Logf("%d commits, %d conflicts", s.appends.Load()-conflicts, conflicts)
}

// storeTiles reads tiles straight from a store, for x/mod's TileHashReader.
type storeTiles struct {
	ctx context.Context
	s   tlog.Store
}

func (st storeTiles) Height() int { return tlog.TileHeight }

func (st storeTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := st.s.ReadTile(st.ctx, t.L, t.N)
		if err != nil {
			return nil, err
		}
		if len(b) < t.W*xtlog.HashSize {
			return nil, fmt.Errorf("tile %s is short", t.Path())
		}
		out[i] = b[:t.W*xtlog.HashSize]
	}
	return out, nil
}

func (storeTiles) SaveTiles([]xtlog.Tile, [][]byte) {}

// TestReopenContinues closes a log and opens it again on the same store: the
// tree continues where it was and the start-up check passes; a head signed by
// another key is refused.
func TestReopenContinues(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumdb.db")
	k := newKeys(t)
	s, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := tlog.Open(ctx, s, tlog.Config{Signer: k.signer, Verifier: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 300)
	first := l.Head()
	l.Close()

	l, err = tlog.Open(ctx, s, tlog.Config{Signer: k.signer, Verifier: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	if l.Head().Size != first.Size || !bytes.Equal(l.Head().Note, first.Note) {
		t.Fatalf("reopened head %d, want %d", l.Head().Size, first.Size)
	}
	appendN(t, l, 300, 600)
	l.Close()

	other := newKeys(t)
	if _, err := tlog.Open(ctx, s, tlog.Config{Signer: other.signer, Verifier: other.verifier}); err == nil {
		t.Fatal("Open with another key accepted the stored head")
	}
}

// TestOpenConfig checks that a negative value of a knob that cannot be
// turned off is refused rather than taken as the default, as zero is.
func TestOpenConfig(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := newKeys(t)
	for _, cfg := range []tlog.Config{{MaxBatch: -1}, {MaxQueue: -1}, {CommitTimeout: -time.Second}} {
		cfg.Signer, cfg.Verifier = k.signer, k.verifier
		if l, err := tlog.Open(ctx, s, cfg); err == nil || !strings.Contains(err.Error(), "want none negative") {
			if l != nil {
				l.Close()
			}
			t.Errorf("Open(MaxBatch %d, MaxQueue %d, CommitTimeout %v) = %v, want an error", cfg.MaxBatch, cfg.MaxQueue, cfg.CommitTimeout, err)
		}
	}
	l, err := tlog.Open(ctx, s, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatalf("Open with the defaults and no refresh: %v", err)
	}
	l.Close()
}

// TestPushback fills a tiny queue and expects ErrPushback rather than an
// unbounded wait.
func TestPushback(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := newKeys(t)
	l, err := tlog.Open(ctx, s, tlog.Config{Signer: k.signer, Verifier: k.verifier, MaxQueue: 1, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	pushed := 0
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, v, text := gosum(i)
			_, _, err := l.Append(ctx, p, v, text)
			if errors.Is(err, tlog.ErrPushback) {
				mu.Lock()
				pushed++
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if pushed == 0 {
		t.Fatal("200 concurrent appends into a queue of 1 were never pushed back")
	}
	if got := l.Head().Size; got != int64(200-pushed) {
		t.Fatalf("size %d, want %d appended", got, 200-pushed)
	}
}

// TestAppendDuringClose closes a log while appends race into its queue: every
// Append must return, answered or with ErrClosed, never hang.
func TestAppendDuringClose(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := newKeys(t)
	for round := range 20 {
		l, err := tlog.Open(ctx, s, tlog.Config{Signer: k.signer, Verifier: k.verifier})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, v, text := gosum(round*64 + i)
				if _, _, err := l.Append(ctx, p, v, text); err != nil && !errors.Is(err, tlog.ErrClosed) {
					t.Error(err)
				}
			}()
		}
		l.Close()
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Append still blocked 10s after Close", round)
		}
	}
}

// A regressingStore is a Store whose database went back in time, as after a
// failover to a replica that lost commits: from the moment old is set, it
// reports that head and refuses appends as conflicts.
type regressingStore struct {
	tlog.Store
	mu  sync.Mutex
	old *tlog.Head
}

func (s *regressingStore) ReadHead(ctx context.Context) (tlog.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.old != nil {
		return *s.old, nil
	}
	return s.Store.ReadHead(ctx)
}

func (s *regressingStore) Append(ctx context.Context, b *tlog.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.old != nil && b.OldSize != s.old.Size {
		return fmt.Errorf("append at %d: %w", b.OldSize, tlog.ErrConflict)
	}
	return s.Store.Append(ctx, b)
}

// AppendLocked hands the old head to prepare, once old is set.
func (s *regressingStore) AppendLocked(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) error {
	s.mu.Lock()
	old := s.old
	s.mu.Unlock()
	if old == nil {
		return s.Store.AppendLocked(ctx, prepare)
	}
	if _, err := prepare(*old); err != nil {
		return err
	}
	return errors.New("regressingStore: a batch was computed against the old head")
}

// TestRefuseStoreGoneBack checks that a log never extends a stored tree
// older than a head it has served: that would fork the log.
func TestRefuseStoreGoneBack(t *testing.T) {
	t.Parallel()
	rs := &regressingStore{Store: backends[0].open(t)}
	l := openLog(t, rs, newKeys(t))
	appendN(t, l, 0, 10)
	old := l.Head()
	appendN(t, l, 10, 20)
	rs.mu.Lock()
	rs.old = &old
	rs.mu.Unlock()
	p, v, text := gosum(99)
	_, _, err := l.Append(context.Background(), p, v, text)
	if err == nil || !strings.Contains(err.Error(), "older than the head of size 20 this server has committed or served") {
		t.Fatalf("Append after the store went back to size 10 = %v, want a refusal", err)
	}
	if h := l.Head(); h.Size != 20 {
		t.Fatalf("served head went from 20 to %d", h.Size)
	}
}

// TestRefuseStoreGoneBackBeforePublish checks the same when the store goes
// back in time after a batch's commit and before the publisher has served
// that batch's head: the next batch must not extend the older head, which
// would sign a second head of the committed batch's size and lose the
// batch, whose append is acknowledged.
func TestRefuseStoreGoneBackBeforePublish(t *testing.T) {
	// One P, so that the next batch is computed, most of the time, while
	// the publisher waits for the published-head file.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rs := &regressingStore{Store: backends[0].open(t)}
	k := newKeys(t)
	var (
		l      *tlog.Log
		old    tlog.Head
		armed  atomic.Bool
		second = make(chan error, 1)
	)
	cfg := tlog.Config{
		Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1,
		PublishedFile: filepath.Join(t.TempDir(), "published-head"),
		OnCommit: func(int, time.Duration) {
			if !armed.CompareAndSwap(true, false) {
				return
			}
			// The database loses the batch just committed, and the next
			// append waits in the queue.
			rs.mu.Lock()
			rs.old = &old
			rs.mu.Unlock()
			go func() {
				p, v, text := gosum(11)
				_, _, err := l.Append(context.Background(), p, v, text)
				second <- err
			}()
			for deadline := time.Now().Add(10 * time.Second); l.QueueLen() == 0 && time.Now().Before(deadline); {
				runtime.Gosched()
			}
		},
	}
	l, err := tlog.Open(context.Background(), rs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	appendN(t, l, 0, 10)
	old = l.Head()
	armed.Store(true)
	p, v, text := gosum(10)
	_, head, err := l.Append(context.Background(), p, v, text)
	if err != nil || head.Size != 11 {
		t.Fatalf("Append of record 10 = head %d, %v; want head 11", head.Size, err)
	}
	err = <-second
	if err == nil || !strings.Contains(err.Error(), "older than the head of size 11 this server has committed") {
		t.Fatalf("Append after the store went back from 11 to 10 = %v, want a refusal", err)
	}
	if h := l.Head(); h.Size != 11 {
		t.Fatalf("served head is %d, want 11", h.Size)
	}
}

// BenchmarkWriters appends records through one, two or three Logs sharing
// one PostgreSQL store, as replicas do, from 64 goroutines each, and
// reports the records appended per second: what conflicts between
// replicas cost. A Log appends with Append first and, after a conflict,
// computes the batch under the head lock (AppendLocked).
func BenchmarkWriters(b *testing.B) {
	for _, writers := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("%d", writers), func(b *testing.B) {
			benchmarkWriters(b, writers)
		})
	}
}

// countingStore counts the commits a store is asked for and their
// conflicts, and those of AppendLocked apart: a Log tries Append first,
// and a conflict there sends it to AppendLocked, which must have none.
type countingStore struct {
	tlog.Store
	appends, conflicts atomic.Int64 // of Append and AppendLocked
	lockedConflicts    atomic.Int64 // of AppendLocked
}

func (s *countingStore) Append(ctx context.Context, b *tlog.Batch) error {
	s.appends.Add(1)
	err := s.Store.Append(ctx, b)
	if errors.Is(err, tlog.ErrConflict) {
		s.conflicts.Add(1)
	}
	return err
}

func (s *countingStore) AppendLocked(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) error {
	s.appends.Add(1)
	err := s.Store.AppendLocked(ctx, prepare)
	if errors.Is(err, tlog.ErrConflict) {
		s.conflicts.Add(1)
		s.lockedConflicts.Add(1)
	}
	return err
}

func benchmarkWriters(b *testing.B, writers int) {
	ps, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	s := &countingStore{Store: ps}
	k := newKeys(b)
	logs := make([]*tlog.Log, writers)
	for i := range logs {
		logs[i] = openLog(b, s, k)
	}
	var n atomic.Int64
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range 64 * writers {
			wg.Go(func() {
				for range 20 {
					p, v, text := gosum(int(n.Add(1)))
					if _, _, err := logs[w%writers].Append(context.Background(), p, v, text); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "records/s")
	commits := s.appends.Load() - s.conflicts.Load()
	b.ReportMetric(float64(n.Load())/float64(commits), "records/batch")
	b.ReportMetric(float64(s.conflicts.Load())/float64(commits), "conflicts/batch")
}
