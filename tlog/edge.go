package tlog

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// rangeFactory builds compact ranges with the RFC 6962 node hash, which is the
// hash x/mod's tlog uses: SHA-256(0x01 || left || right).
var rangeFactory = &compact.RangeFactory{Hash: func(left, right []byte) []byte {
	var buf [1 + 2*xtlog.HashSize]byte
	buf[0] = 1
	copy(buf[1:], left)
	copy(buf[1+xtlog.HashSize:], right)
	h := sha256.Sum256(buf[:])
	return h[:]
}}

// An Edge is the right edge of a tree: all a writer needs to append to it,
// and all a verifier needs to recompute tiles and roots from records.
// It is the compact range [0, size) (one hash per set bit of size) and, at each
// tile level, the content of the last tile if it is partial. It never holds more
// than a few kilobytes whatever the size of the log.
type Edge struct {
	rng     *compact.Range
	partial [][]byte // partial[L]: hashes of the last tile of level L, fewer than TileWidth
}

// NewEdge returns the edge of the empty tree.
func NewEdge() *Edge {
	return &Edge{rng: rangeFactory.NewEmptyRange(0)}
}

// Size returns the number of records in the tree.
func (e *Edge) Size() int64 { return int64(e.rng.End()) }

// Clone returns a deep copy of e, so that a batch can be computed without
// touching the edge until the batch has committed.
func (e *Edge) Clone() *Edge {
	hashes := make([][]byte, len(e.rng.Hashes()))
	copy(hashes, e.rng.Hashes()) // the hashes themselves are never modified in place
	rng, err := rangeFactory.NewRange(0, e.rng.End(), hashes)
	if err != nil {
		panic(fmt.Sprintf("clone compact range: %v", err)) // the range was valid a moment ago
	}
	c := &Edge{rng: rng, partial: make([][]byte, len(e.partial))}
	for i, p := range e.partial {
		c.partial[i] = append([]byte(nil), p...)
	}
	return c
}

// Append adds the leaf hashes (xtlog.RecordHash of each record text) of new records to e and returns the tiles whose
// content changed, each with its whole new content, ordered by level and index.
func (e *Edge) Append(leaves []xtlog.Hash) []Tile {
	touched := make(map[int]bool)
	full := e.appendLeaves(leaves, touched)
	var tiles []Tile
	for level := range e.partial {
		for _, t := range full {
			if t.Level == level {
				tiles = append(tiles, t)
			}
		}
		if touched[level] && len(e.partial[level]) > 0 {
			tiles = append(tiles, e.partialTile(level))
		}
	}
	return tiles
}

// AppendFull adds leaf hashes to e as Append does, but returns only the
// tiles that became full, without copying the partial ones: a caller that
// appends in many small steps (an import of a log with a head per record)
// asks for the partial tiles once, with PartialTiles.
func (e *Edge) AppendFull(leaves []xtlog.Hash) []Tile {
	return e.appendLeaves(leaves, nil)
}

// PartialTiles returns the partial last tile of each level that grew since
// the tree had size since, each with its whole content (a copy).
func (e *Edge) PartialTiles(since int64) []Tile {
	var tiles []Tile
	for level := range e.partial {
		shift := uint(level) * TileHeight
		if len(e.partial[level]) > 0 && since>>shift != e.Size()>>shift {
			tiles = append(tiles, e.partialTile(level))
		}
	}
	return tiles
}

// partialTile returns a copy of the partial last tile of level.
func (e *Edge) partialTile(level int) Tile {
	n := int64(len(e.partial[level]) / xtlog.HashSize)
	index := (e.Size() >> (uint(level) * TileHeight)) / TileWidth
	if (e.Size()>>(uint(level)*TileHeight))%TileWidth != n {
		panic("partial tile out of step with the tree size")
	}
	return Tile{Level: level, Index: index, Hashes: append([]byte(nil), e.partial[level]...)}
}

// appendLeaves adds leaves to e and returns the tiles that became full. It
// marks in touched, if not nil, the levels whose partial tile changed.
func (e *Edge) appendLeaves(leaves []xtlog.Hash, touched map[int]bool) []Tile {
	var full []Tile
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level%TileHeight != 0 {
			return
		}
		level := int(id.Level / TileHeight)
		for len(e.partial) <= level {
			e.partial = append(e.partial, nil)
		}
		if want := int(id.Index%TileWidth) * xtlog.HashSize; len(e.partial[level]) != want {
			panic(fmt.Sprintf("tile level %d holds %d bytes before node %d, want %d", level, len(e.partial[level]), id.Index, want))
		}
		e.partial[level] = append(e.partial[level], hash...)
		if touched != nil {
			touched[level] = true
		}
		if id.Index%TileWidth == TileWidth-1 {
			full = append(full, Tile{Level: level, Index: int64(id.Index / TileWidth), Hashes: e.partial[level]})
			e.partial[level] = nil
		}
	}
	for i := range leaves {
		// The range keeps the slice it is given: a copy, so that the
		// caller may reuse leaves.
		leaf := leaves[i]
		if err := e.rng.Append(leaf[:], visit); err != nil {
			panic(fmt.Sprintf("append to compact range: %v", err)) // only on a corrupted range
		}
	}
	return full
}

// Root returns the root hash of the tree the edge ends. The tree must not be empty.
func (e *Edge) Root() xtlog.Hash {
	h, err := e.rng.GetRootHash(nil)
	if err != nil || len(h) != xtlog.HashSize {
		panic(fmt.Sprintf("root of compact range of size %d: %v", e.Size(), err))
	}
	return xtlog.Hash(h)
}

// LoadEdge reads the right edge of the tree of head from s, proving every hash
// it reads against head.Hash with x/mod's tile hash reader: a store whose tiles
// do not reproduce the signed root is refused.
func LoadEdge(ctx context.Context, s Store, head Head) (*Edge, error) {
	n := head.Size
	if n == 0 {
		return NewEdge(), nil
	}
	var indexes []int64
	// The compact range: one perfect subtree per set bit of n, largest first.
	var nodes int
	for level := 62; level >= 0; level-- {
		if n&(1<<uint(level)) == 0 {
			continue
		}
		start := n &^ (1<<uint(level+1) - 1) // the leaves before this subtree
		indexes = append(indexes, xtlog.StoredHashIndex(level, start>>uint(level)))
		nodes++
	}
	// The partial last tile of each level.
	var widths []int
	for level := 0; n>>(uint(level)*TileHeight) > 0; level++ {
		count := n >> (uint(level) * TileHeight)
		w := int(count % TileWidth)
		for i := count - int64(w); i < count; i++ {
			indexes = append(indexes, xtlog.StoredHashIndex(level*TileHeight, i))
		}
		widths = append(widths, w)
	}
	tr := &tileReader{ctx: ctx, s: s}
	hashes, err := xtlog.TileHashReader(xtlog.Tree{N: n, Hash: head.Hash}, tr).ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("stored tiles do not reproduce the signed head of size %d: %w", n, err)
	}
	rangeHashes := make([][]byte, nodes)
	for i := range rangeHashes {
		rangeHashes[i] = append([]byte(nil), hashes[i][:]...)
	}
	rng, err := rangeFactory.NewRange(0, uint64(n), rangeHashes)
	if err != nil {
		return nil, fmt.Errorf("rebuild right edge of tree %d: %w", n, err)
	}
	e := &Edge{rng: rng, partial: make([][]byte, len(widths))}
	rest := hashes[nodes:]
	for level, w := range widths {
		for _, h := range rest[:w] {
			e.partial[level] = append(e.partial[level], h[:]...)
		}
		rest = rest[w:]
	}
	if got := e.Root(); got != head.Hash {
		return nil, fmt.Errorf("right edge of tree %d gives root %v, signed head says %v", n, got, head.Hash)
	}
	return e, nil
}

// A tileReader serves x/mod's TileHashReader from a Store. A stored tile may be
// wider than the one asked for (it grew since); the request is its prefix.
type tileReader struct {
	ctx context.Context
	s   Store
}

func (r *tileReader) Height() int { return TileHeight }

func (r *tileReader) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.s.ReadTile(r.ctx, t.L, t.N)
		if err != nil {
			return nil, fmt.Errorf("read tile %s: %w", t.Path(), err)
		}
		if len(b) < t.W*xtlog.HashSize {
			return nil, fmt.Errorf("read tile %s: stored tile holds %d hashes", t.Path(), len(b)/xtlog.HashSize)
		}
		data[i] = b[:t.W*xtlog.HashSize]
	}
	return data, nil
}

func (r *tileReader) SaveTiles([]xtlog.Tile, [][]byte) {}
