package sumdb

// Read-path benchmarks: lookups of logged module versions and tile reads,
// through the real handler on a real loopback HTTP server, on each store,
// and side by side with x/mod's in-memory sumdb.TestServer holding the same
// records, the reference point. Each benchmark runs every server in turn,
// the reference first, -sumdb.bench-rounds times (default 1), so that a
// ratio to the reference comes from one run in which the machine's load
// fell on all of them alike. Each reports req/s and the p50 and p99
// latency of the requests it timed, with -sumdb.bench-conns (default 32)
// requests in flight. The server and the client share the machine's cores.
// docs/performance.md has the figures and the commands that measure them:
//
//	go test ./sumdb -run '^$' -bench 'LookupHit|Tile|HTTPCeiling' -sumdb.bench-rounds 8 > reads.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /server -ignore /round reads.txt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/loadgen"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// benchRecords is the size of the logs the read benchmarks serve: tiles
// 0/000 to 0/389 are full, 0/390.p/160 is the right edge of level 0.
const benchRecords = 100_000

// benchConns is the number of requests in flight in a read benchmark, each
// on its own kept-alive connection.
var benchConns = flag.Int("sumdb.bench-conns", 32, "requests in flight in the read benchmarks")

// benchRounds is the number of times a read benchmark runs each server.
var benchRounds = flag.Int("sumdb.bench-rounds", 1, "rounds of the read benchmarks, each running every server in turn")

// benchStores are the servers the read benchmarks compare, the reference
// first, so that benchstat -col /server shows the others relative to it.
var benchStores = []string{"testserver", "sqlite", "postgres"}

// benchRun runs f as a sub-benchmark for each round and each server, the
// servers in turn within a round: named server=NAME, and round=N/server=NAME
// if there is more than one round (benchstat -ignore /round pools them).
func benchRun(b *testing.B, servers []string, f func(b *testing.B, server string)) {
	for round := range max(1, *benchRounds) {
		run := func(b *testing.B) {
			for _, name := range servers {
				b.Run("server="+name, func(b *testing.B) { f(b, name) })
			}
		}
		if *benchRounds > 1 {
			b.Run("round="+strconv.Itoa(round+1), run)
		} else {
			run(b)
		}
	}
}

// A benchServer is a checksum database serving benchRecords records over
// loopback HTTP.
type benchServer struct {
	url  string
	size int64
	hits []string // lookup URL paths of logged module versions
	// uncached is the same log served without the caches of records and
	// tiles, or nil (the reference server).
	uncached *benchServer
}

// benchFixtures builds each benchServer once for a top-level benchmark, the
// first time one of its sub-benchmarks asks, and keeps it until that
// benchmark ends: building one takes seconds.
type benchFixtures struct {
	parent *testing.B
	mu     sync.Mutex
	built  map[string]*benchServer
}

func newBenchFixtures(b *testing.B) *benchFixtures {
	return &benchFixtures{parent: b, built: make(map[string]*benchServer)}
}

// parentCleanup is b with Cleanup and TempDir of the top-level benchmark,
// so that a fixture outlives the sub-benchmark that built it, while Skip and
// Fatal still end that sub-benchmark.
type parentCleanup struct {
	testing.TB
	parent testing.TB
}

func (p parentCleanup) Cleanup(f func()) { p.parent.Cleanup(f) }
func (p parentCleanup) TempDir() string  { return p.parent.TempDir() }

// server returns the fixture of the named store, building it if needed.
func (fx *benchFixtures) server(b *testing.B, name string) *benchServer {
	b.Helper()
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if s := fx.built[name]; s != nil {
		return s
	}
	tb := parentCleanup{TB: b, parent: fx.parent}
	start := time.Now()
	var s *benchServer
	if name == "testserver" {
		s = newRefBenchServer(tb)
	} else {
		s = newBenchServer(tb, name)
	}
	b.Logf("built %s fixture of %d records in %v", name, s.size, time.Since(start).Round(time.Millisecond))
	fx.built[name] = s
	return s
}

// benchPath returns the module path of the i-th benchmark record.
func benchPath(i int) string { return "example.com/bench/m" + strconv.Itoa(i) }

// benchText returns made-up go.sum lines of path@version.
func benchText(path, version string) []byte {
	h1 := sha256.Sum256([]byte(path + " " + version))
	h2 := sha256.Sum256([]byte(path + " " + version + "/go.mod"))
	return fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n",
		path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
}

// benchNoFetch is the Fetcher of the benchmark servers: they look up only
// logged versions.
type benchNoFetch struct{}

func (benchNoFetch) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	return nil, fmt.Errorf("%w: %s@%s: not a benchmark record", fetch.ErrNotFound, path, version)
}

// newBenchServer returns a Server on a log of benchRecords records in a
// fresh store of the named kind, listening on loopback.
func newBenchServer(tb testing.TB, kind string) *benchServer {
	ctx := context.Background()
	var st tlog.Store
	var err error
	switch kind {
	case "sqlite":
		st, err = store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "sumdb.db"))
	case "postgres":
		st, err = store.OpenPostgres(ctx, storetest.PostgresURL(tb))
	default:
		tb.Fatalf("unknown store %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.bench")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := tlog.Open(ctx, st, tlog.Config{Signer: signer, Verifier: verifier})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)

	// Many appends in flight make the sequencer commit batches of
	// thousands: a few seconds for the whole log.
	const inFlight = 4096
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	next := make(chan int)
	for range inFlight {
		wg.Go(func() {
			for i := range next {
				p := benchPath(i)
				if _, _, err := l.Append(ctx, p, "v1.0.0", benchText(p, "v1.0.0")); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range benchRecords {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			tb.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}

	srv, err := NewServer(ServerConfig{Log: l, Fetcher: benchNoFetch{}})
	if err != nil {
		tb.Fatal(err)
	}
	plain, err := NewServer(ServerConfig{Log: l, Fetcher: benchNoFetch{}, LookupCacheSize: -1, TileCacheSize: -1})
	if err != nil {
		tb.Fatal(err)
	}
	s := startBenchServer(tb, srv, l.Head().Size)
	s.uncached = startBenchServer(tb, plain, l.Head().Size)
	// Fill the cache of records, as a server that has answered lookups of
	// these versions before has it: else the first of BenchmarkLookupHit's
	// runs would measure the store, and the later ones the cache.
	var warm sync.WaitGroup
	for part := range runtime.GOMAXPROCS(0) {
		warm.Go(func() {
			for i := part; i < len(s.hits); i += runtime.GOMAXPROCS(0) {
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, s.hits[i], nil))
				if w.Code != http.StatusOK {
					tb.Errorf("GET %s: %d %s", s.hits[i], w.Code, w.Body)
					return
				}
			}
		})
	}
	warm.Wait()
	return s
}

// newRefBenchServer returns x/mod's reference server on a TestServer holding
// the same records, in the same order, as the logs of newBenchServer.
func newRefBenchServer(tb testing.TB) *benchServer {
	skey, _, err := note.GenerateKey(rand.Reader, "sumdb.bench")
	if err != nil {
		tb.Fatal(err)
	}
	ts := xsumdb.NewTestServer(skey, func(path, version string) ([]byte, error) {
		return benchText(path, version), nil
	})
	for i := range benchRecords {
		p := benchPath(i)
		if _, err := ts.Lookup(context.Background(), module.Version{Path: p, Version: "v1.0.0"}); err != nil {
			tb.Fatal(err)
		}
	}
	return startBenchServer(tb, xsumdb.NewServer(ts), benchRecords)
}

// startBenchServer serves h on loopback.
func startBenchServer(tb testing.TB, h http.Handler, size int64) *benchServer {
	hs := httptest.NewServer(h)
	tb.Cleanup(hs.Close)
	s := &benchServer{url: hs.URL, size: size}
	for i := range int(size) {
		s.hits = append(s.hits, "/lookup/"+benchPath(i)+"@v1.0.0")
	}
	return s
}

// benchGet runs b.N GETs of the paths next returns, benchConns at a time,
// checks that each answers 200 with want(path) bytes (if want is set), and
// reports req/s and the p50 and p99 latency. The client is sumdb load's:
// kept-alive connections, one per request in flight, and a fraction of
// the CPU of net/http's client, which shares the cores with the server.
func benchGet(b *testing.B, s *benchServer, next func(r *mrand.Rand) string, want func(path string) int) {
	client, err := loadgen.NewClient(s.url, *benchConns)
	if err != nil {
		b.Fatal(err)
	}
	defer client.CloseIdleConnections()
	get := func(path string, buf []byte) ([]byte, error) {
		status, body, err := client.Get(context.Background(), path[1:], buf, 1<<20)
		if err != nil {
			return buf, fmt.Errorf("GET %s: %w", path, err)
		}
		if status != http.StatusOK {
			return body, fmt.Errorf("GET %s: %d %s", path, status, body)
		}
		if want != nil && len(body) != want(path) {
			return body, fmt.Errorf("GET %s: %d bytes, want %d", path, len(body), want(path))
		}
		return body, nil
	}
	// Open the connections and warm the server up, untimed.
	var warm sync.WaitGroup
	for i := range *benchConns {
		warm.Go(func() {
			if _, err := get(next(mrand.New(mrand.NewPCG(uint64(i), 0))), nil); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()

	var mu sync.Mutex
	var all []time.Duration
	var seed uint64
	b.SetParallelism(max(1, *benchConns/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		seed++
		r := mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))
		mu.Unlock()
		var buf []byte
		var err error
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			path := next(r)
			t0 := time.Now()
			buf, err = get(path, buf)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Error(err)
				break
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := min(len(all)-1, max(0, int(float64(len(all))*p/100+0.5)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(50), "p50-ms")
	b.ReportMetric(pct(99), "p99-ms")
}

// BenchmarkLookupHit looks up random logged module versions: from the
// server with its cache of records at its default size, which holds most of
// the log (server=NAME, as sumdb serve runs it), and without that cache
// (server=NAME-uncached: every lookup asks the store). The reference keeps
// everything in memory and signs a tree head for each lookup.
func BenchmarkLookupHit(b *testing.B) {
	fx := newBenchFixtures(b)
	servers := []string{"testserver"}
	for _, name := range benchStores[1:] {
		servers = append(servers, name, name+"-uncached")
	}
	benchRun(b, servers, func(b *testing.B, name string) {
		store, uncached := strings.CutSuffix(name, "-uncached")
		s := fx.server(b, store)
		if uncached {
			s = s.uncached
		}
		benchGet(b, s, func(r *mrand.Rand) string { return s.hits[r.IntN(len(s.hits))] }, nil)
	})
}

// BenchmarkTile reads random full hash tiles of level 0, the partial hash
// tile at the right edge of level 0 (as the go command does after each new
// head), and random full data tiles.
func BenchmarkTile(b *testing.B) {
	fx := newBenchFixtures(b)
	kinds := []struct {
		name string
		tile func(r *mrand.Rand, size int64) xtlog.Tile
	}{
		{"hash-full", func(r *mrand.Rand, size int64) xtlog.Tile {
			return xtlog.Tile{H: 8, L: 0, N: r.Int64N(size / 256), W: 256}
		}},
		{"hash-partial", func(r *mrand.Rand, size int64) xtlog.Tile {
			return xtlog.Tile{H: 8, L: 0, N: size / 256, W: int(size % 256)}
		}},
		{"data-full", func(r *mrand.Rand, size int64) xtlog.Tile {
			return xtlog.Tile{H: 8, L: -1, N: r.Int64N(size / 256), W: 256}
		}},
	}
	for _, k := range kinds {
		// The size of a hash tile; data tiles are not checked.
		var want func(path string) int
		if k.name != "data-full" {
			want = func(path string) int {
				t, err := xtlog.ParseTilePath(path[1:])
				if err != nil || t.L < 0 {
					return -1
				}
				return t.W * 32
			}
		}
		b.Run("kind="+k.name, func(b *testing.B) {
			benchRun(b, benchStores, func(b *testing.B, name string) {
				s := fx.server(b, name)
				benchGet(b, s, func(r *mrand.Rand) string { return "/" + k.tile(r, s.size).Path() }, want)
			})
		})
	}
}

// BenchmarkHTTPCeiling reads one full hash tile again and again: from a
// handler that answers it with the same headers and does nothing else
// (server=nethttp), the most that net/http serves on this machine through
// this client, and from each server. Against it, the other benchmarks tell
// how much of a request's cost is the server's own work.
func BenchmarkHTTPCeiling(b *testing.B) {
	fx := newBenchFixtures(b)
	tile := make([]byte, tlog.TileWidth*xtlog.HashSize)
	ceiling := startBenchServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = ctypeOctets
		hdr["Cache-Control"] = hdrImmutable
		hdr["X-Content-Type-Options"] = hdrNosniff
		hdr["Content-Length"] = hdrTileSize
		w.Write(tile)
	}), benchRecords)
	servers := append([]string{benchStores[0], "nethttp"}, benchStores[1:]...)
	benchRun(b, servers, func(b *testing.B, name string) {
		s := ceiling
		if name != "nethttp" {
			s = fx.server(b, name)
		}
		benchGet(b, s, func(r *mrand.Rand) string { return "/tile/8/0/000" }, func(string) int { return len(tile) })
	})
}
