package tlog

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"
)

// refTree is x/mod's own way of growing a tree: every stored hash in a slice.
type refTree struct {
	hashes []xtlog.Hash
	n      int64
}

func (r *refTree) ReadHashes(indexes []int64) ([]xtlog.Hash, error) {
	out := make([]xtlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = r.hashes[x]
	}
	return out, nil
}

func (r *refTree) add(leaf xtlog.Hash) {
	hs, err := xtlog.StoredHashesForRecordHash(r.n, leaf, r)
	if err != nil {
		panic(err)
	}
	r.hashes = append(r.hashes, hs...)
	r.n++
}

func leafHash(i int64) xtlog.Hash {
	return xtlog.RecordHash(fmt.Appendf(nil, "example.com/m%d v1.0.0 h1:x\n", i))
}

// TestEdgeMatchesReference grows a tree in batches of varied sizes and checks
// after every batch that the root and every changed tile equal what x/mod's
// tlog computes from all stored hashes, and that the changed tiles are
// exactly the ones xtlog.NewTiles says a publisher must write.
func TestEdgeMatchesReference(t *testing.T) {
	ref := &refTree{}
	e := NewEdge()
	rnd := rand.New(rand.NewPCG(1, 2))
	batches := []int{1, 1, 253, 1, 1, 1, 254, 256, 512, 3, 65000, 1, 1}
	for len(batches) < 60 {
		batches = append(batches, rnd.IntN(700)+1)
	}
	for _, k := range batches {
		old := ref.n
		leaves := make([]xtlog.Hash, k)
		for i := range leaves {
			leaves[i] = leafHash(old + int64(i))
			ref.add(leaves[i])
		}
		tiles := e.Append(leaves)
		if e.Size() != ref.n {
			t.Fatalf("size = %d, want %d", e.Size(), ref.n)
		}
		want, err := xtlog.TreeHash(ref.n, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Root(); got != want {
			t.Fatalf("root(%d) = %v, want %v", ref.n, got, want)
		}
		wantTiles := xtlog.NewTiles(TileHeight, old, ref.n)
		if len(tiles) != len(wantTiles) {
			t.Fatalf("append %d..%d changed %d tiles, want %d (%v)", old, ref.n, len(tiles), len(wantTiles), wantTiles)
		}
		for i, wt := range wantTiles {
			got := tiles[i]
			if got.Level != wt.L || got.Index != wt.N || len(got.Hashes) != wt.W*xtlog.HashSize {
				t.Fatalf("tile %d = L%d N%d W%d, want %s", i, got.Level, got.Index, len(got.Hashes)/32, wt.Path())
			}
			data, err := xtlog.ReadTileData(wt, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Hashes, data) {
				t.Fatalf("tile %s differs from x/mod's", wt.Path())
			}
		}
	}
}

// TestEdgeAppendFull checks that appending in small steps with AppendFull,
// reusing the leaves buffer, then asking for PartialTiles, gives the tiles
// of one Append of all the leaves.
func TestEdgeAppendFull(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	whole, steps := NewEdge(), NewEdge()
	var n int64
	buf := make([]xtlog.Hash, 0, 700)
	for range 40 {
		since := n
		var all []xtlog.Hash
		var full []Tile
		for range rnd.IntN(5) + 1 {
			buf = buf[:0]
			for range rnd.IntN(700) + 1 {
				buf = append(buf, leafHash(n))
				all = append(all, leafHash(n))
				n++
			}
			full = append(full, steps.AppendFull(buf)...)
		}
		want := whole.Append(all)
		got := append(full, steps.PartialTiles(since)...)
		if steps.Root() != whole.Root() {
			t.Fatalf("size %d: root %v, want %v", n, steps.Root(), whole.Root())
		}
		if len(got) != len(want) {
			t.Fatalf("size %d: %d tiles, want %d", n, len(got), len(want))
		}
		key := func(t Tile) [2]int64 { return [2]int64{int64(t.Level), t.Index} }
		wantBy := make(map[[2]int64][]byte)
		for _, w := range want {
			wantBy[key(w)] = w.Hashes
		}
		for _, g := range got {
			if w, ok := wantBy[key(g)]; !ok || !bytes.Equal(g.Hashes, w) {
				t.Fatalf("size %d: tile %d/%d differs from Append's", n, g.Level, g.Index)
			}
		}
	}
}

// memTiles is a Store holding only tiles and a head, enough for loadEdge.
type memTiles struct {
	Store
	tiles map[[2]int64][]byte
}

func (m *memTiles) ReadTile(_ context.Context, level int, index int64) ([]byte, error) {
	b, ok := m.tiles[[2]int64{int64(level), index}]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

// TestLoadEdge checks that an edge rebuilt from stored tiles continues the
// tree exactly as the edge that wrote them, and that tiles which do not
// reproduce the signed root are refused.
func TestLoadEdge(t *testing.T) {
	for _, n := range []int64{1, 2, 255, 256, 257, 511, 65535, 65536, 65537, 70000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := NewEdge()
			m := &memTiles{tiles: make(map[[2]int64][]byte)}
			leaves := make([]xtlog.Hash, n)
			for i := range leaves {
				leaves[i] = leafHash(int64(i))
			}
			for _, tile := range e.Append(leaves) {
				m.tiles[[2]int64{int64(tile.Level), tile.Index}] = tile.Hashes
			}
			head := Head{Size: n, Hash: e.Root()}
			got, err := LoadEdge(context.Background(), m, head)
			if err != nil {
				t.Fatal(err)
			}
			more := []xtlog.Hash{leafHash(n), leafHash(n + 1)}
			t1, t2 := e.Append(more), got.Append(more)
			if e.Root() != got.Root() || fmt.Sprint(t1) != fmt.Sprint(t2) {
				t.Fatalf("loaded edge diverges from the original after appending")
			}

			// Flip one bit of the top tile, which every edge reads: the load must fail.
			top := 0
			for n>>(uint(top+1)*TileHeight) > 0 {
				top++
			}
			key := [2]int64{int64(top), (n>>(uint(top)*TileHeight) - 1) / TileWidth}
			bad := append([]byte(nil), m.tiles[key]...)
			bad[len(bad)-1] ^= 1
			m.tiles[key] = bad
			if _, err := LoadEdge(context.Background(), m, head); err == nil {
				t.Fatalf("loadEdge accepted a corrupted tile")
			}
		})
	}
}
