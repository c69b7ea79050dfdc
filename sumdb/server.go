// Package sumdb is the checksum database server: it answers the go
// command's lookups by finding a module version in the log or, the first
// time, by fetching it from the upstream module proxy, hashing it and
// appending it; and it serves the signed tree head and the tiles that prove
// every answer, from caches where it can.
package sumdb

import (
	"container/list"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/ratelimit"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// A Fetcher gets the go.sum lines of a module version from the upstream,
// as a *fetch.Upstream does.
//
// Fetch returns the record text, exactly two lines:
//
//	<path> <version> h1:<zip hash>
//	<path> <version>/go.mod h1:<go.mod hash>
//
// Its errors wrap fetch.ErrNotFound when the version does not exist or
// cannot be logged, fetch.ErrInvalid when path@version is not a possible
// module version, and fetch.ErrUpstream when the upstream failed (and the
// lookup may be retried). Fetch must be safe for concurrent use and must
// return when ctx ends.
type Fetcher interface {
	Fetch(ctx context.Context, path, version string) ([]byte, error)
}

// Disabled, given to a ServerConfig knob that can be turned off (a cache,
// the not-found TTL, the fetch rate limit), turns it off; so does any
// negative value. The zero value of every knob means its default.
const Disabled = -1

// Defaults of the ServerConfig knobs, also the defaults of the serve
// command's flags.
const (
	DefaultMaxFetches  = 16
	DefaultNotFoundTTL = time.Minute
	// A first download of a large project by one client needs one fetch
	// per module version new to the log, and the go command fails on a
	// 429: the burst is generous, the rate bounds a sustained storm.
	DefaultFetchRate  = 10.0
	DefaultFetchBurst = 1000
)

// ServerConfig configures a Server. The zero value of a field means its
// default; a knob that can be turned off is turned off by Disabled. The
// command line of sumdb serve, where 0 turns such a knob off, maps its 0
// to Disabled.
type ServerConfig struct {
	// Log is the log the server answers from and appends to. Required.
	Log *tlog.Log
	// Fetcher gets the records of module versions not yet in the log. Required.
	Fetcher Fetcher
	// Logger receives one line per rejected request and per upstream fetch.
	// Default: discard.
	Logger *slog.Logger
	// NotFoundTTL is how long an upstream "not found" is remembered, so that
	// repeated lookups of an unknown version do not reach the upstream.
	// Default DefaultNotFoundTTL; Disabled turns the cache off.
	NotFoundTTL time.Duration
	// MaxFetches caps the concurrent upstream fetches. Default
	// DefaultMaxFetches; it cannot be off. A first lookup waits for a free
	// slot as long as one of its requesters waits.
	MaxFetches int
	// LookupTimeout bounds the work shared by the concurrent first lookups of
	// one module version: waiting for a fetch slot, the fetch and the append.
	// Default 5m; it cannot be off.
	LookupTimeout time.Duration
	// StoreTimeout bounds each store read a request makes. A store that does
	// not answer in time, or whose error wraps tlog.ErrUnavailable, makes
	// the request fail with 503 and Retry-After. Default 10s; it cannot be
	// off.
	StoreTimeout time.Duration
	// ReadyTimeout bounds the store check of /readyz. Default 2s; it cannot
	// be off.
	ReadyTimeout time.Duration
	// FetchRate is the number of lookups needing an upstream fetch that one
	// client may make per second, on average; beyond it, and beyond
	// FetchBurst at once, such lookups are answered 429 with Retry-After.
	// Lookups answered from the log are never limited. A client is an IP
	// address, or an IPv6 /64 network. Default DefaultFetchRate; Disabled
	// turns the limit off.
	FetchRate float64
	// FetchBurst is the number of lookups needing a fetch that a client may
	// make at once. Default DefaultFetchBurst; unused when FetchRate is
	// Disabled.
	FetchBurst int
	// TrustProxyHeaders makes the client of a request the last address of
	// its X-Forwarded-For header rather than the connection's peer. Set it
	// only behind a proxy that appends that header, or clients could pick
	// their own address.
	TrustProxyHeaders bool
	// TileCacheSize bounds the bytes of tiles (hash and data) kept in
	// memory, in least-recently-used order: a full tile never changes, so
	// it is read from the store once; a partial tile is read up to the
	// served head, and its prefixes are served from memory until a request
	// asks for more. Default DefaultTileCacheSize; Disabled turns the cache
	// off.
	TileCacheSize int64
	// LookupCacheSize bounds the bytes of logged records kept in memory, in
	// least-recently-used order, for lookups of the same module versions: a
	// logged record never changes, so a lookup found in the cache does not
	// ask the store. Default DefaultLookupCacheSize; Disabled turns the
	// cache off.
	LookupCacheSize int64
	// Metrics receives the server's metrics. Default: metrics kept nowhere.
	Metrics *Metrics
	// Now is the clock of the not-found cache and the rate limiter.
	// Default time.Now.
	Now func() time.Time
	// Latest, if set, returns the note /latest serves, under the store
	// timeout: a signed head of the log, such as one with its witnesses'
	// cosignatures appended (package sumdb/witness). nil from it means no
	// head yet, and an error a 503. Default: the newest signed head.
	Latest func(ctx context.Context) ([]byte, error)
}

// Cache-Control values.
const (
	// Tile paths name immutable content: a partial tile is named by its width.
	cacheImmutable = "public, max-age=31536000, immutable"
	// A lookup answer is an immutable record plus the head of the moment. Any
	// head that covers the record is correct, however old, but clients learn
	// of new heads (and so could spot a fork) through lookups: a few seconds
	// lets a CDN absorb bursts without holding the head back.
	cacheLookup = "public, max-age=5"
	// The head changes with every append.
	cacheLatest = "no-cache"
	// A malformed request stays malformed; a short age still lets a fixed
	// server take over quickly.
	cacheBadRequest = "public, max-age=60"
	// Errors that may be gone on the next try, and tiles beyond the tree: a
	// client that has just seen a larger head asks for them at once, so a
	// cached 404 would fail it.
	cacheNone = "no-store"
)

// maxNotFound caps the entries of the not-found cache, so that lookups of
// many unknown versions cannot grow it without bound.
const maxNotFound = 1 << 14

// errBusy marks a first lookup that found no free fetch slot in time.
var errBusy = errors.New("too many upstream fetches in progress")

// errBadRecord marks a record text from the Fetcher that is not two go.sum
// lines for the requested module version.
var errBadRecord = errors.New("upstream returned an invalid record")

// errSlowAppend marks a first lookup whose record was not logged in time.
var errSlowAppend = errors.New("the log did not commit the record in time")

// errStoreUnavailable marks a request that failed because the store could
// not be reached or did not answer in time: it may succeed if retried.
var errStoreUnavailable = errors.New("store unavailable")

// A Server is the checksum database's HTTP handler. It serves
//
//	/latest                                the signed tree head
//	/lookup/<escaped path>@<escaped version>  a record and a head covering it
//	/tile/8/<L>/<K>[.p/<W>]                 hash tiles
//	/tile/8/data/<K>[.p/<W>]                data tiles
//	/healthz                               200 while the process runs
//	/readyz                                200 while the store answers
//
// A lookup of a module version not yet in the log fetches it from the
// upstream, once for all its concurrent requesters, and appends it before
// answering. A Server is safe for concurrent use.
type Server struct {
	log           *tlog.Log
	fetcher       Fetcher
	logger        *slog.Logger
	metrics       *Metrics
	notFoundTTL   time.Duration
	lookupTimeout time.Duration
	storeTimeout  time.Duration
	readyTimeout  time.Duration
	limiter       *ratelimit.Limiter // nil: no per-client limit
	tiles         *tileCache         // nil: no cache
	records       *recordCache       // nil: no cache
	trustProxy    bool
	slots         chan struct{}                             // one token per fetch in progress
	now           func() time.Time                          // the clock of the not-found cache and the limiter
	latest        func(ctx context.Context) ([]byte, error) // nil: the newest head

	mu       sync.Mutex
	flights  map[string]*flight       // guarded by mu; first lookups in progress, by path@version
	notFound map[string]*list.Element // guarded by mu; of *notFoundEntry, recent upstream "not found", by path@version
	// notFoundOrder holds the not-found entries oldest first: all live
	// notFoundTTL, so the first to expire, and the one to forget when the
	// cache is full, are found at its front without a scan. Guarded by mu.
	notFoundOrder list.List
}

// A flight is the work shared by the concurrent first lookups of one module
// version: wait for a fetch slot, fetch, append.
type flight struct {
	done chan struct{} // closed once rec, head and err are set
	rec  tlog.Record
	head tlog.Head
	err  error
	gen  uint64 // the log's generation before the flight read the store

	cancel  context.CancelFunc // cancels the shared work
	waiters int                // guarded by Server.mu; requesters waiting for done
	started bool               // guarded by Server.mu; the fetch began, finish it for the next requester
}

type notFoundEntry struct {
	key     string
	err     error
	expires time.Time
}

// NewServer returns a Server for cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Log == nil {
		return nil, errors.New("new server: a log is required")
	}
	if cfg.Fetcher == nil {
		return nil, errors.New("new server: a fetcher is required")
	}
	if cfg.MaxFetches < 0 {
		return nil, fmt.Errorf("new server: MaxFetches is %d, want at least 1 (0 for the default)", cfg.MaxFetches)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"LookupTimeout", cfg.LookupTimeout},
		{"StoreTimeout", cfg.StoreTimeout},
		{"ReadyTimeout", cfg.ReadyTimeout},
	} {
		if d.value < 0 {
			return nil, fmt.Errorf("new server: %s is %v, want a positive duration (0 for the default)", d.name, d.value)
		}
	}
	if math.IsNaN(cfg.FetchRate) || math.IsInf(cfg.FetchRate, 0) {
		return nil, fmt.Errorf("new server: FetchRate is %v, want a number of fetches per second (0 for the default, Disabled for no limit)", cfg.FetchRate)
	}
	if cfg.FetchBurst < 0 {
		return nil, fmt.Errorf("new server: FetchBurst is %d, want at least 1 (0 for the default)", cfg.FetchBurst)
	}
	if cfg.MaxFetches == 0 {
		cfg.MaxFetches = DefaultMaxFetches
	}
	if cfg.NotFoundTTL == 0 {
		cfg.NotFoundTTL = DefaultNotFoundTTL
	}
	if cfg.FetchRate == 0 {
		cfg.FetchRate = DefaultFetchRate
	}
	if cfg.FetchBurst == 0 {
		cfg.FetchBurst = DefaultFetchBurst
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 5 * time.Minute
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(prometheus.NewRegistry()); err != nil {
			return nil, fmt.Errorf("new server: %w", err)
		}
	}
	if !m.log.CompareAndSwap(nil, cfg.Log) && m.log.Load() != cfg.Log {
		return nil, errors.New("new server: the metrics belong to another server's log")
	}
	if cfg.TileCacheSize == 0 {
		cfg.TileCacheSize = DefaultTileCacheSize
	}
	tiles := newTileCache(cfg.TileCacheSize)
	if tiles != nil && !m.tiles.CompareAndSwap(nil, tiles) {
		return nil, errors.New("new server: the metrics belong to another server")
	}
	if cfg.LookupCacheSize == 0 {
		cfg.LookupCacheSize = DefaultLookupCacheSize
	}
	records := newRecordCache(cfg.LookupCacheSize)
	if records != nil && !m.records.CompareAndSwap(nil, records) {
		return nil, errors.New("new server: the metrics belong to another server")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		log:           cfg.Log,
		fetcher:       cfg.Fetcher,
		logger:        logger,
		metrics:       m,
		notFoundTTL:   cfg.NotFoundTTL,
		lookupTimeout: cfg.LookupTimeout,
		storeTimeout:  cfg.StoreTimeout,
		readyTimeout:  cfg.ReadyTimeout,
		trustProxy:    cfg.TrustProxyHeaders,
		slots:         make(chan struct{}, cfg.MaxFetches),
		now:           now,
		latest:        cfg.Latest,
		tiles:         tiles,
		records:       records,
		flights:       make(map[string]*flight),
		notFound:      make(map[string]*list.Element),
	}
	if cfg.FetchRate > 0 {
		s.limiter = ratelimit.New(cfg.FetchRate, cfg.FetchBurst)
	}
	return s, nil
}

// ServeHTTP serves the checksum database protocol and the health checks.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.serve(sw, r)
	s.metrics.observeRequest(endpointIndex(r.URL.Path), sw.status(), time.Since(start))
}

// endpointOf names the endpoint of a URL path for the metrics.
func endpointOf(p string) string { return endpointNames[endpointIndex(p)] }

// endpointIndex returns the endpoint of a URL path.
func endpointIndex(p string) endpoint {
	switch {
	case p == "/latest":
		return endpointLatest
	case strings.HasPrefix(p, "/lookup/"):
		return endpointLookup
	case strings.HasPrefix(p, "/tile/8/data/"):
		return endpointDataTile
	case strings.HasPrefix(p, "/tile/"):
		return endpointTile
	case p == "/healthz":
		return endpointHealthz
	case p == "/readyz":
		return endpointReadyz
	}
	return endpointOther
}

// A statusWriter remembers the status code of the answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		// No endpoint reads a body: rather than have net/http drain it
		// before the next request on the connection, drop the connection.
		w.Header().Set("Connection", "close")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, http.StatusMethodNotAllowed, cacheBadRequest, "method not allowed: use GET or HEAD", nil)
		return
	}
	// The go command never percent-encodes: module paths and escaped versions
	// are made of characters that need no escaping in a URL path. Using the
	// decoded path only makes other spellings of the same URL equivalent;
	// ParseLookup and ParseTilePath then admit only the canonical form.
	p := r.URL.Path
	switch {
	case p == "/latest":
		s.serveLatest(w, r)
	case strings.HasPrefix(p, "/lookup/"):
		s.serveLookup(w, r, strings.TrimPrefix(p, "/lookup/"))
	case strings.HasPrefix(p, "/tile/"):
		s.serveTile(w, r, strings.TrimPrefix(p, "/"))
	case p == "/healthz":
		// The process runs and answers: nothing else is checked, so that a
		// database outage does not get a healthy process restarted.
		s.write(w, http.StatusOK, cacheNone, "ok")
	case p == "/readyz":
		s.serveReady(w, r)
	default:
		s.fail(w, r, http.StatusNotFound, cacheBadRequest, "not found: this checksum database serves /latest, /lookup/<module>@<version> and /tile/8/...", nil)
	}
}

func (s *Server) serveLatest(w http.ResponseWriter, r *http.Request) {
	h := s.log.Head() // signed when it was committed, never per request
	if h.Size == 0 {
		s.fail(w, r, http.StatusNotFound, cacheNone, "the log is empty: no tree head has been signed yet", nil)
		return
	}
	note := h.Note
	if s.latest != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.storeTimeout)
		defer cancel()
		var err error
		if note, err = s.latest(ctx); err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "the tree head cannot be read now; try again", err)
			return
		}
		if note == nil {
			s.fail(w, r, http.StatusNotFound, cacheNone, "the log is empty: no tree head has been signed yet", nil)
			return
		}
	}
	s.okHeaders(w, ctypeText, hdrLatest, note)
}

// serveReady answers /readyz: 200 if the store answers within the ready
// timeout and holds a head signed by the log's key (or no head yet), so
// that the server can serve and append; else 503 with a short reason.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.readyTimeout)
	defer cancel()
	if err := s.log.Ready(ctx); err != nil {
		reason := "not ready: the store does not answer"
		switch {
		case errors.Is(err, tlog.ErrFork):
			s.logger.ErrorContext(r.Context(), "not ready", "err", err)
			reason = "not ready: the database does not hold the log this server served; see the server's log"
		case !errors.Is(err, tlog.ErrUnavailable) && ctx.Err() == nil:
			reason = "not ready: the stored log cannot be read; see the server's log"
		}
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, reason, err)
		return
	}
	s.write(w, http.StatusOK, cacheNone, "ready: tree size "+strconv.FormatInt(s.log.Head().Size, 10))
}

// withStore calls f, which reads the store, under the store timeout. An
// error meaning that the store could not be reached, or did not answer in
// time while the caller still waited, is marked with errStoreUnavailable.
func (s *Server) withStore(ctx context.Context, f func(context.Context) error) error {
	sctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	return storeError(ctx, sctx, f(sctx))
}

// storeError marks err, returned by a store call made under sctx, a child
// of ctx, with errStoreUnavailable if it wraps tlog.ErrUnavailable or sctx
// timed out while ctx did not end.
func storeError(ctx, sctx context.Context, err error) error {
	if err == nil || errors.Is(err, errStoreUnavailable) {
		return err
	}
	if errors.Is(err, tlog.ErrUnavailable) || ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	return err
}

// unavailable answers a request that failed because the store could not be
// reached: 503 with Retry-After, never 500.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.metrics.storeUnavailable.Inc()
	w.Header().Set("Retry-After", "1")
	s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "service unavailable: the database does not answer; retry in a second", err)
}

// errTilePath is the error of a tile path that parseTilePath rejects. It
// does not repeat the path.
var errTilePath = errors.New("invalid tile path: want tile/8/<level>/<index>[.p/<width>] in canonical form")

// parseTilePath parses path, the part of a tile URL after its first slash
// ("tile/8/0/000.p/1"), admitting only the canonical form
// (tlog.Tile.Path) of the tiles of height 8, the only height the go command
// uses. It accepts what xtlog.ParseTilePath accepts at that height, without
// formatting the path again to compare.
func parseTilePath(path string) (xtlog.Tile, error) {
	p, ok := strings.CutPrefix(path, "tile/8/")
	if !ok {
		return xtlog.Tile{}, errTilePath
	}
	t := xtlog.Tile{H: tlog.TileHeight, W: tlog.TileWidth}
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		t.L, p = -1, rest
	} else {
		level, rest, ok := strings.Cut(p, "/")
		l, lok := canonicalInt(level)
		if !ok || !lok {
			return xtlog.Tile{}, errTilePath
		}
		t.L, p = int(l), rest
	}
	if index, width, ok := strings.Cut(p, ".p/"); ok {
		w, ok := canonicalInt(width)
		if !ok || w < 1 || w >= tlog.TileWidth {
			return xtlog.Tile{}, errTilePath
		}
		t.W, p = int(w), index
	}
	// The index: groups of three digits, all but the last prefixed by "x"
	// and followed by "/", the first of several not zero.
	for first := true; ; first = false {
		switch {
		case len(p) == 3 && isDigits(p):
			d := int64(p[0]-'0')*100 + int64(p[1]-'0')*10 + int64(p[2]-'0')
			if t.N > (math.MaxInt64-d)/1000 {
				return xtlog.Tile{}, errTilePath
			}
			return xtlog.Tile{H: t.H, L: t.L, N: t.N*1000 + d, W: t.W}, nil
		case len(p) > 5 && p[0] == 'x' && p[4] == '/' && isDigits(p[1:4]):
			d := int64(p[1]-'0')*100 + int64(p[2]-'0')*10 + int64(p[3]-'0')
			if first && d == 0 || t.N > (math.MaxInt64-d)/1000 {
				return xtlog.Tile{}, errTilePath
			}
			t.N = t.N*1000 + d
			p = p[5:]
		default:
			return xtlog.Tile{}, errTilePath
		}
	}
}

// canonicalInt parses s, a non-negative decimal number without a sign or
// leading zeros, that fits in an int.
func canonicalInt(s string) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || !isDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, strconv.IntSize)
	return n, err == nil
}

// isDigits reports whether s is made of ASCII digits only.
func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (s *Server) serveTile(w http.ResponseWriter, r *http.Request, path string) {
	t, err := parseTilePath(path)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, cacheBadRequest, err.Error(), nil)
		return
	}
	data, err := s.readTile(r.Context(), t)
	if errors.Is(err, tlog.ErrNotFound) && !inTree(t, s.log.Head().Size) {
		s.fail(w, r, http.StatusNotFound, cacheNone, "tile not found: beyond the tree", err)
		return
	}
	if errors.Is(err, errStoreUnavailable) {
		s.unavailable(w, r, err)
		return
	}
	if err != nil {
		// Including a not-found for a tile the tree reaches: the store lost it.
		s.internal(w, r, fmt.Errorf("read tile %s: %w", path, err))
		return
	}
	ctype := ctypeOctets
	if t.L == -1 {
		ctype = ctypeText
	}
	s.okHeaders(w, ctype, hdrImmutable, data)
}

// readTile returns the content of tile t: from the cache if it holds as
// many entries of t's level and index; else from the store, reading all the
// entries of that tile the served head reaches, and caching them, so that
// the first request for any width of a tile caches it up to the head.
func (s *Server) readTile(ctx context.Context, t xtlog.Tile) ([]byte, error) {
	if data, ok := s.cachedTile(t); ok {
		return data, nil
	}
	s.metrics.tileCacheMisses.Inc()
	gen := s.log.Generation()
	key := tileKey{t.L, t.N}
	read := t
	if w := widthAt(t, s.log.Head().Size); s.tiles != nil && w > t.W {
		read.W = w
	}
	readStore := func() ([]byte, error) {
		var data []byte
		err := s.withStore(ctx, func(ctx context.Context) error {
			var err error
			data, err = s.log.ReadTile(ctx, read)
			return err
		})
		return data, err
	}
	data, err := readStore()
	if errors.Is(err, tlog.ErrNotFound) && inTree(t, s.log.Head().Size) {
		// The tree grew since ReadTile looked: look again.
		data, err = readStore()
	}
	if err != nil || s.tiles == nil {
		return data, err
	}
	// Check before caching: a stored tile that does not hold the entries
	// asked for would serve wrong prefixes.
	if !holds(read, data) {
		return nil, fmt.Errorf("tile %s: the stored tile does not hold %d entries", read.Path(), read.W)
	}
	c := cachedTile{data: data, width: read.W, gen: gen}
	s.tiles.Put(key, c)
	part, _ := tilePrefix(t, c)
	return part, nil
}

// cachedTile returns the content of tile t if the cache holds as many
// entries of t's level and index.
func (s *Server) cachedTile(t xtlog.Tile) ([]byte, bool) {
	if cached, ok := s.tiles.Get(tileKey{t.L, t.N}); ok && cached.gen == s.log.Generation() && s.log.Refusal() == nil {
		if data, ok := tilePrefix(t, cached); ok {
			s.metrics.tileCacheHits.Inc()
			return data, true
		}
	}
	return nil, false
}

// widthAt returns the number of entries of tile t's level and index that a
// tree of the given size has: 0 to 256.
func widthAt(t xtlog.Tile, size int64) int {
	level := max(t.L, 0) // a data tile spans the records of the level-0 tile
	if t.N < 0 || level >= 8 {
		return 0
	}
	n := size >> (uint(level) * tlog.TileHeight) // hashes at the tile's level
	switch {
	case t.N < n/tlog.TileWidth:
		return tlog.TileWidth
	case t.N == n/tlog.TileWidth:
		return int(n % tlog.TileWidth)
	}
	return 0
}

// inTree reports whether the tree of the given size reaches all of tile t.
func inTree(t xtlog.Tile, size int64) bool {
	level := max(t.L, 0) // a data tile spans the records of the level-0 tile
	if t.H != tlog.TileHeight || t.N < 0 || t.W < 1 || t.W > tlog.TileWidth || level >= 8 {
		return false
	}
	n := size >> (uint(level) * tlog.TileHeight) // hashes at the tile's level
	return t.N < n/tlog.TileWidth || t.N == n/tlog.TileWidth && int64(t.W) <= n%tlog.TileWidth
}

func (s *Server) serveLookup(w http.ResponseWriter, r *http.Request, escaped string) {
	path, version, err := ParseLookup(escaped)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, cacheBadRequest, err.Error(), err)
		return
	}
	rec, head, ok := s.cachedRecord(path, version)
	if !ok {
		gen := s.log.Generation()
		err = s.withStore(r.Context(), func(ctx context.Context) error {
			var err error
			rec, head, err = s.log.Lookup(ctx, path, version)
			return err
		})
		if errors.Is(err, tlog.ErrNotFound) {
			rec, head, gen, err = s.lookupMiss(r.Context(), ratelimit.ClientKey(r, s.trustProxy), path, version)
		}
		if err != nil {
			s.lookupError(w, r, path, version, err)
			return
		}
		s.rememberRecord(path, version, rec, head, gen)
	}
	s.answerLookup(w, r, path, version, rec, head)
}

// rememberRecord adds rec, covered by head, to the cache of records if it
// is the record of path@version; gen is the log's generation before the
// record was read.
func (s *Server) rememberRecord(path, version string, rec tlog.Record, head tlog.Head, gen uint64) {
	if rec.Path == path && rec.Version == version && head.Size > rec.ID {
		s.records.Put(path+"@"+version, cachedRecord{rec.ID, rec.Text, gen})
	}
}

// answerLookup answers a lookup of path@version that found rec, covered by
// head.
func (s *Server) answerLookup(w http.ResponseWriter, r *http.Request, path, version string, rec tlog.Record, head tlog.Head) {
	body, err := lookupAnswer(path, version, rec, head)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.okHeaders(w, ctypeText, hdrLookup, body)
}

// cachedRecord returns the record of path@version and a head that covers
// it if the cache of records holds it.
func (s *Server) cachedRecord(path, version string) (tlog.Record, tlog.Head, bool) {
	c, ok := s.records.Get(path + "@" + version)
	if !ok || c.gen != s.log.Generation() || s.log.Refusal() != nil {
		// A record read before the log found that the store holds another
		// tree may be of that tree.
		return tlog.Record{}, tlog.Head{}, false
	}
	s.metrics.lookupCacheHits.Inc()
	// The head that covered the record before covers it still: the served
	// head only grows.
	return tlog.Record{ID: c.id, Path: path, Version: version, Text: c.text}, s.log.Head(), true
}

// lookupAnswer returns the answer to a lookup of path@version that found
// rec, covered by head, or an error if they do not make one.
func lookupAnswer(path, version string, rec tlog.Record, head tlog.Head) ([]byte, error) {
	if rec.Path != path || rec.Version != version || head.Size <= rec.ID {
		return nil, fmt.Errorf("lookup %s@%s: got record %d for %s@%s and a head of size %d", path, version, rec.ID, rec.Path, rec.Version, head.Size)
	}
	if !validRecordText(rec.Text) {
		return nil, fmt.Errorf("format record %d: malformed record text", rec.ID)
	}
	return appendLookup(nil, rec.ID, rec.Text, head.Note), nil
}

// appendLookup appends to dst the answer to a lookup: the record (as
// xtlog.FormatRecord formats it: its id, its text and a blank line) and the
// signed head, in one allocation and without fmt.
func appendLookup(dst []byte, id int64, text, note []byte) []byte {
	dst = slices.Grow(dst, 20+1+len(text)+1+len(note))
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, '\n')
	dst = append(dst, text...)
	dst = append(dst, '\n')
	return append(dst, note...)
}

// validRecordText reports whether xtlog.FormatRecord accepts text: UTF-8
// without control characters other than newlines, no two newlines in a
// row, ending with a newline. (The same check, without decoding ASCII.)
func validRecordText(text []byte) bool {
	var last byte
	for i := 0; i < len(text); {
		c := text[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(text[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
			last = c
			continue
		}
		if c < 0x20 && c != '\n' || c == '\n' && last == '\n' {
			return false
		}
		last = c
		i++
	}
	return last == '\n'
}

// lookupError answers a lookup that failed with err.
func (s *Server) lookupError(w http.ResponseWriter, r *http.Request, path, version string, err error) {
	mod := path + "@" + version
	var rlerr *rateLimitError
	switch {
	case errors.Is(err, errStoreUnavailable), errors.Is(err, tlog.ErrUnavailable):
		s.unavailable(w, r, err)
	case errors.As(err, &rlerr):
		s.metrics.rateLimited.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(rlerr.retryAfter)))
		s.fail(w, r, http.StatusTooManyRequests, cacheNone, rlerr.Error(), nil)
	case errors.Is(err, fetch.ErrInvalid):
		s.fail(w, r, http.StatusBadRequest, cacheBadRequest, err.Error(), err)
	case errors.Is(err, fetch.ErrRetryLater):
		w.Header().Set("Retry-After", "10")
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, err.Error(), err)
	case errors.Is(err, fetch.ErrForbidden):
		s.fail(w, r, http.StatusForbidden, cacheNone, err.Error(), err)
	case errors.Is(err, fetch.ErrNotFound):
		cc := cacheNone
		if s.notFoundTTL > 0 {
			cc = "public, max-age=" + strconv.Itoa(max(1, int(s.notFoundTTL/time.Second)))
		}
		s.fail(w, r, http.StatusNotFound, cc, err.Error(), err)
	case errors.Is(err, tlog.ErrPushback):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "server busy: too many new records waiting to be logged; retry in a second", err)
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "server busy: too many upstream fetches in progress; retry later", err)
	case errors.Is(err, errSlowAppend):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "server busy: the record was not logged in time; retry", err)
	case errors.Is(err, tlog.ErrClosed):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "server shutting down: retry", err)
	case r.Context().Err() != nil:
		// The requester went away; nobody reads this answer.
		s.fail(w, r, http.StatusServiceUnavailable, cacheNone, "lookup canceled", err)
	case errors.Is(err, errBadRecord):
		s.logger.ErrorContext(r.Context(), "invalid record from upstream", "module", mod, "err", err)
		s.fail(w, r, http.StatusBadGateway, cacheNone, "upstream error: "+mod+": invalid go.sum lines; try again later", err)
	case errors.Is(err, context.DeadlineExceeded):
		s.fail(w, r, http.StatusGatewayTimeout, cacheNone, "upstream timeout: "+mod+": try again later", err)
	case errors.Is(err, fetch.ErrUpstream):
		// The error may name the upstream's address: log it, do not show it.
		s.fail(w, r, http.StatusBadGateway, cacheNone, "upstream unavailable: "+mod+": try again later", err)
	default:
		s.internal(w, r, fmt.Errorf("lookup %s: %w", mod, err))
	}
}

// lookupMiss returns the record of a module version that was not in the
// log: it fetches it from the upstream and appends it, sharing the work with
// every concurrent lookup of the same version. A lookup that would start a
// fetch takes a token from its client's bucket, or fails with a
// *rateLimitError.
//
// It also returns the log's generation before the record was read, for
// the cache of records: a lookup that joins a flight gets a record read
// before it came.
func (s *Server) lookupMiss(ctx context.Context, client, path, version string) (tlog.Record, tlog.Head, uint64, error) {
	key := path + "@" + version
	s.mu.Lock()
	if err := s.recentNotFoundLocked(key); err != nil {
		s.mu.Unlock()
		return tlog.Record{}, tlog.Head{}, 0, err
	}
	f := s.flights[key]
	if f == nil {
		// The token is taken under s.mu, as the flight starts, so that
		// concurrent first lookups of a version take one token between them
		// and a lookup that can join a flight is never refused.
		if s.limiter != nil {
			if ok, wait := s.limiter.Allow(client, s.now()); !ok {
				s.mu.Unlock()
				return tlog.Record{}, tlog.Head{}, 0, &rateLimitError{retryAfter: wait}
			}
		}
		// The shared work must outlive any one requester (an impatient client
		// must not fail the others), so it gets its own context.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lookupTimeout)
		f = &flight{done: make(chan struct{}), cancel: cancel, gen: s.log.Generation()}
		s.flights[key] = f
		go s.fly(fctx, f, key, path, version)
	}
	f.waiters++
	s.mu.Unlock()

	select {
	case <-f.done:
		return f.rec, f.head, f.gen, f.err
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		f.waiters--
		if f.waiters == 0 && !f.started && s.flights[key] == f {
			// Nobody wants the answer and the fetch has not begun: stop
			// waiting for a slot. A later lookup starts afresh.
			delete(s.flights, key)
			f.cancel()
		}
		return tlog.Record{}, tlog.Head{}, 0, ctx.Err()
	}
}

// recentNotFoundLocked returns the upstream's "not found" for key if it
// said so less than the not-found TTL ago, or else nil. s.mu is held.
func (s *Server) recentNotFoundLocked(key string) error {
	e, ok := s.notFound[key]
	if !ok {
		return nil
	}
	if nf := e.Value.(*notFoundEntry); s.now().Before(nf.expires) {
		s.metrics.notFoundHits.Inc()
		return nf.err
	}
	s.forgetNotFound(e)
	return nil
}

// fly does the shared work of flight f and publishes its result.
func (s *Server) fly(ctx context.Context, f *flight, key, path, version string) {
	defer f.cancel()
	rec, head, err := s.fetchAndAppend(ctx, f, path, version)
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, fetch.ErrNotFound) && s.notFoundTTL > 0 {
		// Remembered before the flight ends, so no lookup slips in between.
		s.rememberNotFound(key, err)
	}
	if s.flights[key] == f {
		delete(s.flights, key)
	}
	f.rec, f.head, f.err = rec, head, err
	close(f.done)
}

// rememberNotFound caches the upstream's "not found" for key. It forgets
// the expired entries and then, if the cache is still full, the oldest one,
// the first to expire: both are at the front of s.notFoundOrder, so the
// cost is constant for each entry ever added. s.mu is held.
func (s *Server) rememberNotFound(key string, err error) {
	now := s.now()
	if e, ok := s.notFound[key]; ok {
		s.forgetNotFound(e)
	}
	for e := s.notFoundOrder.Front(); e != nil && !now.Before(e.Value.(*notFoundEntry).expires); e = s.notFoundOrder.Front() {
		s.forgetNotFound(e)
	}
	if len(s.notFound) >= maxNotFound {
		s.forgetNotFound(s.notFoundOrder.Front())
	}
	s.notFound[key] = s.notFoundOrder.PushBack(&notFoundEntry{key: key, err: err, expires: now.Add(s.notFoundTTL)})
}

// forgetNotFound removes the not-found entry of e. s.mu is held.
func (s *Server) forgetNotFound(e *list.Element) {
	delete(s.notFound, s.notFoundOrder.Remove(e).(*notFoundEntry).key)
}

// fetchAndAppend waits for a fetch slot, fetches the record of path@version
// from the upstream, checks it and appends it to the log.
func (s *Server) fetchAndAppend(ctx context.Context, f *flight, path, version string) (tlog.Record, tlog.Head, error) {
	mod := path + "@" + version
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return tlog.Record{}, tlog.Head{}, fmt.Errorf("fetch %s: %w: %w", mod, errBusy, context.Cause(ctx))
	}
	s.metrics.fetching.Inc()
	release := func() {
		s.metrics.fetching.Dec()
		<-s.slots
	}
	s.mu.Lock()
	if err := ctx.Err(); err != nil {
		// Every requester left while the slot came free.
		s.mu.Unlock()
		release()
		return tlog.Record{}, tlog.Head{}, fmt.Errorf("fetch %s: %w: %w", mod, errBusy, err)
	}
	f.started = true
	s.mu.Unlock()

	// A flight that just ended, or another process sharing the store, may
	// have logged the version since this lookup missed.
	var rec tlog.Record
	var head tlog.Head
	err := s.withStore(ctx, func(ctx context.Context) error {
		var err error
		rec, head, err = s.log.Lookup(ctx, path, version)
		return err
	})
	if err == nil || !errors.Is(err, tlog.ErrNotFound) {
		release()
		return rec, head, err
	}

	// The Fetcher logs the fetch (fetch.Upstream does, with the proxy and the
	// cause of a failure); the metrics are counted here, for any Fetcher.
	start := time.Now()
	text, err := s.fetcher.Fetch(ctx, path, version)
	if err == nil {
		if cerr := checkRecordText(path, version, text); cerr != nil {
			err = fmt.Errorf("fetch %s: %w: %w", mod, errBadRecord, cerr)
		}
	}
	release()
	s.metrics.observeFetch(err, time.Since(start))
	if err != nil {
		return tlog.Record{}, tlog.Head{}, err
	}
	rec, head, err = s.log.Append(ctx, path, version, text)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		err = fmt.Errorf("append %s: %w: %w", mod, errSlowAppend, err)
	case errors.Is(err, context.DeadlineExceeded):
		// The sequencer's commit timed out: the store is too slow.
		err = fmt.Errorf("append %s: %w: %w", mod, errStoreUnavailable, err)
	}
	return rec, head, err
}

// checkRecordText reports whether text is exactly the two go.sum lines of
// path@version, with well-formed h1 hashes, and a valid record.
func checkRecordText(path, version string, text []byte) error {
	rest := string(text)
	for _, suffix := range []string{"", "/go.mod"} {
		prefix := path + " " + version + suffix + " h1:"
		line, tail, ok := strings.Cut(rest, "\n")
		if !ok || !strings.HasPrefix(line, prefix) {
			return fmt.Errorf("want a line %q<hash>", prefix)
		}
		hash := strings.TrimPrefix(line, prefix)
		if b, err := base64.StdEncoding.DecodeString(hash); err != nil || len(b) != 32 || base64.StdEncoding.EncodeToString(b) != hash {
			return fmt.Errorf("malformed hash %q", hash)
		}
		rest = tail
	}
	if rest != "" {
		return errors.New("more than two lines")
	}
	if _, err := xtlog.FormatRecord(0, text); err != nil {
		return err
	}
	return nil
}

// Header values of successful answers, shared by every answer (net/http
// only reads them) so that writing the headers allocates only the length.
var (
	ctypeText    = []string{"text/plain; charset=utf-8"}
	ctypeOctets  = []string{"application/octet-stream"}
	hdrImmutable = []string{cacheImmutable}
	hdrLookup    = []string{cacheLookup}
	hdrLatest    = []string{cacheLatest}
	hdrNosniff   = []string{"nosniff"}
	hdrTileSize  = []string{strconv.Itoa(tlog.TileWidth * xtlog.HashSize)}
)

// okHeaders writes a successful answer with the given header values, which
// it does not modify.
func (s *Server) okHeaders(w http.ResponseWriter, contentType, cacheControl []string, body []byte) {
	h := w.Header()
	// Canonical keys, assigned directly: no canonicalization per request.
	h["Content-Type"] = contentType
	h["Cache-Control"] = cacheControl
	h["X-Content-Type-Options"] = hdrNosniff
	if len(body) == tlog.TileWidth*xtlog.HashSize {
		h["Content-Length"] = hdrTileSize
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// fail answers a rejected request with one short printable line, which the
// go command shows its user, and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, cacheControl, msg string, err error) {
	attrs := []any{"method", r.Method, "path", clip(r.URL.Path, 200), "status", code, "client", ratelimit.ClientKey(r, s.trustProxy)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.logger.InfoContext(r.Context(), "request rejected", attrs...)
	s.write(w, code, cacheControl, msg)
}

// internal answers 500 and logs err, which may tell about the server's
// insides and so stays out of the answer.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", clip(r.URL.Path, 200), "status", http.StatusInternalServerError, "err", err)
	s.write(w, http.StatusInternalServerError, cacheNone, "internal error")
}

func (s *Server) write(w http.ResponseWriter, code int, cacheControl, msg string) {
	body := clip(msg, 400) + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// clip returns s with every byte that is not printable ASCII replaced by '?',
// shortened to at most n bytes by cutting out its middle (the reason for an
// error is at its end, the module at its start).
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n*2/3] + "..." + s[len(s)-(n-n*2/3-3):]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
