package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

// An IndexStore keeps the index of a log's records by module path and the
// times its heads were first seen (migration 0006_record_index.sql).
type IndexStore interface {
	IndexedUpTo(ctx context.Context) (int64, error)
	IndexRecords(ctx context.Context, recs []tlog.Record) error
	PutHeadTime(ctx context.Context, size int64, t time.Time) error
	SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error)
	RecentRecords(ctx context.Context, beforeID int64, limit int) ([]tlog.IndexEntry, error)
	NewestRecords(ctx context.Context, prefix string, exact bool, limit int) ([]tlog.IndexEntry, error)
	Close() error
}

// Bounds of an IndexStore: the records IndexRecords takes at once, the
// entries a search returns at once, and the records a prefix search may
// match.
const (
	maxIndexBatch    = 1000
	maxSearchResults = 1000
	maxPrefixMatches = 10000
)

// RunIndex runs the conformance suite of an IndexStore, each check in a
// parallel subtest of its own. open must return a store on a new, empty
// database each time it is called; RunIndex closes the stores it opens.
func RunIndex(t *testing.T, open func(t *testing.T) IndexStore) {
	runChecks(t, open, []check[IndexStore]{
		{"Empty", testIndexEmpty},
		{"Search", testIndexSearch},
		{"Paging", testIndexPaging},
		{"Cap", testIndexCap},
		{"Broad", testIndexBroad},
		{"Times", testIndexTimes},
		{"Again", testIndexAgain},
		{"Conflict", testIndexConflict},
		{"Invalid", testIndexInvalid},
		{"Concurrent", testIndexConcurrent},
	})
}

// indexPaths are the paths of the records testIndexSearch indexes, record
// i of indexPaths[i]: '%' and '_' (LIKE's wildcards), paths that share a
// prefix without a slash, and multi-byte UTF-8 ("¿" is C2 BF: its last byte
// incremented would not be UTF-8; "À" is C3 80, just above it).
var indexPaths = []string{
	"example.com/org",      // 0
	"example.com/org/a",    // 1
	"example.com/org/b",    // 2
	"example.com/orgx/c",   // 3
	"example.com/a%b",      // 4
	"example.com/a_b",      // 5
	"example.com/axb",      // 6
	"example.com/ü/x",      // 7
	"example.com/üz",       // 8
	"example.com/v",        // 9
	"example.com/¿/a",      // 10
	"example.com/À",        // 11
	"example.com/org/a",    // 12: a second version
	"example.com/org/a/v2", // 13
	"example.net/org/a",    // 14
}

// indexRecords returns records with ids [start, start+len(paths)) of paths,
// at version v1.0.<id>.
func indexRecords(start int64, paths ...string) []tlog.Record {
	recs := make([]tlog.Record, len(paths))
	for i, p := range paths {
		id := start + int64(i)
		recs[i] = tlog.Record{ID: id, Path: p, Version: fmt.Sprintf("v1.0.%d", id)}
	}
	return recs
}

// mustIndex indexes recs, failing t on an error.
func mustIndex(t *testing.T, s IndexStore, recs []tlog.Record) {
	t.Helper()
	if err := s.IndexRecords(t.Context(), recs); err != nil {
		t.Fatalf("IndexRecords(%d records from %d) = %v, want nil", len(recs), recs[0].ID, err)
	}
}

// entryIDs returns the ids of list, checking that each entry has the path
// and version indexRecords gives it.
func entryIDs(t *testing.T, paths []string, list []tlog.IndexEntry) []int64 {
	t.Helper()
	ids := []int64{}
	for _, e := range list {
		if e.ID < 0 || e.ID >= int64(len(paths)) || e.Path != paths[e.ID] || e.Version != fmt.Sprintf("v1.0.%d", e.ID) {
			t.Errorf("entry %d is %s@%s, want the path and version it was indexed with", e.ID, e.Path, e.Version)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func testIndexEmpty(t *testing.T, s IndexStore) {
	ctx := t.Context()
	if n, err := s.IndexedUpTo(ctx); n != 0 || err != nil {
		t.Errorf("IndexedUpTo() = %d, %v, want 0, nil", n, err)
	}
	if list, err := s.SearchRecords(ctx, "example.com/", false, -1, 10); len(list) != 0 || err != nil {
		t.Errorf("SearchRecords(example.com/) = %v, %v, want none, nil", list, err)
	}
	if list, err := s.RecentRecords(ctx, 0, 10); len(list) != 0 || err != nil {
		t.Errorf("RecentRecords(0, 10) = %v, %v, want none, nil", list, err)
	}
}

func testIndexSearch(t *testing.T, s IndexStore) {
	ctx := t.Context()
	mustIndex(t, s, indexRecords(0, indexPaths...))
	if n, err := s.IndexedUpTo(ctx); n != int64(len(indexPaths)) || err != nil {
		t.Errorf("IndexedUpTo() = %d, %v, want %d, nil", n, err, len(indexPaths))
	}
	for _, tt := range []struct {
		prefix string
		exact  bool
		want   []int64
	}{
		{"example.com/org", true, []int64{0}},
		{"example.com/org/a", true, []int64{1, 12}},
		{"example.com/org/", true, []int64{}},
		{"example.com/org/", false, []int64{1, 2, 12, 13}},
		{"example.com/org", false, []int64{0, 1, 2, 3, 12, 13}},
		{"example.com/org/a", false, []int64{1, 12, 13}},
		{"example.com/a%", false, []int64{4}},
		{"example.com/a_", false, []int64{5}},
		{"example.com/a%b", true, []int64{4}},
		{"example.com/a_b", true, []int64{5}},
		{"example.com/ü", false, []int64{7, 8}},
		{"example.com/ü/", false, []int64{7}},
		{"example.com/üz", true, []int64{8}},
		{"example.com/¿", false, []int64{10}},
		{"example.com/À", false, []int64{11}},
		{"example.", false, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
		{"example.net/", false, []int64{14}},
		{"example.com/Org", false, []int64{}}, // paths are case-sensitive
		{"example.org", false, []int64{}},
		{"\U0010FFFF", false, []int64{}}, // no upper bound
	} {
		list, err := s.SearchRecords(ctx, tt.prefix, tt.exact, -1, 100)
		if err != nil {
			t.Errorf("SearchRecords(%q, %v, -1, 100) = %v, want nil", tt.prefix, tt.exact, err)
			continue
		}
		if got := entryIDs(t, indexPaths, list); !slices.Equal(got, tt.want) {
			t.Errorf("SearchRecords(%q, %v, -1, 100) = ids %v, want %v", tt.prefix, tt.exact, got, tt.want)
		}
		newest, err := s.NewestRecords(ctx, tt.prefix, tt.exact, 2)
		want := slices.Clone(tt.want)
		slices.Reverse(want)
		want = want[:min(2, len(want))]
		if got := entryIDs(t, indexPaths, newest); err != nil || !slices.Equal(got, want) {
			t.Errorf("NewestRecords(%q, %v, 2) = ids %v, %v, want %v, nil", tt.prefix, tt.exact, got, err, want)
		}
	}
	list, err := s.RecentRecords(ctx, 0, 3)
	if got := entryIDs(t, indexPaths, list); err != nil || !slices.Equal(got, []int64{14, 13, 12}) {
		t.Errorf("RecentRecords(0, 3) = ids %v, %v, want [14 13 12], nil", got, err)
	}
}

func testIndexPaging(t *testing.T, s IndexStore) {
	ctx := t.Context()
	paths := make([]string, 50)
	for i := range paths {
		paths[i] = fmt.Sprintf("example.com/m%d", i%3) // m0 at 0, 3, 6, ...
	}
	mustIndex(t, s, indexRecords(0, paths...))
	var got []int64
	for after := int64(-1); ; {
		list, err := s.SearchRecords(ctx, "example.com/m0", true, after, 4)
		if err != nil || len(list) > 4 {
			t.Fatalf("SearchRecords(m0, true, %d, 4) = %d entries, %v, want at most 4, nil", after, len(list), err)
		}
		if len(list) == 0 {
			break
		}
		got = append(got, entryIDs(t, paths, list)...)
		after = list[len(list)-1].ID
	}
	var want []int64
	for i := int64(0); i < 50; i += 3 {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Errorf("SearchRecords(m0) paged by 4 = ids %v, want %v", got, want)
	}
	got = nil
	for before := int64(0); ; {
		list, err := s.RecentRecords(ctx, before, 7)
		if err != nil || len(list) > 7 {
			t.Fatalf("RecentRecords(%d, 7) = %d entries, %v, want at most 7, nil", before, len(list), err)
		}
		if len(list) == 0 {
			break
		}
		got = append(got, entryIDs(t, paths, list)...)
		before = list[len(list)-1].ID
		if before == 0 {
			break // 0 would mean from the newest again
		}
	}
	want = nil
	for i := int64(49); i >= 0; i-- {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Errorf("RecentRecords paged by 7 = ids %v, want %v", got, want)
	}
	list, err := s.SearchRecords(ctx, "example.com/m", false, 45, 100)
	if got := entryIDs(t, paths, list); err != nil || !slices.Equal(got, []int64{46, 47, 48, 49}) {
		t.Errorf("SearchRecords(example.com/m, false, 45, 100) = ids %v, %v, want [46 47 48 49], nil", got, err)
	}
}

func testIndexCap(t *testing.T, s IndexStore) {
	ctx := t.Context()
	paths := make([]string, maxSearchResults+5)
	for i := range paths {
		paths[i] = "example.com/m"
	}
	mustIndex(t, s, indexRecords(0, paths[:maxIndexBatch]...))
	mustIndex(t, s, indexRecords(maxIndexBatch, paths[maxIndexBatch:]...))
	if list, err := s.SearchRecords(ctx, "example.com/m", true, -1, 1<<30); len(list) != maxSearchResults || err != nil {
		t.Errorf("SearchRecords(example.com/m, true, -1, 1<<30) = %d entries, %v, want %d, nil", len(list), err, maxSearchResults)
	}
	if list, err := s.RecentRecords(ctx, 0, 1<<30); len(list) != maxSearchResults || err != nil {
		t.Errorf("RecentRecords(0, 1<<30) = %d entries, %v, want %d, nil", len(list), err, maxSearchResults)
	}
}

// testIndexBroad checks that a prefix search matching more than
// maxPrefixMatches records is refused with tlog.ErrTooBroad, and that an
// exact search or a narrower prefix is answered.
func testIndexBroad(t *testing.T, s IndexStore) {
	ctx := t.Context()
	for start := int64(0); start <= maxPrefixMatches; start += maxIndexBatch {
		var paths []string
		for id := start; id < min(start+maxIndexBatch, maxPrefixMatches+2); id++ {
			paths = append(paths, "example.com/b/m")
		}
		if start+int64(len(paths)) == maxPrefixMatches+2 {
			paths[len(paths)-1] = "example.com/c/m" // record maxPrefixMatches+1
		}
		mustIndex(t, s, indexRecords(start, paths...))
	}
	for _, prefix := range []string{"example.com/", "example.com/b/m"} {
		if list, err := s.SearchRecords(ctx, prefix, false, -1, 10); !errors.Is(err, tlog.ErrTooBroad) {
			t.Errorf("SearchRecords(%q, false, -1, 10) over %d matches = %d entries, %v, want ErrTooBroad", prefix, maxPrefixMatches+1, len(list), err)
		}
		if list, err := s.NewestRecords(ctx, prefix, false, 10); !errors.Is(err, tlog.ErrTooBroad) {
			t.Errorf("NewestRecords(%q, false, 10) over %d matches = %d entries, %v, want ErrTooBroad", prefix, maxPrefixMatches+1, len(list), err)
		}
	}
	if list, err := s.NewestRecords(ctx, "example.com/b/m", true, 2); err != nil || len(list) != 2 || list[0].ID != maxPrefixMatches || list[1].ID != maxPrefixMatches-1 {
		t.Errorf("NewestRecords(example.com/b/m, true, 2) = %v, %v, want records %d and %d", list, err, maxPrefixMatches, maxPrefixMatches-1)
	}
	if list, err := s.SearchRecords(ctx, "example.com/b/m", true, maxPrefixMatches-1, 10); err != nil || len(list) != 1 || list[0].ID != maxPrefixMatches {
		t.Errorf("SearchRecords(example.com/b/m, true, %d, 10) = %v, %v, want record %d", maxPrefixMatches-1, list, err, maxPrefixMatches)
	}
	if list, err := s.NewestRecords(ctx, "example.com/c/", false, 10); err != nil || len(list) != 1 || list[0].ID != maxPrefixMatches+1 {
		t.Errorf("NewestRecords(example.com/c/, false, 10) = %v, %v, want record %d", list, err, maxPrefixMatches+1)
	}
}

func testIndexTimes(t *testing.T, s IndexStore) {
	ctx := t.Context()
	paths := slices.Repeat([]string{"example.com/t"}, 12)
	mustIndex(t, s, indexRecords(0, paths...))
	t1 := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	t2 := t1.Add(time.Hour)
	t3 := t1.Add(2 * time.Hour).In(time.FixedZone("X", 3600))
	for _, p := range []struct {
		size int64
		t    time.Time
	}{
		{3, t1},
		{3, t2}, // the first time wins
		{6, time.Time{}},
		{9, t3},
		{9, t1},
	} {
		if err := s.PutHeadTime(ctx, p.size, p.t); err != nil {
			t.Errorf("PutHeadTime(%d, %v) = %v, want nil", p.size, p.t, err)
		}
	}
	want := []time.Time{t1, t1, t1, {}, {}, {}, t3, t3, t3, {}, {}, {}}
	list, err := s.SearchRecords(ctx, "example.com/t", true, -1, 100)
	if err != nil || len(list) != len(want) {
		t.Fatalf("SearchRecords(example.com/t) = %d entries, %v, want %d, nil", len(list), err, len(want))
	}
	for i, e := range list {
		if !e.Time.Equal(want[i]) || e.Time.IsZero() != want[i].IsZero() {
			t.Errorf("SearchRecords(example.com/t)[%d].Time = %v, want %v", i, e.Time, want[i])
		}
	}
	recent, err := s.RecentRecords(ctx, 3, 1)
	if err != nil || len(recent) != 1 || recent[0].ID != 2 || !recent[0].Time.Equal(t1) {
		t.Errorf("RecentRecords(3, 1) = %v, %v, want record 2 at %v", recent, err, t1)
	}
}

func testIndexAgain(t *testing.T, s IndexStore) {
	ctx := t.Context()
	paths := []string{"example.com/a", "example.com/b", "example.com/c", "example.com/d"}
	mustIndex(t, s, indexRecords(0, paths[:3]...))
	mustIndex(t, s, indexRecords(0, paths[:3]...)) // a no-op
	mustIndex(t, s, indexRecords(1, paths[1:]...)) // overlaps, adds d
	if n, err := s.IndexedUpTo(ctx); n != 4 || err != nil {
		t.Errorf("IndexedUpTo() = %d, %v, want 4, nil", n, err)
	}
	list, err := s.RecentRecords(ctx, 0, 10)
	if got := entryIDs(t, paths, list); err != nil || !slices.Equal(got, []int64{3, 2, 1, 0}) {
		t.Errorf("RecentRecords(0, 10) = ids %v, %v, want [3 2 1 0], nil", got, err)
	}
}

func testIndexConflict(t *testing.T, s IndexStore) {
	ctx := t.Context()
	mustIndex(t, s, indexRecords(0, "example.com/a", "example.com/b"))
	// Record 1 indexed as another path: nothing of the batch is kept.
	err := s.IndexRecords(ctx, indexRecords(1, "example.com/other", "example.com/c"))
	if !errors.Is(err, tlog.ErrConflict) {
		t.Errorf("IndexRecords(1: other, 2: c) = %v, want ErrConflict", err)
	}
	changed := indexRecords(0, "example.com/a")
	changed[0].Version = "v2.0.0"
	if err := s.IndexRecords(ctx, changed); !errors.Is(err, tlog.ErrConflict) {
		t.Errorf("IndexRecords(0: a@v2.0.0) = %v, want ErrConflict", err)
	}
	// A gap: record 2 is not indexed.
	if err := s.IndexRecords(ctx, indexRecords(3, "example.com/d")); !errors.Is(err, tlog.ErrConflict) {
		t.Errorf("IndexRecords(3: d) with records up to 2 indexed = %v, want ErrConflict", err)
	}
	if n, err := s.IndexedUpTo(ctx); n != 2 || err != nil {
		t.Errorf("IndexedUpTo() = %d, %v, want 2, nil", n, err)
	}
	if list, err := s.SearchRecords(ctx, "example.com/c", true, -1, 10); len(list) != 0 || err != nil {
		t.Errorf("SearchRecords(example.com/c) after a failed batch = %v, %v, want none, nil", list, err)
	}
}

func testIndexInvalid(t *testing.T, s IndexStore) {
	ctx := t.Context()
	gap := indexRecords(0, "example.com/a", "example.com/b")
	gap[1].ID = 2
	for _, tt := range []struct {
		desc string
		recs []tlog.Record
	}{
		{"ids not consecutive", gap},
		{"negative id", indexRecords(-1, "example.com/a")},
		{"empty path", indexRecords(0, "")},
		{"empty version", []tlog.Record{{ID: 0, Path: "example.com/a"}}},
		{"space in path", indexRecords(0, "example.com/a b")},
		{"NUL in path", indexRecords(0, "example.com/a\x00")},
		{"invalid UTF-8", indexRecords(0, "example.com/\xff")},
		{"too many", indexRecords(0, slices.Repeat([]string{"example.com/a"}, maxIndexBatch+1)...)},
	} {
		if err := s.IndexRecords(ctx, tt.recs); err == nil {
			t.Errorf("IndexRecords(%s) = nil, want an error", tt.desc)
		}
	}
	if err := s.IndexRecords(ctx, nil); err != nil {
		t.Errorf("IndexRecords(nil) = %v, want nil", err)
	}
	if n, err := s.IndexedUpTo(ctx); n != 0 || err != nil {
		t.Errorf("IndexedUpTo() after invalid batches = %d, %v, want 0, nil", n, err)
	}
	for _, tt := range []struct {
		prefix string
		limit  int
	}{
		{"", 10},
		{"example.com/\xff", 10},
		{"example.com/\x00", 10},
		{string(make([]byte, 4097)), 10},
		{"example.com/", 0},
		{"example.com/", -1},
	} {
		if _, err := s.SearchRecords(ctx, tt.prefix, false, -1, tt.limit); err == nil {
			t.Errorf("SearchRecords(%q, false, -1, %d) = nil error, want an error", tt.prefix, tt.limit)
		}
	}
	if _, err := s.RecentRecords(ctx, 0, 0); err == nil {
		t.Error("RecentRecords(0, 0) = nil error, want an error")
	}
	for _, tt := range []struct {
		size int64
		t    time.Time
	}{
		{0, time.Now()},
		{-1, time.Now()},
		{1, time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
		{1, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := s.PutHeadTime(ctx, tt.size, tt.t); err == nil {
			t.Errorf("PutHeadTime(%d, %v) = nil, want an error", tt.size, tt.t)
		}
	}
}

func testIndexConcurrent(t *testing.T, s IndexStore) {
	ctx := t.Context()
	paths := slices.Repeat([]string{"example.com/c"}, 300)
	var g sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		g.Go(func() {
			for start := 0; start < len(paths); start += 100 {
				if err := s.IndexRecords(ctx, indexRecords(int64(start), paths[start:start+100]...)); err != nil {
					errs <- err
					return
				}
			}
		})
		g.Go(func() {
			if err := s.PutHeadTime(ctx, 100, time.Now()); err != nil {
				errs <- err
			}
		})
	}
	g.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent IndexRecords or PutHeadTime = %v, want nil", err)
	}
	if n, err := s.IndexedUpTo(ctx); n != 300 || err != nil {
		t.Errorf("IndexedUpTo() = %d, %v, want 300, nil", n, err)
	}
}
