package export

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// LargeKey returns the signer and verifier keys of the large logs of the
// benchmarks: derived from a fixed seed, so that every benchmark run finds
// the same key.
func largeKey(t testing.TB) (skey, vkey string) {
	rnd := rand.NewChaCha8([32]byte{'s', 'u', 'm', 'd', 'b'})
	skey, vkey, err := note.GenerateKey(rnd, "large.sumdb.localhost")
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// LargeRecord returns the path, version and text of record i of the large
// logs: go.sum lines of realistic length.
func largeRecord(i int64) (path, version string, text []byte) {
	path = fmt.Sprintf("github.com/bench%d/module%d", i/1000, i/10%100)
	version = fmt.Sprintf("v1.%d.%d", i/100%10, i%10)
	h1 := sha256.Sum256(strconv.AppendInt([]byte("zip"), i, 10))
	h2 := sha256.Sum256(strconv.AppendInt([]byte("mod"), i, 10))
	text = fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n", path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
	return path, version, text
}

// TestWriteLarge writes the export file of a large synthetic log, with a
// signed head every 1,000 records (a log grown by busy batches), for the
// benchmarks of import, size, lookups and start-up at 10 million records.
// It runs only with SUMDB_BENCH_LARGE_DIR set: it writes there log.export,
// of $SUMDB_BENCH_RECORDS records (default 10,000,000), and signer.key,
// the log's key, for sumdb serve.
//
//	SUMDB_BENCH_LARGE_DIR=/tmp/large go test -run TestWriteLarge -timeout 1h ./tlog/export/
func TestWriteLarge(t *testing.T) {
	dir := os.Getenv("SUMDB_BENCH_LARGE_DIR")
	if dir == "" {
		t.Skip("set SUMDB_BENCH_LARGE_DIR to write a large export file there")
	}
	n := int64(10_000_000)
	if s := os.Getenv("SUMDB_BENCH_RECORDS"); s != "" {
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n <= 0 {
			t.Fatalf("SUMDB_BENCH_RECORDS=%q: want a number of records", s)
		}
	}
	skey, vkey := largeKey(t)
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signer.key"), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "log.export"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now()
	if err := writeHeader(w, Header{Version: 1, Key: vkey, Records: n}); err != nil {
		t.Fatal(err)
	}
	edge := tlog.NewEdge()
	var leaves []xtlog.Hash
	var heads uint64
	for i := int64(0); i < n; i++ {
		_, _, text := largeRecord(i)
		if err := writeFrame(w, tagRecord, text); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, xtlog.RecordHash(text))
		if size := i + 1; size%1000 == 0 || size == n {
			edge.AppendFull(leaves)
			leaves = leaves[:0]
			msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: size, Hash: edge.Root()}))}, signer)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeFrame(w, tagHead, msg); err != nil {
				t.Fatal(err)
			}
			heads++
		}
	}
	end := binary.AppendUvarint(nil, uint64(n))
	if err := writeFrame(w, tagEnd, binary.AppendUvarint(end, heads)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d records and %d heads of key %s to %s in %v", n, heads, vkey, dir, time.Since(start))
}
