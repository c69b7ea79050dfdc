package sumdb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/tlog"
)

// raw sends req as is on a new connection to the server and reads the answer.
func (e *env) raw(req string) (int, http.Header, []byte) {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		e.t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		e.t.Fatalf("%.80q: %v", req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%.80q: %v", req, err)
	}
	return resp.StatusCode, resp.Header, body
}

// rawGet sends a GET of the request target path, as is.
func (e *env) rawGet(path string) (int, http.Header, []byte) {
	e.t.Helper()
	return e.raw("GET " + path + " HTTP/1.1\r\nHost: sumdb.test\r\nConnection: close\r\n\r\n")
}

// testBadRequests sends every endpoint malformed and hostile requests, as
// raw bytes on a connection so that no client cleans them up. Each must be
// answered 400 or 404 (or 405 for a method) with a short reason, never 500,
// must not reach the upstream when it is malformed, and must log no error;
// the tree must not grow.
func testBadRequests(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}})
	if code, _, body := e.get("/lookup/example.com/m@v1.0.0"); code != http.StatusOK {
		t.Fatalf("lookup: %d %s", code, body)
	}
	long := strings.Repeat("a", 10000)
	for _, tc := range []struct {
		path string
		code int    // 0: 400 or 404
		body string // substring of the body
	}{
		// Bad escapes: "!" must be followed by a lowercase letter, and
		// only an uppercase letter may be escaped.
		{"/lookup/example.com/!M@v1.0.0", 400, "invalid"},
		{"/lookup/example.com/!@v1.0.0", 400, ""},
		{"/lookup/example.com/m!@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0-!!rc", 400, ""},
		{"/lookup/example.com/m@v1.0.0-!", 400, ""},
		{"/lookup/example.com/m@!v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0-rc!1", 400, ""},
		{"/lookup/example.com/m%zz@v1.0.0", 400, ""}, // net/http refuses the URL
		{"/lookup/example.com/m%@v1.0.0", 400, ""},
		{"/lookup/example.com/%21m@v1.0.0", 0, ""}, // the same as /lookup/example.com/!m
		// Uppercase letters.
		{"/lookup/EXAMPLE.COM/m@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0-Pre", 400, ""},
		{"/lookup/example.com/m@v2.0.0+!i!n!c!o!m!p!a!t!i!b!l!e", 400, ""},
		{"/LOOKUP/example.com/m@v1.0.0", 404, ""},
		{"/Latest", 404, ""},
		{"/TILE/8/0/000", 404, ""},
		// Non-canonical versions.
		{"/lookup/example.com/m@v01.0.0", 400, ""},
		{"/lookup/example.com/m@v1.00.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0-01", 400, ""},
		{"/lookup/example.com/m@v1.0.0-", 400, ""},
		{"/lookup/example.com/m@v1.0.0-rc..1", 400, ""},
		{"/lookup/example.com/m@v1.0.0+incompatible+x", 400, ""},
		{"/lookup/example.com/m@latest", 400, ""},
		{"/lookup/example.com/m@master", 400, ""},
		{"/lookup/example.com/m@v1.0.0%20", 400, ""},
		{"/lookup/example.com/m@%20v1.0.0", 400, ""},
		// +incompatible misuse.
		{"/lookup/example.com/m@v0.1.0+incompatible", 400, "+incompatible"},
		{"/lookup/example.com/m/v3@v3.0.0+incompatible", 400, "+incompatible"},
		{"/lookup/gopkg.in/yaml.v2@v2.0.0+incompatible", 400, ""},
		{"/lookup/example.com/m@v2.0.0+incompatible/go.mod", 400, ""},
		// 10,000 characters, in each part.
		{"/lookup/example.com/m@" + long, 400, ""},
		{"/lookup/example.com/m@v1.0.0+" + long, 400, ""},
		{"/lookup/" + strings.Repeat("@", 10000), 400, ""},
		{"/lookup/" + strings.Repeat("!", 10000) + "@v1.0.0", 400, ""},
		{"/lookup/" + strings.Repeat("%00", 3400) + "@v1.0.0", 400, ""},
		{"/tile/8/0/" + long, 400, "invalid tile path"},
		{"/tile/8/0/" + strings.Repeat("x001/", 2000) + "000", 400, "invalid tile path"},
		{"/tile/8/data/" + strings.Repeat("x999/", 2000) + "999", 400, "invalid tile path"},
		{"/tile/8/0/000.p/" + strings.Repeat("1", 10000), 400, "invalid tile path"},
		{"/" + long, 404, ""},
		// Control and other bytes, encoded and raw.
		{"/lookup/example.com/m%09@v1.0.0", 400, ""},
		{"/lookup/example.com/m%1b[31m@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0%0d%0a%0d%0aHTTP/1.1%20200%20OK", 400, ""},
		{"/lookup/example.com/m\x00@v1.0.0", 400, ""}, // net/http refuses the request line
		{"/lookup/example.com/m\x7f@v1.0.0", 400, ""},
		{"/lookup/example.com/\xff\xfe@v1.0.0", 400, ""},
		{"/lookup/example.com/\u00e9@v1.0.0", 400, ""},
		{"/tile/8/0/000%00", 400, "invalid tile path"},
		{"/tile/8/0/000.p/1%0a", 400, "invalid tile path"},
		{"/latest%00", 404, ""},
		{"/healthz%00", 404, ""},
		{"/readyz\x01", 400, ""}, // net/http refuses the request line
		// Tile paths out of range or not canonical.
		{"/tile/8/0/-01", 400, "invalid tile path"},
		{"/tile/8/0/-001", 400, "invalid tile path"},
		{"/tile/8/0/x-01/000", 400, "invalid tile path"},
		{"/tile/8/0/x000/001", 400, "invalid tile path"},
		{"/tile/8/data/x000/000", 400, "invalid tile path"},
		{"/tile/8/0/1000", 400, "invalid tile path"},
		{"/tile/8/0/x1000/000", 400, "invalid tile path"},
		{"/tile/8/0/000.p/1.p/1", 400, "invalid tile path"},
		{"/tile/8/0/000.p/+1", 400, "invalid tile path"},
		{"/tile/8/0/000.p/1e0", 400, "invalid tile path"},
		{"/tile/8/0/000.P/1", 400, "invalid tile path"},
		{"/tile/8/0/000.p/1/", 400, "invalid tile path"},
		{"/tile/8/0/000.p//1", 400, "invalid tile path"},
		{"/tile/8/0/000.p/9223372036854775808", 400, "invalid tile path"},
		{"/tile/8/data/000.p/256", 400, "invalid tile path"},
		{"/tile/8/data/-001", 400, "invalid tile path"},
		{"/tile/8/data/data/000", 400, "invalid tile path"},
		{"/tile/8/+0/000", 400, "invalid tile path"},
		{"/tile/8/ 0/000", 400, ""}, // net/http refuses the request line
		{"/tile/8//000", 400, "invalid tile path"},
		{"/tile/0/0/000", 400, "invalid tile path"},
		{"/tile/-8/0/000", 400, "invalid tile path"},
		{"/tile/31/0/000", 400, "invalid tile path"},
		{"/tile/8/0/000.p/255", 404, "beyond the tree"},
		{"/tile/8/data/000.p/255", 404, "beyond the tree"},
		{"/tile/8/data/x001/000", 404, "beyond the tree"},
		{"/tile/8/0/x001/x000/000", 404, "beyond the tree"},
		{"/tile/8/63/000.p/1", 404, "beyond the tree"},
		{"/tile/8/9223372036854775807/000", 0, ""},
		{"/latest/../latest", 404, ""},
		{"/lookup/../latest", 400, ""},
		{"/tile/../latest", 400, ""},
		{"/lookup/github.com/Azure/x@v1.0.0", 400, "invalid"},
		{"/lookup/example.com/M@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0", 400, "must be canonical (v1.0.0)"},
		{"/lookup/example.com/m@v1", 400, ""},
		{"/lookup/example.com/m@1.0.0", 400, ""},
		{"/lookup/example.com/m@V1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0+build", 400, ""},
		{"/lookup/example.com/m@v1.0.0-RC1", 400, ""},
		{"/lookup/example.com/m@v1.0.0-!r!c1", 0, ""},
		{"/lookup/example.com/m@v1.0.0+incompatible", 400, "+incompatible"},
		{"/lookup/example.com/m/v2@v2.0.0+incompatible", 400, "+incompatible"},
		{"/lookup/example.com/m/v2@v1.0.0", 400, ""},
		{"/lookup/gopkg.in/yaml.v2@v3.0.0", 400, ""},
		{"/lookup/example.com/m", 400, "missing @version"},
		{"/lookup/", 400, ""},
		{"/lookup/@v1.0.0", 400, ""},
		{"/lookup/example.com/m@", 400, ""},
		{"/lookup/example.com/m@v1.0.0@v1.0.0", 400, ""},
		{"/lookup/example.com/!!m@v1.0.0", 400, ""},
		{"/lookup/example.com/../m@v1.0.0", 400, ""},
		{"/lookup/example.com//m@v1.0.0", 400, ""},
		{"/lookup/example.com/m/@v1.0.0", 400, ""},
		{"/lookup/" + long + "@v1.0.0", 400, ""},
		{"/lookup/example.com/" + long + "@v1.0.0", 0, ""},
		{"/lookup/example.com/m@v1.0.0-" + long, 0, ""},
		{"/lookup/example.com/" + strings.Repeat("a/", 5000) + "m@v1.0.0", 0, ""},
		{"/lookup/example.com/m%00@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0%00", 400, ""},
		{"/lookup/example.com/m@v1.0.0%0a", 400, ""},
		{"/lookup/example.com/m%0d%0aX-Injected:%201@v1.0.0", 400, ""},
		{"/lookup/example.com/m%7f@v1.0.0", 400, ""},
		{"/lookup/example.com/%C3%A9@v1.0.0", 400, ""},
		{"/lookup/example.com/m%ff@v1.0.0", 400, ""},
		{"/lookup/example.com/m@v1.0.0/go.mod", 400, ""},
		{"/tile/8/0/1", 400, "invalid tile path"},
		{"/tile/8/0/0001", 400, "invalid tile path"},
		{"/tile/8/0/001/000", 400, "invalid tile path"},
		{"/tile/8/0/+01", 400, "invalid tile path"},
		{"/tile/8/00/000", 400, "invalid tile path"},
		{"/tile/08/0/000", 400, "invalid tile path"},
		{"/tile/9/0/000", 400, "invalid tile path"},
		{"/tile/7/0/000", 400, "invalid tile path"},
		{"/tile/8/-1/000", 400, "invalid tile path"},
		{"/tile/8/0/000.p/0", 400, "invalid tile path"},
		{"/tile/8/0/000.p/256", 400, "invalid tile path"},
		{"/tile/8/0/000.p/01", 400, "invalid tile path"},
		{"/tile/8/0/000.p/-1", 400, "invalid tile path"},
		{"/tile/8/0/000.p/x", 400, "invalid tile path"},
		{"/tile/8/0/000.p", 400, "invalid tile path"},
		{"/tile/8/0/000/", 400, "invalid tile path"},
		{"/tile/8/data/000.p/0", 400, "invalid tile path"},
		{"/tile/8/Data/000", 400, "invalid tile path"},
		{"/tile/8/0", 400, "invalid tile path"},
		{"/tile/", 400, "invalid tile path"},
		{"/tile/8/0/x001/000", 404, "beyond the tree"},
		{"/tile/8/0/000.p/2", 404, "beyond the tree"},
		{"/tile/8/0/000", 404, "beyond the tree"},
		{"/tile/8/data/000.p/2", 404, "beyond the tree"},
		{"/tile/8/0/001.p/1", 404, "beyond the tree"},
		{"/tile/8/1/000.p/1", 404, "beyond the tree"},
		{"/tile/8/7/000.p/1", 404, "beyond the tree"},
		{"/tile/8/8/000.p/1", 404, "beyond the tree"},
		{"/tile/8/100/000", 404, "beyond the tree"},
		{"/tile/8/0/x999/x999/x999/x999/x999/x999/999", 0, ""},
		{"/tile/8/0/x009/x223/x372/x036/x854/x775/807", 0, ""},
		{"/tile/8/0/x009/x223/x372/x036/x854/x775/808", 0, ""},
		{"/tile/8/2147483648/000", 0, ""},
		{"/tile/8/99999999999999999999/000", 400, ""},
		{"/", 404, ""},
		{"/latest/", 404, ""},
		{"/lookup", 404, ""},
		{"/tile", 404, ""},
		{"/sumdb/sumdb.test/supported", 404, ""},
	} {
		fetches := e.fetcher.total()
		code, h, body := e.rawGet(tc.path)
		name := fmt.Sprintf("%q", tc.path)
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		if tc.code == 0 && code != 400 && code != 404 || tc.code != 0 && code != tc.code {
			t.Errorf("GET %s = %d %q, want %d", name, code, body, tc.code)
		}
		if !bytes.Contains(body, []byte(tc.body)) {
			t.Errorf("GET %s = %d %q, want a body containing %q", name, code, body, tc.body)
		}
		// net/http itself answers the requests it cannot parse, in its own
		// words; the answers of the handler say nosniff.
		if h.Get("X-Content-Type-Options") == "nosniff" {
			if msg := checkErrorBody(h, body); msg != "" {
				t.Errorf("GET %s = %d %q: %s", name, code, body, msg)
			}
		}
		if code == 400 && e.fetcher.total() != fetches {
			t.Errorf("GET %s = 400, but the upstream was asked", name)
		}
	}

	// Other methods, including those with a body, which is never read.
	for _, req := range []string{
		"POST /lookup/example.com/m@v1.0.0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"PUT /latest HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"DELETE /tile/8/0/000.p/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"PATCH /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"TRACE /latest HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"BREW /latest HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /lookup/example.com/m@v1.0.0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
	} {
		code, h, body := e.raw(req + "")
		method, _, _ := strings.Cut(req, " ")
		if code != 405 || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d %q (Allow %q), want 405", method, code, body, h.Get("Allow"))
		}
	}
	// Requests net/http mostly refuses before the handler.
	for _, req := range []string{
		"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /latest HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /latest HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
		"GET /latest HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
		"GET /latest HTTP/9.9\r\nHost: x\r\n\r\n",
		"GET /latest\r\n\r\n",
		"GET /lookup/a b@v1.0.0 HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		if code, _, body := e.raw(req); code != 400 && code != 404 && code != 505 {
			t.Errorf("%q: %d %q, want 400, 404 or 505", req, code, body)
		}
	}
	// Large and odd headers are no concern of the handler (serve bounds
	// their size: see cmd/sumdb's TestHTTPServerLimits).
	big := strings.Repeat("a", 32<<10)
	if code, _, body := e.raw("GET /lookup/example.com/m@v1.0.0 HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\nX-Forwarded-For: " + big + "\r\nCookie: " + big + "\r\n\r\n"); code != 200 {
		t.Errorf("lookup with large headers: %d %q, want 200", code, body)
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("bad requests logged errors:\n%s", e.logs)
	}
	if size := e.log.Head().Size; size != 1 {
		t.Errorf("tree size = %d after bad requests, want 1", size)
	}
}

// Modes of a faultStore.
const (
	storeUp   = iota
	storeDown // every call fails at once with an error wrapping tlog.ErrUnavailable
	storeHang // every call waits for the end of its context
)

// A faultStore is a store that can be made unreachable or unresponsive, and
// whose appends can be held.
type faultStore struct {
	tlog.Store
	mode       atomic.Int32 // of every call
	appendMode atomic.Int32 // of Append and AppendLocked

	appends  callGate     // holds appends
	appended atomic.Int32 // calls of Append and AppendLocked
}

// A callGate holds the calls that pass it, once held, until released.
type callGate struct {
	mu      sync.Mutex
	gate    chan struct{} // guarded by mu; if non-nil, calls wait until it is closed
	entered chan struct{} // guarded by mu; gets a value when a call waits at the gate
}

// hold makes calls wait until the returned function is called, and
// returns a channel that gets a value as each call starts waiting.
func (g *callGate) hold() (entered <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.entered = make(chan struct{}), make(chan struct{}, 100)
	gate := g.gate
	return g.entered, sync.OnceFunc(func() { close(gate) })
}

// pass waits at the gate, if held, until it is released or ctx is done.
func (g *callGate) pass(ctx context.Context) error {
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	if gate == nil {
		return nil
	}
	entered <- struct{}{}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *faultStore) fault(ctx context.Context) error {
	return faultOf(ctx, s.mode.Load())
}

func faultOf(ctx context.Context, mode int32) error {
	switch mode {
	case storeDown:
		// As a driver says it, address included: the server must not repeat it.
		return fmt.Errorf("dial tcp db.internal:5432: connect: connection refused: %w", tlog.ErrUnavailable)
	case storeHang:
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *faultStore) ReadHead(ctx context.Context) (tlog.Head, error) {
	if err := s.fault(ctx); err != nil {
		return tlog.Head{}, err
	}
	return s.Store.ReadHead(ctx)
}

func (s *faultStore) Append(ctx context.Context, b *tlog.Batch) error {
	if err := s.appendFault(ctx); err != nil {
		return err
	}
	return s.Store.Append(ctx, b)
}

func (s *faultStore) AppendLocked(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) error {
	if err := s.appendFault(ctx); err != nil {
		return err
	}
	return s.Store.AppendLocked(ctx, prepare)
}

// appendFault counts an append, fails it as the modes say, and holds it
// at the gate of appends.
func (s *faultStore) appendFault(ctx context.Context) error {
	s.appended.Add(1)
	if err := s.fault(ctx); err != nil {
		return err
	}
	if err := faultOf(ctx, s.appendMode.Load()); err != nil {
		return err
	}
	return s.appends.pass(ctx)
}

func (s *faultStore) Lookup(ctx context.Context, path, version string) (tlog.Record, error) {
	if err := s.fault(ctx); err != nil {
		return tlog.Record{}, err
	}
	return s.Store.Lookup(ctx, path, version)
}

func (s *faultStore) ReadRecords(ctx context.Context, start int64, n int) ([]tlog.Record, error) {
	if err := s.fault(ctx); err != nil {
		return nil, err
	}
	return s.Store.ReadRecords(ctx, start, n)
}

func (s *faultStore) ReadTile(ctx context.Context, level int, index int64) ([]byte, error) {
	if err := s.fault(ctx); err != nil {
		return nil, err
	}
	return s.Store.ReadTile(ctx, level, index)
}

func (s *faultStore) ReadHeads(ctx context.Context, lo, hi int64) ([]tlog.Head, error) {
	if err := s.fault(ctx); err != nil {
		return nil, err
	}
	return s.Store.ReadHeads(ctx, lo, hi)
}

// newFaultEnv returns an env on a faultStore.
func newFaultEnv(t *testing.T, b backend, opts envOptions) (*env, *faultStore) {
	t.Helper()
	var fs *faultStore
	opts.wrap = func(s tlog.Store) tlog.Store {
		fs = &faultStore{Store: s}
		return fs
	}
	opts.logCfg.RefreshInterval = -1
	return newEnv(t, b, opts), fs
}

// TestStoreUnavailable checks that requests needing a store that is down,
// or does not answer, get 503 with Retry-After in bounded time, never 500,
// and that the server recovers when the store is back.
func TestStoreUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e, fs := newFaultEnv(t, b, envOptions{cfg: ServerConfig{StoreTimeout: 200 * time.Millisecond, ReadyTimeout: 200 * time.Millisecond}})
			e.add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}})
			e.add(modproxy.Module{Path: "example.com/m", Version: "v1.1.0", Files: map[string]string{"m.go": "package m\n"}})
			e.appendSynthetic("s", 300)
			if code, _, body := e.get("/lookup/example.com/m@v1.0.0"); code != 200 {
				t.Fatalf("lookup: %d %q", code, body)
			}
			paths := []string{
				"/lookup/example.com/s/m7@v1.0.0", // in the log, never looked up
				"/lookup/example.com/m@v1.1.0",    // not yet
				"/lookup/example.com/m@v1.9.9",    // nowhere
				"/tile/8/0/000",
				"/tile/8/0/001.p/45",
				"/tile/8/1/000.p/1",
				"/tile/8/data/000",
				"/tile/8/data/001.p/1",
				"/tile/8/0/001.p/46", // beyond the tree: the store is asked for a newer head
				"/readyz",
			}
			for _, mode := range []int32{storeDown, storeHang} {
				fs.mode.Store(mode)
				for _, p := range paths {
					start := time.Now()
					code, h, body := e.get(p)
					if d := time.Since(start); d > 5*time.Second {
						t.Errorf("mode %d: GET %s took %v", mode, p, d)
					}
					if code != 503 || h.Get("Cache-Control") != "no-store" || p != "/readyz" && h.Get("Retry-After") != "1" {
						t.Errorf("mode %d: GET %s = %d %q (Retry-After %q, Cache-Control %q), want 503 with Retry-After: 1, no-store",
							mode, p, code, body, h.Get("Retry-After"), h.Get("Cache-Control"))
					}
					if msg := checkErrorBody(h, body); msg != "" || bytes.Contains(body, []byte("db.internal")) {
						t.Errorf("mode %d: GET %s = %d %q: %s", mode, p, code, body, msg)
					}
				}
				// The head is in memory, and so is the record looked up
				// before: they are still served.
				for _, p := range []string{"/latest", "/healthz", "/lookup/example.com/m@v1.0.0"} {
					if code, _, body := e.get(p); code != 200 {
						t.Errorf("mode %d: GET %s = %d %q, want 200", mode, p, code, body)
					}
				}
			}
			if strings.Contains(e.logs.String(), "status=500") {
				t.Errorf("a request failed with 500:\n%s", e.logs)
			}
			if n := metric(t, e.reg, "sumdb_store_unavailable_total"); n < 2*float64(len(paths)-1) {
				t.Errorf("sumdb_store_unavailable_total = %v, want at least %d", n, 2*(len(paths)-1))
			}

			fs.mode.Store(storeUp)
			for _, p := range []string{"/lookup/example.com/m@v1.0.0", "/lookup/example.com/m@v1.1.0", "/tile/8/0/001.p/46", "/readyz"} {
				if code, _, body := e.get(p); code != 200 {
					t.Errorf("store back: GET %s = %d %q, want 200", p, code, body)
				}
			}
			if size := e.log.Head().Size; size != 302 {
				t.Errorf("tree size = %d, want 302", size)
			}
		})
	}
}

// TestStoreUnavailableAppend checks that a first lookup whose append fails
// because the store is down, or times out, gets 503 with Retry-After, and
// that the version is not remembered as not found.
func TestStoreUnavailableAppend(t *testing.T) {
	e, fs := newFaultEnv(t, backends[0], envOptions{logCfg: tlog.Config{CommitTimeout: 300 * time.Millisecond}})
	e.add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}})
	for _, mode := range []int32{storeDown, storeHang} {
		fs.appendMode.Store(mode)
		appended := fs.appended.Load()
		code, h, body := e.get("/lookup/example.com/m@v1.0.0")
		if code != 503 || h.Get("Retry-After") != "1" {
			t.Errorf("mode %d: first lookup with the store down = %d %q (Retry-After %q), want 503 with Retry-After: 1", mode, code, body, h.Get("Retry-After"))
		}
		if fs.appended.Load() == appended {
			t.Errorf("mode %d: no append was tried", mode)
		}
	}
	fs.appendMode.Store(storeUp)
	if code, _, body := e.get("/lookup/example.com/m@v1.0.0"); code != 200 {
		t.Errorf("lookup with the store back = %d %q, want 200", code, body)
	}
	if n := e.fetcher.count("example.com/m@v1.0.0"); n != 3 {
		t.Errorf("fetches = %d, want 3", n)
	}
}

// TestQueueFull checks that a first lookup finding the sequencer's queue
// full gets 503 with Retry-After, and that the others are logged.
func TestQueueFull(t *testing.T) {
	e, fs := newFaultEnv(t, backends[0], envOptions{
		logCfg:  tlog.Config{MaxQueue: 1},
		fetcher: fetcherFunc(func(ctx context.Context, path, version string) ([]byte, error) { return synthText(path, version), nil }),
	})
	entered, release := fs.appends.hold()
	defer release()
	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, 2)
	lookup := func(p string) {
		code, _, body := e.get(p)
		answers <- answer{code, body}
	}
	go lookup("/lookup/example.com/a@v1.0.0")
	<-entered // the sequencer commits a's batch, and waits
	go lookup("/lookup/example.com/b@v1.0.0")
	waitFor(t, "b in the queue", func() bool { return e.log.QueueLen() == 1 })
	if n := metric(t, e.reg, "sumdb_sequencer_queue_length"); n != 1 {
		t.Errorf("sumdb_sequencer_queue_length = %v, want 1", n)
	}
	code, h, body := e.get("/lookup/example.com/c@v1.0.0")
	if code != 503 || h.Get("Retry-After") != "1" || !bytes.Contains(body, []byte("too many new records")) {
		t.Errorf("lookup with a full queue = %d %q (Retry-After %q), want 503 with Retry-After: 1", code, body, h.Get("Retry-After"))
	}
	release()
	for range 2 {
		if a := <-answers; a.code != 200 {
			t.Errorf("lookup = %d %q, want 200", a.code, a.body)
		}
	}
	// c was not remembered as missing: it is logged on the next try.
	if code, _, body := e.get("/lookup/example.com/c@v1.0.0"); code != 200 {
		t.Errorf("lookup after the queue emptied = %d %q, want 200", code, body)
	}
	if size := e.log.Head().Size; size != 3 {
		t.Errorf("tree size = %d, want 3", size)
	}
}
