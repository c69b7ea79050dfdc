package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store/storetest"
)

// TestServeStartErrors checks that serve ends at once, with one line saying
// what to fix, when it cannot start.
func TestServeStartErrors(t *testing.T) {
	t.Parallel()
	bin := sumdbBinary(t)

	goodKey := func(t *testing.T, dir string) string {
		_, skey, err := generateKey("sum.example.com")
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "signer.key")
		if err := writeKeyFile(file, skey, durable.SyncDir); err != nil {
			t.Fatal(err)
		}
		return file
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	// A database that accepts connections and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) []string // returns extra flags
		status int
		want   []string // in the error line
		secret string   // must not appear anywhere
	}{
		{
			name:   "bad flag",
			setup:  func(*testing.T, string) []string { return []string{"--lissten", ":1"} },
			status: 2,
			want:   []string{"unknown flag: --lissten"},
		},
		{
			name: "unreachable database",
			setup: func(*testing.T, string) []string {
				return []string{"--database-url", "postgres://postgres:hunter2@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=5"}
			},
			status: 1,
			want:   []string{"127.0.0.1", "nowhere"},
			secret: "hunter2",
		},
		{
			name: "silent database",
			setup: func(*testing.T, string) []string {
				return []string{"--database-url", "postgres://postgres@" + mute.Addr().String() + "/silent?sslmode=disable"}
			},
			status: 1,
			want:   []string{"no answer within 10s"},
		},
		{
			name: "key readable by others",
			setup: func(t *testing.T, dir string) []string {
				file := goodKey(t, dir)
				if err := os.Chmod(file, 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"run chmod 600 "},
		},
		{
			name: "malformed key",
			setup: func(t *testing.T, dir string) []string {
				file := filepath.Join(dir, "bad.key")
				if err := os.WriteFile(file, []byte("PRIVATE+KEY+sum.example.com+01234567+hunter2\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"is not a signer key"},
			secret: "hunter2",
		},
		{
			name: "unreadable key",
			setup: func(t *testing.T, dir string) []string {
				file := filepath.Join(dir, "dir.key")
				if err := os.Mkdir(file, 0o700); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"is not a regular file"},
		},
		{
			name: "schema too new",
			setup: func(t *testing.T, dir string) []string {
				db, err := sql.Open("sqlite", filepath.Join(dir, "sumdb.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				for _, q := range []string{
					`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '') STRICT`,
					`INSERT INTO schema_version (version, name) VALUES (999, '0999_future.sql')`,
				} {
					if _, err := db.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			},
			status: 1,
			want:   []string{"schema version 999 is newer than this sumdb"},
		},
		{
			name: "key lost",
			setup: func(t *testing.T, dir string) []string {
				logOneRecord(t, filepath.Join(dir, "sumdb.db"))
				return []string{"--key-file", filepath.Join(dir, "lost.key")}
			},
			status: 1,
			want:   []string{"lost.key does not exist, but the store holds a log of 1 records"},
		},
		{
			name: "other key",
			setup: func(t *testing.T, dir string) []string {
				logOneRecord(t, filepath.Join(dir, "sumdb.db"))
				return []string{"--key-file", goodKey(t, t.TempDir())}
			},
			status: 1,
			want:   []string{"open log:", "must hold a log signed by the key in"},
		},
		{
			name:   "address in use",
			setup:  func(*testing.T, string) []string { return []string{"--listen", busy.Addr().String()} },
			status: 1,
			want:   []string{"choose another --listen address"},
		},
		{
			name: "tls cert missing",
			setup: func(t *testing.T, dir string) []string {
				return []string{"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", filepath.Join(dir, "none.key")}
			},
			status: 1,
			want:   []string{"none.pem", "no such file or directory"},
		},
		{
			name: "tls key of another certificate",
			setup: func(t *testing.T, dir string) []string {
				ca := newTestCA(t, "test CA")
				a, b := ca.issue(t, loopback), ca.issue(t, loopback)
				certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				writePair(t, certFile, keyFile, a.cert, b.key)
				return []string{"--tls-cert", certFile, "--tls-key", keyFile}
			},
			status: 1,
			want:   []string{"key.pem", "does not match the certificate", "cert.pem"},
			secret: "PRIVATE KEY",
		},
		{
			name: "tls cert expired",
			setup: func(t *testing.T, dir string) []string {
				ca := newTestCA(t, "test CA")
				p := ca.issue(t, certSpec{ips: loopback.ips, notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
				certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				writePair(t, certFile, keyFile, p.cert, p.key)
				return []string{"--tls-cert", certFile, "--tls-key", keyFile}
			},
			status: 1,
			want:   []string{"cert.pem", "expired"},
		},
		{
			name: "tls cert not PEM",
			setup: func(t *testing.T, dir string) []string {
				ca := newTestCA(t, "test CA")
				p := ca.issue(t, loopback)
				certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				// Switched: the key in the certificate file.
				writePair(t, certFile, keyFile, p.key, p.cert)
				return []string{"--tls-cert", certFile, "--tls-key", keyFile}
			},
			status: 1,
			want:   []string{"cert.pem", "no PEM certificate"},
			secret: "PRIVATE KEY",
		},
		{
			name:   "tls cert without key",
			setup:  func(t *testing.T, dir string) []string { return []string{"--tls-cert", filepath.Join(dir, "cert.pem")} },
			status: 2,
			want:   []string{"--tls-cert is set without --tls-key"},
		},
		{
			name: "acme and tls cert",
			setup: func(t *testing.T, dir string) []string {
				return []string{"--acme-host", "sum.example.com", "--tls-cert", "c.pem", "--tls-key", "k.pem"}
			},
			status: 2,
			want:   []string{"--acme-host and --tls-cert exclude each other"},
		},
		{
			name: "acme cache readable by others",
			setup: func(t *testing.T, dir string) []string {
				if err := os.Mkdir(filepath.Join(dir, "acme"), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{"--acme-host", "sum.example.com"}
			},
			status: 1,
			want:   []string{"run chmod 700 "},
		},
		{
			name: "acme http address in use",
			setup: func(*testing.T, string) []string {
				return []string{"--acme-host", "sum.example.com", "--acme-http", busy.Addr().String()}
			},
			status: 1,
			want:   []string{"choose another --acme-http address"},
		},
		{
			name:   "bad upstream",
			setup:  func(*testing.T, string) []string { return []string{"--upstream", "ftp://proxy.example.com"} },
			status: 2,
			want:   []string{"invalid --upstream", "want http:// or https://"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}
			args = append(args, tt.setup(t, dir)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = environ()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("sumdb %s did not end within 30s", strings.Join(args, " "))
			}
			var xerr *exec.ExitError
			if !errors.As(err, &xerr) || xerr.ExitCode() != tt.status {
				t.Fatalf("sumdb %s: %v, want exit status %d; stderr:\n%s", strings.Join(args, " "), err, tt.status, &stderr)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("sumdb took %v to fail", d)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "sumdb: ") {
				t.Errorf("last stderr line %q, want \"sumdb: <what to fix>\"", last)
			}
			for _, w := range tt.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line %q does not contain %q", last, w)
				}
			}
			all := stdout.String() + stderr.String()
			if strings.Contains(all, "goroutine ") || strings.Contains(all, "panic") {
				t.Errorf("sumdb printed a stack trace:\n%s", all)
			}
			if stdout.Len() > 0 {
				t.Errorf("sumdb printed %q on stdout, want nothing when it cannot start", stdout.String())
			}
			if tt.secret != "" && strings.Contains(all, tt.secret) {
				t.Errorf("sumdb printed the secret %q:\n%s", tt.secret, all)
			}
		})
	}
}

// logOneRecord creates an embedded store at file holding a log of one
// record, signed by a key that is then forgotten.
func logOneRecord(t *testing.T, file string) {
	t.Helper()
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.example.com", File: file})
	db.AppendSynthetic("m", 1)
	db.Stop()
}

// startHTTPServer runs newHTTPServer(handler, lim) on a loopback port and
// returns its address.
func startHTTPServer(t *testing.T, handler http.Handler, lim httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(handler, slog.New(slog.DiscardHandler), lim)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHTTPServerLimits checks that serve's HTTP server cuts off clients
// that send too much or too slowly, or do not read, with serve's limits
// (the timeouts shortened so that the test is quick).
func TestHTTPServerLimits(t *testing.T) {
	t.Parallel()
	real := serveLimits(3 * time.Minute)
	if real.readHeader != 10*time.Second || real.read != 30*time.Second || real.write <= 3*time.Minute ||
		real.idle != 2*time.Minute || real.maxHeaderBytes != 64<<10 {
		t.Errorf("serveLimits(3m) = %+v", real)
	}
	lim := real
	lim.readHeader, lim.read, lim.write, lim.idle = 300*time.Millisecond, 600*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond

	handlerDone := make(chan error, 10)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big": // an answer larger than the socket buffers
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			var err error
			for i := 0; i < 256 && err == nil; i++ {
				_, err = w.Write(chunk)
			}
			handlerDone <- err
		case "/body":
			_, err := io.ReadAll(r.Body)
			handlerDone <- err
		default:
			io.WriteString(w, "ok\n")
		}
	})
	addr := startHTTPServer(t, handler, lim)

	// dial returns a connection and the time it was made.
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reads c until the server closes it, and fails if that
	// takes longer than d.
	closedWithin := func(t *testing.T, c net.Conn, d time.Duration) []byte {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(d + 5*time.Second))
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("server did not close the connection: %v", err)
		}
		if elapsed := time.Since(start); elapsed > d {
			t.Errorf("server closed the connection after %v, want within %v", elapsed, d)
		}
		return got
	}

	t.Run("huge header", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "GET /latest HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 100<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("request with a 100 KiB header: %s, want 431", resp.Status)
		}
	})
	t.Run("many headers", func(t *testing.T) {
		c := dial(t)
		var b strings.Builder
		b.WriteString("GET /latest HTTP/1.1\r\nHost: x\r\n")
		for i := range 10000 {
			fmt.Fprintf(&b, "X-%d: 1\r\n", i)
		}
		b.WriteString("\r\n")
		io.WriteString(c, b.String())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("request with 10,000 headers: %s, want 431", resp.Status)
		}
	})
	t.Run("header within the limit", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "GET /latest HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 60<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("request with a 60 KiB header: %v, %v; want 200", resp, err)
		}
	})
	t.Run("silent client", func(t *testing.T) {
		closedWithin(t, dial(t), 2*time.Second)
	})
	t.Run("slow headers", func(t *testing.T) {
		c := dial(t)
		go func() {
			for _, b := range []byte("GET /latest HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		// net/http may answer 400 first.
		if got := closedWithin(t, c, 2*time.Second); len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) {
			t.Errorf("server answered %q to incomplete headers", got)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		go func() {
			for range 1000 {
				if _, err := c.Write([]byte{'a'}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		select {
		case err := <-handlerDone:
			if err == nil {
				t.Error("handler read the whole slow body")
			}
		case <-time.After(5 * time.Second):
			t.Error("handler still reading a slow body after 5s")
		}
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /latest HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		c.SetReadDeadline(start.Add(5 * time.Second))
		if _, err := br.ReadByte(); err == nil || time.Since(start) > 2*time.Second {
			t.Errorf("idle connection: %v after %v, want closed within 2s", err, time.Since(start))
		}
	})
	t.Run("client that never reads", func(t *testing.T) {
		c := dial(t)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4 << 10)
		}
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case err := <-handlerDone:
			if err == nil {
				t.Error("handler wrote 256 MiB to a client that reads nothing")
			}
		case <-time.After(5 * time.Second):
			t.Error("handler still writing to a client that reads nothing after 5s")
		}
	})
}

// TestRoutes checks where /metrics and the health checks are served, with
// and without a separate metrics listener.
func TestRoutes(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app "+r.URL.Path) })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
	get := func(h http.Handler, path string) (int, string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = path
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	main, ops := routes(app, metrics, false)
	if ops != nil {
		t.Error("routes(separate=false) returned a metrics handler")
	}
	for path, want := range map[string]string{
		"/metrics": "metrics", "/healthz": "app /healthz", "/readyz": "app /readyz", "/latest": "app /latest",
		"/lookup/a//b@v1.0.0": "app /lookup/a//b@v1.0.0", "/metrics/": "app /metrics/",
	} {
		if code, body := get(main, path); code != 200 || body != want {
			t.Errorf("main listener, GET %s = %d %q, want %q", path, code, body, want)
		}
	}
	main, ops = routes(app, metrics, true)
	for _, tc := range []struct {
		h    http.Handler
		path string
		code int
		want string
	}{
		{main, "/metrics", 200, "app /metrics"}, // the app answers 404
		{main, "/healthz", 200, "app /healthz"},
		{main, "/latest", 200, "app /latest"},
		{ops, "/metrics", 200, "metrics"},
		{ops, "/healthz", 200, "app /healthz"},
		{ops, "/readyz", 200, "app /readyz"},
		{ops, "/latest", 404, "not found: this address serves /metrics, /healthz and /readyz\n"},
		{ops, "/lookup/example.com/m@v1.0.0", 404, ""},
	} {
		if code, body := get(tc.h, tc.path); code != tc.code || tc.want != "" && body != tc.want {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}
}

// TestServeObservability runs sumdb serve and checks its health checks and
// metrics, on the main listener and on a separate one.
func TestServeObservability(t *testing.T) {
	t.Parallel()
	p := newProxies(t)
	p.add(t, pkg("example.com/obs", "v1.0.0", "module example.com/obs\n"))
	for _, separate := range []bool{false, true} {
		t.Run(fmt.Sprintf("separate=%v", separate), func(t *testing.T) {
			t.Parallel()
			args := []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--upstream", p.upstreamURL}
			if separate {
				args = append(args, "--metrics-listen", "127.0.0.1:0")
			}
			srv, err := startSumdb(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop()
			metricsURL := srv.url
			if separate {
				// The serving line follows the GOSUMDB line.
				addr := regexp.MustCompile(`msg=serving .*metrics_addr=(127\.0\.0\.1:[1-9][0-9]*)`)
				var m []string
				for start := time.Now(); m == nil && time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
					m = addr.FindStringSubmatch(srv.stderr.String())
				}
				if m == nil {
					t.Fatalf("no metrics_addr in the serving line:\n%s", srv.stderr)
				}
				metricsURL = "http://" + m[1]
			}
			get := func(url string) (int, string) {
				t.Helper()
				resp, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body)
			}
			for _, base := range []string{srv.url, metricsURL} {
				if code, body := get(base + "/healthz"); code != 200 || body != "ok\n" {
					t.Errorf("GET %s/healthz = %d %q", base, code, body)
				}
				if code, body := get(base + "/readyz"); code != 200 || body != "ready: tree size 0\n" {
					t.Errorf("GET %s/readyz = %d %q", base, code, body)
				}
			}
			if code, body := srv.get("/lookup/example.com/obs@v1.0.0"); code != 200 {
				t.Fatalf("lookup: %d %q", code, body)
			}
			if code, _ := get(srv.url + "/metrics"); separate && code != 404 || !separate && code != 200 {
				t.Errorf("GET /metrics on the main listener = %d", code)
			}
			code, body := get(metricsURL + "/metrics")
			if code != 200 {
				t.Fatalf("GET /metrics = %d %q", code, body)
			}
			for _, want := range []string{
				`sumdb_http_requests_total{code="200",endpoint="lookup"} 1`,
				`sumdb_http_requests_total{code="200",endpoint="healthz"} 2`, // one per base URL
				`sumdb_upstream_fetches_total{result="ok"} 1`,
				`sumdb_tree_size 1`,
				`sumdb_sequencer_batch_records_count 1`,
				`sumdb_sequencer_queue_length 0`,
				"go_goroutines ",
				"process_resident_memory_bytes ",
			} {
				if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
					t.Errorf("/metrics has no %q", want)
				}
			}
			if n := strings.Count(srv.stderr.String(), `msg="upstream fetch"`); n != 1 {
				t.Errorf("%d log lines for one upstream fetch, want 1:\n%s", n, srv.stderr)
			}
		})
	}
}

// TestServeZeroDisables checks that 0 on serve's command line turns off
// each knob it documents 0 for, as sumdb.Disabled does in the library,
// whose own zero means the default: the tile cache, the lookup cache, the
// not-found TTL and the fetch rate limit. With the defaults, each is on.
func TestServeZeroDisables(t *testing.T) {
	t.Parallel()
	for _, zero := range []bool{false, true} {
		t.Run(fmt.Sprintf("zero=%v", zero), func(t *testing.T) {
			t.Parallel()
			proxy := modproxy.New()
			if err := proxy.Add(pkg("example.com/zero", "v1.0.0", "module example.com/zero\n")); err != nil {
				t.Fatal(err)
			}
			var unknownAsked atomic.Int64 // requests for example.com/unknown
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/example.com/unknown/") {
					unknownAsked.Add(1)
				}
				proxy.ServeHTTP(w, r)
			}))
			defer up.Close()
			// A burst of 2 covers the two fetches before the storm.
			args := []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--upstream", up.URL, "--fetch-burst", "2"}
			if zero {
				args = append(args, "--tile-cache-size", "0", "--lookup-cache-size", "0", "--not-found-ttl", "0", "--fetch-rate", "0")
			}
			srv, err := startSumdb(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop()
			for _, path := range []string{
				"/lookup/example.com/zero@v1.0.0", // fetched and logged
				"/lookup/example.com/zero@v1.0.0", "/lookup/example.com/zero@v1.0.0",
				"/tile/8/0/000.p/1", "/tile/8/0/000.p/1",
			} {
				if code, body := srv.get(path); code != 200 {
					t.Fatalf("GET %s = %d %q", path, code, body)
				}
			}
			for range 2 {
				if code, body := srv.get("/lookup/example.com/unknown@v1.0.0"); code != 404 {
					t.Fatalf("lookup of an unknown version = %d %q, want 404", code, body)
				}
			}
			// A storm of first lookups from one client, beyond the burst.
			const storm = 20
			codes := make(chan int, storm)
			for i := range storm {
				go func() {
					resp, err := http.Get(fmt.Sprintf("%s/lookup/example.com/unknown@v1.0.%d", srv.url, i+1))
					if err != nil {
						codes <- 0
						return
					}
					resp.Body.Close()
					codes <- resp.StatusCode
				}()
			}
			limited := 0
			for range storm {
				switch code := <-codes; code {
				case http.StatusTooManyRequests:
					limited++
				case http.StatusNotFound:
				default:
					t.Errorf("lookup in the storm = %d, want 404 or 429", code)
				}
			}

			code, body := srv.get("/metrics")
			if code != 200 {
				t.Fatalf("GET /metrics = %d", code)
			}
			metric := func(name string) float64 {
				t.Helper()
				for line := range strings.Lines(string(body)) {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
						f, err := strconv.ParseFloat(v, 64)
						if err != nil {
							t.Fatalf("/metrics: %s %q: %v", name, v, err)
						}
						return f
					}
				}
				t.Fatalf("/metrics has no %s", name)
				return 0
			}
			got := fmt.Sprintf("tile cache hits %v, bytes %v; lookup cache hits %v, bytes %v; upstream asked %d times for one unknown version; %d of %d first lookups limited",
				metric("sumdb_tile_cache_hits_total"), metric("sumdb_tile_cache_bytes"),
				metric("sumdb_lookup_cache_hits_total"), metric("sumdb_lookup_cache_bytes"),
				unknownAsked.Load()-storm, limited, storm)
			on := metric("sumdb_tile_cache_hits_total") > 0 && metric("sumdb_tile_cache_bytes") > 0 &&
				metric("sumdb_lookup_cache_hits_total") > 0 && metric("sumdb_lookup_cache_bytes") > 0
			off := metric("sumdb_tile_cache_hits_total") == 0 && metric("sumdb_tile_cache_bytes") == 0 &&
				metric("sumdb_lookup_cache_hits_total") == 0 && metric("sumdb_lookup_cache_bytes") == 0
			switch {
			case zero && (!off || unknownAsked.Load()-int64(storm-limited) != 2 || limited != 0):
				t.Errorf("with 0: %s; want no cache, 2 asks, none limited", got)
			case !zero && (!on || unknownAsked.Load()-int64(storm-limited) != 1 || limited == 0):
				t.Errorf("with the defaults: %s; want caches used, 1 ask, some limited", got)
			}
		})
	}
}

// TestServeShutdownDuringFetch checks that a signal stops the server
// cleanly while a lookup waits for an upstream that never answers: the
// lookup is cancelled after shutdownGrace and answered, and the server
// exits 0 well before --upstream-timeout.
func TestServeShutdownDuringFetch(t *testing.T) {
	t.Parallel()
	fetching := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case fetching <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer up.Close()
	defer close(release)

	srv, err := startSumdb(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--upstream", up.URL, "--upstream-timeout", "10m")
	if err != nil {
		t.Fatal(err)
	}
	status := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.url + "/lookup/example.com/slow@v1.0.0")
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	select {
	case <-fetching:
	case <-time.After(time.Minute):
		t.Fatal("the server did not ask the upstream within 1m")
	}
	start := time.Now()
	srv.stop() // fails unless the server exits 0 within 30s and logs its stop
	if d := time.Since(start); d < shutdownGrace {
		t.Errorf("the server stopped %v after the signal, before the %v that requests in flight have", d, shutdownGrace)
	}
	if code := <-status; code != http.StatusServiceUnavailable {
		t.Errorf("the lookup in flight got status %d, want 503", code)
	}
}

// TestRedactURL checks that a database URL in a message shows no password,
// in its user information or in its query.
// TestServeReads checks what a reverse proxy or CDN in front of serve
// sees of the reads it caches: the signed head, a lookup of a logged
// version, a hash tile and a data tile, each with its length and cache
// headers, on one kept-alive HTTP/1.1 connection and over HTTP/1.0 with
// Connection: close, as nginx sends upstream by default.
func TestServeReads(t *testing.T) {
	t.Parallel()
	p := newProxies(t)
	p.add(t, pkg("example.com/reads", "v1.0.0", "module example.com/reads\n"))
	srv, err := startSumdb(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--upstream", p.upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	if code, body := srv.get("/lookup/example.com/reads@v1.0.0"); code != 200 {
		t.Fatalf("lookup: %d %q", code, body)
	}
	const text = "text/plain; charset=utf-8"
	reads := []struct {
		path, ctype, cache, prefix string
		size                       int // 0: any
	}{
		{"/latest", text, "no-cache", "go.sum database tree\n1\n", 0},
		{"/lookup/example.com/reads@v1.0.0", text, "public, max-age=5", "0\nexample.com/reads v1.0.0 h1:", 0},
		{"/tile/8/0/000.p/1", "application/octet-stream", "public, max-age=31536000, immutable", "", 32},
		{"/tile/8/data/000.p/1", text, "public, max-age=31536000, immutable", "example.com/reads v1.0.0 h1:", 0},
	}
	check := func(proto string, resp *http.Response, i int) {
		t.Helper()
		want := reads[i]
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s GET %s: read body: %v", proto, want.path, err)
		}
		h := resp.Header
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want.prefix) || want.size != 0 && len(body) != want.size {
			t.Errorf("%s GET %s = %d %q", proto, want.path, resp.StatusCode, body)
		}
		if got := h.Get("Content-Length"); got != strconv.Itoa(len(body)) {
			t.Errorf("%s GET %s: Content-Length %q for %d bytes", proto, want.path, got, len(body))
		}
		if h.Get("Content-Type") != want.ctype || h.Get("Cache-Control") != want.cache || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s GET %s: Content-Type %q, Cache-Control %q, X-Content-Type-Options %q; want %q, %q, nosniff",
				proto, want.path, h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("X-Content-Type-Options"), want.ctype, want.cache)
		}
	}
	addr := strings.TrimPrefix(srv.url, "http://")
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c
	}

	// HTTP/1.1: every read, twice (the second from the caches), on one
	// connection that stays open.
	c := dial()
	r := bufio.NewReader(c)
	for round := range 2 {
		for i, rd := range reads {
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: sum.example.com\r\n\r\n", rd.path)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("HTTP/1.1 GET %s (round %d): %v", rd.path, round, err)
			}
			if resp.Close {
				t.Errorf("HTTP/1.1 GET %s (round %d): the server closes the connection", rd.path, round)
			}
			check("HTTP/1.1", resp, i)
		}
	}

	// HTTP/1.0, a connection per request, as from a default nginx.
	for i, rd := range reads {
		c := dial()
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: sum.example.com\r\nConnection: close\r\n\r\n", rd.path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("HTTP/1.0 GET %s: %v", rd.path, err)
		}
		check("HTTP/1.0", resp, i)
	}
}

// runSumdb runs the sumdb binary with args to its end, and returns its
// exit status and the last line of its stderr.
func runSumdb(t *testing.T, args ...string) (status int, last string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sumdbBinary(t), args...)
	cmd.Env = environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sumdb %s did not end within a minute", strings.Join(args, " "))
	}
	var xerr *exec.ExitError
	if err != nil && !errors.As(err, &xerr) {
		t.Fatalf("sumdb %s: %v", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	return cmd.ProcessState.ExitCode(), lines[len(lines)-1]
}

// TestServeOneProcessPerDataDir starts a second serve, and an import, on
// the data directory of a running server, on each store: both must refuse
// at once, naming the directory and the server, since two processes would
// each keep published-head with counters of their own; so must an import
// once sumdb.lock, which only names the server, is removed. Export, which
// only reads the store, may run. Once the server is killed with SIGKILL, with
// no chance to clean up, a new one starts.
func TestServeOneProcessPerDataDir(t *testing.T) {
	t.Parallel()
	_, mods, flags := faultServer(t, "example.com/lock", 10)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			storeArgs := []string{"--data-dir", dir}
			if backend == "postgres" {
				storeArgs = append(storeArgs, "--database-url", storetest.PostgresURL(t))
			}
			args := append(slices.Clone(flags), storeArgs...)
			p, err := startSumdbEnv(t, faultEnv, args...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.lookup(mods[0].Path, mods[0].Version); err != nil {
				t.Fatal(err)
			}

			wants := []string{dir, "another sumdb", fmt.Sprintf("pid %d", p.cmd.Process.Pid)}
			p2, err := startSumdbEnv(t, faultEnv, args...)
			if err == nil {
				p2.stop()
				t.Fatalf("a second sumdb serve on %s started; want a refusal", dir)
			}
			lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
			line := lines[len(lines)-1]
			if !strings.Contains(lines[0], "exit status 1") || !strings.HasPrefix(line, "sumdb: ") {
				t.Fatalf("a second sumdb serve on %s: %v; want exit status 1 and \"sumdb: <why>\"", dir, err)
			}
			for _, want := range wants {
				if !strings.Contains(line, want) {
					t.Errorf("second serve: error line %q does not say %q", line, want)
				}
			}
			t.Logf("second serve: %s", line)

			out := filepath.Join(t.TempDir(), "log.export")
			if status, line := runSumdb(t, append([]string{"export", "--out", out}, storeArgs...)...); status != 0 {
				t.Fatalf("export while serve runs: exit status %d: %s", status, line)
			}
			status, line := runSumdb(t, append(append([]string{"import"}, storeArgs...), out)...)
			if status != 1 {
				t.Fatalf("import into the data directory of a running serve: exit status %d, last line %q; want 1", status, line)
			}
			for _, want := range wants {
				if !strings.Contains(line, want) {
					t.Errorf("import: error line %q does not say %q", line, want)
				}
			}

			// Removing sumdb.lock, as operators remove stale lock files,
			// lets no one in: it only names the holder.
			if err := os.Remove(filepath.Join(dir, lockFileName)); err != nil {
				t.Fatal(err)
			}
			status, line = runSumdb(t, append(append([]string{"import"}, storeArgs...), out)...)
			if status != 1 || !strings.Contains(line, dir) || !strings.Contains(line, "another sumdb is running there") {
				t.Fatalf("import into the data directory of a running serve, %s removed: exit status %d, last line %q; want 1 and a refusal", lockFileName, status, line)
			}

			p.kill()
			p, err = startSumdbEnv(t, faultEnv, args...)
			if err != nil {
				t.Fatalf("serve after the one before was killed: %v", err)
			}
			if _, err := p.lookup(mods[1].Path, mods[1].Version); err != nil {
				t.Fatal(err)
			}
			p.stop()
		})
	}
}
