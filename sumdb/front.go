package sumdb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The front answers the read requests without net/http's work per request.
//
// Tiles, the latest signed head and the records of logged module versions
// are most often served from memory, the same bytes for every request, and
// most of the cost of serving them is net/http's own work: it builds an
// http.Request, a header map and a context per request, and writes an
// answer of 8 KiB in two system calls through its 4 KiB connection buffer.
// A Front reads each connection's requests itself and answers from memory
// with one write. It accepts only a strict subset of HTTP/1.1: a GET with a
// path of the bytes of tile paths and escaped module paths, lines ended by
// CRLF, header names from a short list, exactly one Host, no body. A tile
// or record not in memory, or /latest of an empty log, it answers with the
// server's own handler, holding the answer in memory. At the first request
// of a connection outside the subset, or a lookup of a module version the
// log does not hold (it needs the upstream, and may wait long; unless the
// upstream said lately that it has no such version), it hands
// the connection, with every byte it has read, to the http.Server, which
// serves it from then on with its own rules. Every request the front
// answers is one that net/http reads the same way, to the same byte
// (FuzzFrontRequest checks this against http.ReadRequest), so the two
// never disagree on where a request ends.

// frontBufSize bounds the request head a Front reads; a longer one goes to
// the http.Server with the bytes read, and the http.Server's own bound
// (MaxHeaderBytes) applies.
const frontBufSize = 4096

// A Front serves the connections of a listener: it answers the read
// requests it can itself, and hands every other connection to an
// http.Server (see above).
type Front struct {
	srv     *Server
	hs      *http.Server
	handler http.Handler // hs's own, before Serve wraps it (see hook)

	readHeader, idle, write time.Duration // from hs; 0: no deadline

	date atomic.Pointer[dateLine] // the Date header of the current second
	ctx  context.Context          // of the requests it answers: hs's BaseContext

	closing atomic.Bool // set under mu

	mu      sync.Mutex
	ln      net.Listener
	handoff *handoffListener
	conns   map[*frontConn]struct{}
}

// NewFront returns a Front that answers the read requests of s and hands
// the others to hs, whose handler must serve s. The Front applies hs's
// ReadHeaderTimeout, IdleTimeout and WriteTimeout (with ReadTimeout
// standing in for the first two when they are 0, as in net/http) to the
// connections it reads, and calls hs's handler in hs's BaseContext. Serve
// sets hs's ConnState, ConnContext and Handler, wrapping those hs had.
func NewFront(s *Server, hs *http.Server) *Front {
	f := &Front{
		srv:        s,
		hs:         hs,
		readHeader: hs.ReadHeaderTimeout,
		idle:       hs.IdleTimeout,
		write:      hs.WriteTimeout,
		conns:      make(map[*frontConn]struct{}),
	}
	if f.readHeader <= 0 {
		f.readHeader = hs.ReadTimeout
	}
	if f.idle <= 0 {
		f.idle = hs.ReadTimeout
	}
	return f
}

// Serve accepts the connections of ln until Shutdown or Close, after which
// it returns http.ErrServerClosed; it also runs the http.Server on the
// connections handed to it. Serve closes ln.
func (f *Front) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.closing.Load() {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	if f.ln != nil {
		f.mu.Unlock()
		return errors.New("sumdb: Front.Serve called twice")
	}
	f.ln = ln
	f.handoff = newHandoffListener(ln.Addr())
	f.ctx = context.Background()
	if f.hs.BaseContext != nil {
		f.ctx = f.hs.BaseContext(ln)
	}
	f.hook()
	f.mu.Unlock()

	served := make(chan error, 1)
	go func() { served <- f.hs.Serve(f.handoff) }()
	err := f.accept(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		f.Close()
	}
	<-served // ErrServerClosed, or an error of Accept after closing
	return err
}

// hook sets the http.Server's ConnState, ConnContext and Handler, keeping
// what they did: it counts each handed connection as the http.Server
// takes it, tells its handoff when the http.Server has begun to answer its
// first request (see frontConn.handoff), and passes to that request what
// the Front found of it (see frontAbsentKey).
func (f *Front) hook() {
	state, connCtx, h := f.hs.ConnState, f.hs.ConnContext, f.hs.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	f.handler = h
	f.hs.ConnState = func(c net.Conn, st http.ConnState) {
		if rc, ok := c.(*replayConn); ok {
			switch st {
			case http.StateNew:
				// Counted before the http.Server reads a byte of it.
				f.srv.metrics.frontHandoffs.Inc()
			case http.StateIdle, http.StateClosed, http.StateHijacked:
				// Done with the first request without the handler: it
				// answered it itself (a malformed request, OPTIONS *), or
				// dropped the connection.
				rc.markBegun()
			}
		}
		if state != nil {
			state(c, st)
		}
	}
	f.hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connCtx != nil {
			ctx = connCtx(ctx, c)
		}
		if rc, ok := c.(*replayConn); ok {
			ctx = context.WithValue(ctx, replayConnKey{}, rc)
		}
		return ctx
	}
	f.hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc, ok := r.Context().Value(replayConnKey{}).(*replayConn); ok && rc.first.CompareAndSwap(false, true) {
			if rc.absent != "" {
				r = r.WithContext(context.WithValue(r.Context(), frontAbsentKey{}, rc.absent))
			}
			rc.markBegun()
		}
		h.ServeHTTP(w, r)
	})
}

type replayConnKey struct{}

// frontAbsentKey is the context key of what a Front knew of the request it
// handed over with a connection, a lookup of escaped path@version: that
// the log did not hold it when the Front asked the store, just before. The
// Server then goes straight to the upstream (whose fetch looks in the
// store again, as for any lookup: the version may have been logged since),
// and the store is asked as often as without a Front.
type frontAbsentKey struct{}

// frontSawAbsent reports whether r is the lookup of escaped that a Front
// handed over, having found that the log did not hold it.
func frontSawAbsent(r *http.Request, escaped string) bool {
	absent, _ := r.Context().Value(frontAbsentKey{}).(string)
	return absent != "" && absent == escaped
}

// accept runs a goroutine for each connection of ln, as net/http does,
// backing off on temporary errors such as running out of file descriptors.
func (f *Front) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return http.ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc := &frontConn{f: f, c: c}
		fc.state.Store(frontIdle)
		if !f.track(fc) {
			c.Close()
			return http.ErrServerClosed
		}
		go fc.serve()
	}
}

// Shutdown stops the Front as http.Server.Shutdown does: it closes the
// listener and the connections waiting for a request, lets the answers
// under way finish, and shuts the http.Server down, all within ctx. The
// Front's own connections end first: one of them may yet hand its request
// over, and the http.Server must be there to answer it. It leaves the
// http.Server's keep-alives off.
func (f *Front) Shutdown(ctx context.Context) error {
	f.stop()
	// Meanwhile, the http.Server's connections end with their answers
	// under way, and its idle ones close.
	f.hs.SetKeepAlivesEnabled(false)
	err := f.waitConns(ctx)
	if herr := f.hs.Shutdown(ctx); err == nil {
		err = herr
	}
	f.closeHandoff()
	return err
}

// waitConns closes the Front's connections as they come to wait for a
// request, until none is left or ctx is done. Their answers never wait
// for the upstream: a request that needs it is handed over.
func (f *Front) waitConns(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !f.closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Close closes the listener and every connection at once, as
// http.Server.Close does.
func (f *Front) Close() error {
	f.stop()
	f.mu.Lock()
	for fc := range f.conns {
		fc.state.Store(frontClosed)
		fc.c.Close()
	}
	f.mu.Unlock()
	err := f.hs.Close()
	f.closeHandoff()
	return err
}

// stop marks the Front closing and closes its listener. The http.Server
// closes the listener of handed connections when it shuts down: closed
// before, it would make the http.Server's Serve fail.
func (f *Front) stop() {
	f.mu.Lock()
	f.closing.Store(true)
	ln := f.ln
	f.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// closeHandoff closes the listener of handed connections, in case the
// http.Server had not started serving it when it shut down.
func (f *Front) closeHandoff() {
	f.mu.Lock()
	h := f.handoff
	f.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

// track adds fc to the connections of f, unless f is closing.
func (f *Front) track(fc *frontConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.conns[fc] = struct{}{}
	return true
}

func (f *Front) untrack(fc *frontConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
}

// logf logs to the http.Server's ErrorLog, or else the log package's
// standard logger, as net/http does.
func (f *Front) logf(format string, args ...any) {
	if f.hs.ErrorLog != nil {
		f.hs.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// closeIdle closes the connections waiting for a request, and reports
// whether none is left.
func (f *Front) closeIdle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if fc.state.CompareAndSwap(frontIdle, frontClosed) {
			fc.c.Close()
		}
	}
	return len(f.conns) == 0
}

// The states of a frontConn.
const (
	frontIdle   int32 = iota // waiting for a request, or reading its head: Shutdown may close it
	frontActive              // answering a request
	frontClosed              // closed by Shutdown or Close
)

// A frontConn is a connection the Front reads.
type frontConn struct {
	f     *Front
	c     net.Conn
	state atomic.Int32
	head  []byte    // the status line and headers of the answer
	vec   [2][]byte // head and body, written together
}

// serve answers the requests of the connection until it closes, fails, or
// sends a request the front does not answer, whereupon the connection goes
// to the http.Server.
func (fc *frontConn) serve() {
	f, c := fc.f, fc.c
	handedOff := false
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			// As net/http does: log the panic, drop the connection.
			stack := make([]byte, 64<<10)
			stack = stack[:runtime.Stack(stack, false)]
			f.logf("sumdb: panic serving %v: %v\n%s", c.RemoteAddr(), err, stack)
		}
		f.untrack(fc)
		if !handedOff {
			c.Close()
		}
	}()
	buf := make([]byte, frontBufSize)
	n := 0 // bytes of buf read and not yet answered
	// As in net/http, the head of the first request must come within the
	// header timeout of the accept; a later request may be awaited for
	// the idle timeout, and its head must then come within the header
	// timeout of its first bytes. Reading a head in parts does not extend
	// its deadline.
	setDeadline(c.SetReadDeadline, f.readHeader)
	first := true
	for {
		// Until a whole head is read, the connection waits for a request:
		// Shutdown may close it, as net/http closes its idle connections.
		fc.state.Store(frontIdle)
		if f.closing.Load() {
			return
		}
		end := headEnd(buf[:n])
		if n == 0 {
			if !first {
				setDeadline(c.SetReadDeadline, f.idle)
			}
			m, _ := c.Read(buf)
			if m == 0 {
				// Closed, timed out or cut: as in net/http, no answer.
				return
			}
			n = m
			end = headEnd(buf[:n])
			if end < 0 && !first {
				setDeadline(c.SetReadDeadline, f.readHeader)
			}
		} else if end < 0 {
			// The first bytes of a pipelined request, read with the last.
			setDeadline(c.SetReadDeadline, f.readHeader)
		}
		for end < 0 {
			if n == len(buf) || hasBareLF(buf[:n]) {
				// Longer than the front reads, or a line ended by LF alone,
				// which net/http reads as a line end too: the head may be
				// whole for net/http.
				whole := bytes.Contains(buf[:n], []byte("\n\n")) || bytes.Contains(buf[:n], []byte("\n\r\n"))
				handedOff = fc.begin() && fc.handoff(buf[:n], whole, "")
				return
			}
			m, err := c.Read(buf[n:])
			n += m
			if err != nil && m == 0 {
				return
			}
			end = headEnd(buf[:n])
		}
		// From here, Shutdown waits for the answer.
		if !fc.begin() {
			return
		}
		first = false
		target, ok := parseFrontRequest(buf[:end])
		if !ok {
			// Serving unencrypted HTTP/2, net/http reads more than this
			// head of its preface before it answers.
			whole := !bytes.HasPrefix(buf, []byte("PRI "))
			handedOff = fc.handoff(buf[:n], whole, "")
			return
		}
		start := time.Now()
		var err error
		keep := true
		if a, ok := f.fromMemory(target); ok {
			err = fc.write(f.appendHead(fc.head[:0], a, start), a.body)
			f.srv.metrics.observeRequest(a.endpoint, http.StatusOK, time.Since(start))
		} else {
			var h func(http.ResponseWriter, *http.Request) bool
			absent := "" // the lookup the log does not hold, if h declines
			switch {
			case target == "latest" || strings.HasPrefix(target, "tile/"):
				h = func(w http.ResponseWriter, r *http.Request) bool { f.handler.ServeHTTP(w, r); return true }
			case strings.HasPrefix(target, "lookup/"):
				h = f.srv.serveLoggedLookup
				absent = target[len("lookup/"):]
			}
			answered := false
			if h != nil {
				keep, answered, err = fc.serveHandler(buf[:end], start, h)
			}
			if !answered && err == nil {
				handedOff = fc.handoff(buf[:n], true, absent)
				return
			}
		}
		if err != nil || !keep {
			return
		}
		n = copy(buf, buf[end:n])
	}
}

// begin marks the connection answering a request, unless Shutdown or Close
// closed it.
func (fc *frontConn) begin() bool {
	return fc.state.CompareAndSwap(frontIdle, frontActive)
}

// handoff gives the connection, with the bytes read, to the http.Server;
// false if it is shutting down. If they hold a whole request head, it
// returns once the http.Server has begun to answer that request: its
// Shutdown waits for an answer under way, but drops a request it has yet
// to read. (The rest of a partial head comes when the client sends it; as
// with any request, Shutdown does not wait for it.) absent, if set, is the
// escaped module path and version of that request, a lookup the log was
// just found not to hold (see frontAbsentKey).
func (fc *frontConn) handoff(read []byte, whole bool, absent string) bool {
	// The http.Server sets its own deadlines.
	fc.c.SetDeadline(time.Time{})
	rc := &replayConn{Conn: fc.c, pending: bytes.Clone(read), absent: absent, begun: make(chan struct{})}
	if !fc.f.handoff.deliver(rc) {
		return false
	}
	if whole {
		select {
		case <-rc.begun:
		case <-fc.f.handoff.done:
		}
	}
	return true
}

// setDeadline sets a deadline d from now, or none if d is 0.
func setDeadline(set func(time.Time) error, d time.Duration) {
	if d > 0 {
		set(time.Now().Add(d))
	} else {
		set(time.Time{})
	}
}

// A memoryAnswer is the answer to a request, made from memory.
type memoryAnswer struct {
	body         []byte
	ctype        string
	cacheControl string
	endpoint     endpoint
}

// fromMemory returns the answer to a GET of target (a path without its
// leading slash) if the server has it in memory: the latest signed head,
// a logged record in the cache of records, a tile in the cache of tiles.
// These answers are those serveLatest, serveLookup and serveTile give.
func (f *Front) fromMemory(target string) (memoryAnswer, bool) {
	s := f.srv
	switch {
	case target == "latest":
		h := s.log.Head()
		if h.Size == 0 {
			return memoryAnswer{}, false
		}
		return memoryAnswer{h.Note, ctypeText[0], cacheLatest, endpointLatest}, true
	case strings.HasPrefix(target, "lookup/"):
		path, version, err := ParseLookup(target[len("lookup/"):])
		if err != nil {
			return memoryAnswer{}, false
		}
		rec, head, ok := s.cachedRecord(path, version)
		if !ok {
			return memoryAnswer{}, false
		}
		body, err := lookupAnswer(path, version, rec, head)
		if err != nil {
			return memoryAnswer{}, false
		}
		return memoryAnswer{body, ctypeText[0], cacheLookup, endpointLookup}, true
	case strings.HasPrefix(target, "tile/"):
		t, err := parseTilePath(target)
		if err != nil {
			return memoryAnswer{}, false
		}
		body, ok := s.cachedTile(t)
		if !ok {
			return memoryAnswer{}, false
		}
		if t.L == -1 {
			return memoryAnswer{body, ctypeText[0], cacheImmutable, endpointDataTile}, true
		}
		return memoryAnswer{body, ctypeOctets[0], cacheImmutable, endpointTile}, true
	}
	return memoryAnswer{}, false
}

// appendHead appends to b the status line and headers of a, as okHeaders
// writes them, with the Date net/http adds.
func (f *Front) appendHead(b []byte, a memoryAnswer, now time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: "...)
	b = append(b, a.cacheControl...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(a.body)), 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, a.ctype...)
	b = append(b, "\r\nDate: "...)
	b = append(b, f.dateAt(now)...)
	b = append(b, "\r\nX-Content-Type-Options: nosniff\r\n\r\n"...)
	return b
}

// write writes head and body in one system call, within the write timeout.
func (fc *frontConn) write(head, body []byte) error {
	fc.head = head // keep the grown buffer
	fc.vec = [2][]byte{head, body}
	bufs := net.Buffers(fc.vec[:])
	setDeadline(fc.c.SetWriteDeadline, fc.f.write)
	_, err := bufs.WriteTo(fc.c)
	fc.vec = [2][]byte{}
	return err
}

// frontMaxAnswer bounds the answer of the handler that the front holds in
// memory; the largest, a data tile, is far smaller.
const frontMaxAnswer = 64 << 20

// serveHandler answers the request whose head is p with h, as net/http
// would: the request is read by http.ReadRequest (which reads every head
// the front accepts as the front does), and the answer is held in memory,
// then written with the headers net/http adds. It is used for the requests
// whose answers may need the store but never the upstream: tiles not in
// memory, /latest of an empty log (h is the http.Server's handler), and
// lookups of records not in memory (h declines, writing nothing, those
// that need the upstream and may wait long: they go to net/http). It
// reports whether h answered and whether the connection stays open.
func (fc *frontConn) serveHandler(p []byte, start time.Time, h func(http.ResponseWriter, *http.Request) bool) (keep, answered bool, err error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(p)))
	if err != nil {
		return false, false, err
	}
	req.RemoteAddr = fc.c.RemoteAddr().String()
	req = req.WithContext(fc.f.ctx)
	w := &frontWriter{header: make(http.Header)}
	if !h(w, req) {
		return true, false, nil
	}
	if w.tooLarge {
		return false, true, errors.New("answer too large")
	}
	hdr := w.header
	if _, ok := hdr["Content-Length"]; !ok {
		hdr["Content-Length"] = []string{strconv.Itoa(len(w.body))}
	}
	if _, ok := hdr["Content-Type"]; !ok && len(w.body) > 0 {
		hdr["Content-Type"] = []string{http.DetectContentType(w.body)}
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = []string{string(fc.f.dateAt(start))}
	}
	b := bytes.NewBuffer(fc.head[:0])
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(w.status()))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(w.status()))
	b.WriteString("\r\n")
	hdr.Write(b)
	b.WriteString("\r\n")
	if err := fc.write(b.Bytes(), w.body); err != nil {
		return false, true, err
	}
	return !strings.EqualFold(hdr.Get("Connection"), "close"), true, nil
}

// A frontWriter is the http.ResponseWriter of serveHandler: it holds the
// answer in memory.
type frontWriter struct {
	header   http.Header
	code     int
	body     []byte
	tooLarge bool
}

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if len(w.body)+len(p) > frontMaxAnswer {
		w.tooLarge = true
		return 0, errors.New("answer too large")
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *frontWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// A dateLine is the value of the Date header during one second.
type dateLine struct {
	unix  int64
	value []byte
}

// dateAt returns the Date header's value at now, formatted once a second.
func (f *Front) dateAt(now time.Time) []byte {
	sec := now.Unix()
	if d := f.date.Load(); d != nil && d.unix == sec {
		return d.value
	}
	d := &dateLine{unix: sec, value: now.UTC().AppendFormat(nil, http.TimeFormat)}
	f.date.Store(d)
	return d.value
}

// headEnd returns the length of the request head at the start of p, up to
// and including the blank line that ends it, or -1 if p holds no blank
// line.
func headEnd(p []byte) int {
	i := bytes.Index(p, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// hasBareLF reports whether p holds an LF that no CR precedes.
func hasBareLF(p []byte) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			return false
		}
		i += j
		if i == 0 || p[i-1] != '\r' {
			return true
		}
	}
}

// frontHeaders are the request headers, in lower case, that the front
// accepts: none of them changes the answer to a GET of a tile. A request
// with any other header (Connection, Content-Length, Transfer-Encoding,
// Range, If-None-Match, Expect, Upgrade...) goes to the http.Server.
var frontHeaders = map[string]bool{
	"host":              true,
	"user-agent":        true,
	"accept":            true,
	"accept-encoding":   true,
	"accept-language":   true,
	"cache-control":     true,
	"pragma":            true,
	"forwarded":         true,
	"via":               true,
	"x-forwarded-for":   true,
	"x-forwarded-host":  true,
	"x-forwarded-proto": true,
	"x-real-ip":         true,
	"x-request-id":      true,
	"traceparent":       true,
	"tracestate":        true,
}

// parseFrontRequest parses p, a request head ending with a blank line, and
// returns its target without the leading slash. It returns false for any
// request outside the subset the front answers: a request line other than
// "GET /... HTTP/1.1" with a target of lower-case letters, digits and
// "./-_~!+@"; a line not ended by CRLF, or a bare CR or LF; a header line
// that is folded, has a name that is not a token or not in frontHeaders,
// or a value with a control or non-ASCII byte; no Host or more than one,
// or a Host with a byte outside letters, digits and ".-:[]".
func parseFrontRequest(p []byte) (string, bool) {
	line, rest, ok := bytes.Cut(p, []byte("\r\n"))
	if !ok {
		return "", false
	}
	target, ok := bytes.CutPrefix(line, []byte("GET /"))
	if !ok {
		return "", false
	}
	target, ok = bytes.CutSuffix(target, []byte(" HTTP/1.1"))
	if !ok {
		return "", false
	}
	for _, b := range target {
		// The bytes of tile paths and of escaped module paths and versions.
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || strings.IndexByte("./-_~!+@", b) >= 0) {
			return "", false
		}
	}
	hosts := 0
	var name [32]byte // a header name in lower case
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return "", false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || colon > len(name) {
			return "", false
		}
		for i, b := range line[:colon] {
			if !isTokenByte(b) {
				return "", false
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			name[i] = b
		}
		key := name[:colon]
		if !frontHeaders[string(key)] { // no allocation: a map lookup by a converted slice
			return "", false
		}
		value := line[colon+1:]
		for _, b := range value {
			if (b < ' ' && b != '\t') || b >= 0x7f {
				return "", false
			}
		}
		if string(key) == "host" {
			hosts++
			if !validFrontHost(bytes.Trim(value, " \t")) {
				return "", false
			}
		}
	}
	if hosts != 1 || len(rest) != 0 {
		return "", false
	}
	return string(target), true
}

// isTokenByte reports whether b may be part of a header name (RFC 9110's
// tchar).
func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// validFrontHost reports whether h is a non-empty Host of letters, digits
// and ".-:[]": a host name, an IPv4 or bracketed IPv6 address, and a port.
func validFrontHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, b := range h {
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			b == '.' || b == '-' || b == ':' || b == '[' || b == ']') {
			return false
		}
	}
	return true
}

// A handoffListener is the listener of the connections a Front hands to
// the http.Server.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// deliver hands c to the http.Server's Accept; false if the listener is
// closed.
func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// A replayConn is a connection whose first reads return the bytes a Front
// read from it.
type replayConn struct {
	net.Conn
	pending []byte
	absent  string // see frontAbsentKey; for the first request only

	first atomic.Bool   // set by the http.Server's handler at the first request
	begun chan struct{} // closed by markBegun
	once  sync.Once
}

// markBegun tells the handoff of c that the http.Server has begun to answer
// its first request, or is done with it.
func (c *replayConn) markBegun() {
	c.once.Do(func() { close(c.begun) })
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http close the sending side first when it drops a
// connection, so that the client reads the answer before the reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
