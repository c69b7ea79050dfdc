package sumdb

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The front answers the requests for tiles without net/http.
//
// A tile is the same bytes for every request, most often served from
// memory, and most of the cost of serving it is net/http's own work per
// request: it builds an http.Request, a header map and a context, and
// writes an answer of 8 KiB in two system calls through its 4 KiB
// connection buffer. A Front reads each connection's requests itself and
// answers a tile with one write. It accepts only a strict subset of
// HTTP/1.1: a GET of a tile path in its canonical form, lines ended by
// CRLF, header names from a short list, exactly one Host, no body. At the
// first request of a connection outside that subset, or whose tile cannot
// be read, it hands the connection, with every byte it has read, to the
// http.Server, which serves it from then on with its own rules. A request
// the front answers is one that net/http reads the same way, to the same
// byte (FuzzFrontRequest checks this against http.ReadRequest), so the two
// never disagree on where a request ends.
//
// The go command's connections start with /latest or a lookup, and so are
// handed over at once; the front serves the clients that read tiles alone:
// auditors, mirrors, caches in front of the server.

// frontBufSize bounds the request head a Front reads; a longer one goes to
// the http.Server with the bytes read, and the http.Server's own bound
// (MaxHeaderBytes) applies.
const frontBufSize = 4096

// A Front serves the connections of a listener: it answers the requests
// for tiles itself, and hands every other connection to an http.Server
// (see above).
type Front struct {
	srv *Server
	hs  *http.Server

	readHeader, idle, write time.Duration // from hs; 0: no deadline

	date atomic.Pointer[dateLine] // the Date header of the current second
	ctx  context.Context          // of the store reads

	closing atomic.Bool // set under mu

	mu      sync.Mutex
	ln      net.Listener
	handoff *handoffListener
	conns   map[*frontConn]struct{}
}

// NewFront returns a Front that answers the tile requests of s and hands
// the others to hs, whose handler must serve s. The Front applies hs's
// ReadHeaderTimeout, IdleTimeout and WriteTimeout (with ReadTimeout
// standing in for the first two when they are 0, as in net/http) to the
// connections it reads, and reads tiles in hs's BaseContext.
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
// under way finish, and shuts the http.Server down, all within ctx.
func (f *Front) Shutdown(ctx context.Context) error {
	f.stop()
	err := f.hs.Shutdown(ctx)
	f.closeHandoff()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !f.closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return err
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
	frontIdle   int32 = iota // waiting for a request: Shutdown may close it
	frontActive              // reading or answering a request
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
		f.untrack(fc)
		if !handedOff {
			c.Close()
		}
	}()
	buf := make([]byte, frontBufSize)
	n := 0               // bytes of buf read and not yet answered
	wait := f.readHeader // the deadline of the first request; later, idle
	for {
		end := headEnd(buf[:n])
		if end < 0 && n == 0 {
			// Wait for a request: Shutdown may close the connection.
			fc.state.Store(frontIdle)
			if f.closing.Load() {
				return
			}
			setDeadline(c.SetReadDeadline, wait)
			m, _ := c.Read(buf)
			if !fc.state.CompareAndSwap(frontIdle, frontActive) || m == 0 {
				// Closed, timed out or cut: as in net/http, no answer.
				return
			}
			n = m
			end = headEnd(buf[:n])
		}
		if end < 0 {
			// The rest of the head: within the header timeout of its first
			// bytes.
			setDeadline(c.SetReadDeadline, f.readHeader)
			for end < 0 {
				if n == len(buf) || hasBareLF(buf[:n]) {
					// Longer than the front reads, or a line ended by LF
					// alone, which net/http reads as a line end too.
					handedOff = fc.handoff(buf[:n])
					return
				}
				m, err := c.Read(buf[n:])
				n += m
				if err != nil && m == 0 {
					return
				}
				end = headEnd(buf[:n])
			}
		}
		start := time.Now()
		body, ctype, e, ok := f.answer(buf[:end])
		if !ok {
			handedOff = fc.handoff(buf[:n])
			return
		}
		fc.head = f.appendHead(fc.head[:0], ctype, len(body), start)
		fc.vec = [2][]byte{fc.head, body}
		bufs := net.Buffers(fc.vec[:])
		setDeadline(c.SetWriteDeadline, f.write)
		_, err := bufs.WriteTo(c)
		fc.vec = [2][]byte{}
		f.srv.metrics.observeRequest(e, http.StatusOK, time.Since(start))
		if err != nil {
			return
		}
		n = copy(buf, buf[end:n])
		wait = f.idle
		if f.closing.Load() {
			return
		}
	}
}

// handoff gives the connection, with the bytes read, to the http.Server;
// false if it is shutting down.
func (fc *frontConn) handoff(read []byte) bool {
	fc.f.untrack(fc)
	fc.f.srv.metrics.frontHandoffs.Inc()
	// The http.Server sets its own deadlines.
	fc.c.SetDeadline(time.Time{})
	return fc.f.handoff.deliver(&replayConn{Conn: fc.c, pending: bytes.Clone(read)})
}

// setDeadline sets a deadline d from now, or none if d is 0.
func setDeadline(set func(time.Time) error, d time.Duration) {
	if d > 0 {
		set(time.Now().Add(d))
	} else {
		set(time.Time{})
	}
}

// answer returns the answer to the request head p, if the front answers it:
// the tile's content, its content type and its endpoint.
func (f *Front) answer(p []byte) (body []byte, ctype string, e endpoint, ok bool) {
	path, ok := parseFrontRequest(p)
	if !ok {
		return nil, "", 0, false
	}
	t, err := parseTilePath(path)
	if err != nil {
		return nil, "", 0, false
	}
	// From memory, or else from the store, as serveTile reads it. Any
	// error goes to the http.Server, which reads the tile again and answers
	// as serveTile does.
	body, err = f.srv.readTile(f.ctx, t)
	if err != nil {
		return nil, "", 0, false
	}
	ctype, e = ctypeOctets[0], endpointTile
	if t.L == -1 {
		ctype, e = ctypeText[0], endpointDataTile
	}
	return body, ctype, e, true
}

// appendHead appends to b the status line and headers of a tile's answer:
// those serveTile writes, and the Date and Content-Length net/http adds.
func (f *Front) appendHead(b []byte, ctype string, size int, now time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: "...)
	b = append(b, cacheImmutable...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, ctype...)
	b = append(b, "\r\nDate: "...)
	b = append(b, f.dateAt(now)...)
	b = append(b, "\r\nX-Content-Type-Options: nosniff\r\n\r\n"...)
	return b
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
// returns the path of the tile it asks for, without its leading slash. It
// returns false for any request outside the subset the front answers: a
// request line other than "GET /tile/... HTTP/1.1" with a path of lower-case
// letters, digits, dots and slashes; a line not ended by CRLF, or a bare CR
// or LF; a header line that is folded, has a name that is not a token or
// not in frontHeaders, or a value with a control or non-ASCII byte; no Host
// or more than one, or a Host with a byte outside letters, digits and
// ".-:[]".
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
	if !ok || !bytes.HasPrefix(target, []byte("tile/")) {
		return "", false
	}
	for _, b := range target {
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '.' || b == '/') {
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
