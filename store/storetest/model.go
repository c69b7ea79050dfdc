package storetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// Record returns a record with a realistic text for path@version at position
// id: the two go.sum lines, with hashes derived from path and version.
func Record(id int64, path, version string) tlog.Record {
	h1 := sha256.Sum256([]byte("zip " + path + "@" + version))
	h2 := sha256.Sum256([]byte("mod " + path + "@" + version))
	text := fmt.Sprintf("%s %s h1:%s\n%s %s/go.mod h1:%s\n",
		path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
	return tlog.Record{ID: id, Path: path, Version: version, Text: []byte(text)}
}

// A model is a log kept in memory, with the reference tree code of
// golang.org/x/mod/sumdb/tlog, from which the suite builds batches with
// real tiles and signed heads.
type model struct {
	signer note.Signer
	size   int64
	hashes []xtlog.Hash // stored hashes, by storage index
	// tiles is the content of every tile, by path, as a store must keep it.
	tiles   map[xtlog.Tile][]byte
	records []tlog.Record // every record, by id
	heads   []tlog.Head   // every head appended, in order
}

func newModel(t testing.TB) *model {
	skey, _, err := note.GenerateKey(rand.Reader, "storetest.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &model{signer: signer, tiles: make(map[xtlog.Tile][]byte)}
}

// clone returns a copy of m that can be advanced on its own.
func (m *model) clone() *model {
	c := *m
	c.hashes = slices.Clone(m.hashes)
	c.records = slices.Clone(m.records)
	c.heads = slices.Clone(m.heads)
	c.tiles = make(map[xtlog.Tile][]byte, len(m.tiles))
	for k, v := range m.tiles {
		c.tiles[k] = v
	}
	return &c
}

func (m *model) ReadHashes(indexes []int64) ([]xtlog.Hash, error) {
	list := make([]xtlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("model: no hash %d", x)
		}
		list[i] = m.hashes[x]
	}
	return list, nil
}

// batch advances m by the records of the given path@version pairs, and
// returns the batch that stores them.
func (m *model) batch(t testing.TB, keys ...string) *tlog.Batch {
	t.Helper()
	b := &tlog.Batch{OldSize: m.size, OldHash: m.root()}
	for _, k := range keys {
		path, version := splitKey(t, k)
		b.Records = append(b.Records, Record(m.size+int64(len(b.Records)), path, version))
	}
	m.add(t, b)
	return b
}

// add advances m by the records of b and fills in its tiles and head.
func (m *model) add(t testing.TB, b *tlog.Batch) {
	t.Helper()
	old := m.size
	for _, r := range b.Records {
		hs, err := xtlog.StoredHashes(m.size, r.Text, m)
		if err != nil {
			t.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
		m.records = append(m.records, r)
		m.size++
	}
	b.Tiles = nil
	for _, tile := range xtlog.NewTiles(tlog.TileHeight, old, m.size) {
		data, err := xtlog.ReadTileData(tile, m)
		if err != nil {
			t.Fatal(err)
		}
		full := tile
		full.W = tlog.TileWidth
		m.tiles[full] = data
		b.Tiles = append(b.Tiles, tlog.Tile{Level: tile.L, Index: tile.N, Hashes: data})
	}
	b.Head = m.head(t)
	m.heads = append(m.heads, b.Head)
}

// head returns the signed head of m.
func (m *model) head(t testing.TB) tlog.Head {
	t.Helper()
	hash, err := xtlog.TreeHash(m.size, m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: m.size, Hash: hash}))}, m.signer)
	if err != nil {
		t.Fatal(err)
	}
	return tlog.Head{Size: m.size, Hash: hash, Note: msg}
}

// root returns the root hash of the newest head appended to m, zero if none.
func (m *model) root() xtlog.Hash {
	if len(m.heads) == 0 {
		return xtlog.Hash{}
	}
	return m.heads[len(m.heads)-1].Hash
}

// tile returns the content of tile (level, index) in m, or nil.
func (m *model) tile(level int, index int64) []byte {
	return m.tiles[xtlog.Tile{H: tlog.TileHeight, L: level, N: index, W: tlog.TileWidth}]
}

func splitKey(t testing.TB, key string) (path, version string) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '@' {
			return key[:i], key[i+1:]
		}
	}
	t.Fatalf("bad key %q: want path@version", key)
	return "", ""
}

// merge returns the batch that commits the consecutive batches bs (made by
// m.batch, in order) at once: their records, the last content of each tile,
// the heads of all but the last as history, and the last one's head.
func merge(bs ...*tlog.Batch) *tlog.Batch {
	b := &tlog.Batch{OldSize: bs[0].OldSize, OldHash: bs[0].OldHash}
	type tileID struct {
		level int
		index int64
	}
	at := make(map[tileID]int)
	for i, x := range bs {
		b.Records = append(b.Records, x.Records...)
		for _, t := range x.Tiles {
			id := tileID{t.Level, t.Index}
			if j, ok := at[id]; ok {
				b.Tiles[j] = t
				continue
			}
			at[id] = len(b.Tiles)
			b.Tiles = append(b.Tiles, t)
		}
		if i < len(bs)-1 {
			b.History = append(b.History, x.Head)
		}
		b.Head = x.Head
	}
	return b
}
