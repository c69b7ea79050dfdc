package sumdb

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/lru"
)

// cost returns the bytes a cached tile of data counts for.
func cost(data []byte) int64 { return int64(len(data)) + lru.EntryOverhead }

func TestTilePrefix(t *testing.T) {
	var hashes []byte
	for i := range 256 {
		hashes = append(hashes, bytes.Repeat([]byte{byte(i)}, 32)...)
	}
	var records []byte
	var ends []int
	for i := range 256 {
		p := fmt.Sprintf("example.com/m%d", i)
		records = append(records, synthText(p, "v1.0.0")...)
		records = append(records, '\n')
		ends = append(ends, len(records))
	}
	for _, w := range []int{1, 2, 100, 255, 256} {
		got, ok := tilePrefix(xtlog.Tile{H: 8, L: 0, N: 7, W: w}, cachedTile{hashes, 256, 0})
		if !ok || !bytes.Equal(got, hashes[:w*32]) {
			t.Errorf("hash tile prefix of width %d: %d bytes, %v; want the first %d hashes", w, len(got), ok, w)
		}
		got, ok = tilePrefix(xtlog.Tile{H: 8, L: -1, N: 7, W: w}, cachedTile{records, 256, 0})
		if !ok || !bytes.Equal(got, records[:ends[w-1]]) {
			t.Errorf("data tile prefix of width %d: %d bytes, %v; want the first %d records", w, len(got), ok, w)
		}
	}
	// A prefix cannot be appended to in place: the cached tile is shared.
	got, _ := tilePrefix(xtlog.Tile{H: 8, L: 0, N: 0, W: 1}, cachedTile{hashes, 256, 0})
	if cap(got) != 32 {
		t.Errorf("prefix of width 1 has capacity %d, want 32", cap(got))
	}
	if _, ok := tilePrefix(xtlog.Tile{H: 8, L: 0, N: 0, W: 3}, cachedTile{hashes[:64], 2, 0}); ok {
		t.Error("prefix of 3 hashes from 2: ok")
	}
	if _, ok := tilePrefix(xtlog.Tile{H: 8, L: -1, N: 0, W: 3}, cachedTile{records[:ends[1]], 2, 0}); ok {
		t.Error("prefix of 3 records from 2: ok")
	}
}

// TestServerTileCache checks that the server caches full tiles only, and
// serves the same bytes from the cache as from the store.
func TestServerTileCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testServerTileCache(t, b) })
	}
}

func testServerTileCache(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.appendSynthetic("c", 300) // 0/000, 0/001.p/44, 1/000.p/1, data/000, data/001.p/44

	// The same log, without a cache.
	plain, err := NewServer(ServerConfig{Log: e.log, Fetcher: e.fetcher, TileCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if plain.tiles != nil {
		t.Fatal("TileCacheSize -1: the server has a cache")
	}
	ref := httptest.NewServer(plain)
	defer ref.Close()
	refGet := func(path string) (int, []byte) {
		t.Helper()
		resp, err := ref.Client().Get(ref.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	// A cache of one full data tile and two full hash tiles: small enough
	// to evict all along.
	_, data := refGet("/tile/8/data/000")
	bound := cost(data) + 2*cost(make([]byte, 8192))
	cache := newTileCache(bound)
	e.srv.tiles = cache
	e.srv.metrics.tiles.Store(cache)
	check := func(path string, wantCode, wantTiles int) {
		t.Helper()
		code, _, got := e.get(path)
		refCode, want := refGet(path)
		if code != wantCode || refCode != wantCode || wantCode == 200 && !bytes.Equal(got, want) {
			t.Errorf("GET %s = %d, %d bytes; without a cache %d, %d bytes; want %d and the same bytes", path, code, len(got), refCode, len(want), wantCode)
		}
		if n := cache.Len(); wantTiles >= 0 && n != wantTiles {
			t.Errorf("after GET %s: %d tiles cached, want %d", path, n, wantTiles)
		}
	}
	check("/tile/8/0/001.p/44", 200, 1) // the partial tile at the head: cached
	check("/tile/8/0/001.p/40", 200, 1) // a hit
	check("/tile/8/1/000.p/1", 200, 2)
	check("/tile/8/data/001.p/44", 200, 3)
	check("/tile/8/0/001.p/45", 404, 3) // beyond the tree
	check("/tile/8/0/002", 404, 3)
	check("/tile/8/data/001", 404, 3)
	check("/tile/8/data/001.p/45", 404, 3)
	// From here on the cache evicts: the counts depend on the sizes.
	check("/tile/8/0/000.p/10", 200, -1) // a prefix of a full tile caches the full tile
	check("/tile/8/0/000", 200, -1)      // a hit
	check("/tile/8/0/000.p/255", 200, -1)
	check("/tile/8/data/000.p/3", 200, -1)
	check("/tile/8/data/000", 200, -1)
	check("/tile/8/data/000.p/255", 200, -1)
	if hits := metric(t, e.reg, "sumdb_tile_cache_hits_total"); hits != 5 {
		t.Errorf("sumdb_tile_cache_hits_total = %v, want 5", hits)
	}
	if size := metric(t, e.reg, "sumdb_tile_cache_bytes"); size != float64(cache.Bytes()) || size == 0 {
		t.Errorf("sumdb_tile_cache_bytes = %v, want %d", size, cache.Bytes())
	}

	// Grow the tree past 0/001: the tile that was partial is now full, and
	// replaces the partial one at its first request.
	e.appendSynthetic("d", 300)
	check("/tile/8/0/001.p/44", 200, -1)
	check("/tile/8/0/001", 200, -1)
	if c, ok := cache.Get(tileKey{0, 1}); !ok || c.width != 256 {
		t.Errorf("after the tree grew: tile 0/001 cached %v, of width %d; want the full tile", ok, c.width)
	}

	// Concurrent reads of every tile of the tree, of random widths, while
	// the tree grows: the cache evicts all along and must serve the bytes
	// the store does.
	size := e.log.Head().Size
	var paths []string
	for _, tile := range xtlog.NewTiles(8, 0, size) {
		for _, l := range []int{tile.L, -1} {
			if l == -1 && tile.L != 0 {
				continue
			}
			for _, w := range []int{1, tile.W / 2, tile.W} {
				if w > 0 {
					paths = append(paths, "/"+xtlog.Tile{H: 8, L: l, N: tile.N, W: w}.Path())
				}
			}
		}
	}
	want := make(map[string][]byte)
	for _, p := range paths {
		code, body := refGet(p)
		if code != 200 {
			t.Fatalf("GET %s without a cache = %d %q", p, code, body)
		}
		want[p] = body
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.appendSynthetic("grow", 200) })
	for range 8 {
		wg.Go(func() {
			for range 100 {
				p := paths[rand.IntN(len(paths))]
				code, _, got, err := e.try(t.Context(), "GET", p)
				if err != nil || code != 200 || !bytes.Equal(got, want[p]) {
					t.Errorf("GET %s = %d, %d bytes, %v; want 200 and the %d bytes served without a cache", p, code, len(got), err, len(want[p]))
					return
				}
			}
		})
	}
	wg.Wait()
	if cache.Bytes() > bound {
		t.Errorf("cache holds %d bytes, more than its bound %d", cache.Bytes(), bound)
	}
}

// TestServerLookupCache checks that a lookup of a logged record is answered
// from memory after the first, with the same record and the newest head,
// and that the cache can be turned off.
func TestServerLookupCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, size := range []int64{0, -1} {
				e, fs := newFaultEnv(t, b, envOptions{cfg: ServerConfig{LookupCacheSize: size, StoreTimeout: 200 * time.Millisecond}})
				e.appendSynthetic("c", 10)
				const path = "/lookup/example.com/c/m3@v1.0.0"
				code, _, first := e.get(path)
				if code != 200 {
					t.Fatalf("size %d: GET %s = %d %q", size, path, code, first)
				}
				record, _, _ := bytes.Cut(first, []byte("\n\n"))

				// A new head, then the store down: the record comes from
				// memory, with the new head.
				e.appendSynthetic("d", 10)
				fs.mode.Store(storeDown)
				code, _, again := e.get(path)
				fs.mode.Store(storeUp)
				hits := metric(t, e.reg, "sumdb_lookup_cache_hits_total")
				if size < 0 {
					if code != 503 || hits != 0 || e.srv.records != nil {
						t.Errorf("cache off, store down: GET %s = %d, %v cache hits; want 503, none", path, code, hits)
					}
					continue
				}
				want := slices.Concat(record, []byte("\n\n"), e.log.Head().Note)
				if code != 200 || !bytes.Equal(again, want) || hits != 1 {
					t.Errorf("store down: GET %s = %d %q, %v cache hits; want 200 %q from the cache", path, code, again, hits, want)
				}
				if n := metric(t, e.reg, "sumdb_lookup_cache_bytes"); n != float64(e.srv.records.Bytes()) || n == 0 {
					t.Errorf("sumdb_lookup_cache_bytes = %v, want %d", n, e.srv.records.Bytes())
				}
				// Only logged records are kept: a miss is not.
				if code, _, _ := e.get("/lookup/example.com/c/none@v1.0.0"); code != 404 || e.srv.records.Len() != 1 {
					t.Errorf("unknown module: %d, %d records cached; want 404, 1", code, e.srv.records.Len())
				}
			}
		})
	}
}
