package export_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
	"github.com/sumdb/sumdb/tlog/export"
)

type keys struct {
	vkey     string
	signer   note.Signer
	verifier note.Verifier
}

func newKeys(t testing.TB, name string) keys {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
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
	return keys{vkey, signer, verifier}
}

// backends open a new, empty store of each kind.
var backends = []struct {
	name string
	open func(t *testing.T) tlog.Store
}{
	{"sqlite", openSQLite},
	{"postgres", func(t *testing.T) tlog.Store {
		s, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func openSQLite(t *testing.T) tlog.Store {
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// gosum returns the record text of module i.
func gosum(i int) (path, version string, text []byte) {
	path = fmt.Sprintf("example.com/mod%d", i/3)
	version = fmt.Sprintf("v1.0.%d", i%3)
	h := xtlog.RecordHash([]byte(path + version))
	text = fmt.Appendf(nil, "%s %s h1:%x=\n%s %s/go.mod h1:%x=\n", path, version, h[:8], path, version, h[8:16])
	return path, version, text
}

// grow appends records [from, to) to l from several goroutines, so that
// the log has batches of many sizes and a head for each.
func grow(t *testing.T, l *tlog.Log, from, to int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := from + w; i < to; i += 8 {
				p, v, text := gosum(i)
				if _, _, err := l.Append(context.Background(), p, v, text); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// newLog returns a log of n records in s.
func newLog(t *testing.T, s tlog.Store, k keys, n int) *tlog.Log {
	t.Helper()
	l, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	grow(t, l, 0, n)
	return l
}

func exportLog(t *testing.T, s tlog.Store, k keys) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := export.Write(t.Context(), s, &buf, k.vkey, nil); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	return buf.Bytes()
}

// sameLog checks that b holds exactly the log of a: head, head history,
// records and every hash tile, byte for byte.
func sameLog(t *testing.T, a, b tlog.Store) {
	t.Helper()
	ctx := t.Context()
	ha, err := a.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.ReadHead(ctx)
	if err != nil || hb.Size != ha.Size || hb.Hash != ha.Hash || !bytes.Equal(hb.Note, ha.Note) {
		t.Fatalf("ReadHead() = size %d, %v; want %d, the original's", hb.Size, err, ha.Size)
	}
	heads := func(s tlog.Store) []tlog.Head {
		list, err := s.ReadHeads(ctx, 0, ha.Size)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	la, lb := heads(a), heads(b)
	if len(la) != len(lb) {
		t.Fatalf("ReadHeads() = %d heads, want the original's %d", len(lb), len(la))
	}
	for i := range la {
		if la[i].Size != lb[i].Size || !bytes.Equal(la[i].Note, lb[i].Note) {
			t.Fatalf("head %d: size %d %q, want the original's %d %q", i, lb[i].Size, lb[i].Note, la[i].Size, la[i].Note)
		}
	}
	ra, err := a.ReadRecords(ctx, 0, int(ha.Size))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.ReadRecords(ctx, 0, int(ha.Size)+1)
	if err != nil || len(rb) != len(ra) {
		t.Fatalf("ReadRecords() = %d records, %v; want %d", len(rb), err, len(ra))
	}
	for i := range ra {
		if ra[i].ID != rb[i].ID || ra[i].Key() != rb[i].Key() || !bytes.Equal(ra[i].Text, rb[i].Text) {
			t.Fatalf("record %d = %+v, want %+v", i, rb[i], ra[i])
		}
		if r, err := b.Lookup(ctx, ra[i].Path, ra[i].Version); err != nil || r.ID != ra[i].ID {
			t.Fatalf("Lookup(%s) = %d, %v; want %d", ra[i].Key(), r.ID, err, ra[i].ID)
		}
	}
	for _, tile := range xtlog.NewTiles(tlog.TileHeight, 0, ha.Size) {
		ta, err := a.ReadTile(ctx, tile.L, tile.N)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := b.ReadTile(ctx, tile.L, tile.N)
		if err != nil || !bytes.Equal(ta, tb) {
			t.Fatalf("tile %d/%d = %d bytes, %v; want the original's %d bytes", tile.L, tile.N, len(tb), err, len(ta))
		}
	}
}

// importOK imports file into s.
func importOK(t *testing.T, s tlog.Store, file []byte, cfg export.ImportConfig) *export.Result {
	t.Helper()
	res, err := export.Import(t.Context(), s, bytes.NewReader(file), cfg)
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	return res
}

// TestRoundTrip moves a log between the stores, in both directions, and
// checks that each copy is the original, byte for byte, and that a Log
// opens on it and goes on appending.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, from := range backends {
		for _, to := range backends {
			t.Run(from.name+"-"+to.name, func(t *testing.T) {
				t.Parallel()
				k := newKeys(t, "export.example")
				src := from.open(t)
				newLog(t, src, k, 1000)
				file := exportLog(t, src, k)
				dst := to.open(t)
				progress := 0
				res := importOK(t, dst, file, export.ImportConfig{Key: k.vkey, BatchRecords: 300, Progress: func(done, total int64) {
					progress++
					if total != 1000 || done > total {
						t.Errorf("Progress(%d, %d), want done <= total = 1000", done, total)
					}
				}})
				if res.Imported != 1000 || res.Skipped != 0 || res.Head.Size != 1000 || !res.Bulk || progress < 3 {
					t.Errorf("Import() = %+v after %d progress calls, want 1000 records imported in bulk in several batches", res, progress)
				}
				sameLog(t, src, dst)
				// Exported again, the copy gives the same file.
				if again := exportLog(t, dst, k); !bytes.Equal(again, file) {
					t.Errorf("the export of the imported log differs from the imported file")
				}
				l, err := tlog.Open(t.Context(), dst, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
				if err != nil {
					t.Fatalf("tlog.Open(imported store) = %v", err)
				}
				defer l.Close()
				grow(t, l, 1000, 1100)
				if l.Head().Size != 1100 {
					t.Errorf("after 100 more appends, the imported log has size %d, want 1100", l.Head().Size)
				}
			})
		}
	}
}

// TestExtension imports a file into a store holding a prefix of its log
// (an earlier import, or the store of a server the file was taken from).
func TestExtension(t *testing.T) {
	t.Parallel()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	l := newLog(t, src, k, 300)
	early := exportLog(t, src, k)
	grow(t, l, 300, 700)
	late := exportLog(t, src, k)

	dst := openSQLite(t)
	importOK(t, dst, early, export.ImportConfig{})
	res := importOK(t, dst, late, export.ImportConfig{BatchRecords: 100})
	if res.Skipped != 300 || res.Imported != 400 || res.Bulk {
		t.Errorf("Import(extension) = %+v, want 300 skipped, 400 imported, not in bulk", res)
	}
	sameLog(t, src, dst)
	// The same file again: nothing to do.
	if res := importOK(t, dst, late, export.ImportConfig{}); res.Imported != 0 || res.Skipped != 700 {
		t.Errorf("Import(the same file again) = %+v, want nothing imported", res)
	}
	// An older file does not extend the store.
	if _, err := export.Import(t.Context(), dst, bytes.NewReader(early), export.ImportConfig{}); err == nil || !strings.Contains(err.Error(), "more than the file's") {
		t.Errorf("Import(older file) = %v, want an error saying the store holds more", err)
	}
}

// TestRefuseOtherLog checks that a store holding another log, or a log the
// file does not extend exactly, is refused and left unchanged.
func TestRefuseOtherLog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	newLog(t, src, k, 500)
	file := exportLog(t, src, k)

	for _, tt := range []struct {
		name string
		fill func(t *testing.T, s tlog.Store)
		want string
	}{
		{"OtherKey", func(t *testing.T, s tlog.Store) { newLog(t, s, newKeys(t, "other.example"), 10) }, "another log"},
		{"OtherRecords", func(t *testing.T, s tlog.Store) {
			// Other records, as many as the file has at a head.
			heads, err := src.ReadHeads(ctx, 0, 500)
			if err != nil {
				t.Fatal(err)
			}
			l := newLog(t, s, k, 0)
			for i := range heads[len(heads)/2].Size {
				p, v, text := gosum(1000 + int(i))
				if _, _, err := l.Append(ctx, p, v, text); err != nil {
					t.Fatal(err)
				}
			}
		}, "another log"},
		{"NoHeadAtSize", func(t *testing.T, s tlog.Store) {
			// The first records of the file, one head each, up to a
			// size at which the file has no head.
			recs, err := src.ReadRecords(ctx, 0, 500)
			if err != nil {
				t.Fatal(err)
			}
			heads, err := src.ReadHeads(ctx, 0, 500)
			if err != nil {
				t.Fatal(err)
			}
			n := int64(1)
			for hasHead(heads, n) {
				n++
			}
			l := newLog(t, s, k, 0)
			for _, r := range recs[:n] {
				if _, _, err := l.Append(ctx, r.Path, r.Version, r.Text); err != nil {
					t.Fatal(err)
				}
			}
		}, "does not extend"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openSQLite(t)
			tt.fill(t, s)
			before, _ := s.ReadHead(ctx)
			_, err := export.Import(ctx, s, bytes.NewReader(file), export.ImportConfig{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Import() = %v, want an error containing %q", err, tt.want)
			}
			if after, _ := s.ReadHead(ctx); after.Size != before.Size || !bytes.Equal(after.Note, before.Note) {
				t.Errorf("a refused import moved the store's head from %d to %d", before.Size, after.Size)
			}
		})
	}
}

func hasHead(heads []tlog.Head, size int64) bool {
	for _, h := range heads {
		if h.Size == size {
			return true
		}
	}
	return false
}

// TestRefuseDamagedFile checks that altered, truncated and forged files are
// refused with a message saying what is wrong, that nothing after the
// damage is stored, and that a good file finishes the import.
func TestRefuseDamagedFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	newLog(t, src, k, 600)
	file := exportLog(t, src, k)
	// The record of module example.com/mod150, near the end.
	at := bytes.Index(file, []byte("example.com/mod150 v1.0.0 h1:")) + len("example.com/mod150 v1.0.0 h1:")
	other := newKeys(t, "export.example")

	for _, tt := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"FlippedRecord", func(f []byte) []byte { f[at] ^= 1; return f }, "a record before it was altered"},
		{"FlippedSignature", func(f []byte) []byte {
			i := bytes.LastIndex(f, []byte("\n— export.example "))
			f[i+40] ^= 1
			return f
		}, "does not verify"},
		{"Truncated", func(f []byte) []byte { return f[:len(f)*2/3] }, "truncated"},
		{"NoEnd", func(f []byte) []byte { return f[:len(f)-4] }, "truncated"},
		{"Trailing", func(f []byte) []byte { return append(f, 'R') }, "after the end frame"},
		{"OtherKey", func(f []byte) []byte {
			return bytes.Replace(f, []byte(k.vkey), []byte(other.vkey), 1)
		}, "does not verify"},
		{"NotExport", func([]byte) []byte { return []byte("go.sum database tree\n1\n") }, "not a sumdb export file"},
		{"Version", func(f []byte) []byte {
			return bytes.Replace(f, []byte("sumdb export 2\n"), []byte("sumdb export 3\n"), 1)
		}, "version"},
		{"Empty", func([]byte) []byte { return nil }, "empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := openSQLite(t)
			bad := tt.damage(bytes.Clone(file))
			_, err := export.Import(ctx, dst, bytes.NewReader(bad), export.ImportConfig{BatchRecords: 100})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import(damaged file) = %v, want an error containing %q", err, tt.want)
			}
			h, err := dst.ReadHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				if tt.name == "FlippedRecord" && h.Size > 450 {
					t.Errorf("after a damaged record at about 450, the store holds %d records", h.Size)
				}
				// A store left in bulk-load mode is refused by a Log...
				if _, err := tlog.Open(ctx, dst, tlog.Config{Signer: k.signer, Verifier: k.verifier}); err == nil || !strings.Contains(err.Error(), "did not finish") {
					t.Errorf("tlog.Open(store of an unfinished import) = %v, want an error saying so", err)
				}
			}
			// ... and a good file finishes the import.
			importOK(t, dst, file, export.ImportConfig{})
			sameLog(t, src, dst)
		})
	}

	// A file of another log than the expected key's.
	dst := openSQLite(t)
	if _, err := export.Import(ctx, dst, bytes.NewReader(file), export.ImportConfig{Key: other.vkey}); err == nil || !strings.Contains(err.Error(), "not of the expected key") {
		t.Errorf("Import(file of another key) = %v, want an error naming the expected key", err)
	}
}

// TestWriteRefusesDamagedStore checks that an export of a store whose
// records do not give its heads fails rather than write a bad file.
func TestWriteRefusesDamagedStore(t *testing.T) {
	t.Parallel()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	newLog(t, src, k, 100)
	var buf bytes.Buffer
	if _, err := export.Write(t.Context(), src, &buf, newKeys(t, "export.example").vkey, nil); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("Write(wrong key) = %v, want an error", err)
	}
	if _, err := export.Write(t.Context(), openSQLite(t), &buf, k.vkey, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Write(empty log) = %v, want an error", err)
	}
	damaged := &alteredStore{Store: src, id: 42}
	if _, err := export.Write(t.Context(), damaged, &buf, k.vkey, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Write(store with an altered record) = %v, want an error", err)
	}
	// A head of the history whose signature is damaged: Import would
	// refuse the file.
	if _, err := export.Write(t.Context(), badSignatureStore{src}, &buf, k.vkey, nil); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("Write(store with a damaged signature in its history) = %v, want an error", err)
	}
}

// A badSignatureStore returns the first head of its history with a damaged
// signature.
type badSignatureStore struct{ tlog.Store }

func (s badSignatureStore) ReadHeads(ctx context.Context, lo, hi int64) ([]tlog.Head, error) {
	heads, err := s.Store.ReadHeads(ctx, lo, hi)
	if len(heads) > 0 && lo == 1 {
		note := bytes.Clone(heads[0].Note)
		note[len(note)-4] ^= 1 // within the base64 signature
		heads[0].Note = note
	}
	return heads, err
}

// An alteredStore returns record id with another text.
type alteredStore struct {
	tlog.Store
	id int64
}

func (s *alteredStore) ReadRecords(ctx context.Context, start int64, n int) ([]tlog.Record, error) {
	recs, err := s.Store.ReadRecords(ctx, start, n)
	for i := range recs {
		if recs[i].ID == s.id {
			recs[i].Text = bytes.Replace(recs[i].Text, []byte("h1:"), []byte("h1:A"), 1)
		}
	}
	return recs, err
}

// TestImportNotBulk checks an import into a store without bulk-load mode.
func TestImportNotBulk(t *testing.T) {
	t.Parallel()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	newLog(t, src, k, 300)
	dst := plainStore{openSQLite(t)}
	if res := importOK(t, dst, exportLog(t, src, k), export.ImportConfig{BatchRecords: 50}); res.Bulk {
		t.Errorf("Import() = %+v, want no bulk load", res)
	}
	sameLog(t, src, dst)
}

// A plainStore hides the bulk-load mode of its store.
type plainStore struct{ tlog.Store }
