// Package storetest is the conformance suite of tlog.Store: Run and RunReopen
// check every documented behaviour of a backend, and PostgresURL gives a test
// a PostgreSQL database of its own.
//
// The suite builds its batches with the reference tree code of
// golang.org/x/mod/sumdb/tlog, so the tiles and signed heads it stores are
// those of a real log.
package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// Run runs the conformance suite, each check in a parallel subtest of its own.
// open must return a store on a new, empty database each time it is called;
// it may register cleanups on the t it is given (to drop the database, say).
// Run closes the stores it opens.
func Run(t *testing.T, open func(t *testing.T) tlog.Store) {
	runChecks(t, open, []check[tlog.Store]{
		{"Empty", testEmpty},
		{"AppendAndRead", testAppendAndRead},
		{"TileGrowth", testTileGrowth},
		{"Conflict", testConflict},
		{"ConflictSameSizeAtTileEnd", conflictSameSize(tlog.TileWidth)},
		{"ConflictSameSizeInTile", conflictSameSize(3)},
		{"Duplicate", testDuplicate},
		{"ReadRecordsPastEnd", testReadRecordsPastEnd},
		{"ReadHeads", testReadHeads},
		{"LookupExact", testLookupExact},
		{"ConcurrentAppend", testConcurrentAppend},
		{"InvalidBatch", testInvalidBatch},
		{"TileFork", testTileFork},
		{"Resign", testResign},
		{"AppendLocked", testAppendLocked},
		{"History", testHistory},
		{"BulkHistory", testBulkHistory},
		{"InvalidHistory", testInvalidHistory},
		{"BulkLoad", testBulkLoad},
		{"BulkLoadDuplicate", testBulkLoadDuplicate},
	})
}

// A check is one check of a conformance suite on a store of type S.
type check[S any] struct {
	name string
	f    func(t *testing.T, s S)
}

// runChecks runs each check in a parallel subtest of its own, on a store
// from open, which it closes.
func runChecks[S interface{ Close() error }](t *testing.T, open func(t *testing.T) S, checks []check[S]) {
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close() = %v", err)
				}
			})
			c.f(t, s)
		})
	}
}

// RunReopen runs the checks that need one database opened more than once:
// persistence across Close, and two stores appending to one database, as
// two processes would. newDatabase must create a new, empty database and
// return a function that opens a store on it each time it is called.
// RunReopen closes the stores it opens.
func RunReopen(t *testing.T, newDatabase func(t *testing.T) (open func() (tlog.Store, error))) {
	for _, tt := range []struct {
		name string
		f    func(t *testing.T, open func(t *testing.T) tlog.Store)
	}{
		{"Persistence", testPersistence},
		{"TwoStores", testTwoStores},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			open := newDatabase(t)
			tt.f(t, func(t *testing.T) tlog.Store {
				t.Helper()
				s, err := open()
				if err != nil {
					t.Fatalf("open store: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func testEmpty(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	h, err := s.ReadHead(ctx)
	if err != nil || h.Size != 0 || h.Hash != ([32]byte{}) || h.Note != nil {
		t.Errorf("ReadHead() = %+v, %v, want zero Head, nil", h, err)
	}
	checkState(t, s, newModel(t))
	if _, err := s.ReadTile(ctx, 0, 0); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("ReadTile(0, 0) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup(ctx, "golang.org/x/text", "v0.3.0"); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Lookup(golang.org/x/text, v0.3.0) error = %v, want ErrNotFound", err)
	}
}

func testAppendAndRead(t *testing.T, s tlog.Store) {
	m := newModel(t)
	appendOK(t, s, m.batch(t, "golang.org/x/text@v0.3.0", "golang.org/x/text@v0.3.2", "rsc.io/quote@v1.5.2"))
	checkState(t, s, m)
	appendOK(t, s, m.batch(t, "rsc.io/sampler@v1.3.0", "github.com/Azure/azure-sdk-for-go@v68.0.0+incompatible"))
	checkState(t, s, m)
	// 300 more records fill level-0 tile 0, start tile 1 and level-1 tile 0.
	appendOK(t, s, m.batch(t, keys("example.com/m", 300)...))
	checkState(t, s, m)
	if len(m.tiles) < 3 {
		t.Fatalf("model has %d tiles after 305 records, want at least 3", len(m.tiles))
	}
}

// testTileGrowth checks that a tile of 5 hashes replaces one of 3.
func testTileGrowth(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/grow", 3)...))
	three, err := s.ReadTile(ctx, 0, 0)
	if err != nil || len(three) != 3*32 {
		t.Fatalf("ReadTile(0, 0) = %d bytes, %v, want %d bytes", len(three), err, 3*32)
	}
	b := m.batch(t, "example.com/grow@v2.0.0", "example.com/grow@v2.0.1")
	if len(b.Tiles) != 1 || b.Tiles[0].Level != 0 || b.Tiles[0].Index != 0 || len(b.Tiles[0].Hashes) != 5*32 {
		t.Fatalf("model batch tiles = %v, want tile 0/0 of 5 hashes", b.Tiles)
	}
	appendOK(t, s, b)
	five, err := s.ReadTile(ctx, 0, 0)
	if err != nil || len(five) != 5*32 {
		t.Fatalf("ReadTile(0, 0) = %d bytes, %v, want %d bytes", len(five), err, 5*32)
	}
	if !bytes.HasPrefix(five, three) {
		t.Errorf("ReadTile(0, 0) of 5 hashes does not begin with the tile of 3")
	}
	checkState(t, s, m)
}

func testConflict(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	stale := m.clone()
	appendOK(t, s, m.batch(t, keys("example.com/a", 3)...))

	// Computed against size 0, but the store has size 3.
	b := stale.batch(t, keys("example.com/b", 2)...)
	if err := s.Append(ctx, b); !errors.Is(err, tlog.ErrConflict) {
		t.Fatalf("Append(stale batch at 0, store at 3) = %v, want ErrConflict", err)
	}
	checkNotWritten(t, s, m, b)

	// Computed against a size the store does not have yet.
	ahead := m.clone()
	ahead.batch(t, keys("example.com/c", 2)...)
	b = ahead.batch(t, keys("example.com/d", 2)...)
	if err := s.Append(ctx, b); !errors.Is(err, tlog.ErrConflict) {
		t.Fatalf("Append(batch at 5, store at 3) = %v, want ErrConflict", err)
	}
	checkNotWritten(t, s, m, b)

	// The store still appends at its size.
	appendOK(t, s, m.batch(t, keys("example.com/e", 2)...))
	checkState(t, s, m)
}

// conflictSameSize returns the check that a batch computed against
// another tree of the stored size, size, is a conflict: the records of
// another writer, as after a failover to a database that lost a writer's
// last commits and grew back to the same size through another. Extending
// it would sign a head that contradicts those the first writer served. At
// a size that ends a tile, the batch rewrites no stored tile: only the
// fence on the root stops it.
func conflictSameSize(size int) func(t *testing.T, s tlog.Store) {
	return func(t *testing.T, s tlog.Store) {
		ctx := t.Context()
		m := newModel(t)
		appendOK(t, s, m.batch(t, keys("example.com/a", size)...))
		other := newModel(t)
		other.batch(t, keys("example.com/b", size)...)
		b := other.batch(t, keys("example.com/c", 2)...)
		if err := s.Append(ctx, b); !errors.Is(err, tlog.ErrConflict) {
			t.Fatalf("Append(batch at another tree of size %d) = %v, want ErrConflict", size, err)
		}
		checkNotWritten(t, s, m, b)
		err := s.AppendLocked(ctx, func(tlog.Head) (*tlog.Batch, error) { return b, nil })
		if !errors.Is(err, tlog.ErrConflict) {
			t.Fatalf("AppendLocked(batch at another tree of size %d) = %v, want ErrConflict", size, err)
		}
		checkNotWritten(t, s, m, b)
		appendOK(t, s, m.batch(t, keys("example.com/d", 2)...))
		checkState(t, s, m)
	}
}

func testDuplicate(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, "rsc.io/quote@v1.5.2", "rsc.io/sampler@v1.3.0"))

	next := m.clone()
	b := next.batch(t, "rsc.io/quote@v1.5.1", "rsc.io/sampler@v1.3.0", "rsc.io/quote@v1.5.3", "rsc.io/quote@v1.5.2")
	err := s.Append(ctx, b)
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) {
		t.Fatalf("Append(batch with 2 stored records) = %v, want *DuplicateError", err)
	}
	if want := []string{"rsc.io/sampler@v1.3.0", "rsc.io/quote@v1.5.2"}; !slices.Equal(dup.Keys, want) {
		t.Errorf("DuplicateError.Keys = %q, want %q", dup.Keys, want)
	}
	checkNotWritten(t, s, m, b)

	// Without the duplicates, the batch goes in.
	appendOK(t, s, m.batch(t, "rsc.io/quote@v1.5.1", "rsc.io/quote@v1.5.3"))
	checkState(t, s, m)
}

func testReadRecordsPastEnd(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/end", 5)...))
	for _, tt := range []struct {
		start int64
		n     int
		want  int
	}{
		{0, 5, 5},
		{0, 6, 5},
		{3, 10, 2},
		{4, 1, 1},
		{5, 1, 0},
		{100, 7, 0},
		{2, 0, 0},
	} {
		got, err := s.ReadRecords(ctx, tt.start, tt.n)
		if err != nil {
			t.Errorf("ReadRecords(%d, %d) error: %v", tt.start, tt.n, err)
			continue
		}
		want := m.records[min(tt.start, m.size):min(tt.start+int64(tt.want), m.size)]
		if !equalRecords(got, want) {
			t.Errorf("ReadRecords(%d, %d) = %d records %v, want %d records %v", tt.start, tt.n, len(got), ids(got), len(want), ids(want))
		}
	}
}

func testReadHeads(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	for i := range 4 {
		appendOK(t, s, m.batch(t, keys(fmt.Sprintf("example.com/h%d", i), i+1)...))
	}
	// Sizes are 1, 3, 6, 10.
	for _, tt := range []struct {
		lo, hi int64
		want   []int64
	}{
		{0, 100, []int64{1, 3, 6, 10}},
		{1, 10, []int64{1, 3, 6, 10}},
		{2, 9, []int64{3, 6}},
		{3, 3, []int64{3}},
		{4, 5, nil},
		{11, 20, nil},
		{6, 3, nil},
	} {
		got, err := s.ReadHeads(ctx, tt.lo, tt.hi)
		if err != nil {
			t.Errorf("ReadHeads(%d, %d) error: %v", tt.lo, tt.hi, err)
			continue
		}
		var want []tlog.Head
		for _, h := range m.heads {
			if slices.Contains(tt.want, h.Size) {
				want = append(want, h)
			}
		}
		if !equalHeads(got, want) {
			t.Errorf("ReadHeads(%d, %d) = sizes %v, want %v", tt.lo, tt.hi, sizes(got), tt.want)
		}
	}
}

func testLookupExact(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t,
		"github.com/Azure/azure-sdk-for-go@v1.0.0",
		"github.com/azure/azure-sdk-for-go@v1.0.0", // differs only in case: another module
		"github.com/Azure/azure-sdk-for-go/sdk/azcore@v1.0.0",
		"gopkg.in/yaml.v3@v3.0.1",
		"example.com/a@b@v1.0.0", // not a valid path, but exactness is the store's business
	))
	checkState(t, s, m)
	for _, r := range m.records {
		got, err := s.Lookup(ctx, r.Path, r.Version)
		if err != nil || !equalRecord(got, r) {
			t.Errorf("Lookup(%q, %q) = %+v, %v, want record %d", r.Path, r.Version, got, err, r.ID)
		}
	}
	for _, k := range []string{
		"github.com/AZURE/azure-sdk-for-go@v1.0.0",
		"github.com/!azure/azure-sdk-for-go@v1.0.0", // the escaped form is not the path
		"github.com/Azure/azure-sdk-for-go@v1.0.0+incompatible",
		"github.com/Azure/azure-sdk-for-go@v1.0",
		"github.com/Azure@azure-sdk-for-go/v1.0.0",
		"github.com/Azure/azure-sdk-for-go/sdk@v1.0.0",
		"gopkg.in/yaml.v3@v3.0.1/go.mod",
		"example.com/a@b@v1.0.0 ", // trailing space
		"example.com/a@b@v1.0.0\n",
	} {
		path, version := splitKey(t, k)
		if got, err := s.Lookup(ctx, path, version); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("Lookup(%q, %q) = %+v, %v, want ErrNotFound", path, version, got, err)
		}
	}
}

// testConcurrentAppend checks that of several appends computed against the
// same size, exactly one commits and the others get ErrConflict.
func testConcurrentAppend(t *testing.T, s tlog.Store) {
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/base", 10)...))
	m = raceAppends(t, []tlog.Store{s, s, s, s}, m)
	checkState(t, s, m)
}

// raceAppends appends, at once, one batch on each of stores, each computed
// against m, and returns the model of the one that committed.
func raceAppends(t *testing.T, stores []tlog.Store, m *model) *model {
	t.Helper()
	ctx := t.Context()
	models := make([]*model, len(stores))
	batches := make([]*tlog.Batch, len(stores))
	for i := range stores {
		models[i] = m.clone()
		batches[i] = models[i].batch(t, keys(fmt.Sprintf("example.com/racer%d/at%d", i, m.size), i+1)...)
	}
	errs := make([]error, len(stores))
	var start, done sync.WaitGroup
	start.Add(1)
	for i, s := range stores {
		done.Go(func() {
			start.Wait()
			errs[i] = s.Append(ctx, batches[i])
		})
	}
	start.Done()
	done.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Append(racer %d) = nil, and racer %d committed too: want one commit", i, winner)
		case err == nil:
			winner = i
		case !errors.Is(err, tlog.ErrConflict):
			t.Errorf("Append(racer %d) = %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no racing Append committed, want one")
	}
	for i, b := range batches {
		if i != winner {
			checkNotWritten(t, stores[winner], models[winner], b)
		}
	}
	return models[winner]
}

func testInvalidBatch(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/valid", 3)...))
	for _, tt := range []struct {
		name   string
		modify func(b *tlog.Batch)
	}{
		{"nil", nil},
		{"IDGap", func(b *tlog.Batch) { b.Records[1].ID++ }},
		{"IDFromZero", func(b *tlog.Batch) {
			for i := range b.Records {
				b.Records[i].ID = int64(i)
			}
		}},
		{"HeadSize", func(b *tlog.Batch) { b.Head.Size++ }},
		{"NoOldHash", func(b *tlog.Batch) { b.OldHash = xtlog.Hash{} }},
		{"NoNote", func(b *tlog.Batch) { b.Head.Note = nil }},
		{"TextOfOtherPath", func(b *tlog.Batch) { b.Records[0].Text = Record(b.Records[0].ID, "example.com/other", "v1.0.0").Text }},
		{"TextOfOtherVersion", func(b *tlog.Batch) { b.Records[0].Version = "v9.9.9" }},
		{"TextEmpty", func(b *tlog.Batch) { b.Records[0].Text = nil }},
		{"SameKeyTwice", func(b *tlog.Batch) {
			r := Record(b.Records[1].ID, b.Records[0].Path, b.Records[0].Version)
			b.Records[1] = r
		}},
		{"TileNotHashes", func(b *tlog.Batch) { b.Tiles[0].Hashes = b.Tiles[0].Hashes[:33] }},
		{"TileEmpty", func(b *tlog.Batch) { b.Tiles[0].Hashes = nil }},
		{"TileTooLong", func(b *tlog.Batch) { b.Tiles[0].Hashes = make([]byte, (tlog.TileWidth+1)*32) }},
		{"TileNegative", func(b *tlog.Batch) { b.Tiles[0].Index = -1 }},
		{"TileTwice", func(b *tlog.Batch) { b.Tiles = append(b.Tiles, b.Tiles[0]) }},
	} {
		next := m.clone()
		b := next.batch(t, keys("example.com/invalid", 3)...)
		var err error
		if tt.modify == nil {
			err = s.Append(ctx, nil)
		} else {
			tt.modify(b)
			err = s.Append(ctx, b)
		}
		var dup *tlog.DuplicateError
		if err == nil || errors.Is(err, tlog.ErrConflict) || errors.As(err, &dup) {
			t.Errorf("%s: Append(invalid batch) = %v, want an error other than ErrConflict and DuplicateError", tt.name, err)
		}
		if b != nil {
			checkNotWritten(t, s, m, b)
		}
	}
}

// testTileFork checks that a stored tile is replaced only by one that
// extends it: a different hash in the stored prefix is a fork.
func testTileFork(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/fork", 3)...))
	next := m.clone()
	b := next.batch(t, keys("example.com/fork2", 2)...)
	b.Tiles[0].Hashes = bytes.Clone(b.Tiles[0].Hashes)
	b.Tiles[0].Hashes[0] ^= 1
	if err := s.Append(ctx, b); err == nil || errors.Is(err, tlog.ErrConflict) {
		t.Errorf("Append(batch rewriting a stored hash of tile 0/0) = %v, want an error other than ErrConflict", err)
	}
	checkNotWritten(t, s, m, b)

	// A shorter tile is no extension either.
	next = m.clone()
	b = next.batch(t, keys("example.com/fork3", 2)...)
	b.Tiles[0].Hashes = b.Tiles[0].Hashes[:2*32]
	if err := s.Append(ctx, b); err == nil || errors.Is(err, tlog.ErrConflict) {
		t.Errorf("Append(batch shrinking tile 0/0) = %v, want an error other than ErrConflict", err)
	}
	checkNotWritten(t, s, m, b)
}

// testResign checks batches without records: they store a new signature of
// the current tree (say, of the empty tree before the first record), and
// refuse a different root hash for the same size.
func testResign(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	empty := m.batch(t)
	appendOK(t, s, empty)
	if h, err := s.ReadHead(ctx); err != nil || !equalHead(h, empty.Head) {
		t.Fatalf("ReadHead() after storing the empty tree's head = %+v, %v, want %+v", h, err, empty.Head)
	}
	appendOK(t, s, m.batch(t, keys("example.com/resign", 2)...))
	appendOK(t, s, m.batch(t)) // the same tree again: Ed25519 signatures are deterministic
	m.heads = m.heads[:len(m.heads)-1]
	checkState(t, s, m)

	fork := m.batch(t)
	fork.Head.Hash[0] ^= 1
	if err := s.Append(ctx, fork); err == nil || errors.Is(err, tlog.ErrConflict) {
		t.Errorf("Append(empty batch with another root hash) = %v, want an error other than ErrConflict", err)
	}
	m.heads = m.heads[:len(m.heads)-1]
	checkState(t, s, m)
}

func testPersistence(t *testing.T, open func(t *testing.T) tlog.Store) {
	m := newModel(t)
	s := open(t)
	appendOK(t, s, m.batch(t, keys("example.com/p", 3)...))
	appendOK(t, s, m.batch(t, keys("example.com/q", 300)...))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s = open(t)
	checkState(t, s, m)
	appendOK(t, s, m.batch(t, "example.com/r@v1.0.0"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s = open(t)
	checkState(t, s, m)
}

// testTwoStores races appends through two stores on one database, as two
// processes sharing it would.
func testTwoStores(t *testing.T, open func(t *testing.T) tlog.Store) {
	a, b := open(t), open(t)
	m := newModel(t)
	appendOK(t, a, m.batch(t, keys("example.com/two", 2)...))
	checkState(t, b, m)
	for range 3 {
		m = raceAppends(t, []tlog.Store{a, b, a, b}, m)
		checkState(t, a, m)
		checkState(t, b, m)
	}
}

// keys returns n path@version keys of the module path.
func keys(path string, n int) []string {
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("%s@v1.0.%d", path, i)
	}
	return list
}

func appendOK(t *testing.T, s tlog.Store, b *tlog.Batch) {
	t.Helper()
	if err := s.Append(t.Context(), b); err != nil {
		t.Fatalf("Append(batch of %d records at %d) = %v", len(b.Records), b.OldSize, err)
	}
}

// checkState checks that s holds exactly the log of m: head, head history,
// records, lookups and tiles.
func checkState(t *testing.T, s tlog.Store, m *model) {
	t.Helper()
	ctx := t.Context()
	h, err := s.ReadHead(ctx)
	var want tlog.Head
	if len(m.heads) > 0 {
		want = m.heads[len(m.heads)-1]
	}
	if err != nil || !equalHead(h, want) {
		t.Errorf("ReadHead() = size %d, %v, want size %d (%+v)", h.Size, err, want.Size, want)
	}
	heads, err := s.ReadHeads(ctx, 0, m.size+100)
	if err != nil || !equalHeads(heads, m.heads) {
		t.Errorf("ReadHeads(0, %d) = sizes %v, %v, want %v", m.size+100, sizes(heads), err, sizes(m.heads))
	}
	recs, err := s.ReadRecords(ctx, 0, int(m.size)+10)
	if err != nil || !equalRecords(recs, m.records) {
		t.Errorf("ReadRecords(0, %d) = ids %v, %v, want %v", m.size+10, ids(recs), err, ids(m.records))
	}
	for _, r := range m.records {
		got, err := s.Lookup(ctx, r.Path, r.Version)
		if err != nil || !equalRecord(got, r) {
			t.Errorf("Lookup(%q, %q) = %+v, %v, want record %d", r.Path, r.Version, got, err, r.ID)
		}
	}
	for tile, data := range m.tiles {
		got, err := s.ReadTile(ctx, tile.L, tile.N)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadTile(%d, %d) = %d bytes, %v, want %d bytes", tile.L, tile.N, len(got), err, len(data))
		}
	}
}

// checkNotWritten checks that s holds the log of m and nothing of b.
func checkNotWritten(t *testing.T, s tlog.Store, m *model, b *tlog.Batch) {
	t.Helper()
	ctx := t.Context()
	checkState(t, s, m)
	stored := make(map[string]bool)
	for _, r := range m.records {
		stored[r.Key()] = true
	}
	for _, r := range b.Records {
		if stored[r.Key()] {
			continue // checked by checkState
		}
		if got, err := s.Lookup(ctx, r.Path, r.Version); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("Lookup(%q, %q) of a rejected record = %+v, %v, want ErrNotFound", r.Path, r.Version, got, err)
		}
	}
	for _, tile := range b.Tiles {
		if tile.Level < 0 || tile.Index < 0 {
			continue
		}
		want := m.tile(tile.Level, tile.Index)
		got, err := s.ReadTile(ctx, tile.Level, tile.Index)
		switch {
		case want == nil && !errors.Is(err, tlog.ErrNotFound):
			t.Errorf("ReadTile(%d, %d) of a rejected batch = %d bytes, %v, want ErrNotFound", tile.Level, tile.Index, len(got), err)
		case want != nil && (err != nil || !bytes.Equal(got, want)):
			t.Errorf("ReadTile(%d, %d) after a rejected batch = %d bytes, %v, want the %d bytes before", tile.Level, tile.Index, len(got), err, len(want))
		}
	}
}

func equalRecord(a, b tlog.Record) bool {
	return a.ID == b.ID && a.Path == b.Path && a.Version == b.Version && bytes.Equal(a.Text, b.Text)
}

func equalRecords(a, b []tlog.Record) bool { return slices.EqualFunc(a, b, equalRecord) }

func equalHead(a, b tlog.Head) bool {
	return a.Size == b.Size && a.Hash == b.Hash && bytes.Equal(a.Note, b.Note)
}

func equalHeads(a, b []tlog.Head) bool { return slices.EqualFunc(a, b, equalHead) }

func ids(list []tlog.Record) []int64 {
	var x []int64
	for _, r := range list {
		x = append(x, r.ID)
	}
	return x
}

func sizes(list []tlog.Head) []int64 {
	var x []int64
	for _, h := range list {
		x = append(x, h.Size)
	}
	return x
}

// testAppendLocked checks AppendLocked: prepare gets the stored head; its
// batch is committed as by Append; its error is returned and nothing is
// written.
func testAppendLocked(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	var got []tlog.Head
	appendLocked := func(keys ...string) (*tlog.Batch, error) {
		var b *tlog.Batch
		err := s.AppendLocked(ctx, func(h tlog.Head) (*tlog.Batch, error) {
			got = append(got, h)
			b = m.clone().batch(t, keys...)
			return b, nil
		})
		return b, err
	}
	if _, err := appendLocked(keys("example.com/a", 3)...); err != nil {
		t.Fatalf("AppendLocked(3 records on an empty store) = %v", err)
	}
	m.batch(t, keys("example.com/a", 3)...)
	if len(got) != 1 || !equalHead(got[0], tlog.Head{}) {
		t.Errorf("prepare got heads %v, want one zero Head", sizes(got))
	}
	checkState(t, s, m)

	got = nil
	if _, err := appendLocked(keys("example.com/b", 2)...); err != nil {
		t.Fatalf("AppendLocked(2 records at 3) = %v", err)
	}
	want := m.head(t)
	m.batch(t, keys("example.com/b", 2)...)
	if len(got) != 1 || !equalHead(got[0], want) {
		t.Errorf("prepare got heads %v, want the stored head of size 3", sizes(got))
	}
	checkState(t, s, m)

	// prepare fails: its error, nothing written.
	errPrepare := errors.New("prepare failed")
	err := s.AppendLocked(ctx, func(tlog.Head) (*tlog.Batch, error) { return nil, errPrepare })
	if !errors.Is(err, errPrepare) {
		t.Errorf("AppendLocked(prepare fails) = %v, want prepare's error", err)
	}
	checkState(t, s, m)

	// A batch not computed from the head prepare got.
	stale := newModel(t)
	err = s.AppendLocked(ctx, func(tlog.Head) (*tlog.Batch, error) { return stale.batch(t, "example.com/c@v1.0.0"), nil })
	if !errors.Is(err, tlog.ErrConflict) {
		t.Errorf("AppendLocked(batch at 0, store at 5) = %v, want ErrConflict", err)
	}
	// Records already stored.
	b, err := appendLocked("example.com/d@v1.0.0", "example.com/a@v1.0.1")
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) || !slices.Equal(dup.Keys, []string{"example.com/a@v1.0.1"}) {
		t.Errorf("AppendLocked(batch with a stored record) = %v, want *DuplicateError for example.com/a@v1.0.1", err)
	}
	checkNotWritten(t, s, m, b)
	checkState(t, s, m)
}

// testHistory checks batches that commit several heads of the history at
// once, as an import does.
func testHistory(t *testing.T, s tlog.Store) {
	m := newModel(t)
	appendOK(t, s, merge(
		m.batch(t, keys("example.com/h1", 3)...),
		m.batch(t, "example.com/h2@v1.0.0"),
		m.batch(t, keys("example.com/h3", 300)...),
	))
	checkState(t, s, m)
	// One history head, then a batch without history.
	appendOK(t, s, merge(m.batch(t, keys("example.com/h4", 2)...), m.batch(t, keys("example.com/h5", 2)...)))
	appendOK(t, s, m.batch(t, keys("example.com/h6", 1)...))
	checkState(t, s, m)
}

// testBulkHistory checks a batch as large as an import's: thousands of
// records and a head per record (a log that signed a head for each), and
// one with a record already stored, which must be refused whole.
func testBulkHistory(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/bulk0", 10)...))
	var bs []*tlog.Batch
	for i := range 600 {
		bs = append(bs, m.batch(t, fmt.Sprintf("example.com/bulk1@v1.0.%d", i)))
	}
	bs = append(bs, m.batch(t, keys("example.com/bulk2", 2000)...))
	appendOK(t, s, merge(bs...))
	checkState(t, s, m)

	next := m.clone()
	bs = nil
	for i := range 300 {
		bs = append(bs, next.batch(t, fmt.Sprintf("example.com/bulk3@v1.0.%d", i)))
	}
	bs = append(bs, next.batch(t, "example.com/bulk4@v1.0.0", "example.com/bulk1@v1.0.599", "example.com/bulk4@v1.0.1"))
	b := merge(bs...)
	err := s.Append(ctx, b)
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) || !slices.Equal(dup.Keys, []string{"example.com/bulk1@v1.0.599"}) {
		t.Fatalf("Append(bulk batch with a stored record) = %v, want *DuplicateError for example.com/bulk1@v1.0.599", err)
	}
	checkNotWritten(t, s, m, b)
	for _, h := range b.History {
		if got, err := s.ReadHeads(ctx, h.Size, h.Size); err != nil || len(got) != 0 {
			t.Fatalf("ReadHeads(%d, %d) after a refused batch = %d heads, %v; want none", h.Size, h.Size, len(got), err)
		}
	}
}

// testInvalidHistory checks that batches with history heads out of order or
// outside the batch are refused.
func testInvalidHistory(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/ih", 3)...))
	for _, tt := range []struct {
		name   string
		modify func(b *tlog.Batch)
	}{
		{"AtOldSize", func(b *tlog.Batch) { b.History[0].Size = b.OldSize }},
		{"AtHeadSize", func(b *tlog.Batch) { b.History[1].Size = b.Head.Size }},
		{"BeyondHead", func(b *tlog.Batch) { b.History[1].Size = b.Head.Size + 1 }},
		{"Decreasing", func(b *tlog.Batch) { b.History[0], b.History[1] = b.History[1], b.History[0] }},
		{"Twice", func(b *tlog.Batch) { b.History[1] = b.History[0] }},
		{"NoNote", func(b *tlog.Batch) { b.History[1].Note = nil }},
	} {
		next := m.clone()
		b := merge(next.batch(t, "example.com/ih1@v1.0.0"), next.batch(t, "example.com/ih2@v1.0.0"), next.batch(t, "example.com/ih3@v1.0.0"))
		tt.modify(b)
		err := s.Append(ctx, b)
		var dup *tlog.DuplicateError
		if err == nil || errors.Is(err, tlog.ErrConflict) || errors.As(err, &dup) {
			t.Errorf("%s: Append(invalid history) = %v, want an error other than ErrConflict and DuplicateError", tt.name, err)
		}
		checkNotWritten(t, s, m, b)
	}
	checkState(t, s, m)
}

// bulkStore returns s as a tlog.BulkStore, or skips the test.
func bulkStore(t *testing.T, s tlog.Store) tlog.BulkStore {
	bs, ok := s.(tlog.BulkStore)
	if !ok {
		t.Skip("the store has no bulk-load mode")
	}
	return bs
}

func checkLoading(t *testing.T, bs tlog.BulkStore, want bool) {
	t.Helper()
	if got, err := bs.BulkLoading(t.Context()); err != nil || got != want {
		t.Fatalf("BulkLoading() = %v, %v, want %v", got, err, want)
	}
}

// testBulkLoad checks bulk-load mode: only on an empty store, resumable,
// and a store that holds the same log as one appended to normally after
// EndBulk.
func testBulkLoad(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	bs := bulkStore(t, s)
	checkLoading(t, bs, false)
	if err := bs.EndBulk(ctx); err != nil {
		t.Fatalf("EndBulk() outside bulk-load mode = %v, want nil", err)
	}
	if err := bs.BeginBulk(ctx); err != nil {
		t.Fatalf("BeginBulk() on an empty store = %v", err)
	}
	checkLoading(t, bs, true)
	m := newModel(t)
	appendOK(t, s, merge(m.batch(t, keys("example.com/bl1", 300)...), m.batch(t, keys("example.com/bl2", 5)...)))
	if err := bs.BeginBulk(ctx); err != nil {
		t.Fatalf("BeginBulk() again in bulk-load mode (a resumed import) = %v", err)
	}
	appendOK(t, s, m.batch(t, "example.com/bl3@v1.0.0"))
	if err := bs.EndBulk(ctx); err != nil {
		t.Fatalf("EndBulk() = %v", err)
	}
	checkLoading(t, bs, false)
	checkState(t, s, m)
	// The index is back: a record stored in bulk is a duplicate now.
	next := m.clone()
	b := next.batch(t, "example.com/bl4@v1.0.0", "example.com/bl1@v1.0.7")
	var dup *tlog.DuplicateError
	if err := s.Append(ctx, b); !errors.As(err, &dup) || !slices.Equal(dup.Keys, []string{"example.com/bl1@v1.0.7"}) {
		t.Errorf("Append(batch with a record loaded in bulk) = %v, want *DuplicateError for example.com/bl1@v1.0.7", err)
	}
	checkNotWritten(t, s, m, b)
	if err := bs.BeginBulk(ctx); err == nil {
		t.Errorf("BeginBulk() on a store of %d records = nil, want an error", m.size)
	}
	checkLoading(t, bs, false)
}

// testBulkLoadDuplicate checks that EndBulk finds a module version that
// bulk-load mode let in twice.
func testBulkLoadDuplicate(t *testing.T, s tlog.Store) {
	ctx := t.Context()
	bs := bulkStore(t, s)
	if err := bs.BeginBulk(ctx); err != nil {
		t.Fatal(err)
	}
	m := newModel(t)
	appendOK(t, s, m.batch(t, keys("example.com/bd", 3)...))
	appendOK(t, s, m.batch(t, "example.com/bd@v1.0.1"))
	err := bs.EndBulk(ctx)
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) || !slices.Equal(dup.Keys, []string{"example.com/bd@v1.0.1"}) {
		t.Errorf("EndBulk() with a record stored twice = %v, want *DuplicateError for example.com/bd@v1.0.1", err)
	}
	checkLoading(t, bs, true)
}

// A StateStore keeps small named values shared by every process of a
// server, each change a compare-and-swap: the state store that package
// sumdb/public declares, which both stores implement. (The suite declares
// it again: a store's tests cannot import the package that uses it.)
type StateStore interface {
	ReadState(ctx context.Context, name string) ([]byte, error)
	SwapState(ctx context.Context, name string, old, new []byte) error
	Close() error
}

// RunState runs the conformance suite of a StateStore, each check in a
// parallel subtest of its own. open must return a store on a new, empty
// database each time it is called; RunState closes the stores it opens.
func RunState(t *testing.T, open func(t *testing.T) StateStore) {
	runChecks(t, open, []check[StateStore]{
		{"SetReadSwap", testStateSetReadSwap},
		{"Invalid", testStateInvalid},
		{"ConcurrentSwap", testStateConcurrentSwap},
	})
}

// checkStateValue fails t unless state name holds want (nil: unset).
func checkStateValue(t *testing.T, s StateStore, name string, want []byte) {
	t.Helper()
	got, err := s.ReadState(t.Context(), name)
	if err != nil || !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Errorf("ReadState(%q) = %q, %v, want %q, nil", name, got, err, want)
	}
}

func testStateSetReadSwap(t *testing.T, s StateStore) {
	ctx := t.Context()
	const a, b = "public/sum.test/latest", "public/sum.test/fork"
	v1, v2 := []byte("go.sum database tree\n1\n"), []byte("go.sum database tree\n2\n")
	checkStateValue(t, s, a, nil)
	for _, step := range []struct {
		old, new []byte
		conflict bool
		want     []byte // the value afterwards
	}{
		{nil, nil, false, nil}, // unset, and it is
		{v2, v1, true, nil},    // from a value it does not hold
		{nil, v1, false, v1},   // set
		{nil, v2, true, v1},    // set again as if unset
		{nil, nil, true, v1},   // "it is unset", but it is set
		{v2, v1, true, v1},     // from the wrong value
		{v1, v1, false, v1},    // to the same value
		{v1, v2, false, v2},    // swap
		{v1, nil, true, v2},    // unset from the wrong value
		{v2, nil, false, nil},  // unset
		{nil, v2, false, v2},   // set again
	} {
		err := s.SwapState(ctx, a, step.old, step.new)
		switch {
		case step.conflict && !errors.Is(err, tlog.ErrConflict):
			t.Errorf("SwapState(%q, %q, %q) = %v, want ErrConflict", a, step.old, step.new, err)
		case !step.conflict && err != nil:
			t.Errorf("SwapState(%q, %q, %q) = %v, want nil", a, step.old, step.new, err)
		}
		checkStateValue(t, s, a, step.want)
	}
	// Names are independent.
	checkStateValue(t, s, b, nil)
	if err := s.SwapState(ctx, b, nil, v1); err != nil {
		t.Errorf("SwapState(%q, nil, %q) = %v, want nil", b, v1, err)
	}
	checkStateValue(t, s, a, v2)
	checkStateValue(t, s, b, v1)
	// The largest value round-trips byte for byte.
	big := bytes.Repeat([]byte{0, 0xff, '\n'}, 1<<20/3)
	big = append(big, make([]byte, 1<<20-len(big))...)
	if err := s.SwapState(ctx, b, v1, big); err != nil {
		t.Errorf("SwapState(%q, %q, 1 MiB) = %v, want nil", b, v1, err)
	}
	checkStateValue(t, s, b, big)
}

func testStateInvalid(t *testing.T, s StateStore) {
	ctx := t.Context()
	v := []byte("v")
	for _, tt := range []struct {
		desc     string
		name     string
		old, new []byte
	}{
		{"empty name", "", nil, v},
		{"long name", string(bytes.Repeat([]byte("n"), 201)), nil, v},
		{"empty new value", "n", nil, []byte{}},
		{"empty old value", "n", []byte{}, v},
		{"value over 1 MiB", "n", nil, make([]byte, 1<<20+1)},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			err := s.SwapState(ctx, tt.name, tt.old, tt.new)
			if err == nil || errors.Is(err, tlog.ErrConflict) {
				t.Errorf("SwapState(%s) = %v, want an error other than ErrConflict", tt.desc, err)
			}
			if tt.name != "" && len(tt.name) <= 200 {
				checkStateValue(t, s, tt.name, nil)
			}
		})
	}
	if _, err := s.ReadState(ctx, ""); err == nil {
		t.Errorf("ReadState(\"\") = nil error, want one")
	}
}

// testStateConcurrentSwap checks that of swaps racing from the same value,
// exactly one wins, whether from unset or from a value, as replicas of a
// server would race.
func testStateConcurrentSwap(t *testing.T, s StateStore) {
	ctx := t.Context()
	const name, n = "race", 8
	var old []byte
	for round := range 3 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = s.SwapState(ctx, name, old, fmt.Appendf(nil, "round %d writer %d", round, i))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("round %d: SwapState() by writers %d and %d both succeeded, want one", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, tlog.ErrConflict):
				t.Errorf("round %d: SwapState() by writer %d = %v, want nil or ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no SwapState() succeeded, want one", round)
		}
		old = fmt.Appendf(nil, "round %d writer %d", round, winner)
		checkStateValue(t, s, name, old)
	}
}

// A MirrorStore keeps the verified tiles and records of mirrored checksum
// databases: the mirror store that package sumdb/mirror declares, which
// both stores implement. (The suite declares it again, as StateStore.)
type MirrorStore interface {
	ReadMirrorTile(ctx context.Context, db string, level int, index int64) ([]byte, error)
	PutMirrorTile(ctx context.Context, db string, level int, index int64, data []byte) error
	ReadMirrorRecord(ctx context.Context, db, path, version string) (int64, []byte, error)
	PutMirrorRecord(ctx context.Context, db, path, version string, id int64, text []byte) error
	MirrorDatabases(ctx context.Context) ([]string, error)
	ScanMirrorTiles(ctx context.Context, db string, f func(level int, index int64, data []byte) error) error
	ScanMirrorRecords(ctx context.Context, db string, f func(id int64, text []byte) error) error
	Close() error
}

// RunMirror runs the conformance suite of a MirrorStore, each check in a
// parallel subtest of its own. open must return a store on a new, empty
// database each time it is called; RunMirror closes the stores it opens.
func RunMirror(t *testing.T, open func(t *testing.T) MirrorStore) {
	runChecks(t, open, []check[MirrorStore]{
		{"TilePutRead", testMirrorTilePutRead},
		{"TileExtend", testMirrorTileExtend},
		{"TileConflict", testMirrorTileConflict},
		{"TileInvalid", testMirrorTileInvalid},
		{"TileConcurrent", testMirrorTileConcurrent},
		{"Records", testMirrorRecords},
		{"RecordInvalid", testMirrorRecordInvalid},
		{"Databases", testMirrorDatabases},
		{"Scan", testMirrorScan},
	})
}

// mirrorHashes returns n hashes of 32 bytes, different for each seed.
func mirrorHashes(seed byte, n int) []byte {
	b := make([]byte, 32*n)
	for i := range b {
		b[i] = seed ^ byte(i*7+i/32)
	}
	return b
}

// mirrorText returns the text of a record of path@version, as the checksum
// database formats it.
func mirrorText(path, version string) []byte {
	return fmt.Appendf(nil, "%s %s h1:%044d=\n%s %s/go.mod h1:%044d=\n", path, version, len(path), path, version, len(version))
}

// mirrorDataTile returns a data tile of n records: each text followed by a
// blank line.
func mirrorDataTile(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, mirrorText("example.com/m", fmt.Sprintf("v1.0.%d", i))...)
		b = append(b, '\n')
	}
	return b
}

// checkMirrorTile fails t unless tile (level, index) of db holds want (nil:
// none).
func checkMirrorTile(t *testing.T, s MirrorStore, db string, level int, index int64, want []byte) {
	t.Helper()
	got, err := s.ReadMirrorTile(t.Context(), db, level, index)
	switch {
	case want == nil && !errors.Is(err, tlog.ErrNotFound):
		t.Errorf("ReadMirrorTile(%q, %d, %d) = %d bytes, %v, want ErrNotFound", db, level, index, len(got), err)
	case want != nil && (err != nil || !bytes.Equal(got, want)):
		t.Errorf("ReadMirrorTile(%q, %d, %d) = %d bytes %.8x..., %v, want %d bytes %.8x..., nil", db, level, index, len(got), got, err, len(want), want)
	}
}

func testMirrorTilePutRead(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const a, b = "sum.example.com", "sum.example.org"
	checkMirrorTile(t, s, a, 0, 0, nil)
	for _, tt := range []struct {
		db    string
		level int
		index int64
		data  []byte
	}{
		{a, 0, 0, mirrorHashes(1, 256)},
		{a, 0, 1, mirrorHashes(2, 3)},
		{a, 1, 0, mirrorHashes(3, 1)},
		{a, 7, 1 << 40, mirrorHashes(4, 2)},
		{a, -1, 0, mirrorDataTile(256)},
		{a, -1, 1, mirrorDataTile(1)},
		{b, 0, 0, mirrorHashes(5, 256)}, // another database, same coordinates
	} {
		if err := s.PutMirrorTile(ctx, tt.db, tt.level, tt.index, tt.data); err != nil {
			t.Errorf("PutMirrorTile(%q, %d, %d, %d bytes) = %v, want nil", tt.db, tt.level, tt.index, len(tt.data), err)
		}
		checkMirrorTile(t, s, tt.db, tt.level, tt.index, tt.data)
	}
	checkMirrorTile(t, s, a, 0, 0, mirrorHashes(1, 256))
	checkMirrorTile(t, s, b, 0, 1, nil)
	checkMirrorTile(t, s, b, -1, 0, nil)
	checkMirrorTile(t, s, a, 2, 0, nil)
}

func testMirrorTileExtend(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const db = "sum.example.com"
	for _, tt := range []struct {
		level int
		full  []byte
		cut   func(n int) []byte // the first n of 5 entries of full
	}{
		{0, mirrorHashes(9, 5), func(n int) []byte { return mirrorHashes(9, 5)[:32*n] }},
		{-1, mirrorDataTile(5), mirrorDataTile},
	} {
		for _, step := range []struct {
			put, want int // entries put, entries stored afterwards
		}{
			{2, 2}, // new
			{4, 4}, // extends
			{4, 4}, // the same again
			{1, 4}, // a prefix: no-op
			{3, 4}, // a prefix: no-op
			{5, 5}, // extends
		} {
			data := tt.cut(step.put)
			if err := s.PutMirrorTile(ctx, db, tt.level, 7, data); err != nil {
				t.Errorf("PutMirrorTile(%q, %d, 7, %d entries) = %v, want nil", db, tt.level, step.put, err)
			}
			checkMirrorTile(t, s, db, tt.level, 7, tt.cut(step.want))
		}
	}
}

func testMirrorTileConflict(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const db = "sum.example.com"
	stored := mirrorHashes(1, 4)
	if err := s.PutMirrorTile(ctx, db, 0, 0, stored); err != nil {
		t.Fatalf("PutMirrorTile(%q, 0, 0, 4 hashes) = %v, want nil", db, err)
	}
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1
		return b
	}
	data := mirrorDataTile(3)
	if err := s.PutMirrorTile(ctx, db, -1, 0, data); err != nil {
		t.Fatalf("PutMirrorTile(%q, -1, 0, 3 records) = %v, want nil", db, err)
	}
	other := mirrorText("example.com/other", "v1.0.0")
	for _, tt := range []struct {
		desc  string
		level int
		data  []byte
	}{
		{"same width, a byte changed", 0, flip(stored, 100)},
		{"shorter, a byte changed", 0, flip(stored[:64], 0)},
		{"longer, a stored byte changed", 0, flip(mirrorHashes(1, 6), 127)},
		{"another tile", 0, mirrorHashes(2, 4)},
		{"data tile, a record changed", -1, append(bytes.Clone(data[:len(data)-len(other)-1]), append(other, '\n')...)},
		{"data tile, longer, a byte changed", -1, flip(mirrorDataTile(5), 3)},
	} {
		err := s.PutMirrorTile(ctx, db, tt.level, 0, tt.data)
		if !errors.Is(err, tlog.ErrConflict) {
			t.Errorf("PutMirrorTile(%s) = %v, want ErrConflict", tt.desc, err)
		}
	}
	checkMirrorTile(t, s, db, 0, 0, stored)
	checkMirrorTile(t, s, db, -1, 0, data)
}

func testMirrorTileInvalid(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	long := string(bytes.Repeat([]byte("d"), 201))
	for _, tt := range []struct {
		desc  string
		db    string
		level int
		index int64
		data  []byte
	}{
		{"empty db", "", 0, 0, mirrorHashes(1, 1)},
		{"long db", long, 0, 0, mirrorHashes(1, 1)},
		{"db with a space", "sum example", 0, 0, mirrorHashes(1, 1)},
		{"db with a plus", "sum+1", 0, 0, mirrorHashes(1, 1)},
		{"db not UTF-8", "sum\xff", 0, 0, mirrorHashes(1, 1)},
		{"level -2", "d", -2, 0, mirrorHashes(1, 1)},
		{"level 8", "d", 8, 0, mirrorHashes(1, 1)},
		{"negative index", "d", 0, -1, mirrorHashes(1, 1)},
		{"nil hash tile", "d", 0, 0, nil},
		{"empty hash tile", "d", 0, 0, []byte{}},
		{"half a hash", "d", 0, 0, make([]byte, 16)},
		{"hash and a half", "d", 0, 0, make([]byte, 48)},
		{"257 hashes", "d", 0, 0, mirrorHashes(1, 257)},
		{"empty data tile", "d", -1, 0, []byte{}},
		{"data tile without its blank line", "d", -1, 0, mirrorDataTile(2)[:len(mirrorDataTile(2))-1]},
		{"257 records", "d", -1, 0, mirrorDataTile(257)},
		{"data tile over 1 MiB", "d", -1, 0, append(make([]byte, 1<<20), '\n', '\n')},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			err := s.PutMirrorTile(ctx, tt.db, tt.level, tt.index, tt.data)
			if err == nil || errors.Is(err, tlog.ErrConflict) {
				t.Errorf("PutMirrorTile(%s) = %v, want an error other than ErrConflict", tt.desc, err)
			}
			if _, err := s.ReadMirrorTile(ctx, tt.db, tt.level, tt.index); err == nil {
				t.Errorf("ReadMirrorTile(%s) = nil error, want one", tt.desc)
			}
		})
	}
	list, err := s.MirrorDatabases(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("MirrorDatabases() after invalid puts = %q, %v, want none", list, err)
	}
}

// testMirrorTileConcurrent checks that puts of one tile at different
// widths, racing as requests of several servers would, leave the widest.
func testMirrorTileConcurrent(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const db, n = "sum.example.com", 12
	for _, tt := range []struct {
		level int
		cut   func(n int) []byte
	}{
		{0, func(n int) []byte { return mirrorHashes(3, 256)[:32*n] }},
		{-1, mirrorDataTile},
	} {
		for round := range 3 {
			index := int64(round)
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				// Widths 1..n, the widest in the middle of the race.
				w := (i*5)%n + 1
				wg.Go(func() { errs[i] = s.PutMirrorTile(ctx, db, tt.level, index, tt.cut(w)) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("level %d round %d: PutMirrorTile() #%d = %v, want nil", tt.level, round, i, err)
				}
			}
			checkMirrorTile(t, s, db, tt.level, index, tt.cut(n))
		}
	}
}

func testMirrorRecords(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const a, b = "sum.example.com", "sum.example.org"
	const path, version = "example.com/m", "v1.2.3"
	text := mirrorText(path, version)
	checkRecord := func(db string, wantID int64, wantText []byte) {
		t.Helper()
		id, got, err := s.ReadMirrorRecord(ctx, db, path, version)
		switch {
		case wantText == nil && !errors.Is(err, tlog.ErrNotFound):
			t.Errorf("ReadMirrorRecord(%q, %s@%s) = %d, %q, %v, want ErrNotFound", db, path, version, id, got, err)
		case wantText != nil && (err != nil || id != wantID || !bytes.Equal(got, wantText)):
			t.Errorf("ReadMirrorRecord(%q, %s@%s) = %d, %q, %v, want %d, %q, nil", db, path, version, id, got, err, wantID, wantText)
		}
	}
	checkRecord(a, 0, nil)
	for _, tt := range []struct {
		desc     string
		db       string
		id       int64
		text     []byte
		conflict bool
	}{
		{"new", a, 42, text, false},
		{"again", a, 42, text, false},
		{"another id", a, 43, text, true},
		{"another text", a, 42, bytes.Replace(text, []byte("h1:0"), []byte("h1:1"), 1), true},
		{"another database", b, 7, text, false},
	} {
		err := s.PutMirrorRecord(ctx, tt.db, path, version, tt.id, tt.text)
		switch {
		case tt.conflict && !errors.Is(err, tlog.ErrConflict):
			t.Errorf("PutMirrorRecord(%s) = %v, want ErrConflict", tt.desc, err)
		case !tt.conflict && err != nil:
			t.Errorf("PutMirrorRecord(%s) = %v, want nil", tt.desc, err)
		}
	}
	checkRecord(a, 42, text)
	checkRecord(b, 7, text)
	// Lookups are of the exact path@version.
	for _, pv := range [][2]string{{"example.com/M", version}, {path, "v1.2.4"}, {path + "/v2", version}} {
		if id, got, err := s.ReadMirrorRecord(ctx, a, pv[0], pv[1]); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("ReadMirrorRecord(%q, %s@%s) = %d, %q, %v, want ErrNotFound", a, pv[0], pv[1], id, got, err)
		}
	}
}

func testMirrorRecordInvalid(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const path, version = "example.com/m", "v1.0.0"
	text := mirrorText(path, version)
	for _, tt := range []struct {
		desc          string
		db            string
		path, version string
		id            int64
		text          []byte
	}{
		{"empty db", "", path, version, 0, text},
		{"long db", string(bytes.Repeat([]byte("d"), 201)), path, version, 0, text},
		{"empty path", "d", "", version, 0, text},
		{"empty version", "d", path, "", 0, text},
		{"negative id", "d", path, version, -1, text},
		{"nil text", "d", path, version, 0, nil},
		{"text over 64 KiB", "d", path, version, 0, append(bytes.Clone(text), make([]byte, 64<<10)...)},
		{"text of another version", "d", path, "v1.0.1", 0, text},
		{"text not a go.sum line", "d", path, version, 0, []byte("hello\n")},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			err := s.PutMirrorRecord(ctx, tt.db, tt.path, tt.version, tt.id, tt.text)
			if err == nil || errors.Is(err, tlog.ErrConflict) {
				t.Errorf("PutMirrorRecord(%s) = %v, want an error other than ErrConflict", tt.desc, err)
			}
		})
	}
	if _, _, err := s.ReadMirrorRecord(ctx, "", path, version); err == nil || errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("ReadMirrorRecord(\"\", %s@%s) = %v, want an error other than ErrNotFound", path, version, err)
	}
	list, err := s.MirrorDatabases(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("MirrorDatabases() after invalid puts = %q, %v, want none", list, err)
	}
}

func testMirrorDatabases(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	list, err := s.MirrorDatabases(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("MirrorDatabases() of an empty store = %q, %v, want none", list, err)
	}
	// Names in byte order, whatever the database's collation: "Z" < "a".
	for _, db := range []string{"sum.b", "sum.a", "Z.sum", "sum.b"} {
		if err := s.PutMirrorTile(ctx, db, 0, 0, mirrorHashes(1, 1)); err != nil {
			t.Fatalf("PutMirrorTile(%q) = %v", db, err)
		}
	}
	for _, db := range []string{"sum.c", "sum.a"} {
		if err := s.PutMirrorRecord(ctx, db, "example.com/m", "v1.0.0", 0, mirrorText("example.com/m", "v1.0.0")); err != nil {
			t.Fatalf("PutMirrorRecord(%q) = %v", db, err)
		}
	}
	want := []string{"Z.sum", "sum.a", "sum.b", "sum.c"}
	if list, err := s.MirrorDatabases(ctx); err != nil || !slices.Equal(list, want) {
		t.Errorf("MirrorDatabases() = %q, %v, want %q, nil", list, err, want)
	}
}

func testMirrorScan(t *testing.T, s MirrorStore) {
	ctx := t.Context()
	const a, b = "sum.a", "sum.b"
	type tile struct {
		level int
		index int64
		data  string
	}
	tiles := []tile{{-1, 0, string(mirrorDataTile(2))}, {0, 0, string(mirrorHashes(1, 256))}, {0, 3, string(mirrorHashes(2, 5))}, {1, 0, string(mirrorHashes(3, 1))}}
	for _, i := range []int{2, 0, 3, 1} { // out of order
		tt := tiles[i]
		if err := s.PutMirrorTile(ctx, a, tt.level, tt.index, []byte(tt.data)); err != nil {
			t.Fatalf("PutMirrorTile(%q, %d, %d) = %v", a, tt.level, tt.index, err)
		}
	}
	if err := s.PutMirrorTile(ctx, b, 0, 1, mirrorHashes(4, 1)); err != nil {
		t.Fatalf("PutMirrorTile(%q, 0, 1) = %v", b, err)
	}
	texts := map[int64]string{}
	for i := range 5 {
		v := fmt.Sprintf("v1.0.%d", i)
		texts[int64(10+i)] = string(mirrorText("example.com/m", v))
		if err := s.PutMirrorRecord(ctx, a, "example.com/m", v, int64(10+i), mirrorText("example.com/m", v)); err != nil {
			t.Fatalf("PutMirrorRecord(%q, %s) = %v", a, v, err)
		}
	}
	if err := s.PutMirrorRecord(ctx, b, "example.com/m", "v1.0.0", 1, mirrorText("example.com/m", "v1.0.0")); err != nil {
		t.Fatalf("PutMirrorRecord(%q) = %v", b, err)
	}
	var got []tile
	err := s.ScanMirrorTiles(ctx, a, func(level int, index int64, data []byte) error {
		got = append(got, tile{level, index, string(data)})
		return nil
	})
	if err != nil || !slices.Equal(got, tiles) {
		t.Errorf("ScanMirrorTiles(%q) = %d tiles, %v, want %d in order of level and index", a, len(got), err, len(tiles))
	}
	gotTexts := map[int64]string{}
	err = s.ScanMirrorRecords(ctx, a, func(id int64, text []byte) error {
		gotTexts[id] = string(text)
		return nil
	})
	if err != nil || !maps.Equal(gotTexts, texts) {
		t.Errorf("ScanMirrorRecords(%q) = %d records, %v, want %d", a, len(gotTexts), err, len(texts))
	}
	stop := errors.New("stop")
	n := 0
	err = s.ScanMirrorRecords(ctx, a, func(int64, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanMirrorRecords(%q) with f failing = %v after %d calls, want f's error after 1", a, err, n)
	}
	if err := s.ScanMirrorTiles(ctx, "", func(int, int64, []byte) error { return nil }); err == nil {
		t.Errorf("ScanMirrorTiles(\"\") = nil, want an error")
	}
}

// A CosignatureStore keeps the verified cosignatures of the log's heads by
// witnesses: the store that package sumdb/witness declares, which both
// stores implement. (The suite declares it again, as StateStore.)
type CosignatureStore interface {
	PutCosignature(ctx context.Context, size int64, witness string, line []byte) error
	ReadCosignatures(ctx context.Context, size int64) (map[string][]byte, error)
	Close() error
}

// RunCosignature runs the conformance suite of a CosignatureStore, each
// check in a parallel subtest of its own. open must return a store on a
// new, empty database each time it is called; RunCosignature closes the
// stores it opens.
func RunCosignature(t *testing.T, open func(t *testing.T) CosignatureStore) {
	runChecks(t, open, []check[CosignatureStore]{
		{"PutRead", testCosignaturePutRead},
		{"Conflict", testCosignatureConflict},
		{"Invalid", testCosignatureInvalid},
		{"Concurrent", testCosignatureConcurrent},
	})
}

// cosignatureLine returns a signature line of witness, different for each
// seed.
func cosignatureLine(witness string, seed byte) []byte {
	sig := bytes.Repeat([]byte{seed}, 4+8+64) // key hash, timestamp, signature
	return []byte("— " + witness + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// checkCosignatures fails t unless the cosignatures of size are want.
func checkCosignatures(t *testing.T, s CosignatureStore, size int64, want map[string][]byte) {
	t.Helper()
	got, err := s.ReadCosignatures(t.Context(), size)
	if err != nil || len(got) != len(want) {
		t.Errorf("ReadCosignatures(%d) = %d lines, %v, want %d lines, nil", size, len(got), err, len(want))
		return
	}
	for w, line := range want {
		if !bytes.Equal(got[w], line) {
			t.Errorf("ReadCosignatures(%d)[%q] = %q, want %q", size, w, got[w], line)
		}
	}
}

func testCosignaturePutRead(t *testing.T, s CosignatureStore) {
	ctx := t.Context()
	checkCosignatures(t, s, 1, map[string][]byte{})
	a1, b1, a2 := cosignatureLine("witness.example.com", 1), cosignatureLine("w2", 2), cosignatureLine("witness.example.com", 3)
	for _, tt := range []struct {
		size    int64
		witness string
		line    []byte
	}{
		{1, "witness.example.com", a1},
		{1, "w2", b1},
		{1, "w2", b1}, // again: a no-op
		{1 << 40, "witness.example.com", a2},
	} {
		if err := s.PutCosignature(ctx, tt.size, tt.witness, tt.line); err != nil {
			t.Errorf("PutCosignature(%d, %q, %q) = %v, want nil", tt.size, tt.witness, tt.line, err)
		}
	}
	checkCosignatures(t, s, 1, map[string][]byte{"witness.example.com": a1, "w2": b1})
	checkCosignatures(t, s, 1<<40, map[string][]byte{"witness.example.com": a2})
	checkCosignatures(t, s, 2, map[string][]byte{})
}

func testCosignatureConflict(t *testing.T, s CosignatureStore) {
	ctx := t.Context()
	const w = "witness.example.com"
	first := cosignatureLine(w, 1)
	if err := s.PutCosignature(ctx, 5, w, first); err != nil {
		t.Fatalf("PutCosignature(5, %q, line 1) = %v, want nil", w, err)
	}
	if err := s.PutCosignature(ctx, 5, w, cosignatureLine(w, 2)); !errors.Is(err, tlog.ErrConflict) {
		t.Errorf("PutCosignature(5, %q, line 2) = %v, want ErrConflict", w, err)
	}
	checkCosignatures(t, s, 5, map[string][]byte{w: first})
}

func testCosignatureInvalid(t *testing.T, s CosignatureStore) {
	ctx := t.Context()
	const w = "witness.example.com"
	good := cosignatureLine(w, 1)
	long := string(bytes.Repeat([]byte("w"), 201))
	for _, tt := range []struct {
		desc    string
		size    int64
		witness string
		line    []byte
	}{
		{"size 0", 0, w, good},
		{"negative size", -1, w, good},
		{"empty witness", 1, "", cosignatureLine("", 1)},
		{"long witness", 1, long, cosignatureLine(long, 1)},
		{"witness with a space", 1, "a b", cosignatureLine("a b", 1)},
		{"witness with a plus", 1, "a+b", cosignatureLine("a+b", 1)},
		{"invalid UTF-8", 1, "a\xff", cosignatureLine("a\xff", 1)},
		{"nil line", 1, w, nil},
		{"another witness's line", 1, w, cosignatureLine("w2", 1)},
		{"no newline", 1, w, good[:len(good)-1]},
		{"two lines", 1, w, append(bytes.Clone(good), good...)},
		{"no dash", 1, w, good[len("— "):]},
		{"not base64", 1, w, []byte("— " + w + " !!!!\n")},
		{"short signature", 1, w, []byte("— " + w + " AAAA\n")},
		{"newline in base64", 1, w, []byte("— " + w + " AAAA\nAAAA\n")},
		{"empty line", 1, w, []byte{}},
		{"over 1 KiB", 1, w, []byte("— " + w + " " + base64.StdEncoding.EncodeToString(make([]byte, 800)) + "\n")},
	} {
		if err := s.PutCosignature(ctx, tt.size, tt.witness, tt.line); err == nil || errors.Is(err, tlog.ErrConflict) {
			t.Errorf("PutCosignature(%s) = %v, want an error other than ErrConflict", tt.desc, err)
		}
	}
	checkCosignatures(t, s, 1, map[string][]byte{})
	for _, size := range []int64{0, -1} {
		if got, err := s.ReadCosignatures(ctx, size); err == nil {
			t.Errorf("ReadCosignatures(%d) = %d lines, nil, want an error", size, len(got))
		}
	}
}

// testCosignatureConcurrent checks that of different cosignatures of one
// head by one witness, racing as replicas of a server would, exactly one
// is stored and the others fail with ErrConflict.
func testCosignatureConcurrent(t *testing.T, s CosignatureStore) {
	const w, n = "witness.example.com", 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.PutCosignature(t.Context(), 7, w, cosignatureLine(w, byte(i))) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("PutCosignature #%d and #%d both = nil, want one to fail with ErrConflict", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, tlog.ErrConflict):
			t.Errorf("PutCosignature #%d = %v, want nil or ErrConflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("every PutCosignature failed, want one to succeed")
	}
	checkCosignatures(t, s, 7, map[string][]byte{w: cosignatureLine(w, byte(won))})
}
