package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
