package audit

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// benchRecords is the size of the log BenchmarkAudit clones.
const benchRecords = 200_000

// BenchmarkAudit clones and verifies a log of benchRecords records served by
// a real sumdb server (tlog.Log on SQLite, sumdb.Server) in this process,
// over loopback HTTP, into a fresh state directory each time.
//
//	go test -run '^$' -bench BenchmarkAudit -benchtime 3x ./sumdb/audit/
func BenchmarkAudit(b *testing.B) {
	k := sumdbtest.NewKey(b, "bench.test")
	file := filepath.Join(b.TempDir(), "server.db")
	st, err := store.OpenSQLite(b.Context(), file)
	if err != nil {
		b.Fatal(err)
	}
	fillStore(b, st, k.Signer, benchRecords)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	db := sumdbtest.MustStart(b, sumdbtest.Options{Key: k, File: file})
	// Straight to the server, without the Front's bookkeeping.
	srv := httptest.NewServer(db.Server)
	defer srv.Close()

	b.ResetTimer()
	for b.Loop() {
		cfg := Config{Remote: openRemote(b, k.VKey, srv.URL), Dir: b.TempDir(), Concurrency: 8}
		rep, err := Run(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Records != benchRecords {
			b.Fatalf("audit: %d records, violations %v", rep.Records, rep.Violations)
		}
	}
	b.ReportMetric(float64(benchRecords*b.N)/b.Elapsed().Seconds(), "records/s")
}

// fillStore appends n synthetic records to st in big batches, with the tiles
// of tlog.Edge and a head signed by signer, as the writer would.
func fillStore(tb testing.TB, st tlog.Store, signer note.Signer, n int) {
	e := tlog.NewEdge()
	const batch = 16384
	for lo := 0; lo < n; lo += batch {
		b := &tlog.Batch{OldSize: int64(lo)}
		if lo > 0 {
			b.OldHash = e.Root()
		}
		var leaves []xtlog.Hash
		for i := lo; i < min(n, lo+batch); i++ {
			path := fmt.Sprintf("example.com/bench/m%d", i)
			text := sumdbtest.SynthText(path, "v1.0.0")
			b.Records = append(b.Records, tlog.Record{ID: int64(i), Path: path, Version: "v1.0.0", Text: text})
			leaves = append(leaves, xtlog.RecordHash(text))
		}
		b.Tiles = e.Append(leaves)
		tree := xtlog.Tree{N: e.Size(), Hash: e.Root()}
		msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, signer)
		if err != nil {
			tb.Fatal(err)
		}
		b.Head = tlog.Head{Size: tree.N, Hash: tree.Hash, Note: msg}
		if err := st.Append(tb.Context(), b); err != nil {
			tb.Fatal(err)
		}
	}
}
