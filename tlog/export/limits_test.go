package export

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// largeRecordsFile returns an export file of n records of about size bytes
// each, with a signed head after each record if heads.
func largeRecordsFile(t *testing.T, n, size int, heads bool) []byte {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "limits.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeHeader(w, Header{Version: 1, Key: vkey, Records: int64(n)}); err != nil {
		t.Fatal(err)
	}
	edge := tlog.NewEdge()
	long := strings.Repeat("p", size)
	for i := range n {
		path := fmt.Sprintf("example.com/%s%d", long, i)
		text := []byte(fmt.Sprintf("%s v1.0.0 h1:x=\n%s v1.0.0/go.mod h1:y=\n", path, path))
		if err := writeFrame(w, tagRecord, text); err != nil {
			t.Fatal(err)
		}
		edge.AppendFull([]xtlog.Hash{xtlog.RecordHash(text)})
		if !heads && i < n-1 {
			continue
		}
		msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: int64(i + 1), Hash: edge.Root()}))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFrame(w, tagHead, msg); err != nil {
			t.Fatal(err)
		}
	}
	nheads := 1
	if heads {
		nheads = n
	}
	end := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(n)), uint64(nheads))
	if err := writeFrame(w, tagEnd, end); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingStore counts the appends of a store, and hides its bulk path.
type countingStore struct {
	tlog.Store
	appends atomic.Int64
}

func (s *countingStore) Append(ctx context.Context, b *tlog.Batch) error {
	s.appends.Add(1)
	return s.Store.Append(ctx, b)
}

func openCounting(t *testing.T) *countingStore {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &countingStore{Store: s}
}

// TestImportBatchBytes checks that a batch of large records ends at the
// first head after maxBatchBytes, before it has BatchRecords records.
func TestImportBatchBytes(t *testing.T) {
	defer func(old int) { maxBatchBytes = old }(maxBatchBytes)
	maxBatchBytes = 16 << 10
	s := openCounting(t)
	// 40 records of about 2 KiB, a head after each: 80 KiB, 5 batches or more.
	file := largeRecordsFile(t, 40, 1000, true)
	res, err := Import(context.Background(), s, bytes.NewReader(file), ImportConfig{BatchRecords: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 40 {
		t.Errorf("imported %d records, want 40", res.Imported)
	}
	if n := s.appends.Load(); n < 5 {
		t.Errorf("%d appends for 80 KiB of records in batches of at most about 16 KiB, want 5 or more", n)
	}
}

// TestImportNegativeBatch checks that a negative BatchRecords is refused
// rather than taken as the default, as zero is.
func TestImportNegativeBatch(t *testing.T) {
	s := openCounting(t)
	file := largeRecordsFile(t, 2, 10, true)
	if _, err := Import(context.Background(), s, bytes.NewReader(file), ImportConfig{BatchRecords: -1}); err == nil || !strings.Contains(err.Error(), "BatchRecords -1") {
		t.Errorf("Import(BatchRecords -1) = %v, want an error naming BatchRecords", err)
	}
	if n := s.appends.Load(); n != 0 {
		t.Errorf("%d appends, want none", n)
	}
}

// TestImportPendingBytes checks that records without a head are refused
// once they pass maxPendingBytes, and nothing is stored.
func TestImportPendingBytes(t *testing.T) {
	defer func(old int) { maxPendingBytes = old }(maxPendingBytes)
	maxPendingBytes = 16 << 10
	s := openCounting(t)
	file := largeRecordsFile(t, 40, 1000, false)
	_, err := Import(context.Background(), s, bytes.NewReader(file), ImportConfig{})
	if err == nil || !strings.Contains(err.Error(), "have no signed head") {
		t.Fatalf("Import of 80 KiB of records without a head = %v, want a refusal", err)
	}
	if h, err := s.ReadHead(context.Background()); err != nil || h.Size != 0 {
		t.Errorf("store head %d, %v after a refused import; want an empty store", h.Size, err)
	}
}
