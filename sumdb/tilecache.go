package sumdb

import (
	"bytes"
	"container/list"
	"sync"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// DefaultTileCacheSize is the default bound of the tile cache, in bytes:
// about 8,000 full hash tiles (all those above level 0 of a log of 500
// million records) or 1,600 full data tiles of go.sum records.
const DefaultTileCacheSize = 64 << 20

// tileEntryOverhead is what the cache counts for an entry besides its
// content: the map entry, the list element and the entry itself.
const tileEntryOverhead = 128

// A tileKey names a full tile: its level (-1 for a data tile) and index.
type tileKey struct {
	level int
	index int64
}

// A tileCache keeps the content of full tiles, which never changes (the
// tree only grows, and a full tile covers a part of it that is fixed), in
// least-recently-used order, bounded by the bytes it holds. It never holds
// a partial tile: those grow with the tree. A tileCache is safe for
// concurrent use; a nil *tileCache holds nothing.
type tileCache struct {
	max int64 // bytes; entries are evicted beyond it

	mu    sync.Mutex
	size  int64                     // guarded by mu; bytes held, overhead included
	lru   list.List                 // guarded by mu; of *tileEntry, most recently used first
	byKey map[tileKey]*list.Element // guarded by mu
}

type tileEntry struct {
	key  tileKey
	data []byte // never modified
}

// newTileCache returns a cache of at most maxBytes, or nil (no cache) if
// maxBytes is 0 or less.
func newTileCache(maxBytes int64) *tileCache {
	if maxBytes <= 0 {
		return nil
	}
	return &tileCache{max: maxBytes, byKey: make(map[tileKey]*list.Element)}
}

// cost returns the bytes an entry of data counts for.
func cost(data []byte) int64 { return int64(len(data)) + tileEntryOverhead }

// get returns the content of the full tile (level, index), if cached. The
// caller must not modify it.
func (c *tileCache) get(level int, index int64) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[tileKey{level, index}]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*tileEntry).data, true
}

// put caches data, the content of the full tile (level, index), which the
// caller must not modify afterwards. Content larger than the whole cache is
// not kept.
func (c *tileCache) put(level int, index int64, data []byte) {
	if c == nil || cost(data) > c.max {
		return
	}
	k := tileKey{level, index}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		// Another request read it meanwhile: the content is the same.
		c.lru.MoveToFront(e)
		return
	}
	c.byKey[k] = c.lru.PushFront(&tileEntry{key: k, data: data})
	c.size += cost(data)
	for c.size > c.max {
		e := c.lru.Back()
		old := c.lru.Remove(e).(*tileEntry)
		delete(c.byKey, old.key)
		c.size -= cost(old.data)
	}
}

// bytes returns the bytes held, overhead included.
func (c *tileCache) bytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// len returns the number of tiles held.
func (c *tileCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// tilePrefix returns the content of tile t, of width t.W, from full, the
// content of the full tile of the same level and index: the first t.W
// hashes of a hash tile, the first t.W records of a data tile (each record's
// text followed by a blank line). It returns false if full does not hold
// t.W of them.
func tilePrefix(t xtlog.Tile, full []byte) ([]byte, bool) {
	if t.W == tlog.TileWidth {
		return full, true
	}
	if t.L >= 0 {
		n := t.W * xtlog.HashSize
		if n > len(full) {
			return nil, false
		}
		return full[:n:n], true
	}
	// A record's text is lines, none empty: "\n\n" only ends a record.
	end := 0
	for range t.W {
		i := bytes.Index(full[end:], []byte("\n\n"))
		if i < 0 {
			return nil, false
		}
		end += i + 2
	}
	return full[:end:end], true
}
