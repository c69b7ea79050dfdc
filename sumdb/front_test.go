package sumdb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumdb/sumdb/sumdb/modproxy"
	"github.com/sumdb/sumdb/tlog"
)

// A frontEnv is an env whose Server is also served by a Front.
type frontEnv struct {
	*env
	front *Front
	addr  string     // of the Front
	plain string     // of an http.Server with the same limits and no Front
	done  chan error // the result of Serve
}

// newFrontEnv returns an env made with opts, with 300 records (tiles 0/000,
// 0/001.p/44, 1/000.p/1, data/000, data/001.p/44) and a Front before its
// Server, with the limits of hs, if given.
func newFrontEnv(t *testing.T, b backend, hs *http.Server, opts envOptions) *frontEnv {
	t.Helper()
	e := newEnv(t, b, opts)
	e.appendSynthetic("f", 300)
	if hs == nil {
		hs = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute}
	}
	hs.Handler = e.srv
	hs.MaxHeaderBytes = 64 << 10
	plain := &http.Server{Handler: e.srv, ReadHeaderTimeout: hs.ReadHeaderTimeout, IdleTimeout: hs.IdleTimeout,
		WriteTimeout: hs.WriteTimeout, MaxHeaderBytes: hs.MaxHeaderBytes}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(pln)
	t.Cleanup(func() { plain.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fe := &frontEnv{env: e, front: NewFront(e.srv, hs), addr: ln.Addr().String(), plain: pln.Addr().String(), done: make(chan error, 1)}
	go func() { fe.done <- fe.front.Serve(ln) }()
	t.Cleanup(func() {
		fe.front.Close()
		<-fe.done
	})
	return fe
}

// handoffs returns the number of connections the Front handed over.
func (fe *frontEnv) handoffs() int {
	return int(testutil.ToFloat64(fe.srv.metrics.frontHandoffs))
}

// shutdown shuts the Front down within d.
func (fe *frontEnv) shutdown(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return fe.front.Shutdown(ctx)
}

// slowConnState is an http.Server's ConnState that takes d to note a new
// connection.
func slowConnState(d time.Duration) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			time.Sleep(d)
		}
	}
}

// dial opens a connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// A wireAnswer is what a test compares of two answers: all but the Date.
type wireAnswer struct {
	code   int
	header http.Header
	body   string
}

// readAnswer reads one answer to a request of the given method from r.
func readAnswer(t *testing.T, r *bufio.Reader, method string) wireAnswer {
	t.Helper()
	resp, err := http.ReadResponse(r, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	h := resp.Header.Clone()
	if d := h.Get("Date"); d != "" {
		if _, err := http.ParseTime(d); err != nil {
			t.Errorf("Date %q: %v", d, err)
		}
	}
	h.Del("Date")
	return wireAnswer{resp.StatusCode, h, string(body)}
}

// exchange sends raw to addr on a new connection and reads one answer.
func exchange(t *testing.T, addr, raw string) wireAnswer {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	return readAnswer(t, bufio.NewReader(c), method)
}

func (a wireAnswer) equal(b wireAnswer) bool {
	return a.code == b.code && a.body == b.body && len(a.header) == len(b.header) &&
		func() bool {
			for k, v := range a.header {
				if !slices.Equal(v, b.header[k]) {
					return false
				}
			}
			return true
		}()
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: sumdb.test\r\n\r\n" }

// frontTilePaths are the tiles of a frontEnv: full and partial, hash and
// data, and prefixes of partial ones.
var frontTilePaths = []string{
	"/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/0/001.p/7", "/tile/8/1/000.p/1",
	"/tile/8/data/000", "/tile/8/data/001.p/44", "/tile/8/data/001.p/3", "/tile/8/0/000.p/200",
}

func TestFront(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("AnswersAsNetHTTP", func(t *testing.T) { t.Parallel(); testFrontAnswers(t, b) })
			t.Run("HandoffKeepsOrder", func(t *testing.T) { t.Parallel(); testFrontHandoffOrder(t, b) })
		})
	}
}

// testFrontAnswers checks that the Front answers each tile, error and
// lookup as net/http does: itself, with a tile or record read from the
// store first and then from memory, and that it hands over a lookup of a
// module version the log does not hold.
func testFrontAnswers(t *testing.T, b backend) {
	fe := newFrontEnv(t, b, nil, envOptions{})
	for _, p := range frontTilePaths {
		for range 2 { // from the store, then from memory
			got := exchange(t, fe.addr, get(p))
			want := exchange(t, fe.plain, get(p))
			if got.code != 200 || !got.equal(want) {
				t.Errorf("GET %s: the front answered %d %v (%d bytes), net/http %d %v (%d bytes)",
					p, got.code, got.header, len(got.body), want.code, want.header, len(want.body))
			}
		}
	}
	// Errors, answered by the handler: beyond the tree, wider than the
	// tile, not canonical.
	for _, p := range []string{"/tile/8/0/001", "/tile/8/0/001.p/45", "/tile/8/0/01", "/tile/8/2/000"} {
		got := exchange(t, fe.addr, get(p))
		want := exchange(t, fe.plain, get(p))
		if got.code == 200 || !got.equal(want) {
			t.Errorf("GET %s: the front answered %d %q, net/http %d %q", p, got.code, got.body, want.code, want.body)
		}
	}
	if got, want := exchange(t, fe.addr, get("/latest")), exchange(t, fe.plain, get("/latest")); got.code != 200 || !got.equal(want) {
		t.Errorf("GET /latest: the front answered %d %q, net/http %d %q", got.code, got.body, want.code, want.body)
	}
	if n := fe.handoffs(); n != 0 {
		t.Fatalf("%d connections handed over for tiles and heads the front answers", n)
	}
	// A lookup: answered from the store, then from memory; and one of a
	// module version the log does not have, handed over.
	for i, tc := range []struct {
		path     string
		handoffs int
	}{
		{"/lookup/example.com/f/m1@v1.0.0", 0},
		{"/lookup/example.com/f/m1@v1.0.0", 0},
		{"/lookup/example.com/f/m1", 0}, // 400: no version
		{"/lookup/example.com/f/none@v1.0.0", 1},
	} {
		got := exchange(t, fe.addr, get(tc.path))
		want := exchange(t, fe.plain, get(tc.path))
		if i < 2 && got.code != 200 || i == 2 && got.code != 400 || !got.equal(want) {
			t.Errorf("GET %s: the front answered %d %q, net/http %d %q", tc.path, got.code, got.body, want.code, want.body)
		}
		if n := fe.handoffs(); n != tc.handoffs {
			t.Errorf("GET %s (%d): %d connections handed over, want %d", tc.path, i, n, tc.handoffs)
		}
	}
}

// testFrontHandoffOrder sends requests the front answers and requests it
// hands over, pipelined on one connection, and checks that each answer comes
// in order and is right.
func testFrontHandoffOrder(t *testing.T, b backend) {
	fe := newFrontEnv(t, b, nil, envOptions{})
	_, _, latest := fe.get("/latest")
	paths := []string{"/tile/8/0/000", "/tile/8/data/001.p/44", "/latest", "/healthz", "/tile/8/0/001.p/44", "/lookup/example.com/f/m7@v1.0.0", "/tile/8/1/000.p/1"}
	want := make([]wireAnswer, len(paths))
	for i, p := range paths {
		want[i] = exchange(t, fe.plain, get(p))
	}
	c := dial(t, fe.addr)
	r := bufio.NewReader(c)
	// One by one, then all at once, with /healthz, which is handed over.
	for i, p := range paths[:2] {
		io.WriteString(c, get(p))
		if got := readAnswer(t, r, "GET"); !got.equal(want[i]) {
			t.Errorf("answer %d (%s): %d, %d bytes; want %d, %d bytes", i, p, got.code, len(got.body), want[i].code, len(want[i].body))
		}
	}
	var all strings.Builder
	for _, p := range paths[2:] {
		all.WriteString(get(p))
	}
	io.WriteString(c, all.String())
	for i, p := range paths[2:] {
		i += 2
		got := readAnswer(t, r, "GET")
		if !got.equal(want[i]) {
			t.Errorf("answer %d (%s): %d, %d bytes; want %d, %d bytes", i, p, got.code, len(got.body), want[i].code, len(want[i].body))
		}
		if p == "/latest" && !bytes.Equal([]byte(got.body), latest) {
			t.Errorf("/latest: %q, want %q", got.body, latest)
		}
	}
	if n := fe.handoffs(); n != 1 {
		t.Errorf("%d connections handed over, want 1", n)
	}

	// Two tiles pipelined in one write, answered by the front.
	c = dial(t, fe.addr)
	r = bufio.NewReader(c)
	io.WriteString(c, get(paths[0])+get(paths[4]))
	for _, i := range []int{0, 4} {
		if got := readAnswer(t, r, "GET"); !got.equal(want[i]) {
			t.Errorf("pipelined %s: %d, %d bytes; want %d, %d bytes", paths[i], got.code, len(got.body), want[i].code, len(want[i].body))
		}
	}
	if n := fe.handoffs(); n != 1 {
		t.Errorf("%d connections handed over, want still 1", n)
	}
}

// frontOddRequests are requests outside the subset the front answers, or
// at its edges: each must get the answer net/http gives.
var frontOddRequests = []string{
	"HEAD /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"POST /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nContent-Length: 5\r\n\r\nhello",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nContent-Length: 0\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nConnection: close\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.0\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nRange: bytes=0-9\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nX-Odd : 1\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nUser-Agent: a\r\n b\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\nHost: sumdb.test\n\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\nUser-Agent: x\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nUser-Agent: \x00\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nUser-Agent: caf\xc3\xa9\r\n\r\n",
	"GET /tile/8/0/000?x=1 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET /tile/8/0/%30%30%30 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET http://sumdb.test/tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET //tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET /tile/8/0/000  HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"get /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nhOsT: sumdb.test\r\nuser-agent: Go-http-client/1.1\r\naccept-encoding: gzip\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-For: 192.0.2.1, 192.0.2.2\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nUser-Agent: " + strings.Repeat("a", 5000) + "\r\n\r\n",
	"GET /tile/8/0/000 HTTP/1.1\r\nHost: sumdb.test\r\nUser-Agent: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
	"GET /latest HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
	"GET /metrics HTTP/1.1\r\nHost: sumdb.test\r\n\r\n",
}

// TestFrontOddRequests checks that the front and net/http give the same
// answer to each of frontOddRequests, sent alone on a connection.
func TestFrontOddRequests(t *testing.T) {
	fe := newFrontEnv(t, backends[0], nil, envOptions{})
	for _, raw := range frontOddRequests {
		got := exchange(t, fe.addr, raw)
		want := exchange(t, fe.plain, raw)
		if !got.equal(want) {
			t.Errorf("%.80q: the front answered %d %v %.40q, net/http %d %v %.40q",
				raw, got.code, got.header, got.body, want.code, want.header, want.body)
		}
	}
}

// TestParseFrontRequest checks which of frontOddRequests the front answers.
func TestParseFrontRequest(t *testing.T) {
	answered := map[int]bool{19: true, 22: true, 23: true, 26: true, 27: true}
	for i, raw := range frontOddRequests {
		end := headEnd([]byte(raw))
		ok := false
		if end >= 0 && end <= frontBufSize {
			_, ok = parseFrontRequest([]byte(raw[:end]))
		}
		if ok != answered[i] {
			t.Errorf("%d: %.80q: answered %v, want %v", i, raw, ok, answered[i])
		}
	}
	path, ok := parseFrontRequest([]byte(get("/tile/8/data/001.p/44")))
	if !ok || path != "tile/8/data/001.p/44" {
		t.Errorf("parseFrontRequest = %q, %v", path, ok)
	}
}

// FuzzFrontRequest checks that any request head the front answers is read
// by net/http as the same GET of the same path, ending at the same byte.
func FuzzFrontRequest(f *testing.F) {
	for _, raw := range frontOddRequests {
		f.Add([]byte(raw))
	}
	for _, p := range frontTilePaths {
		f.Add([]byte(get(p) + get(p)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data)
		if end < 0 || end > frontBufSize {
			return
		}
		path, ok := parseFrontRequest(data[:end])
		if !ok {
			return
		}
		r := bufio.NewReader(bytes.NewReader(data))
		req, err := http.ReadRequest(r)
		if err != nil {
			t.Fatalf("the front answers %q, net/http refuses it: %v", data[:end], err)
		}
		if req.Method != "GET" || req.URL.Path != "/"+path || req.RequestURI != "/"+path || req.URL.RawQuery != "" ||
			req.ProtoMajor != 1 || req.ProtoMinor != 1 || req.Close || req.ContentLength != 0 ||
			len(req.TransferEncoding) != 0 || req.Host == "" {
			t.Fatalf("the front answers %q as GET %s; net/http reads %s %s %s (close %v, length %d, encoding %v, host %q)",
				data[:end], path, req.Method, req.RequestURI, req.Proto, req.Close, req.ContentLength, req.TransferEncoding, req.Host)
		}
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(rest, data[end:]) {
			t.Fatalf("the front ends %q at byte %d; net/http leaves %q", data, end, rest)
		}
	})
}

// TestFrontTimeouts checks that the front closes a connection that sends
// its request head too slowly, or stays idle too long.
func TestFrontTimeouts(t *testing.T) {
	const readHeader, idle = 200 * time.Millisecond, 400 * time.Millisecond
	fe := newFrontEnv(t, backends[0], &http.Server{ReadHeaderTimeout: readHeader, IdleTimeout: idle, WriteTimeout: time.Minute}, envOptions{})
	closedWithin := func(c net.Conn, r io.Reader, d time.Duration) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(10 * time.Second))
		if n, err := r.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || n > 0 {
			t.Fatalf("read: %d bytes, %v; want the connection closed", n, err)
		}
		if took := time.Since(start); took > d+5*time.Second {
			t.Errorf("closed after %v, want about %v", took, d)
		}
	}

	// A slow head: its first bytes, then nothing.
	c := dial(t, fe.addr)
	io.WriteString(c, "GET /tile/8/0/000 HTTP/1.1\r\nHo")
	closedWithin(c, c, readHeader)

	// An idle connection after an answer.
	c = dial(t, fe.addr)
	r := bufio.NewReader(c)
	io.WriteString(c, get("/tile/8/0/000"))
	if a := readAnswer(t, r, "GET"); a.code != 200 {
		t.Fatalf("GET: %d", a.code)
	}
	closedWithin(c, r, idle)
	if n := fe.handoffs(); n != 0 {
		t.Errorf("%d connections handed over, want 0", n)
	}
}

// TestFrontShutdown checks that Shutdown closes the idle connections, both
// the front's and those handed over, and those in the middle of a request
// head, as net/http closes its idle ones, and that Serve then returns
// http.ErrServerClosed.
func TestFrontShutdown(t *testing.T) {
	fe := newFrontEnv(t, backends[0], nil, envOptions{})
	var conns []net.Conn
	var readers []*bufio.Reader
	for _, p := range []string{"/tile/8/0/000", "/latest"} {
		c := dial(t, fe.addr)
		r := bufio.NewReader(c)
		io.WriteString(c, get(p))
		if a := readAnswer(t, r, "GET"); a.code != 200 {
			t.Fatalf("GET %s: %d", p, a.code)
		}
		conns, readers = append(conns, c), append(readers, r)
	}
	waiting := dial(t, fe.addr) // connected, no request yet
	partial := dial(t, fe.addr) // in the middle of a head
	io.WriteString(partial, "GET /tile/8/0/000 HTTP/1.1\r\nHo")
	time.Sleep(100 * time.Millisecond) // let the front read it

	// Well within the header timeout (10 s): Shutdown must not wait for
	// the partial head.
	if err := fe.shutdown(5 * time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-fe.done:
		fe.done <- err // for the cleanup
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after Shutdown")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := readers[i].Read(make([]byte, 1)); err == nil || n > 0 {
			t.Errorf("connection %d: read %d bytes, %v; want it closed", i, n, err)
		}
	}
	for name, c := range map[string]net.Conn{"waiting": waiting, "partial": partial} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
			t.Errorf("%s connection: read %d bytes, %v; want it closed", name, n, err)
		}
	}
	if c, err := net.DialTimeout("tcp", fe.addr, time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts connections after Shutdown")
	}
}

// TestFrontHeaderTimeout checks that the head of a request sent in parts
// must come within the header timeout of the accept, for the first request
// of a connection, or of its first bytes, for a later one, as in net/http:
// reading a part does not extend the deadline.
func TestFrontHeaderTimeout(t *testing.T) {
	const readHeader = time.Second
	fe := newFrontEnv(t, backends[0], &http.Server{ReadHeaderTimeout: readHeader, IdleTimeout: time.Minute, WriteTimeout: time.Minute}, envOptions{})
	// closedAfter returns how long after since the connection was closed.
	closedAfter := func(c net.Conn, r io.Reader, since time.Time) time.Duration {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := r.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || n > 0 {
			t.Fatalf("read: %d bytes, %v; want the connection closed", n, err)
		}
		return time.Since(since)
	}
	// Closed at the deadline, give or take the machine's delays: well
	// before the deadline that a restart at the last part would give.
	check := func(what string, took time.Duration) {
		t.Helper()
		if took < readHeader-50*time.Millisecond || took > readHeader+450*time.Millisecond {
			t.Errorf("%s: closed after %v, want after %v", what, took, readHeader)
		}
	}
	for _, srv := range []struct{ name, addr string }{{"front", fe.addr}, {"nethttp", fe.plain}} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			// The first request: its head in parts, the first 0.8 s after
			// the accept, the next 0.1 s later.
			start := time.Now()
			c := dial(t, srv.addr)
			time.Sleep(800 * time.Millisecond)
			io.WriteString(c, "GET /tile/8/0/000 HTTP/1.1\r\n")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "Host: sumdb.test\r\n")
			check("first request", closedAfter(c, c, start))

			// A later request, after an idle wait longer than the header
			// timeout: in parts, the last 0.9 s after its first bytes.
			c = dial(t, srv.addr)
			r := bufio.NewReader(c)
			io.WriteString(c, get("/tile/8/0/000"))
			if a := readAnswer(t, r, "GET"); a.code != 200 {
				t.Fatalf("GET: %d", a.code)
			}
			time.Sleep(readHeader + 200*time.Millisecond)
			io.WriteString(c, "GET /tile/8/0/000 HTTP/1.1\r\n")
			start = time.Now()
			time.Sleep(900 * time.Millisecond)
			io.WriteString(c, "Host: sumdb.test\r\n")
			check("later request", closedAfter(c, r, start))
		})
	}
	t.Cleanup(func() {
		if n := fe.handoffs(); n != 0 {
			t.Errorf("%d connections handed over, want 0", n)
		}
	})
}

// A lookupStore counts the lookups of a store, and can hold them.
type lookupStore struct {
	tlog.Store
	lookups atomic.Int32
	held    callGate // holds lookups

	// See staleNext.
	mu                      sync.Mutex
	staleKey                string // guarded by mu
	staleEntered, staleGate chan struct{}
}

// staleNext makes the next lookup of key wait until the returned function
// is called, and then find it not in the log, as a lookup that ran just
// before it was logged would; entered is closed when it waits.
func (s *lookupStore) staleNext(key string) (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staleKey, s.staleEntered, s.staleGate = key, make(chan struct{}), make(chan struct{})
	gate := s.staleGate
	return s.staleEntered, sync.OnceFunc(func() { close(gate) })
}

func (s *lookupStore) Lookup(ctx context.Context, path, version string) (tlog.Record, error) {
	s.lookups.Add(1)
	s.mu.Lock()
	if s.staleKey == path+"@"+version {
		s.staleKey = ""
		entered, gate := s.staleEntered, s.staleGate
		s.mu.Unlock()
		close(entered)
		<-gate
		return tlog.Record{}, tlog.ErrNotFound
	}
	s.mu.Unlock()
	if err := s.held.pass(ctx); err != nil {
		return tlog.Record{}, err
	}
	return s.Store.Lookup(ctx, path, version)
}

// newLookupFrontEnv returns a frontEnv on a lookupStore, with the Server
// config cfg and the limits of hs, if given.
func newLookupFrontEnv(t *testing.T, b backend, hs *http.Server, cfg ServerConfig) (*frontEnv, *lookupStore) {
	t.Helper()
	var ls *lookupStore
	opts := envOptions{cfg: cfg, wrap: func(s tlog.Store) tlog.Store {
		ls = &lookupStore{Store: s}
		return ls
	}}
	return newFrontEnv(t, b, hs, opts), ls
}

// TestFrontShutdownHandsOver checks that a request that the front hands
// over while Shutdown waits for the answers under way is answered, as
// net/http would answer it, even when the http.Server is slow to take the
// connection.
func TestFrontShutdownHandsOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state func(net.Conn, http.ConnState) // the http.Server's ConnState
	}{{"Plain", nil}, {"SlowConnState", slowConnState(50 * time.Millisecond)}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute, ConnState: tc.state}
			fe, ls := newLookupFrontEnv(t, backends[0], hs, ServerConfig{})
			fe.add(modproxy.Module{Path: "example.com/new", Version: "v1.0.0", Files: map[string]string{"n.go": "package n\n"}})
			entered, release := ls.held.hold()
			defer release()
			c := dial(t, fe.addr)
			r := bufio.NewReader(c)
			io.WriteString(c, get("/lookup/example.com/new@v1.0.0"))
			select {
			case <-entered: // the front asks the store
			case <-time.After(10 * time.Second):
				t.Fatal("the lookup did not reach the store")
			}
			shut := make(chan error, 1)
			go func() { shut <- fe.shutdown(20 * time.Second) }()
			// Let Shutdown go as far as it goes while the front's answer is
			// under way, then let the store answer that the log lacks the
			// version: the front hands the request over.
			time.Sleep(200 * time.Millisecond)
			release()
			a := readAnswer(t, r, "GET")
			if a.code != 200 || !strings.Contains(a.body, "example.com/new v1.0.0 h1:") {
				t.Errorf("lookup during Shutdown: %d %q, want 200 and the record", a.code, a.body)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if n := fe.handoffs(); n != 1 {
				t.Errorf("%d connections handed over, want 1", n)
			}
		})
	}
}

// TestFrontShutdownOddHandoffs checks Shutdown with requests the front
// hands over while it reads their head: one whole for net/http, its lines
// ended by LF alone, is answered, even when the http.Server is slow to
// take the connection; and the start of an HTTP/2 preface, with
// unencrypted HTTP/2 on, holds Shutdown no longer than net/http alone
// holds it (5 s, after which net/http takes a connection that has sent no
// whole request for idle), not until the header timeout.
func TestFrontShutdownOddHandoffs(t *testing.T) {
	t.Run("BareLF", func(t *testing.T) {
		t.Parallel()
		hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute,
			ConnState: slowConnState(300 * time.Millisecond)}
		fe := newFrontEnv(t, backends[0], hs, envOptions{})
		c := dial(t, fe.addr)
		r := bufio.NewReader(c)
		io.WriteString(c, "GET /latest HTTP/1.1\nHost: sumdb.test\n\n")
		time.Sleep(50 * time.Millisecond) // the front hands it over
		if err := fe.shutdown(20 * time.Second); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if a := readAnswer(t, r, "GET"); a.code != 200 {
			t.Errorf("request sent before Shutdown: %d %q, want 200", a.code, a.body)
		}
	})
	t.Run("H2CPreface", func(t *testing.T) {
		t.Parallel()
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		hs := &http.Server{ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute, WriteTimeout: time.Minute, Protocols: &protocols}
		fe := newFrontEnv(t, backends[0], hs, envOptions{})
		c := dial(t, fe.addr)
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nS") // and no more
		time.Sleep(50 * time.Millisecond)            // the front hands it over
		if err := fe.shutdown(15 * time.Second); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// TestFrontAbsentFirstOnly checks that what the front found of the lookup
// it handed over, that the log did not hold the version, serves that
// request only: a later lookup of the version on the connection, logged
// since, is answered from the log, not refused by the fetch rate limit.
func TestFrontAbsentFirstOnly(t *testing.T) {
	// One fetch per client and a cache of records that holds one or two.
	cfg := ServerConfig{FetchRate: 0.001, FetchBurst: 1, LookupCacheSize: 500}
	fe, ls := newLookupFrontEnv(t, backends[0], nil, cfg)
	fe.add(modproxy.Module{Path: "example.com/new", Version: "v1.0.0", Files: map[string]string{"n.go": "package n\n"}})
	const lookup = "/lookup/example.com/new@v1.0.0"
	entered, release := ls.staleNext("example.com/new@v1.0.0")
	defer release()
	c := dial(t, fe.addr)
	r := bufio.NewReader(c)
	io.WriteString(c, get(lookup))
	<-entered // the front asks the store
	// Meanwhile the version is logged, with the client's one fetch.
	if a := exchange(t, fe.plain, get(lookup)); a.code != 200 {
		t.Fatalf("lookup through net/http: %d %q", a.code, a.body)
	}
	release() // the front's lookup finds it not in the log: handed over
	if a := readAnswer(t, r, "GET"); a.code != 200 {
		t.Fatalf("handed lookup: %d %q", a.code, a.body)
	}
	// Another record takes the version's place in the cache.
	if a := exchange(t, fe.plain, get("/lookup/example.com/f/m1@v1.0.0")); a.code != 200 {
		t.Fatalf("lookup of another record: %d %q", a.code, a.body)
	}
	io.WriteString(c, get(lookup))
	got, want := readAnswer(t, r, "GET"), exchange(t, fe.plain, get(lookup))
	if got.code != 200 || !got.equal(want) {
		t.Errorf("a later lookup on the handed connection: %d %q; net/http: %d %q", got.code, got.body, want.code, want.body)
	}
	if n := fe.handoffs(); n != 1 {
		t.Errorf("%d connections handed over, want 1", n)
	}
}

// TestFrontStoreLookups checks that a lookup costs the store as many
// lookups through the front as through net/http alone: for a version the
// log does not hold, the front's lookup stands for net/http's after the
// handover; and that the front answers a version the upstream lately said
// it has no such version itself, with net/http's answer.
func TestFrontStoreLookups(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fe, ls := newLookupFrontEnv(t, b, nil, ServerConfig{})
			for _, v := range []string{"v1.0.0", "v1.1.0"} {
				fe.add(modproxy.Module{Path: "example.com/new", Version: v, Files: map[string]string{"n.go": "package n\n"}})
			}
			// lookups returns the store's lookups for the answer to path
			// from addr, and the answer.
			lookups := func(addr, path string) (int, wireAnswer) {
				before := ls.lookups.Load()
				a := exchange(t, addr, get(path))
				return int(ls.lookups.Load() - before), a
			}
			plainNew, a := lookups(fe.plain, "/lookup/example.com/new@v1.0.0")
			if a.code != 200 {
				t.Fatalf("net/http: new version: %d %q", a.code, a.body)
			}
			frontNew, a := lookups(fe.addr, "/lookup/example.com/new@v1.1.0")
			if a.code != 200 {
				t.Fatalf("front: new version: %d %q", a.code, a.body)
			}
			if frontNew != plainNew {
				t.Errorf("a new version: %d store lookups through the front, %d through net/http", frontNew, plainNew)
			}
			if n := fe.handoffs(); n != 1 {
				t.Errorf("%d connections handed over, want 1", n)
			}

			// A version the upstream does not have: the first lookup is
			// handed over; the next, within the not-found TTL, is not.
			const missing = "/lookup/example.com/new@v1.9.0"
			frontMiss, got := lookups(fe.addr, missing)
			plainMiss, want := lookups(fe.plain, missing)
			if got.code != 404 || !got.equal(want) {
				t.Errorf("a missing version: the front answered %d %v %q, net/http %d %v %q", got.code, got.header, got.body, want.code, want.header, want.body)
			}
			if frontMiss != 2 || plainMiss != 1 {
				t.Errorf("a missing version: %d store lookups through the front, %d through net/http after it; want 2 (the log, the fetch) and 1 (the log)", frontMiss, plainMiss)
			}
			frontAgain, got := lookups(fe.addr, missing)
			if got.code != 404 || !got.equal(want) || frontAgain != 1 {
				t.Errorf("a missing version again: the front answered %d %q with %d store lookups; want net/http's %d %q with 1", got.code, got.body, frontAgain, want.code, want.body)
			}
			if n := fe.handoffs(); n != 2 {
				t.Errorf("%d connections handed over, want 2", n)
			}
		})
	}
}
