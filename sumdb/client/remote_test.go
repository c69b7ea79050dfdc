package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A fakeServer answers each path with a status and a body, and counts the
// requests.
type fakeServer struct {
	URL string

	mu       sync.Mutex
	answers  map[string][]answer // by path; the last answer repeats
	requests map[string]int
}

type answer struct {
	code int
	body string
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{answers: make(map[string][]answer), requests: make(map[string]int)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := f.requests[r.URL.Path]
		f.requests[r.URL.Path]++
		list := f.answers[r.URL.Path]
		f.mu.Unlock()
		if len(list) == 0 {
			http.Error(w, "not found: no such path", http.StatusNotFound)
			return
		}
		a := list[min(n, len(list)-1)]
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(a.code)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// answer makes the server answer path with the answers in turn.
func (f *fakeServer) answer(path string, answers ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[path] = answers
}

func (f *fakeServer) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

func newVerifierKey(t *testing.T, name string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestGoKey checks goKey against the go command's own copy of its built-in
// key, in the sources of the Go installation running the test: Open
// never reads them, but a go command that changed its key would show here.
func TestGoKey(t *testing.T) {
	t.Parallel()
	file := filepath.Join(runtime.GOROOT(), "src", "cmd", "go", "internal", "modfetch", "key.go")
	src, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("read the go command's built-in key: %v (a Go installation with its sources has it)", err)
		}
		t.Skipf("no go command sources to compare goKey with: %v", err)
	}
	if !strings.Contains(string(src), strconv.Quote(goKey)) {
		t.Errorf("%s does not hold goKey %q: update goKey to the go command's key", file, goKey)
	}
	if _, err := note.NewVerifier(goKey); err != nil {
		t.Errorf("goKey is not a verifier key: %v", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	const name = "sumdb.test"
	vkey := newVerifierKey(t, name)
	supported := "/sumdb/" + name + "/supported"

	yes := newFakeServer(t) // serves the database
	yes.answer(supported, answer{200, ""})
	no := newFakeServer(t) // does not
	no.answer(supported, answer{404, "not found"})
	gone := newFakeServer(t)
	gone.answer(supported, answer{410, "gone"})
	broken := newFakeServer(t)
	broken.answer(supported, answer{500, "internal error"})
	forbidden := newFakeServer(t)
	forbidden.answer(supported, answer{403, "forbidden"})
	// The go command's built-in database, the one name without a key,
	// known without a Go installation's sources.
	goName := goName()

	tests := []struct {
		name    string
		cfg     Config
		base    string // want
		key     string // want; default vkey
		wantErr string
	}{
		{name: "explicit URL", cfg: Config{GOSUMDB: vkey + " " + yes.URL + "/db/", GOPROXY: no.URL}, base: yes.URL + "/db"},
		{name: "explicit http URL skips discovery", cfg: Config{GOSUMDB: vkey + " http://127.0.0.1:1", GOPROXY: broken.URL}, base: "http://127.0.0.1:1"},
		{name: "proxy supports it", cfg: Config{GOSUMDB: vkey, GOPROXY: yes.URL}, base: yes.URL + "/sumdb/" + name},
		{name: "proxy with a trailing slash", cfg: Config{GOSUMDB: vkey, GOPROXY: yes.URL + "/"}, base: yes.URL + "/sumdb/" + name},
		{name: "404 falls through", cfg: Config{GOSUMDB: vkey, GOPROXY: no.URL + "," + yes.URL}, base: yes.URL + "/sumdb/" + name},
		{name: "410 falls through", cfg: Config{GOSUMDB: vkey, GOPROXY: gone.URL + "," + yes.URL}, base: yes.URL + "/sumdb/" + name},
		{name: "500 after | falls through", cfg: Config{GOSUMDB: vkey, GOPROXY: broken.URL + "|" + yes.URL}, base: yes.URL + "/sumdb/" + name},
		{name: "500 after , fails", cfg: Config{GOSUMDB: vkey, GOPROXY: broken.URL + "," + yes.URL}, wantErr: "ask proxy whether it serves checksum database sumdb.test: upstream unavailable: GET " + broken.URL + supported + ": internal error"},
		{name: "403 fails", cfg: Config{GOSUMDB: vkey, GOPROXY: forbidden.URL + "," + yes.URL}, wantErr: "forbidden"},
		{name: "500 after | then the end of the list fails", cfg: Config{GOSUMDB: vkey, GOPROXY: broken.URL + "|" + no.URL}, wantErr: "internal error"},
		{name: "500 after | then direct", cfg: Config{GOSUMDB: vkey, GOPROXY: broken.URL + "|direct"}, base: "https://" + name},
		{name: "direct", cfg: Config{GOSUMDB: vkey, GOPROXY: no.URL + ",direct," + yes.URL}, base: "https://" + name},
		{name: "off", cfg: Config{GOSUMDB: vkey, GOPROXY: "off"}, base: "https://" + name},
		{name: "no proxy", cfg: Config{GOSUMDB: vkey}, base: "https://" + name},
		{name: "end of the list", cfg: Config{GOSUMDB: vkey, GOPROXY: no.URL + "," + gone.URL}, base: "https://" + name},
		{name: "built-in name", cfg: Config{GOSUMDB: goName, GOPROXY: "direct"}, base: "https://" + goName, key: goKey},
		{name: "built-in name with URL", cfg: Config{GOSUMDB: goName + " " + yes.URL}, base: yes.URL, key: goKey},
		{name: "other name without key", cfg: Config{GOSUMDB: name + " " + yes.URL}, wantErr: "GOSUMDB=" + name + " gives no key, and only the go command's built-in checksum database is known without one: give the full verifier key"},
		{name: "unknown name", cfg: Config{GOSUMDB: "unknown.test", GOPROXY: "direct"}, wantErr: "GOSUMDB=unknown.test gives no key"},
		{name: "off refused", cfg: Config{GOSUMDB: "off"}, wantErr: "GOSUMDB=off"},
		{name: "empty", cfg: Config{GOSUMDB: "  "}, wantErr: "no checksum database named"},
		{name: "too many fields", cfg: Config{GOSUMDB: vkey + " " + yes.URL + " x"}, wantErr: "too many fields"},
		{name: "bad key", cfg: Config{GOSUMDB: "sumdb.test+00000000+AAAA"}, wantErr: "invalid checksum database key"},
		{name: "bad URL", cfg: Config{GOSUMDB: vkey + " ftp://x"}, wantErr: "want http:// or https://"},
	}
	// The cases run in parallel in a group, so that the requests are
	// counted once they are all done.
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				r, err := Open(t.Context(), tt.cfg)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Open(%+v) = %v, want error containing %q", tt.cfg, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Open(%+v): %v", tt.cfg, err)
				}
				if r.Base != tt.base {
					t.Errorf("Open(%+v).Base = %q, want %q", tt.cfg, r.Base, tt.base)
				}
				key := tt.key
				if key == "" {
					key = vkey
				}
				if r.Key != key || r.Verifier.Name() != strings.SplitN(key, "+", 2)[0] {
					t.Errorf("Open(%+v).Key = %q, want %q", tt.cfg, r.Key, key)
				}
			})
		}
	})
	// Discovery asks each proxy once, without retries: four cases reach
	// the broken one.
	if n := broken.count(supported); n != 4 {
		t.Errorf("broken proxy asked %d times, want 4", n)
	}
}

func TestRemoteGet(t *testing.T) {
	t.Parallel()
	vkey := newVerifierKey(t, "sumdb.test")
	srv := newFakeServer(t)
	srv.answer("/db/latest", answer{200, "go.sum database tree\n1\n"})
	srv.answer("/db/flaky", answer{500, "busy"}, answer{503, "busy"}, answer{200, "finally"})
	srv.answer("/db/down", answer{502, "bad gateway"})
	srv.answer("/db/missing", answer{404, "not found: example.com/m@v1.0.0: unknown revision v1.0.0\nmore"})
	srv.answer("/db/gone", answer{410, ""})
	srv.answer("/db/bad", answer{400, "bad request: malformed path"})
	srv.answer("/db/huge", answer{200, strings.Repeat("x", maxRemoteBody+1)})
	r, err := Open(t.Context(), Config{GOSUMDB: vkey + " " + srv.URL + "/db", Retries: 3})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path     string
		body     string
		is       error // the error wraps it
		msg      string
		requests int
	}{
		{path: "latest", body: "go.sum database tree\n1\n", requests: 1},
		{path: "flaky", body: "finally", requests: 3},
		{path: "down", is: ErrUpstream, msg: "GET " + srv.URL + "/db/down: bad gateway", requests: 4},
		{path: "missing", is: ErrNotFound, msg: "not found: not found: example.com/m@v1.0.0: unknown revision v1.0.0", requests: 1},
		{path: "gone", is: ErrNotFound, msg: "410 Gone", requests: 1},
		{path: "bad", is: ErrUpstream, msg: "bad request: malformed path", requests: 1},
		{path: "huge", is: ErrUpstream, msg: "response larger than", requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			body, err := r.Get(t.Context(), tt.path)
			if tt.is == nil {
				if err != nil || string(body) != tt.body {
					t.Errorf("Get(%q) = %q, %v, want %q", tt.path, body, err, tt.body)
				}
			} else if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Get(%q) = %v, want an error wrapping %v containing %q", tt.path, err, tt.is, tt.msg)
			}
			if n := srv.count("/db/" + tt.path); n != tt.requests {
				t.Errorf("Get(%q) made %d requests, want %d", tt.path, n, tt.requests)
			}
		})
	}
}

// TestRemoteRetries checks that the zero Retries is the default and a
// negative one means none.
func TestRemoteRetries(t *testing.T) {
	t.Parallel()
	vkey := newVerifierKey(t, "sumdb.test")
	for _, tt := range []struct{ retries, requests int }{{0, 5}, {-1, 1}, {1, 2}} {
		t.Run(fmt.Sprint(tt.retries), func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t)
			srv.answer("/db/down", answer{502, "bad gateway"})
			r, err := Open(t.Context(), Config{GOSUMDB: vkey + " " + srv.URL + "/db", Retries: tt.retries})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Get(t.Context(), "down"); !errors.Is(err, ErrUpstream) {
				t.Errorf("Retries %d: Get = %v, want an error wrapping ErrUpstream", tt.retries, err)
			}
			if n := srv.count("/db/down"); n != tt.requests {
				t.Errorf("Retries %d: %d requests, want %d", tt.retries, n, tt.requests)
			}
		})
	}
}

func TestRemoteUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " http://" + addr, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(t.Context(), "latest"); !errors.Is(err, ErrUpstream) {
		t.Errorf("Get from a closed port = %v, want an error wrapping ErrUpstream", err)
	}

	// A canceled context ends the retries at once.
	ctx, cancel := context.WithCancel(t.Context())
	r, err = Open(ctx, Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " http://" + addr, Retries: 100})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	if _, err := r.Get(ctx, "latest"); !errors.Is(err, ErrUpstream) {
		t.Errorf("Get with a canceled context = %v, want an error wrapping ErrUpstream", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Get took %v after its context was canceled", d)
	}
}
