package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	xtlog "golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/tlog"
)

// A tileReader reads the hash tiles of the upstream's tree for
// xtlog.TileHashReader: from the store if it holds them as wide, else from
// the upstream. TileHashReader checks every tile it reads against the tree
// it was given before it calls SaveTiles, which stores the tiles fetched,
// or holds them until flush.
type tileReader struct {
	m    *Mirror
	ctx  context.Context
	hold bool // keep the verified tiles until flush

	mu      sync.Mutex
	fetched map[xtlog.Tile]bool // guarded by mu; the tiles read from the upstream
	held    []heldTile          // guarded by mu; verified tiles waiting for flush
}

type heldTile struct {
	t    xtlog.Tile
	data []byte
}

// tileReader returns a tileReader for the requests of ctx; with hold, it
// stores nothing before flush.
func (m *Mirror) tileReader(ctx context.Context, hold bool) *tileReader {
	return &tileReader{m: m, ctx: ctx, hold: hold, fetched: make(map[xtlog.Tile]bool)}
}

func (r *tileReader) Height() int { return tlog.TileHeight }

func (r *tileReader) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var g errgroup.Group
	g.SetLimit(cap(r.m.slots))
	for i, t := range tiles {
		g.Go(func() error {
			var err error
			data[i], err = r.readTile(t)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return data, nil
}

// readTile returns hash tile t, of exactly its width.
func (r *tileReader) readTile(t xtlog.Tile) ([]byte, error) {
	size := t.W * xtlog.HashSize
	stored, err := r.m.store.ReadMirrorTile(r.ctx, r.m.name, t.L, t.N)
	switch {
	case err == nil && len(stored) >= size:
		return stored[:size], nil
	case err != nil && !errors.Is(err, tlog.ErrNotFound):
		return nil, fmt.Errorf("%w: read tile %s: %w", ErrUnavailable, t.Path(), err)
	}
	data, err := r.m.get(r.ctx, t.Path())
	if err != nil {
		return nil, err
	}
	if len(data) != size {
		return nil, r.m.refuse(r.ctx, reasonTile, t.Path(), fmt.Errorf("tile of %d bytes, want %d", len(data), size))
	}
	r.mu.Lock()
	r.fetched[t] = true
	r.mu.Unlock()
	return data, nil
}

func (r *tileReader) SaveTiles(tiles []xtlog.Tile, data [][]byte) {
	r.mu.Lock()
	var save []heldTile
	for i, t := range tiles {
		if r.fetched[t] {
			save = append(save, heldTile{t, data[i]})
			delete(r.fetched, t)
		}
	}
	if r.hold {
		r.held = append(r.held, save...)
		save = nil
	}
	r.mu.Unlock()
	r.m.putTiles(r.ctx, save)
}

// flush stores the tiles held.
func (r *tileReader) flush() {
	r.mu.Lock()
	held := r.held
	r.held = nil
	r.mu.Unlock()
	r.m.putTiles(r.ctx, held)
}

// putTiles stores verified tiles. A failure is logged, not returned: the
// tiles are fetched again when next needed.
func (m *Mirror) putTiles(ctx context.Context, tiles []heldTile) {
	for _, h := range tiles {
		if err := m.store.PutMirrorTile(ctx, m.name, h.t.L, h.t.N, h.data); err != nil {
			level := slog.LevelWarn
			if errors.Is(err, tlog.ErrConflict) {
				level = slog.LevelError // the store holds other content: not of this tree
			}
			m.logger.Log(ctx, level, "cannot store a verified tile", "db", m.name, "tile", h.t.Path(), "err", err)
		}
	}
}

// tile returns tile t, a hash or data tile of the newest verified tree,
// and where it came from: the store, or else the upstream, verified, in
// one flight for all concurrent requests of t.
func (m *Mirror) tile(ctx context.Context, t xtlog.Tile) ([]byte, string, error) {
	if data, ok, err := m.storedTile(ctx, t); ok || err != nil {
		return data, sourceStore, err
	}
	data, err := shared(ctx, &m.tiles, t.Path(), 4*m.timeout, func(ctx context.Context) ([]byte, error) {
		// A flight that just ended, or another replica, may have stored it.
		if data, ok, err := m.storedTile(ctx, t); ok || err != nil {
			return data, err
		}
		head, err := m.headFor(ctx, t)
		if err != nil {
			return nil, err
		}
		if t.L == -1 {
			return m.fetchDataTile(ctx, t, head)
		}
		data, err := xtlog.ReadTileData(t, xtlog.TileHashReader(head.tree, m.tileReader(ctx, false)))
		if err != nil {
			return nil, m.tileError(ctx, t.Path(), head, err)
		}
		return data, nil
	})
	return data, sourceUpstream, err
}

// storedTile returns tile t, a hash or data tile, if the store holds it as
// wide.
func (m *Mirror) storedTile(ctx context.Context, t xtlog.Tile) ([]byte, bool, error) {
	stored, err := m.store.ReadMirrorTile(ctx, m.name, t.L, t.N)
	switch {
	case errors.Is(err, tlog.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%w: read tile %s: %w", ErrUnavailable, t.Path(), err)
	case t.L >= 0:
		if len(stored) >= t.W*xtlog.HashSize {
			return stored[:t.W*xtlog.HashSize], true, nil
		}
	default:
		if recs, ok := splitRecords(stored, t.W); ok {
			return stored[:recs[t.W-1].end], true, nil
		}
	}
	return nil, false, nil
}

// errBeyond marks a tile that the newest verified tree does not reach.
var errBeyond = errors.New("tile beyond the verified tree")

// headFor returns the newest verified head, if its tree reaches tile t:
// else the one another replica stored, or else, once, the upstream's.
func (m *Mirror) headFor(ctx context.Context, t xtlog.Tile) (verifiedHead, error) {
	head := m.newest()
	if inTree(t, head.tree.N) {
		return head, nil
	}
	head, err := m.reload(ctx)
	if err != nil {
		return verifiedHead{}, err
	}
	if inTree(t, head.tree.N) {
		return head, nil
	}
	head, _, err = m.refresh(ctx)
	if inTree(t, head.tree.N) {
		return head, nil
	}
	if err != nil {
		return verifiedHead{}, fmt.Errorf("%w: %s: the verified tree has %d records (%w)", errBeyond, t.Path(), head.tree.N, err)
	}
	return verifiedHead{}, fmt.Errorf("%w: %s: the verified tree has %d records", errBeyond, t.Path(), head.tree.N)
}

// fetchDataTile fetches data tile t from the upstream, checks each record
// against the verified hashes of head's tree and stores it.
func (m *Mirror) fetchDataTile(ctx context.Context, t xtlog.Tile, head verifiedHead) ([]byte, error) {
	path := t.Path()
	data, err := m.get(ctx, path)
	if err != nil {
		return nil, err
	}
	recs, ok := splitRecords(data, t.W)
	if !ok || recs[t.W-1].end != len(data) {
		return nil, m.refuse(ctx, reasonRecord, path, fmt.Errorf("not %d records, each followed by a blank line", t.W))
	}
	start := t.N * tlog.TileWidth
	indexes := make([]int64, t.W)
	for i := range indexes {
		indexes[i] = xtlog.StoredHashIndex(0, start+int64(i))
	}
	hashes, err := xtlog.TileHashReader(head.tree, m.tileReader(ctx, false)).ReadHashes(indexes)
	if err != nil {
		return nil, m.tileError(ctx, path, head, err)
	}
	for i, rec := range recs {
		if xtlog.RecordHash(data[rec.start:rec.end-1]) != hashes[i] {
			return nil, m.refuse(ctx, reasonRecord, path, fmt.Errorf("record %d is not the record %d of the verified tree of %d records", start+int64(i), start+int64(i), head.tree.N))
		}
	}
	m.putTiles(ctx, []heldTile{{t, data}})
	return data, nil
}

// A span is the bytes [start, end) of a data tile holding one record's
// text and the blank line after it.
type span struct{ start, end int }

// splitRecords returns the spans of the first w records of a data tile:
// record texts, each ending in a newline and followed by another. It
// reports false if data holds fewer.
func splitRecords(data []byte, w int) ([]span, bool) {
	recs := make([]span, 0, w)
	for start := 0; len(recs) < w; {
		i := bytes.Index(data[start:], []byte("\n\n"))
		if i < 0 {
			return nil, false
		}
		end := start + i + 2
		recs = append(recs, span{start, end})
		start = end
	}
	return recs, true
}

// inTree reports whether the tree of the given size reaches all of tile t
// (a data tile spans the records of the level-0 tile of its index).
func inTree(t xtlog.Tile, size int64) bool {
	level := max(t.L, 0)
	if t.H != tlog.TileHeight || t.N < 0 || t.W < 1 || t.W > tlog.TileWidth || level >= 8 {
		return false
	}
	n := size >> (uint(level) * tlog.TileHeight) // hashes at the tile's level
	return t.N < n/tlog.TileWidth || t.N == n/tlog.TileWidth && int64(t.W) <= n%tlog.TileWidth
}
