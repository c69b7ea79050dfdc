package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClient(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB: chunked without a length
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/small":
			w.Write([]byte("hello"))
		case "/base/big":
			w.Write(big[:len(big)/2])
			w.(http.Flusher).Flush()
			w.Write(big[len(big)/2:])
		case "/base/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/base/slow":
			time.Sleep(200 * time.Millisecond)
		case "/base/agent":
			w.Write([]byte(r.Header.Get("User-Agent") + " " + r.Host))
		default:
			http.Error(w, "no such thing", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL+"/base/", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		path   string
		status int
		body   []byte
	}{
		{"small", 200, []byte("hello")},
		{"big", 200, big},
		{"close", 200, []byte("bye")},
		{"small", 200, []byte("hello")}, // on a new connection
		{"nothing", 404, []byte("no such thing\n")},
		{"agent", 200, []byte("sumdb-load " + strings.TrimPrefix(srv.URL, "http://"))},
	} {
		status, body, err := c.Get(t.Context(), tc.path, nil, maxBody)
		if err != nil || status != tc.status || !bytes.Equal(body, tc.body) {
			t.Errorf("Get(%s) = %d, %d bytes %.40q, %v; want %d, %d bytes %.40q", tc.path, status, len(body), body, err, tc.status, len(tc.body), tc.body)
		}
	}

	if _, _, err := c.Get(t.Context(), "big", nil, 1000); !errors.Is(err, errTooLong) {
		t.Errorf("Get(big) with a limit of 1000 bytes: err = %v, want %v", err, errTooLong)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := c.Get(ctx, "slow", nil, maxBody); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get(slow) with a 20ms timeout: err = %v, want %v", err, context.DeadlineExceeded)
	}

	// Concurrent use, reusing each caller's buffer.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var buf []byte
			for j := range 50 {
				p := "small"
				want := []byte("hello")
				if (i+j)%3 == 0 {
					p, want = "big", big
				}
				status, body, err := c.Get(t.Context(), p, buf, maxBody)
				if err != nil || status != 200 || !bytes.Equal(body, want) {
					t.Errorf("Get(%s) = %d, %d bytes, %v", p, status, len(body), err)
					return
				}
				buf = body
			}
		})
	}
	wg.Wait()
}

func TestNewClient(t *testing.T) {
	for _, base := range []string{"https://127.0.0.1", "127.0.0.1:80", "http://", "http://u@127.0.0.1", "http://127.0.0.1/?q"} {
		if _, err := NewClient(base, 1); err == nil {
			t.Errorf("NewClient(%q): no error", base)
		}
	}
	for base, want := range map[string]string{
		"http://127.0.0.1":         "127.0.0.1:80",
		"http://127.0.0.1:8080/x/": "127.0.0.1:8080",
		"http://[::1]:9":           "[::1]:9",
	} {
		c, err := NewClient(base, 1)
		if err != nil || c.addr != want {
			t.Errorf("NewClient(%q) dials %v, %v; want %s", base, c, err, want)
		}
	}
}

// A rawServer answers HTTP/1.1 requests with bytes a test writes, to send
// what net/http's server would not.
type rawServer struct {
	ln net.Listener
	// answer returns the answer to the req-th request (from 0) of the
	// conn-th connection, and whether to close the connection after it.
	answer func(conn, req int, path string) (resp string, close bool)
	conns  atomic.Int64 // connections accepted
	reqs   atomic.Int64 // requests read
}

func newRawServer(t *testing.T, answer func(conn, req int, path string) (string, bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, answer: answer}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.conns.Add(1) - 1)
			conns.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					s.reqs.Add(1)
					resp, close := s.answer(n, i, req.URL.Path)
					c.Write([]byte(resp))
					if close {
						return
					}
				}
			})
		}
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// TestClientRetry checks that a kept-alive connection the server closed
// between requests is replaced, once, without a failure; and that an answer
// cut short is not asked again.
func TestClientRetry(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	// Every connection carries one answer, then the server closes it (as
	// at the end of its idle timeout), without saying so.
	srv := newRawServer(t, func(conn, req int, _ string) (string, bool) { return ok, true })
	c, err := NewClient(srv.url(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for i := range 3 {
		status, body, err := c.Get(t.Context(), "x", nil, maxBody)
		if err != nil || status != 200 || string(body) != "hello" {
			t.Errorf("Get #%d on a connection the server closed after the last answer = %d, %q, %v; want 200, hello", i+1, status, body, err)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests, want 3", n)
	}

	// The second answer on a connection breaks off in its headers.
	cut := newRawServer(t, func(conn, req int, _ string) (string, bool) {
		if req == 0 {
			return ok, false
		}
		return "HTTP/1.1 200 OK\r\nContent-Len", true
	})
	c, err = NewClient(cut.url(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, _, err := c.Get(t.Context(), "x", nil, maxBody); err != nil {
		t.Fatal(err)
	}
	if status, body, err := c.Get(t.Context(), "x", nil, maxBody); err == nil {
		t.Errorf("Get of an answer cut short = %d, %q, nil; want an error", status, body)
	}
	if n, reqs := cut.conns.Load(), cut.reqs.Load(); n != 1 || reqs != 2 {
		t.Errorf("%d connections and %d requests, want 1 and 2: an answer cut short was asked again", n, reqs)
	}

	// A new connection that fails is not tried again either.
	closed := newRawServer(t, func(conn, req int, _ string) (string, bool) { return "", true })
	c, err = NewClient(closed.url(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, _, err := c.Get(t.Context(), "x", nil, maxBody); err == nil {
		t.Error("Get from a server that closes without answering: no error")
	}
	if n := closed.conns.Load(); n != 1 {
		t.Errorf("%d connections for a request on a new connection, want 1", n)
	}
}

// TestClientIdleTimeout is the case TestClientRetry stands for: net/http's
// server closes a connection idle for longer than its IdleTimeout.
func TestClientIdleTimeout(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	c, err := NewClient(srv.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for i := range 2 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // the server closes the connection meanwhile
		}
		status, body, err := c.Get(t.Context(), "x", nil, maxBody)
		if err != nil || status != 200 || string(body) != "hello" {
			t.Errorf("Get #%d = %d, %q, %v; want 200, hello", i+1, status, body, err)
		}
	}
}

// TestClientNoBody checks the answers without a body, and the informational
// answers before the final one.
func TestClientNoBody(t *testing.T) {
	answers := map[string]string{
		"/early":    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"/continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnone",
		"/204":      "HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
		"/304":      "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
		"/ok":       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/101":      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x00\x01binary",
		"/many1xx":  strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 100) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	// A connection stays open after each answer: a client that reads a body
	// until the end of the connection waits for the timeout.
	raw := newRawServer(t, func(conn, req int, path string) (string, bool) { return answers[path], false })
	c, err := NewClient(raw.url(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		path   string
		status int
		body   string
		err    bool
	}{
		{"early", 200, "hello", false},
		{"continue", 404, "none", false},
		{"204", 204, "", false},
		{"ok", 200, "ok", false}, // on the same connection
		{"304", 304, "", false},
		{"ok", 200, "ok", false},
		{"101", 101, "", false}, // a protocol the client did not ask for: the connection is dropped
		{"ok", 200, "ok", false},
		{"many1xx", 0, "", true},
	} {
		// A client that waits for the end of the connection fails here;
		// a right one does not wait at all.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		status, body, err := c.Get(ctx, tc.path, nil, maxBody)
		cancel()
		if tc.err {
			if err == nil {
				t.Errorf("Get(%s) = %d, %q, nil; want an error", tc.path, status, body)
			}
			continue
		}
		if err != nil || status != tc.status || string(body) != tc.body {
			t.Errorf("Get(%s) = %d, %q, %v; want %d, %q", tc.path, status, body, err, tc.status, tc.body)
		}
	}
	// One connection until the 101, one after it, one after the error.
	if n := raw.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one until the 101 answer, one after", n)
	}
}
