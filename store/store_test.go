package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/migrations"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

func openPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := OpenPostgres(t.Context(), storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func openSQLite(t testing.TB) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) tlog.Store { return openPostgres(t) })
	storetest.RunReopen(t, func(t *testing.T) func() (tlog.Store, error) {
		url := storetest.PostgresURL(t)
		return func() (tlog.Store, error) { return OpenPostgres(t.Context(), url) }
	})
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) tlog.Store { return openSQLite(t) })
	storetest.RunReopen(t, func(t *testing.T) func() (tlog.Store, error) {
		path := filepath.Join(t.TempDir(), "sumdb.db")
		return func() (tlog.Store, error) { return OpenSQLite(t.Context(), path) }
	})
}

// known is the schema version this binary knows, for both dialects.
func known(t *testing.T) int {
	list, err := migrations.List(migrations.Postgres())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.PostgresURL(t)
	want := known(t)
	for i := range 2 { // the second open finds nothing to do
		p, err := OpenPostgres(ctx, url)
		if err != nil {
			t.Fatalf("OpenPostgres() #%d: %v", i+1, err)
		}
		var n, v int
		if err := p.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != want || v != want {
			t.Errorf("after OpenPostgres() #%d: schema_version has %d rows up to %d, want %d up to %d", i+1, n, v, want, want)
		}
		if i == 1 {
			// Pretend a newer sumdb migrated the database.
			for v := want + 1; v <= want+2; v++ {
				if _, err := p.pool.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, 'future')`, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		p.Close()
	}
	_, err := OpenPostgres(ctx, url)
	if msg := fmt.Sprintf("database schema version %d is newer than this sumdb (knows %d): upgrade sumdb", want+2, want); err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("OpenPostgres(newer schema) = %v, want error %q", err, msg)
	}
}

func TestMigratePostgresConcurrent(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			p, err := OpenPostgres(t.Context(), url)
			if err == nil {
				p.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenPostgres() #%d: %v", i, err)
		}
	}
	p := openPostgresURL(t, url)
	var n int
	if err := p.pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := known(t); n != want {
		t.Errorf("schema_version has %d rows, want %d", n, want)
	}
}

func openPostgresURL(t *testing.T, url string) *Postgres {
	t.Helper()
	p, err := OpenPostgres(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sumdb.db")
	want := known(t)

	// Several processes starting at once, modelled by several handles.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := OpenSQLite(ctx, path)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenSQLite() #%d: %v", i, err)
		}
	}

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var n, v int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != want || v != want {
		t.Errorf("schema_version has %d rows up to %d, want %d up to %d", n, v, want, want)
	}
	for v := want + 1; v <= want+2; v++ {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, 'future')`, v); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	_, err = OpenSQLite(ctx, path)
	if msg := fmt.Sprintf("database schema version %d is newer than this sumdb (knows %d): upgrade sumdb", want+2, want); err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("OpenSQLite(newer schema) = %v, want error %q", err, msg)
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, path := range []string{
		"",
		filepath.Join(dir, "a?b.db"),
		"file:" + filepath.Join(dir, "x.db"),
		filepath.Join(dir, "missing", "sumdb.db"),
	} {
		if s, err := OpenSQLite(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) = nil error, want an error", path)
		}
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses at once.
	_, err := OpenPostgres(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if err == nil || !strings.Contains(err.Error(), "check the database URL") {
		t.Errorf("OpenPostgres(unreachable) = %v, want an error saying what to check", err)
	}
}

// TestAppendOnly checks that the database itself refuses to change or
// remove records, heads and tiles, to move the head back or to another tree
// of the same size, and to change a tile other than by appending hashes;
// and that it still allows what appends do.
func TestAppendOnly(t *testing.T) {
	t.Parallel()
	const (
		appendOnly = "the log is append-only"
		forward    = "the head only moves forward"
		tileGrows  = "published hashes never change"
	)
	type refusal struct{ q, want string }
	common := []refusal{
		{`UPDATE records SET text = text`, appendOnly},
		{`DELETE FROM records`, appendOnly},
		{`DELETE FROM records WHERE id = 9`, appendOnly},
		{`UPDATE heads SET note = note`, appendOnly},
		{`DELETE FROM heads`, appendOnly},
		{`DELETE FROM head`, appendOnly},
		{`UPDATE head SET size = size - 1`, forward},
		{`UPDATE head SET size = 0, hash = NULL, note = NULL`, forward},
		{`UPDATE tiles SET idx = idx + 1`, tileGrows},
		{`DELETE FROM tiles`, appendOnly},
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := openPostgres(t)
		appendSome(t, p)
		for _, r := range append(common,
			refusal{`TRUNCATE records`, appendOnly},
			refusal{`TRUNCATE heads`, appendOnly},
			refusal{`TRUNCATE head`, appendOnly},
			refusal{`TRUNCATE tiles`, appendOnly},
			// An upsert fires the UPDATE triggers whether or not a row conflicts.
			refusal{`INSERT INTO records (id, key, text) SELECT 100, key, text FROM records WHERE id = 0 ON CONFLICT (key) DO UPDATE SET text = excluded.text`, appendOnly},
			refusal{`UPDATE head SET hash = decode(repeat('00', 32), 'hex')`, forward},
			refusal{`UPDATE tiles SET hashes = substring(hashes FROM 33)`, tileGrows},
			refusal{`UPDATE tiles SET hashes = set_byte(hashes, 0, (get_byte(hashes, 0) + 1) % 256)`, tileGrows},
			refusal{`UPDATE tiles SET hashes = set_byte(hashes, 0, (get_byte(hashes, 0) + 1) % 256) || decode(repeat('00', 32), 'hex')`, tileGrows},
		) {
			if _, err := p.pool.Exec(t.Context(), r.q); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("%s: error = %v, want %q", r.q, err, r.want)
			}
		}
		// What appends do is allowed.
		for _, q := range []string{
			`UPDATE tiles SET hashes = hashes || decode(repeat('00', 32), 'hex')`,
			`UPDATE head SET note = note`,
			`UPDATE head SET size = size + 1`,
		} {
			if _, err := p.pool.Exec(t.Context(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := openSQLite(t)
		appendSome(t, s)
		for _, r := range append(common,
			// REPLACE deletes the row it replaces, which fires the DELETE
			// triggers because the store turns recursive_triggers on.
			refusal{`INSERT OR REPLACE INTO records SELECT * FROM records WHERE id = 0`, appendOnly},
			refusal{`REPLACE INTO heads SELECT * FROM heads`, appendOnly},
			refusal{`REPLACE INTO head (singleton, size) VALUES (1, 0)`, appendOnly},
			refusal{`REPLACE INTO tiles SELECT level, idx, zeroblob(length(hashes)) FROM tiles`, appendOnly},
			refusal{`UPDATE head SET hash = zeroblob(32)`, forward},
			refusal{`UPDATE tiles SET hashes = substr(hashes, 33)`, tileGrows},
			refusal{`UPDATE tiles SET hashes = zeroblob(length(hashes))`, tileGrows},
			refusal{`UPDATE tiles SET hashes = zeroblob(length(hashes) + 32)`, tileGrows},
		) {
			if _, err := s.db.ExecContext(t.Context(), r.q); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("%s: error = %v, want %q", r.q, err, r.want)
			}
		}
		for _, q := range []string{
			`UPDATE tiles SET hashes = unhex(hex(hashes) || hex(zeroblob(32)))`,
			`UPDATE head SET note = note`,
			`UPDATE head SET size = size + 1`,
		} {
			if _, err := s.db.ExecContext(t.Context(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
}

func appendSome(t testing.TB, s tlog.Store) {
	t.Helper()
	g := newBatcher()
	if err := s.Append(t.Context(), g.next(10)); err != nil {
		t.Fatal(err)
	}
}

func TestParseText(t *testing.T) {
	for _, tt := range []struct {
		text          string
		path, version string // "" for an error
	}{
		{"golang.org/x/text v0.3.0 h1:g61tztE5qeGQ89tm6NTjjM9VPIm088od1l6aSorWRWg=\ngolang.org/x/text v0.3.0/go.mod h1:NqM8EUOU14njkJ3fqMW+pc6Ldnwhi/IjpwHt7yyuwOQ=\n", "golang.org/x/text", "v0.3.0"},
		{"github.com/Azure/x v1.0.0 h1:abc=", "github.com/Azure/x", "v1.0.0"},
		{"", "", ""},
		{"\n", "", ""},
		{"a v1 ", "", ""},
		{"a  v1 h1:x", "", ""},
		{" a v1 h1:x", "", ""},
		{"a v1 h1:x extra", "", ""},
		{"a v1", "", ""},
	} {
		path, version, err := parseText([]byte(tt.text))
		if tt.path == "" {
			if err == nil {
				t.Errorf("parseText(%q) = %q, %q, nil, want an error", tt.text, path, version)
			}
			continue
		}
		if err != nil || path != tt.path || version != tt.version {
			t.Errorf("parseText(%q) = %q, %q, %v, want %q, %q, nil", tt.text, path, version, err, tt.path, tt.version)
		}
	}
}

func TestRecordKey(t *testing.T) {
	a := recordKey("github.com/Azure/x", "v1.0.0")
	sum := sha256.Sum256([]byte("github.com/Azure/x@v1.0.0"))
	if string(a) != string(sum[:16]) {
		t.Errorf("recordKey(github.com/Azure/x, v1.0.0) = %x, want %x", a, sum[:16])
	}
	if b := recordKey("github.com/azure/x", "v1.0.0"); string(a) == string(b) {
		t.Errorf("recordKey of paths differing in case are equal")
	}
}

// TestKeyCollision checks what happens when a stored record and a new one
// share a lookup key, which a test can arrange only by writing a row whose
// key is not its hash.
func TestKeyCollision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openSQLite(t)
	r := storetest.Record(0, "example.com/a", "v1.0.0")
	// Store example.com/a under the key of example.com/b.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO records (id, key, text) VALUES (0, $1, $2)`, recordKey("example.com/b", "v1.0.0"), r.Text); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, "example.com/b", "v1.0.0"); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Lookup(b) finding a's row = %v, want ErrNotFound", err)
	}
	b := &tlog.Batch{OldSize: 0, Records: []tlog.Record{storetest.Record(0, "example.com/b", "v1.0.0")}, Head: tlog.Head{Size: 1, Note: []byte("n")}}
	var dup *tlog.DuplicateError
	if err := s.Append(ctx, b); err == nil || errors.As(err, &dup) || !errors.Is(err, errKeyCollision) {
		t.Errorf("Append(b, colliding with a) = %v, want errKeyCollision", err)
	}
}

// TestPostgresDuplicateOfDamagedRecord checks that an append that finds
// its record's key stored, with a text that does not parse, fails and
// gives its connections back to the pool.
func TestPostgresDuplicateOfDamagedRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, err := OpenPostgres(ctx, storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Close waits for every connection: after a leak, leave them to the
		// forced drop of the database.
		if p.pool.Stat().AcquiredConns() == 0 {
			p.Close()
		}
	})
	r := storetest.Record(0, "example.com/a", "v1.0.0")
	if _, err := p.pool.Exec(ctx, `INSERT INTO records (id, key, text) VALUES (5, $1, 'damaged')`, recordKey(r.Path, r.Version)); err != nil {
		t.Fatal(err)
	}
	b := &tlog.Batch{OldSize: 0, Records: []tlog.Record{r}, Head: tlog.Head{Size: 1, Note: []byte("n")}}
	var dup *tlog.DuplicateError
	if err := p.Append(ctx, b); err == nil || errors.As(err, &dup) {
		t.Fatalf("Append over a damaged record = %v, want an error that is not a duplicate", err)
	}
	if n := p.pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still held after the append failed", n)
	}
}

// A batcher makes batches of realistic records with tiles of the right
// shape and consistent content (not real hashes: the stores do not check
// them), for the benchmarks.
type batcher struct {
	size int64
}

// root returns the root hash the batcher gives the tree of size n.
func (g *batcher) root(n int64) xtlog.Hash {
	if n == 0 {
		return xtlog.Hash{}
	}
	return sha256.Sum256(fmt.Appendf(nil, "%d", n))
}

func newBatcher() *batcher { return new(batcher) }

func (g *batcher) next(n int) *tlog.Batch {
	b := &tlog.Batch{OldSize: g.size, OldHash: g.root(g.size)}
	for i := range n {
		id := g.size + int64(i)
		b.Records = append(b.Records, storetest.Record(id, fmt.Sprintf("github.com/bench%d/module", id/10), fmt.Sprintf("v1.0.%d", id%10)))
	}
	g.size += int64(n)
	for _, t := range xtlog.NewTiles(tlog.TileHeight, b.OldSize, g.size) {
		data := make([]byte, 0, t.W*32)
		for j := range t.W {
			h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d", t.L, t.N, j))
			data = append(data, h[:]...)
		}
		b.Tiles = append(b.Tiles, tlog.Tile{Level: t.L, Index: t.N, Hashes: data})
	}
	b.Head = tlog.Head{Size: g.size, Hash: g.root(g.size)}
	b.Head.Note = fmt.Appendf(nil, "go.sum database tree\n%d\n%x\n\n— bench.example AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n", g.size, b.Head.Hash)
	return b
}

// TestPostgresBytesPerRecord measures the disk space of records, their
// indexes included, against the budget of 450 bytes per record.
func TestPostgresBytesPerRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 100,000 records")
	}
	t.Parallel()
	ctx := t.Context()
	p := openPostgres(t)
	g := newBatcher()
	const n = 100_000
	for g.size < n {
		if err := p.Append(ctx, g.next(2000)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.pool.Exec(ctx, `VACUUM ANALYZE records`); err != nil {
		t.Fatal(err)
	}
	var heap, total int64
	if err := p.pool.QueryRow(ctx, `SELECT pg_table_size('records'), pg_total_relation_size('records')`).Scan(&heap, &total); err != nil {
		t.Fatal(err)
	}
	perRecord := float64(total) / n
	t.Logf("records: %.0f bytes/record (heap %.0f, indexes %.0f)", perRecord, float64(heap)/n, float64(total-heap)/n)
	if perRecord > 450 {
		t.Errorf("records take %.0f bytes/record, want at most 450", perRecord)
	}
}

// BenchmarkAppend measures appends of batches of 1,000 records, each batch
// in its own transaction, by one writer.
func BenchmarkAppend(b *testing.B) {
	for _, bb := range []struct {
		name string
		open func(b *testing.B) tlog.Store
	}{
		{"postgres", func(b *testing.B) tlog.Store { return openPostgres(b) }},
		{"sqlite", func(b *testing.B) tlog.Store { return openSQLite(b) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			const batch = 1000
			s := bb.open(b)
			g := newBatcher()
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer() // measure the store, not the making of batches
				next := g.next(batch)
				b.StartTimer()
				if err := s.Append(ctx, next); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(g.size)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// benchRecords returns the number of records of the large benchmarks:
// $SUMDB_BENCH_RECORDS, or def.
func benchRecords(b *testing.B, def int64) int64 {
	s := os.Getenv("SUMDB_BENCH_RECORDS")
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("SUMDB_BENCH_RECORDS=%q: want a positive number of records", s)
	}
	return n
}

// BenchmarkBulkAppend measures the bulk path of the stores, as an import
// uses it: batches of 50,000 records, each with a head per 1,000 records in
// its history, one transaction each, by one writer, into an empty store in
// bulk-load mode, up to $SUMDB_BENCH_RECORDS records (default 200,000). It
// reports the rate over the whole run, the index build of EndBulk
// included, the rate of the appends of its last tenth, and the seconds of
// the index build.
//
//	SUMDB_BENCH_RECORDS=10000000 go test -run '^$' -bench BulkAppend -benchtime 1x -timeout 2h ./store/
func BenchmarkBulkAppend(b *testing.B) {
	for _, bb := range []struct {
		name string
		open func(b *testing.B) tlog.Store
	}{
		{"postgres", func(b *testing.B) tlog.Store { return openPostgres(b) }},
		{"sqlite", func(b *testing.B) tlog.Store { return openSQLite(b) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			const batch, perHead = 50_000, 1000
			total := benchRecords(b, 200_000)
			for b.Loop() {
				s := bb.open(b)
				g := newBatcher()
				ctx := context.Background()
				if err := s.(tlog.BulkStore).BeginBulk(ctx); err != nil {
					b.Fatal(err)
				}
				var elapsed, last time.Duration
				for g.size < total {
					n := int(min(batch, total-g.size))
					var history []tlog.Head
					var next *tlog.Batch
					for done := 0; done < n; done += perHead {
						part := g.next(min(perHead, n-done))
						if next == nil {
							next = part
						} else {
							history = append(history, next.Head)
							next.Records = append(next.Records, part.Records...)
							next.Tiles = append(next.Tiles, part.Tiles...) // the stores keep the last content of a tile
							next.Head = part.Head
						}
					}
					next.History = history
					next.Tiles = lastTiles(next.Tiles)
					start := time.Now()
					if err := s.Append(ctx, next); err != nil {
						b.Fatal(err)
					}
					d := time.Since(start)
					elapsed += d
					if g.size > total-total/10 {
						last += d
					}
					if testing.Verbose() && g.size%(10*batch) == 0 {
						b.Logf("%d records, %.0f records/s", g.size, float64(n)/d.Seconds())
					}
				}
				endStart := time.Now()
				if err := s.(tlog.BulkStore).EndBulk(ctx); err != nil {
					b.Fatal(err)
				}
				end := time.Since(endStart)
				b.ReportMetric(float64(total)/(elapsed+end).Seconds(), "records/s")
				b.ReportMetric(float64(total/10)/last.Seconds(), "last-tenth-records/s")
				b.ReportMetric(end.Seconds(), "index-s")
				s.Close()
			}
		})
	}
}

// lastTiles returns tiles with only the last content of each tile, in the
// order of first appearance.
func lastTiles(tiles []tlog.Tile) []tlog.Tile {
	type id struct {
		level int
		index int64
	}
	at := make(map[id]int)
	var out []tlog.Tile
	for _, t := range tiles {
		if i, ok := at[id{t.Level, t.Index}]; ok {
			out[i] = t
			continue
		}
		at[id{t.Level, t.Index}] = len(out)
		out = append(out, t)
	}
	return out
}

// largeStores opens the stores named by $SUMDB_BENCH_DATABASE_URL (a
// PostgreSQL database) and $SUMDB_BENCH_SQLITE (an embedded store file),
// holding logs built beforehand (see docs/performance.md), or skips.
func largeStores(b *testing.B) map[string]tlog.Store {
	stores := make(map[string]tlog.Store)
	if url := os.Getenv("SUMDB_BENCH_DATABASE_URL"); url != "" {
		p, err := OpenPostgres(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		stores["postgres"] = p
	}
	if file := os.Getenv("SUMDB_BENCH_SQLITE"); file != "" {
		s, err := OpenSQLite(context.Background(), file)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		stores["sqlite"] = s
	}
	if len(stores) == 0 {
		b.Skip("set SUMDB_BENCH_DATABASE_URL or SUMDB_BENCH_SQLITE to a store holding a large log")
	}
	return stores
}

// BenchmarkLookupLarge measures Store.Lookup hits of records picked at
// random in the log of an existing store (largeStores), from 4
// goroutines, and reports their latency percentiles: the same at 100,000
// and at 10,000,000 records shows what the size of the log costs.
//
//	SUMDB_BENCH_DATABASE_URL=postgres://... go test -run '^$' -bench LookupLarge -benchtime 20000x ./store/
func BenchmarkLookupLarge(b *testing.B) {
	for name, s := range largeStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			head, err := s.ReadHead(ctx)
			if err != nil || head.Size == 0 {
				b.Fatalf("ReadHead() = %d, %v; want a log", head.Size, err)
			}
			// The records to look up, read before the clock starts.
			const sample = 4096
			rnd := rand.New(rand.NewPCG(1, 2))
			keys := make([]tlog.Record, sample)
			for i := range keys {
				recs, err := s.ReadRecords(ctx, rnd.Int64N(head.Size), 1)
				if err != nil || len(recs) != 1 {
					b.Fatal(err)
				}
				keys[i] = recs[0]
			}
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						k := keys[(i*7919)%sample]
						start := time.Now()
						r, err := s.Lookup(ctx, k.Path, k.Version)
						lat[i] = time.Since(start)
						if err != nil || r.ID != k.ID {
							b.Errorf("Lookup(%s) = %d, %v, want %d", k.Key(), r.ID, err, k.ID)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(head.Size), "records")
		})
	}
}
