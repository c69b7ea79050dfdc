package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// A Client sends GET requests to one plain-HTTP server over kept-alive
// HTTP/1.1 connections, at most one request on each at a time. It does
// only what a load generator needs, and so costs a fraction of the CPU of
// net/http's client (no goroutines per connection, no header maps): on a
// machine it shares with the server under test, that leaves the server the
// CPU. It follows no redirect and uses no proxy.
//
// Like net/http's, it sends a request again, once, on a new connection if a
// kept-alive connection it reused broke before any byte of the answer came:
// the server closed it while idle. Of its idle connections it reuses the one
// used last, so that few stay idle for long.
//
// A Client is safe for concurrent use.
type Client struct {
	addr    string // host:port to dial
	host    string // the Host header
	prefix  string // path of the base URL, without a trailing slash
	dialer  net.Dialer
	maxIdle int

	mu   sync.Mutex
	idle []*clientConn // guarded by mu; connections between requests, the last used last
}

// maxHeaderBytes bounds the status line and headers of an answer.
const maxHeaderBytes = 64 << 10

// NewClient returns a Client for the server at base, an http:// URL whose
// path (if any) prefixes every request path, keeping up to conns idle
// connections.
func NewClient(base string, conns int) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("new client: %q is not an http:// base URL", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &Client{
		addr:    addr,
		host:    u.Host,
		prefix:  string(bytes.TrimSuffix([]byte(u.EscapedPath()), []byte("/"))),
		dialer:  net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: max(conns, 1),
	}, nil
}

// A clientConn is one connection and the buffers of its requests.
type clientConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
	// answered reports that the last request's answer began: a byte of it
	// was read.
	answered bool
}

// Get sends GET prefix/p (p without its leading slash, already escaped)
// and returns the status code and body of the answer, read into buf
// (reallocated if too small), at most maxBody bytes. The request ends with
// ctx.
func (c *Client) Get(ctx context.Context, p string, buf []byte, maxBody int) (status int, body []byte, err error) {
	cc := c.idleConn()
	reused := cc != nil
	if !reused {
		if cc, err = c.dial(ctx); err != nil {
			return 0, nil, err
		}
	}
	status, body, unanswered, err := c.roundTrip(ctx, cc, p, buf, maxBody)
	if err != nil && reused && unanswered {
		// The server closed the connection while it was idle (as at the
		// end of its idle timeout): it did not see the request, or chose
		// not to answer it. As net/http does for a GET, ask again on a new
		// connection; not if a new one fails, nor once an answer began.
		if cc, err = c.dial(ctx); err != nil {
			return 0, nil, err
		}
		status, body, _, err = c.roundTrip(ctx, cc, p, buf, maxBody)
	}
	return status, body, err
}

// roundTrip sends one request on cc and reads its answer; then it keeps cc
// as idle, or closes it. A failure is unanswered if the connection broke
// before any byte of an answer came, neither ctx nor a deadline ending it.
func (c *Client) roundTrip(ctx context.Context, cc *clientConn, p string, buf []byte, maxBody int) (status int, body []byte, unanswered bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		cc.c.SetDeadline(d)
	} else {
		cc.c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Unix(1, 0)) })
	status, body, keep, err := cc.get(c, p, buf, maxBody)
	if !stop() {
		keep = false // the deadline was cut short
	}
	if err != nil {
		cc.c.Close()
		ctxErr := ctx.Err()
		unanswered = !cc.answered && ctxErr == nil && !errors.Is(err, os.ErrDeadlineExceeded)
		if ctxErr != nil {
			err = fmt.Errorf("%w: %v", ctxErr, err)
		} else if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline, ctx's, passed first.
			err = fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
		}
		return 0, nil, unanswered, err
	}
	if !keep {
		cc.c.Close()
		return status, body, false, nil
	}
	c.mu.Lock()
	if len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, cc)
		cc = nil
	}
	c.mu.Unlock()
	if cc != nil {
		cc.c.Close() // more idle connections than needed
	}
	return status, body, false, nil
}

// idleConn returns the idle connection used last, or nil.
func (c *Client) idleConn() *clientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.idle)
	if n == 0 {
		return nil
	}
	cc := c.idle[n-1]
	c.idle[n-1] = nil
	c.idle = c.idle[:n-1]
	return cc
}

// dial returns a new connection.
func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	return &clientConn{c: nc, r: bufio.NewReaderSize(nc, 16<<10)}, nil
}

// CloseIdleConnections closes the connections not in use.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cc := range idle {
		cc.c.Close()
	}
}

var errMalformed = errors.New("malformed HTTP answer")

// errTooLong marks an answer whose body is longer than the caller allows.
var errTooLong = errors.New("body too long")

// max1xx bounds the informational answers (1xx) before the final one.
const max1xx = 5

// get sends one request on cc and reads its answer. keep reports whether
// the connection may carry another request.
func (cc *clientConn) get(c *Client, p string, buf []byte, maxBody int) (status int, body []byte, keep bool, err error) {
	cc.answered = false
	req := append(cc.req[:0], "GET "...)
	req = append(req, c.prefix...)
	req = append(req, '/')
	req = append(req, p...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, c.host...)
	req = append(req, "\r\nUser-Agent: sumdb-load\r\n\r\n"...)
	cc.req = req
	if _, err := cc.c.Write(req); err != nil {
		return 0, nil, false, err
	}
	if _, err := cc.r.Peek(1); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("connection closed before an answer: %w", io.ErrUnexpectedEOF)
		}
		return 0, nil, false, err
	}
	cc.answered = true

	var length int
	var chunked bool
	for n1xx := 0; ; n1xx++ {
		status, keep, length, chunked, err = cc.head()
		if err != nil {
			return 0, nil, false, err
		}
		// An informational answer (100 Continue, 103 Early Hints), headers
		// only, comes before the final one; but 101 Switching Protocols is
		// final, and what follows it is not HTTP.
		if status >= 200 || status == http.StatusSwitchingProtocols {
			break
		}
		if n1xx == max1xx {
			return 0, nil, false, fmt.Errorf("%w: more than %d informational (1xx) answers", errMalformed, max1xx)
		}
	}
	body = buf[:0]
	switch {
	case status == http.StatusSwitchingProtocols:
		// To a request that asked for no upgrade: the caller sees the
		// status, and the connection is dropped.
		return status, body, false, nil
	case status == http.StatusNoContent || status == http.StatusNotModified:
		// No body, whatever the headers say (RFC 9112, section 6.3). (A
		// Client sends no HEAD request, the other such case.)
		return status, body, keep, nil
	case chunked:
		for {
			line, err := cc.line()
			if err != nil {
				return 0, nil, false, err
			}
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
			if err != nil {
				return 0, nil, false, fmt.Errorf("%w: chunk size %q", errMalformed, clipBytes(line))
			}
			if size == 0 {
				break
			}
			if len(body)+int(size) > maxBody {
				return 0, nil, false, fmt.Errorf("%w: over %d bytes", errTooLong, maxBody)
			}
			if body, err = cc.read(body, int(size)); err != nil {
				return 0, nil, false, err
			}
			if line, err := cc.line(); err != nil || len(line) != 0 {
				return 0, nil, false, fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
			}
		}
		for { // trailers, then the empty line
			line, err := cc.line()
			if err != nil {
				return 0, nil, false, err
			}
			if len(line) == 0 {
				break
			}
		}
	case length >= 0:
		if length > maxBody {
			return 0, nil, false, fmt.Errorf("%w: over %d bytes", errTooLong, maxBody)
		}
		if body, err = cc.read(body, length); err != nil {
			return 0, nil, false, err
		}
	default:
		// The body ends with the connection.
		keep = false
		for {
			if len(body) > maxBody {
				return 0, nil, false, fmt.Errorf("%w: over %d bytes", errTooLong, maxBody)
			}
			n := len(body)
			body = append(body, make([]byte, 16<<10)...)
			m, err := cc.r.Read(body[n:])
			body = body[:n+m]
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, nil, false, err
			}
		}
	}
	return status, body, keep, nil
}

// head reads the status line and headers of an answer: its status, whether
// the connection may carry another request, and how its body is framed (a
// length of -1 for none given).
func (cc *clientConn) head() (status int, keep bool, length int, chunked bool, err error) {
	line, err := cc.line()
	if err != nil {
		return 0, false, 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, 0, false, fmt.Errorf("%w: status line %q", errMalformed, clipBytes(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, false, 0, false, fmt.Errorf("%w: status line %q", errMalformed, clipBytes(line))
	}
	keep = line[7] == '1'
	length = -1
	for n := len(line); ; {
		line, err := cc.line()
		if err != nil {
			return 0, false, 0, false, err
		}
		if n += len(line); n > maxHeaderBytes {
			return 0, false, 0, false, fmt.Errorf("%w: headers longer than %d bytes", errMalformed, maxHeaderBytes)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, 0, false, fmt.Errorf("%w: header %q", errMalformed, clipBytes(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, 0, false, fmt.Errorf("%w: Content-Length %q", errMalformed, clipBytes(value))
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
			if !chunked {
				return 0, false, 0, false, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, clipBytes(value))
			}
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			}
		}
	}
	return status, keep, length, chunked, nil
}

// line reads a line ended by LF (or CRLF) and returns it without its end.
// It is valid until the next read.
func (cc *clientConn) line() ([]byte, error) {
	line, err := cc.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, cc.r.Size())
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// read appends n bytes of the answer to body.
func (cc *clientConn) read(body []byte, n int) ([]byte, error) {
	start := len(body)
	if cap(body)-start < n {
		body = append(body[:cap(body)], make([]byte, start+n-cap(body))...)
	}
	body = body[:start+n]
	if _, err := io.ReadFull(cc.r, body[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// asciiEqualFold reports whether b equals s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// clipBytes returns b as a short string, for messages.
func clipBytes(b []byte) string {
	const maxLen = 100
	if len(b) > maxLen {
		return string(b[:maxLen]) + "..."
	}
	return string(b)
}
