package sumdb

import (
	"bytes"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/lru"
)

// DefaultTileCacheSize is the default bound of the tile cache, in bytes:
// about 8,000 full hash tiles (all those above level 0 of a log of 500
// million records) or 1,600 full data tiles of go.sum records.
const DefaultTileCacheSize = 64 << 20

// A tileKey names a full tile: its level (-1 for a data tile) and index.
type tileKey struct {
	level int
	index int64
}

// A tileCache keeps the content of tiles: of a full tile, which never
// changes (the tree only grows, and a full tile covers a part of it that is
// fixed), or of a partial one, whose prefixes never change either: the tile
// of the next head is longer, and replaces it.
type tileCache = lru.Cache[tileKey, cachedTile]

// A cachedTile is the content of a tile and its width: the number of
// hashes, or records, it holds.
type cachedTile struct {
	data  []byte // never modified
	width int
	gen   uint64 // the log's generation before the tile was read
}

// newTileCache returns a cache of at most maxBytes, or nil (no cache) if
// maxBytes is 0 or less.
func newTileCache(maxBytes int64) *tileCache {
	return lru.New[tileKey](maxBytes, func(t cachedTile) int64 { return int64(len(t.data)) })
}

// DefaultLookupCacheSize is the default bound of the cache of logged
// records, in bytes: about 90,000 records of go.sum lines.
const DefaultLookupCacheSize = 32 << 20

// A cachedRecord is a logged record: its id and text.
type cachedRecord struct {
	id   int64
	text []byte // never modified
	gen  uint64 // the log's generation before the record was read
}

// A recordCache keeps logged records by path@version: a logged record never
// changes.
type recordCache = lru.Cache[string, cachedRecord]

// newRecordCache returns a cache of at most maxBytes, or nil (no cache) if
// maxBytes is 0 or less.
func newRecordCache(maxBytes int64) *recordCache {
	return lru.New[string](maxBytes, func(r cachedRecord) int64 {
		// The key, path@version, is about a third of the text.
		return int64(len(r.text) + len(r.text)/3)
	})
}

// tilePrefix returns the content of tile t, of width t.W, from c, the
// content of a tile of the same level and index and of width c.width: the
// first t.W hashes of a hash tile, the first t.W records of a data tile
// (each record's text followed by a blank line). It returns false if c
// does not hold t.W of them.
func tilePrefix(t xtlog.Tile, c cachedTile) ([]byte, bool) {
	switch {
	case t.W > c.width:
		return nil, false
	case t.W == c.width:
		return c.data, true
	case t.L >= 0:
		n := t.W * xtlog.HashSize
		if n > len(c.data) {
			return nil, false
		}
		return c.data[:n:n], true
	}
	// A record's text is lines, none empty: "\n\n" only ends a record.
	end := 0
	for range t.W {
		i := bytes.Index(c.data[end:], []byte("\n\n"))
		if i < 0 {
			return nil, false
		}
		end += i + 2
	}
	return c.data[:end:end], true
}

// holds reports whether data, read as the content of tile t, holds
// exactly t.W hashes or records.
func holds(t xtlog.Tile, data []byte) bool {
	if t.L >= 0 {
		return len(data) == t.W*xtlog.HashSize
	}
	// A record's text is lines, none empty: "\n\n" only ends a record.
	return bytes.Count(data, []byte("\n\n")) == t.W && bytes.HasSuffix(data, []byte("\n\n"))
}
