package export_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"strings"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/tlog"
	"github.com/sumdb/sumdb/tlog/export"
)

// upstream is a checksum database whose verified data a mirror caches.
type upstream struct {
	db   *sumdbtest.DB
	head tlog.Head
}

// newUpstream starts a checksum database of key name with n records.
func newUpstream(t *testing.T, name string, n int) *upstream {
	t.Helper()
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: name})
	// Records of its own: two upstreams of the same size must differ,
	// whatever order the concurrent appends commit in.
	db.AppendSynthetic(name, n)
	head, err := db.Store.ReadHead(t.Context())
	if err != nil || head.Size != int64(n) {
		t.Fatalf("upstream ReadHead() = size %d, %v, want %d", head.Size, err, n)
	}
	return &upstream{db: db, head: head}
}

// name is the name of the upstream's key, which names its mirror.
func (u *upstream) name() string { return u.db.Key.Verifier.Name() }

// dataTile returns data tile index of the upstream's tree of size n.
func (u *upstream) dataTile(t *testing.T, index, n int64) []byte {
	t.Helper()
	start := index * tlog.TileWidth
	recs, err := u.db.Store.ReadRecords(t.Context(), start, int(min(tlog.TileWidth, n-start)))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, r := range recs {
		data = append(append(data, r.Text...), '\n')
	}
	return data
}

// fill puts into ms the upstream's head, every tile of its tree and the
// records of ids, as a mirror would after verifying them.
func (u *upstream) fill(t *testing.T, ms export.MirrorStore, ids ...int64) {
	t.Helper()
	u.fillCut(t, ms, nil, ids...)
}

// fillCut is fill with each hash tile's data passed through cut, if not nil.
func (u *upstream) fillCut(t *testing.T, ms export.MirrorStore, cut func(level int, index int64, data []byte) []byte, ids ...int64) {
	t.Helper()
	ctx := t.Context()
	db := u.name()
	for _, tile := range xtlog.NewTiles(tlog.TileHeight, 0, u.head.Size) {
		data, err := u.db.Store.ReadTile(ctx, tile.L, tile.N)
		if err != nil {
			t.Fatal(err)
		}
		data = data[:tile.W*32]
		if cut != nil {
			data = cut(tile.L, tile.N, data)
		}
		if err := ms.PutMirrorTile(ctx, db, tile.L, tile.N, data); err != nil {
			t.Fatal(err)
		}
		if tile.L == 0 {
			if err := ms.PutMirrorTile(ctx, db, -1, tile.N, u.dataTile(t, tile.N, u.head.Size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range ids {
		recs, err := u.db.Store.ReadRecords(ctx, id, 1)
		if err != nil || len(recs) != 1 {
			t.Fatalf("upstream ReadRecords(%d, 1) = %v, %v", id, recs, err)
		}
		r := recs[0]
		if err := ms.PutMirrorRecord(ctx, db, r.Path, r.Version, r.ID, r.Text); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms.SwapState(ctx, export.MirrorHeadState(db), nil, u.head.Note); err != nil {
		t.Fatal(err)
	}
}

// keys returns the ImportConfig.MirrorKeys of the upstream.
func (u *upstream) keys() map[string]string { return map[string]string{u.name(): u.db.Key.VKey} }

// A mirrorCache is the content of a store's mirror of one database.
type mirrorCache struct {
	head    string
	tiles   map[string]string // "level/index" -> data
	records map[int64]string
}

// readCache returns the mirror of db in ms.
func readCache(t *testing.T, ms export.MirrorStore, db string) mirrorCache {
	t.Helper()
	ctx := t.Context()
	head, err := ms.ReadState(ctx, export.MirrorHeadState(db))
	if err != nil {
		t.Fatal(err)
	}
	c := mirrorCache{head: string(head), tiles: map[string]string{}, records: map[int64]string{}}
	err = ms.ScanMirrorTiles(ctx, db, func(level int, index int64, data []byte) error {
		c.tiles[fmt.Sprintf("%d/%d", level, index)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = ms.ScanMirrorRecords(ctx, db, func(id int64, text []byte) error {
		c.records[id] = string(text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameCache checks that b holds the mirror of db that a holds.
func sameCache(t *testing.T, a, b export.MirrorStore, db string) {
	t.Helper()
	ca, cb := readCache(t, a, db), readCache(t, b, db)
	if cb.head != ca.head || !maps.Equal(cb.tiles, ca.tiles) || !maps.Equal(cb.records, ca.records) {
		t.Fatalf("mirror of %s: head %q, %d tiles, %d records; want the original's %q, %d tiles, %d records",
			db, cb.head, len(cb.tiles), len(cb.records), ca.head, len(ca.tiles), len(ca.records))
	}
}

// writeFile exports s.
func writeFile(t *testing.T, s tlog.Store, vkey string) ([]byte, *export.Written) {
	t.Helper()
	var buf bytes.Buffer
	w, err := export.WriteFile(t.Context(), s, &buf, vkey, nil)
	if err != nil {
		t.Fatalf("WriteFile() = %v", err)
	}
	return buf.Bytes(), w
}

func TestMirrorRoundTrip(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 700)
	other := newUpstream(t, "sum.example.org", 3)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t, "export.example")
			src := b.open(t)
			newLog(t, src, k, 300)
			up.fill(t, src.(export.MirrorStore), 0, 5, 256, 699)
			other.fill(t, src.(export.MirrorStore), 2)
			file, w := writeFile(t, src, k.vkey)
			if w.Head.Size != 300 || len(w.Mirrors) != 2 {
				t.Fatalf("WriteFile() = head of size %d, %d mirrors, want 300, 2", w.Head.Size, len(w.Mirrors))
			}
			if !bytes.HasPrefix(file, []byte("sumdb export 2\n")) {
				t.Errorf("WriteFile() wrote %q..., want a version 2 file", file[:15])
			}
			dst := b.open(t)
			keys := up.keys()
			maps.Copy(keys, other.keys())
			res := importOK(t, dst, file, export.ImportConfig{Key: k.vkey, MirrorKeys: keys})
			sameLog(t, src, dst)
			sameCache(t, src.(export.MirrorStore), dst.(export.MirrorStore), up.name())
			sameCache(t, src.(export.MirrorStore), dst.(export.MirrorStore), other.name())
			// 700 records: level-0 tiles 0 to 2, a level-1 tile, 3 data tiles.
			want := export.MirrorSummary{DB: up.name(), Size: 700, Tiles: 7, Records: 4}
			if len(res.Mirrors) != 2 || res.Mirrors[0] != want && res.Mirrors[1] != want {
				t.Errorf("Import().Mirrors = %+v, want %+v among them", res.Mirrors, want)
			}
			// Again: nothing changes, and nothing is refused.
			importOK(t, dst, file, export.ImportConfig{Key: k.vkey, MirrorKeys: keys})
			sameCache(t, src.(export.MirrorStore), dst.(export.MirrorStore), up.name())
		})
	}
}

// TestMirrorOnly checks that a store whose log is empty, as a server that
// only mirrors has, exports its mirror cache, with or without a key.
func TestMirrorOnly(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 40)
	src := openSQLite(t)
	var buf bytes.Buffer
	if _, err := export.WriteFile(t.Context(), src, &buf, "", nil); err == nil || !strings.Contains(err.Error(), "nothing to export") {
		t.Errorf("WriteFile(empty store) = %v, want an error saying there is nothing to export", err)
	}
	up.fill(t, src.(export.MirrorStore), 3)
	for _, vkey := range []string{"", newKeys(t, "export.example").vkey} {
		file, w := writeFile(t, src, vkey)
		if w.Head.Size != 0 || len(w.Mirrors) != 1 || w.Mirrors[0].Records != 1 {
			t.Errorf("WriteFile() = %+v, want an empty log and 1 mirror with 1 record", w)
		}
		dst := openSQLite(t)
		res := importOK(t, dst, file, export.ImportConfig{MirrorKeys: up.keys()})
		if res.Head.Size != 0 || res.Imported != 0 {
			t.Errorf("Import() = head of size %d, %d records imported, want an empty log", res.Head.Size, res.Imported)
		}
		sameCache(t, src.(export.MirrorStore), dst.(export.MirrorStore), up.name())
		if h, err := dst.ReadHead(t.Context()); err != nil || h.Size != 0 {
			t.Errorf("ReadHead() after Import() = size %d, %v, want 0", h.Size, err)
		}
	}
}

// flipAt returns file with the byte at i changed.
func flipAt(file []byte, i int) []byte {
	bad := bytes.Clone(file)
	bad[i] ^= 0x01
	return bad
}

// TestMirrorRefuseTampered checks that a file whose mirror section was
// altered is refused, and that nothing of the mirror is stored.
func TestMirrorRefuseTampered(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 300)
	src := openSQLite(t)
	up.fill(t, src.(export.MirrorStore), 7)
	file, _ := writeFile(t, src, "")
	ctx := t.Context()
	tile1, err := up.db.Store.ReadTile(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	level1, err := up.db.Store.ReadTile(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := up.db.Store.ReadRecords(ctx, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	text := recs[0].Text
	sig := bytes.LastIndex(up.head.Note, []byte("\n— "))
	// Each alteration flips a byte of the file: the data of a tile, the
	// text of a record (in its data tile, which comes first, and in its
	// lookup record), the tree or the signature of the head.
	for _, tt := range []struct {
		name string
		at   int
		want string
	}{
		// Tile 0/1 is at the right edge of the tree, which every
		// tile's proof begins with: the first tile checked fails.
		{"HashTile", bytes.Index(file, tile1) + 40, "does not verify against its head"},
		{"LevelOneTile", bytes.Index(file, level1[:32]) + 3, "tile 1/0"},
		{"DataTile", bytes.Index(file, text) + 20, "data tile 0"},
		{"Record", bytes.LastIndex(file, text) + 20, "record 7"},
		{"HeadTree", bytes.Index(file, up.head.Note) + len("go.sum database tree\n3"), "does not verify"},
		{"HeadSignature", bytes.Index(file, up.head.Note) + sig + 10, "does not verify"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.at < 40 {
				t.Fatalf("the file does not hold what the test alters")
			}
			dst := openSQLite(t)
			_, err := export.Import(ctx, dst, bytes.NewReader(flipAt(file, tt.at)), export.ImportConfig{MirrorKeys: up.keys()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import(file with a byte of %s flipped) = %v, want an error containing %q", tt.name, err, tt.want)
			}
			c := readCache(t, dst.(export.MirrorStore), up.name())
			if c.head != "" || len(c.tiles) != 0 || len(c.records) != 0 {
				t.Errorf("after the refused Import(): %d tiles, %d records, head %q, want nothing stored", len(c.tiles), len(c.records), c.head)
			}
		})
	}
	// The unaltered file imports: the alterations are what was refused.
	importOK(t, openSQLite(t), file, export.ImportConfig{MirrorKeys: up.keys()})
}

// TestMirrorRefuseForged checks what a cache of forged data exports to:
// a file that Import refuses, whatever was forged.
func TestMirrorRefuseForged(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 20)
	other := newUpstream(t, "sum.example.org", 20) // another log of the same size
	ctx := t.Context()
	for _, tt := range []struct {
		name  string
		build func(t *testing.T, ms export.MirrorStore)
		want  string
	}{
		{"HeadOfAnotherKey", func(t *testing.T, ms export.MirrorStore) {
			up.fill(t, ms)
			// Another key of the same name signs the same tree.
			forged := sumdbtest.NewKey(t, up.name()).SignTree(t, up.head.Size, up.head.Hash)
			if err := ms.SwapState(ctx, export.MirrorHeadState(up.name()), up.head.Note, forged); err != nil {
				t.Fatal(err)
			}
		}, "does not verify"},
		{"RecordOfAnotherID", func(t *testing.T, ms export.MirrorStore) {
			up.fill(t, ms)
			recs, err := up.db.Store.ReadRecords(ctx, 3, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ms.PutMirrorRecord(ctx, up.name(), recs[0].Path, recs[0].Version, 4, recs[0].Text); err != nil {
				t.Fatal(err)
			}
		}, "record 4"},
		{"TileOfAnotherLog", func(t *testing.T, ms export.MirrorStore) {
			data, err := other.db.Store.ReadTile(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := ms.PutMirrorTile(ctx, up.name(), 0, 0, data); err != nil {
				t.Fatal(err)
			}
			if err := ms.SwapState(ctx, export.MirrorHeadState(up.name()), nil, up.head.Note); err != nil {
				t.Fatal(err)
			}
		}, "tile 0/0"},
		{"DataTileOfAnotherLog", func(t *testing.T, ms export.MirrorStore) {
			data, err := up.db.Store.ReadTile(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := ms.PutMirrorTile(ctx, up.name(), 0, 0, data); err != nil {
				t.Fatal(err)
			}
			if err := ms.PutMirrorTile(ctx, up.name(), -1, 0, other.dataTile(t, 0, 20)); err != nil {
				t.Fatal(err)
			}
			if err := ms.SwapState(ctx, export.MirrorHeadState(up.name()), nil, up.head.Note); err != nil {
				t.Fatal(err)
			}
		}, "data tile 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := openSQLite(t)
			tt.build(t, src.(export.MirrorStore))
			file, _ := writeFile(t, src, "")
			_, err := export.Import(ctx, openSQLite(t), bytes.NewReader(file), export.ImportConfig{MirrorKeys: up.keys()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import(cache with %s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
	// A key named for another database than the one it is given for.
	keys := map[string]string{"forged.example": up.db.Key.VKey}
	if _, err := export.Import(ctx, openSQLite(t), strings.NewReader(""), export.ImportConfig{MirrorKeys: keys}); err == nil || !strings.Contains(err.Error(), "is named") {
		t.Errorf("Import() with a key named for another database = %v, want an error saying so", err)
	}
}

// TestMirrorMissingKey checks that a mirror section of a database whose
// key is not given is refused, naming the database and the flag.
func TestMirrorMissingKey(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 10)
	src := openSQLite(t)
	up.fill(t, src.(export.MirrorStore), 1)
	file, _ := writeFile(t, src, "")
	for _, keys := range []map[string]string{nil, {"other.example": newKeys(t, "other.example").vkey}} {
		dst := openSQLite(t)
		_, err := export.Import(t.Context(), dst, bytes.NewReader(file), export.ImportConfig{MirrorKeys: keys})
		if err == nil || !strings.Contains(err.Error(), up.name()) || !strings.Contains(err.Error(), "--mirror") {
			t.Errorf("Import(MirrorKeys %v) = %v, want an error naming %s and --mirror", keys, err, up.name())
		}
		if c := readCache(t, dst.(export.MirrorStore), up.name()); len(c.tiles) != 0 || c.head != "" {
			t.Errorf("after the refused Import(): %d tiles, head %q, want nothing stored", len(c.tiles), c.head)
		}
	}
}

// TestMirrorStoredHead checks an import into a store that mirrors the
// database already: an older head of the same log is replaced, the same or
// a newer one is kept, and a head of a fork refuses the import.
func TestMirrorStoredHead(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "sum.example.com", 300)
	ctx := t.Context()
	src := openSQLite(t)
	up.fill(t, src.(export.MirrorStore), 1)
	file, _ := writeFile(t, src, "")
	older, err := up.db.Store.ReadHeads(ctx, 1, 299)
	if err != nil || len(older) == 0 {
		t.Fatalf("upstream ReadHeads(1, 299) = %d heads, %v", len(older), err)
	}
	old := older[len(older)/2]
	fork := up.db.Key.SignTree(t, old.Size, xtlog.Hash{1})
	// A newer head than the file's.
	up.db.AppendSynthetic("later", 30)
	newHead, err := up.db.Store.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		stored   []byte
		want     []byte // the head afterwards
		errorHas string
	}{
		{"Older", old.Note, up.head.Note, ""},
		{"Same", up.head.Note, up.head.Note, ""},
		{"Newer", newHead.Note, newHead.Note, ""},
		{"Fork", fork, fork, "forked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := openSQLite(t)
			ms := dst.(export.MirrorStore)
			if err := ms.SwapState(ctx, export.MirrorHeadState(up.name()), nil, tt.stored); err != nil {
				t.Fatal(err)
			}
			if tt.name == "Newer" {
				// The proof of the newer head needs its tiles: a
				// mirror holds those it verified that head with.
				for _, tile := range xtlog.NewTiles(tlog.TileHeight, 0, newHead.Size) {
					data, err := up.db.Store.ReadTile(ctx, tile.L, tile.N)
					if err != nil {
						t.Fatal(err)
					}
					if err := ms.PutMirrorTile(ctx, up.name(), tile.L, tile.N, data[:tile.W*32]); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := export.Import(ctx, dst, bytes.NewReader(file), export.ImportConfig{MirrorKeys: up.keys()})
			switch {
			case tt.errorHas == "" && err != nil:
				t.Fatalf("Import() = %v, want nil", err)
			case tt.errorHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errorHas)):
				t.Fatalf("Import() = %v, want an error containing %q", err, tt.errorHas)
			}
			if got, err := ms.ReadState(ctx, export.MirrorHeadState(up.name())); err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("head after Import() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

// TestMirrorUnproved checks that a tile narrower than the head's tree
// needs (cached at an older head), and what it alone would prove, is left
// out rather than stored unproved.
func TestMirrorUnproved(t *testing.T) {
	t.Parallel()
	// 600 records: tiles 0/0 and 0/1 full, 0/2 of 88 hashes, 1/0 of 2.
	up := newUpstream(t, "sum.example.com", 600)
	src := openSQLite(t)
	// Tile 0/1 as the tree of size 280 had it.
	up.fillCut(t, src.(export.MirrorStore), func(level int, index int64, data []byte) []byte {
		if level == 0 && index == 1 {
			return data[:24*32]
		}
		return data
	}, 5, 270)
	file, _ := writeFile(t, src, "")
	dst := openSQLite(t)
	res := importOK(t, dst, file, export.ImportConfig{MirrorKeys: up.keys()})
	// Left out: tile 0/1, data tile 1 and record 270.
	want := export.MirrorSummary{DB: up.name(), Size: 600, Tiles: 5, Records: 1, Unproved: 3}
	if len(res.Mirrors) != 1 || res.Mirrors[0] != want {
		t.Errorf("Import().Mirrors = %+v, want [%+v]", res.Mirrors, want)
	}
	got := readCache(t, dst.(export.MirrorStore), up.name())
	for _, tile := range []string{"0/1", "-1/1"} {
		if _, ok := got.tiles[tile]; ok {
			t.Errorf("Import() stored the unproved tile %s", tile)
		}
	}
	if _, ok := got.records[270]; ok {
		t.Errorf("Import() stored the unproved record 270")
	}
	for _, tile := range []string{"0/0", "0/2", "1/0", "-1/0", "-1/2"} {
		if _, ok := got.tiles[tile]; !ok {
			t.Errorf("Import() left out tile %s, which the file proves", tile)
		}
	}
	if got.records[5] == "" || got.head != string(up.head.Note) {
		t.Errorf("Import() left out record 5 or the head, which the file proves")
	}
}

// TestReadVersion1 checks that a file of version 1, which has no mirror
// sections and an end frame of two counts, is still read.
func TestReadVersion1(t *testing.T) {
	t.Parallel()
	k := newKeys(t, "export.example")
	src := openSQLite(t)
	newLog(t, src, k, 50)
	file := exportLog(t, src, k)
	// The end frame: 'E', its length, the records, the heads, and three
	// zero counts of mirror frames, one byte each.
	end := bytes.LastIndexByte(file, 'E')
	n, k1 := binary.Uvarint(file[end+1:])
	if k1 != 1 || int(n) != len(file)-end-2 || !bytes.HasSuffix(file, []byte{0, 0, 0}) {
		t.Fatalf("the export does not end with an end frame of three zero mirror counts")
	}
	v1 := append(bytes.Clone(file[:end+1]), byte(n-3))
	v1 = append(v1, file[end+2:len(file)-3]...)
	v1 = bytes.Replace(v1, []byte("sumdb export 2\n"), []byte("sumdb export 1\n"), 1)
	dst := openSQLite(t)
	importOK(t, dst, v1, export.ImportConfig{Key: k.vkey})
	sameLog(t, src, dst)
	// A version 1 file has no mirror frames: the same frames under version
	// 2 need the counts of mirror frames.
	v2 := bytes.Replace(v1, []byte("sumdb export 1\n"), []byte("sumdb export 2\n"), 1)
	if _, err := export.Import(t.Context(), openSQLite(t), bytes.NewReader(v2), export.ImportConfig{}); err == nil || !strings.Contains(err.Error(), "end frame") {
		t.Errorf("Import(version 2 with a version 1 end frame) = %v, want an end frame error", err)
	}
}
