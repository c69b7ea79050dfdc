package sumdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// A backend opens a fresh, empty store for a test.
type backend struct {
	name string
	open func(t *testing.T) tlog.Store
}

var backends = []backend{
	{"SQLite", func(t *testing.T) tlog.Store { return openSQLite(t) }},
	{"Postgres", func(t *testing.T) tlog.Store {
		s, err := store.OpenPostgres(t.Context(), storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// openSQLite opens a new, empty SQLite store, closed when the test ends.
func openSQLite(t testing.TB) tlog.Store {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openLog opens the log in st with cfg, signed by a new key named
// sumdb.test, and closed when the test ends. It returns the log and the
// key's signer and verifier keys.
func openLog(t testing.TB, st tlog.Store, cfg tlog.Config) (l *tlog.Log, skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if cfg.Verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	if l, err = tlog.Open(t.Context(), st, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, skey, vkey
}

// An env is a Server on a real log, in front of an in-memory module proxy.
type env struct {
	t       *testing.T
	skey    string
	vkey    string
	reg     *prometheus.Registry // of the server's metrics
	log     *tlog.Log
	proxy   *modproxy.Proxy
	fetcher *gateFetcher
	srv     *Server
	url     string // of srv
	logs    *syncBuffer
}

type envOptions struct {
	cfg      ServerConfig // Log, Fetcher, Logger and Metrics are filled in
	upstream fetch.Config
	fetcher  Fetcher                     // instead of an Upstream on the proxy
	logCfg   tlog.Config                 // Signer, Verifier and OnCommit are filled in
	wrap     func(tlog.Store) tlog.Store // if set, wraps the store
}

func newEnv(t *testing.T, b backend, opts envOptions) *env {
	t.Helper()
	st := b.open(t)
	if opts.wrap != nil {
		st = opts.wrap(st)
	}
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	lcfg := opts.logCfg
	lcfg.OnCommit = metrics.ObserveCommit
	l, skey, vkey := openLog(t, st, lcfg)

	e := &env{t: t, skey: skey, vkey: vkey, reg: reg, log: l, proxy: modproxy.New(), logs: new(syncBuffer)}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inner := opts.fetcher
	if inner == nil {
		psrv := httptest.NewServer(e.proxy)
		t.Cleanup(psrv.Close)
		up := opts.upstream
		up.Proxy = psrv.URL
		if up.Logger == nil {
			up.Logger = logger
		}
		u, err := fetch.New(up)
		if err != nil {
			t.Fatal(err)
		}
		inner = u
	}
	e.fetcher = &gateFetcher{inner: inner}
	cfg := opts.cfg
	cfg.Log = l
	cfg.Fetcher = e.fetcher
	cfg.Logger = logger
	cfg.Metrics = metrics
	if e.srv, err = NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e.srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// add serves m from the proxy.
func (e *env) add(m modproxy.Module) {
	e.t.Helper()
	if err := e.proxy.Add(m); err != nil {
		e.t.Fatal(err)
	}
}

// get fetches path from the server.
func (e *env) get(path string) (int, http.Header, []byte) {
	return e.do(e.t.Context(), http.MethodGet, path)
}

func (e *env) do(ctx context.Context, method, path string) (int, http.Header, []byte) {
	e.t.Helper()
	code, h, body, err := e.try(ctx, method, path)
	if err != nil {
		e.t.Fatal(err)
	}
	return code, h, body
}

func (e *env) try(ctx context.Context, method, path string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// appendSynthetic appends n records with made-up hashes straight to the log.
func (e *env) appendSynthetic(prefix string, n int) {
	e.t.Helper()
	var g sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		g.Go(func() {
			path := fmt.Sprintf("example.com/%s/m%d", prefix, i)
			if _, _, err := e.log.Append(e.t.Context(), path, "v1.0.0", synthText(path, "v1.0.0")); err != nil {
				errs <- err
			}
		})
	}
	g.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
}

func synthText(path, version string) []byte {
	h1 := sha256.Sum256([]byte(path + " " + version))
	h2 := sha256.Sum256([]byte(path + " " + version + "/go.mod"))
	return fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n",
		path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
}

// flightWaiters returns how many requests wait for the first lookup of key.
func (e *env) flightWaiters(key string) int {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if f := e.srv.flights[key]; f != nil {
		return f.waiters
	}
	return 0
}

func (e *env) inFlight(key string) bool {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	return e.srv.flights[key] != nil
}

// waitFor polls cond until it holds or the test has waited too long.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A gateFetcher counts fetches per module version and can hold them.
type gateFetcher struct {
	inner Fetcher

	mu    sync.Mutex
	calls map[string]int
	gates map[string]chan struct{} // path@version → closed when fetches may go on
}

func (f *gateFetcher) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	key := path + "@" + version
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[key]++
	gate := f.gates[key]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.inner.Fetch(ctx, path, version)
}

func (f *gateFetcher) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// total returns the number of fetches of all module versions.
func (f *gateFetcher) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// hold makes fetches of key wait until the returned function is called.
func (f *gateFetcher) hold(key string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gates == nil {
		f.gates = make(map[string]chan struct{})
	}
	c := make(chan struct{})
	f.gates[key] = c
	return sync.OnceFunc(func() { close(c) })
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// clientOps are x/mod's sumdb.ClientOps reading from the server under test,
// with the configuration and cache in memory.
type clientOps struct {
	t    *testing.T
	url  string
	vkey string

	mu     sync.Mutex
	config map[string][]byte
	cache  map[string][]byte
	remote []string // paths read, in order
}

func newClientOps(t *testing.T, e *env) *clientOps {
	return &clientOps{t: t, url: e.url, vkey: e.vkey, config: make(map[string][]byte), cache: make(map[string][]byte)}
}

func (c *clientOps) ReadRemote(path string) ([]byte, error) {
	c.mu.Lock()
	c.remote = append(c.remote, path)
	c.mu.Unlock()
	resp, err := http.Get(c.url + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, nil
}

func (c *clientOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(c.vkey), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.config[file], nil // nil: start from the empty tree
}

func (c *clientOps) WriteConfig(file string, old, new []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.Equal(c.config[file], old) {
		return xsumdb.ErrWriteConflict
	}
	c.config[file] = bytes.Clone(new)
	return nil
}

func (c *clientOps) ReadCache(file string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.cache[file]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

func (c *clientOps) WriteCache(file string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[file] = bytes.Clone(data)
}

func (c *clientOps) Log(msg string) { c.t.Log(msg) }

func (c *clientOps) SecurityError(msg string) { c.t.Errorf("client security error: %s", msg) }

// lookupAll looks up every module with client and checks its lines against
// the go.sum lines the proxy computes.
func lookupAll(t *testing.T, e *env, client *xsumdb.Client, mods []modproxy.Module) {
	t.Helper()
	for _, m := range mods {
		want, err := e.proxy.GoSum(m.Path, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		zip, err := client.Lookup(m.Path, m.Version)
		if err != nil {
			t.Errorf("client.Lookup(%q, %q): %v", m.Path, m.Version, err)
			continue
		}
		mod, err := client.Lookup(m.Path, m.Version+"/go.mod")
		if err != nil {
			t.Errorf("client.Lookup(%q, %q): %v", m.Path, m.Version+"/go.mod", err)
			continue
		}
		if got := strings.Join(append(zip, mod...), "\n") + "\n"; got != string(want) {
			t.Errorf("client.Lookup(%s@%s) = %q, want %q", m.Path, m.Version, got, want)
		}
	}
}

func TestServer(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("Client", func(t *testing.T) { t.Parallel(); testClient(t, b) })
			t.Run("EmptyLog", func(t *testing.T) { t.Parallel(); testEmptyLog(t, b) })
			t.Run("BadRequests", func(t *testing.T) { t.Parallel(); testBadRequests(t, b) })
			t.Run("NotFound", func(t *testing.T) { t.Parallel(); testNotFound(t, b) })
			t.Run("UpstreamErrors", func(t *testing.T) { t.Parallel(); testUpstreamErrors(t, b) })
			t.Run("InconsistentMod", func(t *testing.T) { t.Parallel(); testInconsistentMod(t, b) })
			t.Run("ConcurrentFirstLookups", func(t *testing.T) { t.Parallel(); testConcurrentFirstLookups(t, b) })
			t.Run("ImpatientClient", func(t *testing.T) { t.Parallel(); testImpatientClient(t, b) })
			t.Run("FetchSlots", func(t *testing.T) { t.Parallel(); testFetchSlots(t, b) })
			t.Run("PartialTiles", func(t *testing.T) { t.Parallel(); testPartialTiles(t, b) })
			t.Run("Headers", func(t *testing.T) { t.Parallel(); testHeaders(t, b) })
		})
	}
}

var clientModules = []modproxy.Module{
	{Path: "example.com/Upper/Mod", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/Upper/Mod\n", "a.go": "package a\n"}},
	{Path: "example.com/inc", Version: "v2.0.0+incompatible", Files: map[string]string{"inc.go": "package inc\n"}},
	{Path: "example.com/pseudo", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p\n"}},
	{Path: "example.com/pseudo", Version: "v1.2.4-0.20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p // 2\n"}},
	{Path: "example.com/pseudo", Version: "v1.2.3-pre.0.20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p // 3\n"}},
	{Path: "example.com/nogomod", Version: "v1.2.3", Files: map[string]string{"x.go": "package x\n"}},
	{Path: "gopkg.in/yaml.v2", Version: "v2.4.0", Files: map[string]string{"go.mod": "module gopkg.in/yaml.v2\n", "yaml.go": "package yaml\n"}},
	{Path: "golang.org/toolchain", Version: "v0.0.1-go1.21.0.linux-amd64", Files: map[string]string{"go.mod": "module golang.org/toolchain\n", "bin/go": "#!/bin/sh\n"}},
}

// testClient checks the server with x/mod's own client, which verifies every
// record against the signed heads and every new head against the old ones.
func testClient(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	for _, m := range clientModules {
		e.add(m)
	}
	ops := newClientOps(t, e)
	client := xsumdb.NewClient(ops)
	lookupAll(t, e, client, clientModules)

	// Grow the tree across tile boundaries (level 0 and level 1), then look
	// up new modules with the same client: it must prove the new heads
	// consistent with the one it has seen.
	e.appendSynthetic("synth", 300)
	more := []modproxy.Module{
		{Path: "example.com/later", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/later\n"}},
		{Path: "example.com/later/v2", Version: "v2.1.0", Files: map[string]string{"go.mod": "module example.com/later/v2\n"}},
	}
	for _, m := range more {
		e.add(m)
	}
	lookupAll(t, e, client, more)
	e.appendSynthetic("synth2", 40)
	more2 := []modproxy.Module{{Path: "example.com/last", Version: "v0.1.0", Files: map[string]string{"l.go": "package l\n"}}}
	e.add(more2[0])
	lookupAll(t, e, client, more2)

	// A second client that remembers the first one's latest head but has an
	// empty cache re-verifies every record.
	ops2 := newClientOps(t, e)
	ops2.config = ops.config
	client2 := xsumdb.NewClient(ops2)
	lookupAll(t, e, client2, slices.Concat(clientModules, more, more2))

	size := e.log.Head().Size
	if want := int64(len(clientModules) + 300 + len(more) + 40 + len(more2)); size != want {
		t.Errorf("tree size = %d, want %d", size, want)
	}
	tree, err := xtlog.ParseTree(lastNoteText(t, e, ops.config["sumdb.test/latest"]))
	if err != nil {
		t.Fatal(err)
	}
	if tree.N != size {
		t.Errorf("client's latest tree size = %d, want %d", tree.N, size)
	}

	compareWithTestServer(t, e)
}

// lastNoteText returns the text of a note signed by the log's key.
func lastNoteText(t *testing.T, e *env, msg []byte) []byte {
	t.Helper()
	v, err := note.NewVerifier(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("open note %q: %v", msg, err)
	}
	return []byte(n.Text)
}

// compareWithTestServer feeds x/mod's reference TestServer the log's records,
// in order, signed with the same key, and checks that it serves the same
// bytes as the server under test for the head and every tile.
func compareWithTestServer(t *testing.T, e *env) {
	t.Helper()
	size := e.log.Head().Size
	var records [][]byte
	for k := int64(0); k*256 < size; k++ {
		tile := xtlog.Tile{H: 8, L: -1, N: k, W: int(min(256, size-k*256))}
		code, _, data := e.get("/" + tile.Path())
		if code != http.StatusOK {
			t.Fatalf("GET /%s: %d %s", tile.Path(), code, data)
		}
		for len(data) > 0 {
			text, rest, ok := bytes.Cut(data, []byte("\n\n"))
			if !ok {
				t.Fatalf("data tile %s: record not followed by a blank line: %q", tile.Path(), data)
			}
			records = append(records, append(text, '\n'))
			data = rest
		}
	}
	if int64(len(records)) != size {
		t.Fatalf("data tiles hold %d records, want %d", len(records), size)
	}
	byKey := make(map[string][]byte)
	ts := xsumdb.NewTestServer(e.skey, func(path, vers string) ([]byte, error) { return byKey[path+"@"+vers], nil })
	for _, text := range records {
		f := strings.Fields(string(text))
		byKey[f[0]+"@"+f[1]] = text
		if _, err := ts.Lookup(t.Context(), module.Version{Path: f[0], Version: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	ref := httptest.NewServer(xsumdb.NewServer(ts))
	defer ref.Close()
	refGet := func(path string) []byte {
		resp, err := http.Get(ref.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reference GET %s: %s %s", path, resp.Status, body)
		}
		return body
	}
	if _, _, got := e.get("/latest"); !bytes.Equal(got, refGet("/latest")) {
		t.Errorf("/latest = %q, reference serves %q", got, refGet("/latest"))
	}
	tiles := xtlog.NewTiles(8, 0, size)
	for _, tile := range tiles {
		for _, tl := range []xtlog.Tile{tile, {H: 8, L: -1, N: tile.N, W: tile.W}} {
			if tl.L == -1 && tile.L != 0 {
				continue
			}
			p := "/" + tl.Path()
			code, _, got := e.get(p)
			if want := refGet(p); code != http.StatusOK || !bytes.Equal(got, want) {
				t.Errorf("GET %s = %d %q, reference serves %q", p, code, got, want)
			}
		}
	}
	if len(tiles) < 3 {
		t.Errorf("compared only %d hash tiles", len(tiles))
	}
}

func testEmptyLog(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	for _, tc := range []struct {
		path string
		body string
	}{
		{"/latest", "the log is empty: no tree head has been signed yet\n"},
		{"/tile/8/0/000.p/1", "tile not found: beyond the tree\n"},
		{"/tile/8/data/000.p/1", "tile not found: beyond the tree\n"},
		{"/tile/8/1/000.p/1", "tile not found: beyond the tree\n"},
	} {
		code, h, body := e.get(tc.path)
		if code != http.StatusNotFound || string(body) != tc.body || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s = %d %q (Cache-Control %q), want 404 %q (no-store)", tc.path, code, body, h.Get("Cache-Control"), tc.body)
		}
	}
}

// checkErrorBody reports a problem with an error answer's body, which must be
// one short line of printable text.
func checkErrorBody(h http.Header, body []byte) string {
	switch {
	case h.Get("Content-Type") != "text/plain; charset=utf-8":
		return fmt.Sprintf("Content-Type %q", h.Get("Content-Type"))
	case len(body) == 0 || body[len(body)-1] != '\n':
		return "body does not end in a newline"
	case len(body) > 402:
		return fmt.Sprintf("body of %d bytes", len(body))
	case bytes.Count(body, []byte("\n")) != 1:
		return "body of several lines"
	}
	for _, c := range body[:len(body)-1] {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("body holds byte %#x", c)
		}
	}
	return ""
}

func testNotFound(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	var offset atomic.Int64 // of the not-found cache's clock
	e.srv.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	const key = "example.com/m@v1.9.9"
	release := e.fetcher.hold(key)

	// Five concurrent lookups share one upstream fetch.
	type answer struct {
		code int
		h    http.Header
		body []byte
	}
	answers := make(chan answer, 5)
	for range 5 {
		go func() {
			code, h, body, err := e.try(t.Context(), http.MethodGet, "/lookup/"+key)
			if err != nil {
				t.Error(err)
			}
			answers <- answer{code, h, body}
		}()
	}
	waitFor(t, "five lookups waiting", func() bool { return e.flightWaiters(key) == 5 })
	release()
	for range 5 {
		a := <-answers
		if want := "not found: " + key + ": unknown revision v1.9.9\n"; a.code != 404 || string(a.body) != want {
			t.Errorf("GET /lookup/%s = %d %q, want 404 %q", key, a.code, a.body, want)
		}
		if cc := a.h.Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("GET /lookup/%s: Cache-Control %q, want %q", key, cc, "public, max-age=60")
		}
	}
	if n := e.fetcher.count(key); n != 1 {
		t.Errorf("upstream fetches of %s = %d, want 1", key, n)
	}
	if n := e.proxy.Requests("example.com/m").Info; n != 1 {
		t.Errorf("upstream .info requests = %d, want 1", n)
	}

	// Within NotFoundTTL the answer comes from the cache.
	offset.Store(int64(59 * time.Second))
	if code, _, _ := e.get("/lookup/" + key); code != 404 {
		t.Errorf("second lookup: %d, want 404", code)
	}
	if n := e.fetcher.count(key); n != 1 {
		t.Errorf("upstream fetches of %s after a second lookup = %d, want 1", key, n)
	}
	// After it, the upstream is asked again, and now has the version.
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.9.9", Files: map[string]string{"m.go": "package m\n"}})
	offset.Store(int64(61 * time.Second))
	if code, _, body := e.get("/lookup/" + key); code != 200 {
		t.Errorf("lookup after NotFoundTTL: %d %q, want 200", code, body)
	}
	if n := e.fetcher.count(key); n != 2 {
		t.Errorf("upstream fetches of %s after NotFoundTTL = %d, want 2", key, n)
	}
	if size := e.log.Head().Size; size != 1 {
		t.Errorf("tree size = %d, want 1", size)
	}
	// One line per fetch: two fetches, the first for five lookups.
	if n := strings.Count(e.logs.String(), `msg="upstream fetch" module=example.com/m version=v1.9.9 result=`); n != 2 {
		t.Errorf("%d log lines for the 2 upstream fetches, want 2:\n%s", n, e.logs)
	}

	t.Run("NoCache", func(t *testing.T) {
		e := newEnv(t, b, envOptions{cfg: ServerConfig{NotFoundTTL: -1}})
		for range 2 {
			code, h, _ := e.get("/lookup/" + key)
			if code != 404 || h.Get("Cache-Control") != "no-store" {
				t.Errorf("GET /lookup/%s = %d (Cache-Control %q), want 404 (no-store)", key, code, h.Get("Cache-Control"))
			}
		}
		if n := e.fetcher.count(key); n != 2 {
			t.Errorf("upstream fetches without a not-found cache = %d, want 2", n)
		}
	})
}

func testUpstreamErrors(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{upstream: fetch.Config{Timeout: 300 * time.Millisecond}})
	e.add(modproxy.Module{Path: "example.com/ok", Version: "v1.0.0", Files: map[string]string{"ok.go": "package ok\n"}})
	if code, _, _ := e.get("/lookup/example.com/ok@v1.0.0"); code != 200 {
		t.Fatalf("lookup: %d", code)
	}
	e.add(modproxy.Module{Path: "example.com/broken", Version: "v1.0.0", Files: map[string]string{"b.go": "package b\n"}})
	e.add(modproxy.Module{Path: "example.com/slow", Version: "v1.0.0", Files: map[string]string{"s.go": "package s\n"}})
	e.proxy.SetFault("example.com/broken", modproxy.FaultServerError)
	e.proxy.SetFault("example.com/slow", modproxy.FaultStall)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/lookup/example.com/broken@v1.0.0", 502, "upstream unavailable: example.com/broken@v1.0.0: try again later\n"},
		{"/lookup/example.com/slow@v1.0.0", 504, "upstream timeout: example.com/slow@v1.0.0: try again later\n"},
	} {
		for range 2 { // errors of the upstream are not remembered
			code, h, body := e.get(tc.path)
			if code != tc.code || string(body) != tc.body || h.Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s = %d %q (Cache-Control %q), want %d %q (no-store)", tc.path, code, body, h.Get("Cache-Control"), tc.code, tc.body)
			}
		}
	}
	if n := e.fetcher.count("example.com/broken@v1.0.0"); n != 2 {
		t.Errorf("fetches of a module whose upstream fails = %d, want 2", n)
	}
	if size := e.log.Head().Size; size != 1 {
		t.Errorf("tree size = %d after upstream errors, want 1", size)
	}

	// A proxy that sends the fetch to plain http: the lookup fails as for
	// any broken upstream, and nothing reaches the plain http server or
	// the log.
	t.Run("RedirectToHTTP", func(t *testing.T) {
		p := modproxy.New()
		if err := p.Add(modproxy.Module{Path: "example.com/ok", Version: "v1.0.0", Files: map[string]string{"ok.go": "package ok\n"}}); err != nil {
			t.Fatal(err)
		}
		lab := guardtest.NewLab(t, p, guardtest.RedirectTo("https://proxy.example.com", "http://proxy.example.com"))
		up, err := fetch.New(fetch.Config{Proxy: "https://proxy.example.com", Client: lab.Client})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, b, envOptions{fetcher: up})
		const want = "upstream unavailable: example.com/ok@v1.0.0: try again later\n"
		if code, _, body := e.get("/lookup/example.com/ok@v1.0.0"); code != 502 || string(body) != want {
			t.Errorf("lookup through a proxy redirecting to http = %d %q, want 502 %q", code, body, want)
		}
		if hits := lab.TakeHits(); !slices.Equal(hits, []string{"https://proxy.example.com/example.com/ok/@v/v1.0.0.info"}) {
			t.Errorf("proxy requests %q, want only the https one for .info", hits)
		}
		if size := e.log.Head().Size; size != 0 {
			t.Errorf("tree size = %d after a refused redirect, want 0", size)
		}
	})

	t.Run("InvalidRecord", func(t *testing.T) {
		for _, text := range []string{
			"",
			"example.com/x v1.0.0 h1:" + strings.Repeat("A", 43) + "=\n",
			"example.com/x v1.0.0 h1:" + strings.Repeat("A", 43) + "=\nexample.com/x v1.0.0/go.mod h1:" + strings.Repeat("A", 43) + "=\nmore\n",
			"example.com/y v1.0.0 h1:" + strings.Repeat("A", 43) + "=\nexample.com/y v1.0.0/go.mod h1:" + strings.Repeat("A", 43) + "=\n",
			"example.com/x v1.0.0 h1:" + strings.Repeat("A", 43) + "=\nexample.com/x v1.0.0/go.mod h1:" + strings.Repeat("A", 42) + "==\n",
			"example.com/x v1.0.0 h1:abc\nexample.com/x v1.0.0/go.mod h1:abc\n",
			"example.com/x v1.0.0 h1:" + strings.Repeat("A", 43) + "=\nexample.com/x v1.0.0/go.mod h1:" + strings.Repeat("A", 43) + "=",
		} {
			e := newEnv(t, b, envOptions{fetcher: fetcherFunc(func(ctx context.Context, path, version string) ([]byte, error) {
				return []byte(text), nil
			})})
			code, h, body := e.get("/lookup/example.com/x@v1.0.0")
			if code != 502 || h.Get("Cache-Control") != "no-store" {
				t.Errorf("lookup with upstream record %q = %d %q, want 502", text, code, body)
			}
			if size := e.log.Head().Size; size != 0 {
				t.Errorf("tree size = %d after an invalid record, want 0", size)
			}
		}
	})
}

// testInconsistentMod checks that a module version whose .mod is not its
// zip's go.mod, or for a zip without one not "module <path>\n", is
// answered 404 with the reason, logged as an error and not appended.
func testInconsistentMod(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.add(modproxy.Module{Path: "example.com/ok", Version: "v1.0.0", Files: map[string]string{"ok.go": "package ok\n"}})
	if code, _, body := e.get("/lookup/example.com/ok@v1.0.0"); code != 200 {
		t.Fatalf("lookup of a zip without go.mod and its synthesized .mod: %d %q, want 200", code, body)
	}
	const next = ": the upstream proxy serves an inconsistent module version; ask its operator to fix it\n"
	for _, tc := range []struct {
		m    modproxy.Module
		body string
	}{
		{
			modproxy.Module{Path: "example.com/bad", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/bad\n"},
				Mod: []byte("module example.com/bad\n\nrequire example.com/evil v1.0.0\n")},
			"not found: example.com/bad@v1.0.0: .mod differs from the zip's go.mod" + next,
		},
		{
			modproxy.Module{Path: "example.com/bad", Version: "v1.0.1", Files: map[string]string{"go.mod": "module example.com/bad\n\ngo 1.21\n"},
				Mod: []byte("module example.com/bad\n")},
			"not found: example.com/bad@v1.0.1: .mod differs from the zip's go.mod" + next,
		},
		{
			modproxy.Module{Path: "example.com/bad", Version: "v2.0.0+incompatible", Files: map[string]string{"bad.go": "package bad\n"},
				Mod: []byte("module example.com/bad\n\nrequire example.com/evil v1.0.0\n")},
			`not found: example.com/bad@v2.0.0+incompatible: the zip has no go.mod, so .mod must be "module example.com/bad\n"` + next,
		},
	} {
		e.add(tc.m)
		key := tc.m.Path + "@" + tc.m.Version
		code, h, body := e.get("/lookup/" + key)
		if code != 404 || string(body) != tc.body {
			t.Errorf("GET /lookup/%s = %d %q, want 404 %q", key, code, body, tc.body)
		}
		if problem := checkErrorBody(h, body); problem != "" {
			t.Errorf("GET /lookup/%s: %s", key, problem)
		}
		if want := fmt.Sprintf(`level=ERROR msg="upstream fetch" module=%s version=%s result=not_found`, tc.m.Path, tc.m.Version); !strings.Contains(e.logs.String(), want) {
			t.Errorf("no log line %q:\n%s", want, e.logs)
		}
	}
	if size := e.log.Head().Size; size != 1 {
		t.Errorf("tree size = %d after inconsistent modules, want 1", size)
	}
}

type fetcherFunc func(ctx context.Context, path, version string) ([]byte, error)

func (f fetcherFunc) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	return f(ctx, path, version)
}

func testConcurrentFirstLookups(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.appendSynthetic("before", 3)
	for i := range 3 {
		e.add(modproxy.Module{Path: fmt.Sprintf("example.com/c%d", i), Version: "v1.0.0", Files: map[string]string{"c.go": "package c\n"}})
	}
	const n = 20
	bodies := make([][]byte, 3*n)
	var g sync.WaitGroup
	for i := range 3 * n {
		g.Go(func() {
			code, _, body, err := e.try(t.Context(), http.MethodGet, fmt.Sprintf("/lookup/example.com/c%d@v1.0.0", i%3))
			if err != nil || code != 200 {
				t.Errorf("lookup: %d %q %v", code, body, err)
			}
			bodies[i] = body
		})
	}
	g.Wait()
	ids := make(map[int64]bool)
	for i, body := range bodies {
		id, text, _, err := xtlog.ParseRecord(body)
		if err != nil {
			t.Fatalf("lookup %d: %v (%q)", i, err, body)
		}
		first, _, _ := bytes.Cut(bodies[i%3], []byte("\n"))
		if got, _, _ := bytes.Cut(body, []byte("\n")); !bytes.Equal(got, first) {
			t.Errorf("lookups of example.com/c%d got ids %s and %s", i%3, first, got)
		}
		if want := fmt.Sprintf("example.com/c%d v1.0.0 ", i%3); !strings.HasPrefix(string(text), want) {
			t.Errorf("lookup of example.com/c%d: record %q", i%3, text)
		}
		ids[id] = true
	}
	if len(ids) != 3 {
		t.Errorf("lookups got %d distinct ids, want 3", len(ids))
	}
	if size := e.log.Head().Size; size != 6 {
		t.Errorf("tree size = %d, want 6", size)
	}
	for i := range 3 {
		if n := e.fetcher.count(fmt.Sprintf("example.com/c%d@v1.0.0", i)); n != 1 {
			t.Errorf("fetches of example.com/c%d = %d, want 1", i, n)
		}
	}
}

// testImpatientClient checks that a requester that goes away does not fail
// the others waiting for the same first lookup.
func testImpatientClient(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}})
	const key = "example.com/m@v1.0.0"
	release := e.fetcher.hold(key)
	defer release()

	ctx, cancel := context.WithCancel(t.Context())
	impatient := make(chan error, 1)
	go func() {
		_, _, _, err := e.try(ctx, http.MethodGet, "/lookup/"+key)
		impatient <- err
	}()
	waitFor(t, "the first lookup", func() bool { return e.flightWaiters(key) == 1 })
	patient := make(chan int, 1)
	go func() {
		code, _, _, _ := e.try(t.Context(), http.MethodGet, "/lookup/"+key)
		patient <- code
	}()
	waitFor(t, "the second lookup", func() bool { return e.flightWaiters(key) == 2 })
	cancel()
	if err := <-impatient; !errors.Is(err, context.Canceled) {
		t.Errorf("impatient lookup: %v, want context.Canceled", err)
	}
	waitFor(t, "the first lookup to leave", func() bool { return e.flightWaiters(key) == 1 })
	release()
	if code := <-patient; code != 200 {
		t.Errorf("patient lookup = %d, want 200", code)
	}

	// A fetch that began finishes even when every requester has left.
	const key2 = "example.com/m@v1.1.0"
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.1.0", Files: map[string]string{"m.go": "package m\n"}})
	release2 := e.fetcher.hold(key2)
	ctx, cancel = context.WithCancel(t.Context())
	go func() {
		_, _, _, err := e.try(ctx, http.MethodGet, "/lookup/"+key2)
		impatient <- err
	}()
	waitFor(t, "the fetch to begin", func() bool { return e.fetcher.count(key2) == 1 })
	cancel()
	<-impatient
	waitFor(t, "the requester to leave", func() bool { return e.flightWaiters(key2) == 0 })
	release2()
	waitFor(t, "the record to be logged", func() bool { return e.log.Head().Size == 2 })
	if code, _, _ := e.get("/lookup/" + key2); code != 200 {
		t.Errorf("lookup after the abandoned fetch = %d, want 200", code)
	}
	if n := e.fetcher.count(key2); n != 1 {
		t.Errorf("fetches of %s = %d, want 1", key2, n)
	}
}

// testFetchSlots checks MaxFetches: a lookup waits for a slot while its
// requester waits, and gives up without fetching when nobody does.
func testFetchSlots(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{cfg: ServerConfig{MaxFetches: 1}})
	for _, v := range []string{"v1.0.0", "v2.0.0"} {
		e.add(modproxy.Module{Path: "example.com/s", Version: v + "+incompatible", Files: map[string]string{"s.go": "package s\n"}})
	}
	const x, y = "example.com/s@v1.0.0+incompatible", "example.com/s@v2.0.0+incompatible"
	if code, _, body := e.get("/lookup/" + x); code != 400 {
		t.Errorf("lookup of %s = %d %q, want 400", x, code, body)
	}
	release := e.fetcher.hold(y)
	done := make(chan int, 1)
	go func() {
		code, _, _, _ := e.try(t.Context(), http.MethodGet, "/lookup/"+y)
		done <- code
	}()
	waitFor(t, "the fetch of "+y, func() bool { return e.fetcher.count(y) == 1 })

	e.add(modproxy.Module{Path: "example.com/z", Version: "v1.0.0", Files: map[string]string{"z.go": "package z\n"}})
	const z = "example.com/z@v1.0.0"
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, _, err := e.try(ctx, http.MethodGet, "/lookup/"+z); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lookup waiting for a fetch slot: %v, want a deadline error", err)
	}
	waitFor(t, "the abandoned lookup to end", func() bool { return !e.inFlight(z) })
	release()
	if code := <-done; code != 200 {
		t.Errorf("lookup of %s = %d, want 200", y, code)
	}
	if n := e.fetcher.count(z); n != 0 {
		t.Errorf("fetches of %s = %d, want 0: nobody waited for it", z, n)
	}
	if code, _, _ := e.get("/lookup/" + z); code != 200 {
		t.Errorf("lookup of %s = %d, want 200", z, code)
	}
}

func testPartialTiles(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.appendSynthetic("p", 300) // 256 + 44 records: tile 0/000, 0/001.p/44, 1/000.p/1
	full := func(path string) []byte {
		t.Helper()
		code, _, body := e.get(path)
		if code != 200 {
			t.Fatalf("GET %s = %d %q", path, code, body)
		}
		return body
	}
	for _, tc := range []struct {
		base  string
		width int
		size  int // bytes per entry; 0 for data tiles
	}{
		{"/tile/8/0/000", 256, 32},
		{"/tile/8/0/001", 44, 32},
		{"/tile/8/1/000", 1, 32},
		{"/tile/8/data/000", 256, 0},
		{"/tile/8/data/001", 44, 0},
	} {
		widest := tc.base
		if tc.width < 256 {
			widest += ".p/" + strconv.Itoa(tc.width)
		}
		all := full(widest)
		if tc.size > 0 && len(all) != tc.width*tc.size {
			t.Errorf("GET %s: %d bytes, want %d", widest, len(all), tc.width*tc.size)
		}
		for w := 1; w < tc.width; w++ {
			p := tc.base + ".p/" + strconv.Itoa(w)
			got := full(p)
			if tc.size > 0 && !bytes.Equal(got, all[:w*tc.size]) {
				t.Errorf("GET %s is not the first %d hashes of %s", p, w, widest)
			}
			if tc.size == 0 && (!bytes.HasPrefix(all, got) || bytes.Count(got, []byte("\n\n")) != w) {
				t.Errorf("GET %s is not the first %d records of %s", p, w, widest)
			}
		}
		if tc.width < 256 {
			p := tc.base + ".p/" + strconv.Itoa(tc.width+1)
			if code, _, body := e.get(p); code != 404 {
				t.Errorf("GET %s = %d %q, want 404", p, code, body)
			}
		}
	}
}

func testHeaders(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.add(modproxy.Module{Path: "example.com/h", Version: "v1.0.0", Files: map[string]string{"h.go": "package h\n"}})
	const (
		plain = "text/plain; charset=utf-8"
		bin   = "application/octet-stream"
	)
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, cache string
	}{
		{"GET", "/lookup/example.com/h@v1.0.0", 200, plain, "public, max-age=5"},
		{"GET", "/lookup/example.com/h@v1.0.0", 200, plain, "public, max-age=5"}, // a hit
		{"HEAD", "/lookup/example.com/h@v1.0.0", 200, plain, "public, max-age=5"},
		{"GET", "/latest", 200, plain, "no-cache"},
		{"HEAD", "/latest", 200, plain, "no-cache"},
		{"GET", "/tile/8/0/000.p/1", 200, bin, "public, max-age=31536000, immutable"},
		{"GET", "/tile/8/data/000.p/1", 200, plain, "public, max-age=31536000, immutable"},
		{"GET", "/tile/8/0/000.p/2", 404, plain, "no-store"},
		{"GET", "/lookup/example.com/h@v1.0.1", 404, plain, "public, max-age=60"},
		{"GET", "/lookup/example.com/h@v1.0", 400, plain, "public, max-age=60"},
		{"GET", "/tile/8/0/0", 400, plain, "public, max-age=60"},
		{"GET", "/nothing", 404, plain, "public, max-age=60"},
		{"POST", "/lookup/example.com/h@v1.0.0", 405, plain, "public, max-age=60"},
		{"PUT", "/latest", 405, plain, "public, max-age=60"},
		{"DELETE", "/tile/8/0/000.p/1", 405, plain, "public, max-age=60"},
	} {
		code, h, body := e.do(t.Context(), tc.method, tc.path)
		if code != tc.code || h.Get("Content-Type") != tc.ctype || h.Get("Cache-Control") != tc.cache {
			t.Errorf("%s %s = %d, Content-Type %q, Cache-Control %q; want %d, %q, %q",
				tc.method, tc.path, code, h.Get("Content-Type"), h.Get("Cache-Control"), tc.code, tc.ctype, tc.cache)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: no X-Content-Type-Options: nosniff", tc.method, tc.path)
		}
		if tc.method == "HEAD" && (len(body) != 0 || h.Get("Content-Length") == "" || h.Get("Content-Length") == "0") {
			t.Errorf("HEAD %s: body %q, Content-Length %q", tc.path, body, h.Get("Content-Length"))
		}
		if code == 405 && h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, h.Get("Allow"), "GET, HEAD")
		}
		if code != 200 {
			if msg := checkErrorBody(h, body); msg != "" {
				t.Errorf("%s %s = %d %q: %s", tc.method, tc.path, code, body, msg)
			}
		}
	}
	// The lookup body is the record then the current signed head.
	_, _, body := e.get("/lookup/example.com/h@v1.0.0")
	_, _, latest := e.get("/latest")
	id, text, rest, err := xtlog.ParseRecord(body)
	if err != nil || id != 0 || !bytes.Equal(rest, latest) {
		t.Errorf("lookup body %q: id %d, rest %q, err %v; want id 0 and the head %q", body, id, rest, err, latest)
	}
	if want, _ := e.proxy.GoSum("example.com/h", "v1.0.0"); !bytes.Equal(text, want) {
		t.Errorf("lookup record %q, want %q", text, want)
	}
}

// TestLookupError checks the answer to each kind of lookup failure, including
// those the other tests cannot provoke on demand.
func TestLookupError(t *testing.T) {
	logs := new(syncBuffer)
	s := &Server{
		logger:      slog.New(slog.NewTextHandler(logs, nil)),
		notFoundTTL: 90 * time.Second,
	}
	const mod = "example.com/m@v1.0.0"
	for _, tc := range []struct {
		err         error
		code        int
		body, cache string
		retryAfter  string
	}{
		{fmt.Errorf("%w: %s: unknown revision", fetch.ErrNotFound, mod), 404, "not found: " + mod + ": unknown revision\n", "public, max-age=90", ""},
		{fmt.Errorf("%w: %s: bad", fetch.ErrInvalid, mod), 400, "invalid module version: " + mod + ": bad\n", "public, max-age=60", ""},
		{fmt.Errorf("%w: secret.internal:8080 said 500", fetch.ErrUpstream), 502, "upstream unavailable: " + mod + ": try again later\n", "no-store", ""},
		{fmt.Errorf("%w: timed out: %w", fetch.ErrUpstream, context.DeadlineExceeded), 504, "upstream timeout: " + mod + ": try again later\n", "no-store", ""},
		{fmt.Errorf("x: %w", errBadRecord), 502, "upstream error: " + mod + ": invalid go.sum lines; try again later\n", "no-store", ""},
		{fmt.Errorf("append: %w", tlog.ErrPushback), 503, "server busy: too many new records waiting to be logged; retry in a second\n", "no-store", "1"},
		{fmt.Errorf("x: %w: %w", errBusy, context.DeadlineExceeded), 503, "server busy: too many upstream fetches in progress; retry later\n", "no-store", "1"},
		{fmt.Errorf("x: %w: %w", errSlowAppend, context.DeadlineExceeded), 503, "server busy: the record was not logged in time; retry\n", "no-store", "1"},
		{tlog.ErrClosed, 503, "server shutting down: retry\n", "no-store", "1"},
		{fmt.Errorf("%w: %s: the public checksum database does not answer", fetch.ErrRetryLater, mod), 503, "retry later: " + mod + ": the public checksum database does not answer\n", "no-store", "10"},
		{fmt.Errorf("%w: %s: credentials refused", fetch.ErrForbidden, mod), 403, "forbidden: " + mod + ": credentials refused\n", "no-store", ""},
		{errors.New("query at 10.1.2.3: connection refused"), 500, "internal error\n", "no-store", ""},
	} {
		w := httptest.NewRecorder()
		s.lookupError(w, httptest.NewRequest("GET", "/lookup/"+mod, nil), "example.com/m", "v1.0.0", tc.err)
		if w.Code != tc.code || w.Body.String() != tc.body || w.Header().Get("Cache-Control") != tc.cache || w.Header().Get("Retry-After") != tc.retryAfter {
			t.Errorf("lookupError(%v) = %d %q (Cache-Control %q, Retry-After %q), want %d %q (%q, %q)",
				tc.err, w.Code, w.Body, w.Header().Get("Cache-Control"), w.Header().Get("Retry-After"), tc.code, tc.body, tc.cache, tc.retryAfter)
		}
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("internal error not logged:\n%s", logs)
	}
	if n := strings.Count(logs.String(), "request rejected"); n != 11 {
		t.Errorf("%d lines for rejected requests, want 11:\n%s", n, logs)
	}
}

func TestNewServerConfig(t *testing.T) {
	if _, err := NewServer(ServerConfig{Fetcher: fetcherFunc(nil)}); err == nil {
		t.Errorf("NewServer without a log: no error")
	}
	if _, err := NewServer(ServerConfig{Log: new(tlog.Log)}); err == nil {
		t.Errorf("NewServer without a fetcher: no error")
	}
	if _, err := NewServer(ServerConfig{Log: new(tlog.Log), Fetcher: fetcherFunc(nil), MaxFetches: -1}); err == nil {
		t.Errorf("NewServer with MaxFetches -1: no error")
	}
	s, err := NewServer(ServerConfig{Log: new(tlog.Log), Fetcher: fetcherFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cap(s.slots) != 16 || s.notFoundTTL != time.Minute || s.lookupTimeout != 5*time.Minute {
		t.Errorf("defaults: %d slots, NotFoundTTL %v, LookupTimeout %v", cap(s.slots), s.notFoundTTL, s.lookupTimeout)
	}
	if s.tiles == nil || s.records == nil {
		t.Errorf("defaults: tile cache %v, lookup cache %v; want both", s.tiles != nil, s.records != nil)
	}
	// The zero FetchRate and FetchBurst are the defaults, as every zero
	// is: 1000 fetches at once, then 10 a second.
	if s.limiter == nil {
		t.Fatal("defaults: no fetch rate limit")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range DefaultFetchBurst {
		if ok, _ := s.limiter.Allow("192.0.2.1", now); !ok {
			t.Fatalf("defaults: fetch %d of a burst refused, want a burst of %d", i+1, DefaultFetchBurst)
		}
	}
	if ok, wait := s.limiter.Allow("192.0.2.1", now); ok || wait != time.Second/DefaultFetchRate {
		t.Errorf("defaults: fetch after the burst allowed %v, wait %v; want refused, %v", ok, wait, time.Second/DefaultFetchRate)
	}
}

// TestNewServerDisabled checks that Disabled, and any negative value, turns
// off each knob that can be off.
func TestNewServerDisabled(t *testing.T) {
	for _, off := range []int{Disabled, -7} {
		s, err := NewServer(ServerConfig{Log: new(tlog.Log), Fetcher: fetcherFunc(nil),
			NotFoundTTL: time.Duration(off), FetchRate: float64(off), TileCacheSize: int64(off), LookupCacheSize: int64(off)})
		if err != nil {
			t.Fatal(err)
		}
		if s.notFoundTTL > 0 || s.limiter != nil || s.tiles != nil || s.records != nil {
			t.Errorf("NewServer(all %d): not-found TTL %v, rate limit %v, tile cache %v, lookup cache %v; want all off",
				off, s.notFoundTTL, s.limiter != nil, s.tiles != nil, s.records != nil)
		}
	}
}

func TestInTree(t *testing.T) {
	for _, tc := range []struct {
		size  int64
		tiles []string // reached
		not   []string // not reached
	}{
		{0, nil, []string{"tile/8/0/000.p/1", "tile/8/data/000.p/1"}},
		{1, []string{"tile/8/0/000.p/1", "tile/8/data/000.p/1"}, []string{"tile/8/0/000.p/2", "tile/8/1/000.p/1", "tile/8/0/001.p/1"}},
		{256, []string{"tile/8/0/000", "tile/8/1/000.p/1", "tile/8/data/000"}, []string{"tile/8/0/001.p/1", "tile/8/1/000.p/2", "tile/8/2/000.p/1"}},
		{70000, []string{"tile/8/0/273.p/112", "tile/8/1/001.p/17", "tile/8/2/000.p/1", "tile/8/0/272", "tile/8/1/000"}, []string{"tile/8/0/273.p/113", "tile/8/0/273", "tile/8/1/001.p/18", "tile/8/2/000.p/2", "tile/8/3/000.p/1", "tile/8/0/274.p/1"}},
		{1 << 62, []string{"tile/8/6/063", "tile/8/7/000.p/64", "tile/8/0/x018/x014/x398/x509/x481/983", "tile/8/data/x018/x014/x398/x509/x481/983"}, []string{"tile/8/6/064.p/1", "tile/8/7/000.p/65", "tile/8/8/000.p/1", "tile/8/0/x018/x014/x398/x509/x481/984.p/1"}},
	} {
		for _, p := range tc.tiles {
			tile, err := xtlog.ParseTilePath(p)
			if err != nil {
				t.Fatal(err)
			}
			if !inTree(tile, tc.size) {
				t.Errorf("inTree(%s, %d) = false, want true", p, tc.size)
			}
		}
		for _, p := range tc.not {
			tile, err := xtlog.ParseTilePath(p)
			if err != nil {
				t.Fatal(err)
			}
			if inTree(tile, tc.size) {
				t.Errorf("inTree(%s, %d) = true, want false", p, tc.size)
			}
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"a\x00b\nc\u00e9", 10, "a?b?c??"},
		{strings.Repeat("a", 20) + "end", 12, "aaaaaaaa...d"},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	if got := clip(strings.Repeat("x", 10000), 400); len(got) != 400 {
		t.Errorf("len(clip(10000 bytes, 400)) = %d, want 400", len(got))
	}
}

// metric returns the value of the metric name with the given labels (for a
// histogram, its number of observations) in reg, or -1 if there is none.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := make(map[string]string)
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func TestHealth(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b, envOptions{})
			for _, tc := range []struct {
				method, path string
				code         int
				body         string
			}{
				{"GET", "/healthz", 200, "ok\n"},
				{"HEAD", "/healthz", 200, ""},
				{"GET", "/readyz", 200, "ready: tree size 0\n"},
				{"POST", "/readyz", 405, "method not allowed: use GET or HEAD\n"},
				{"GET", "/healthz/", 404, ""},
			} {
				code, h, body := e.do(t.Context(), tc.method, tc.path)
				if code != tc.code || tc.body != "" && string(body) != tc.body || h.Get("Cache-Control") == "" {
					t.Errorf("%s %s = %d %q (Cache-Control %q), want %d %q", tc.method, tc.path, code, body, h.Get("Cache-Control"), tc.code, tc.body)
				}
			}
			e.appendSynthetic("h", 3)
			if code, _, body := e.get("/readyz"); code != 200 || string(body) != "ready: tree size 3\n" {
				t.Errorf("GET /readyz = %d %q, want 200 %q", code, body, "ready: tree size 3\n")
			}
		})
	}
}

// TestMetrics checks that the server's work shows in its metrics, and that
// the metrics follow the Prometheus naming conventions.
func TestMetrics(t *testing.T) {
	e := newEnv(t, backends[0], envOptions{})
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}})
	e.appendSynthetic("s", 2)
	for _, p := range []string{
		"/lookup/example.com/m@v1.0.0", // miss, fetch ok
		"/lookup/example.com/m@v1.0.0", // hit
		"/lookup/example.com/m@v1.0.1", // miss, fetch not found
		"/lookup/example.com/m@v1.0.1", // not-found cache
		"/lookup/example.com/m@v1.0",   // invalid, no fetch
		"/latest",
		"/tile/8/0/000.p/3",
		"/tile/8/data/000.p/3",
		"/tile/8/0/000.p/4",
		"/healthz",
		"/readyz",
		"/nothing",
	} {
		e.get(p)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sumdb_http_requests_total", []string{"endpoint", "lookup", "code", "200"}, 2},
		{"sumdb_http_requests_total", []string{"endpoint", "lookup", "code", "404"}, 2},
		{"sumdb_http_requests_total", []string{"endpoint", "lookup", "code", "400"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "latest", "code", "200"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "tile", "code", "200"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "tile", "code", "404"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "data_tile", "code", "200"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "healthz", "code", "200"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "readyz", "code", "200"}, 1},
		{"sumdb_http_requests_total", []string{"endpoint", "other", "code", "404"}, 1},
		{"sumdb_http_request_duration_seconds", []string{"endpoint", "lookup"}, 5},
		{"sumdb_tree_size", nil, 3},
		{"sumdb_sequencer_queue_length", nil, 0},
		{"sumdb_sequencer_batch_records", nil, 3}, // at most: the synthetic appends may share a batch
		{"sumdb_sequencer_commit_duration_seconds", nil, 3},
		{"sumdb_upstream_fetches_total", []string{"result", "ok"}, 1},
		{"sumdb_upstream_fetches_total", []string{"result", "not_found"}, 1},
		{"sumdb_upstream_fetches_total", []string{"result", "timeout"}, 0},
		{"sumdb_upstream_fetch_duration_seconds", nil, 2},
		{"sumdb_upstream_fetches_in_progress", nil, 0},
		{"sumdb_not_found_cache_hits_total", nil, 1},
		{"sumdb_rate_limited_requests_total", nil, 0},
		{"sumdb_store_unavailable_total", nil, 0},
	} {
		got := metric(t, e.reg, tc.name, tc.labels...)
		if strings.HasPrefix(tc.name, "sumdb_sequencer_") && tc.want > 0 {
			if got < 2 || got > tc.want { // the lookup's batch and one or two synthetic ones
				t.Errorf("%s%q = %v, want 2 to %v", tc.name, tc.labels, got, tc.want)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s%q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestNewMetricsTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("NewMetrics twice on one registry: no error")
	}
}

func TestEndpointOf(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/latest", "latest"},
		{"/lookup/example.com/m@v1.0.0", "lookup"},
		{"/lookup/", "lookup"},
		{"/tile/8/0/000", "tile"},
		{"/tile/8/data/000", "data_tile"},
		{"/tile/9/data/000", "tile"},
		{"/healthz", "healthz"},
		{"/readyz", "readyz"},
		{"/metrics", "other"},
		{"/latest/", "other"},
		{"", "other"},
	} {
		if got := endpointOf(tc.path); got != tc.want {
			t.Errorf("endpointOf(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
