package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// TestServeVerified checks that the mirror's answers are the upstream's,
// byte for byte, and that what it cached is still served, with its newest
// verified head, once the upstream is gone.
func TestServeVerified(t *testing.T) {
	up := startUpstream(t, 300)
	e := newEnv(t, up)
	paths := []string{
		"/latest",
		"/lookup/example.com/a/m5@v1.0.0",
		"/lookup/example.com/a/m299@v1.0.0",
		"/tile/8/0/000",
		"/tile/8/0/000.p/7",
		"/tile/8/0/001.p/44",
		"/tile/8/1/000.p/1",
		"/tile/8/data/000",
		"/tile/8/data/001.p/44",
		"/tile/8/data/001.p/3",
	}
	want := make(map[string][]byte)
	for _, p := range paths {
		want[p] = mustGet(t, up.URL+p)
		code, got, cc := get(t, e.srv.URL+p)
		if code != http.StatusOK || !bytes.Equal(got, want[p]) {
			t.Errorf("GET %s = %d %q, want 200 and the upstream's %q", p, code, got, want[p])
		}
		wantCC := cacheImmutable
		switch {
		case p == "/latest":
			wantCC = cacheLatest
		case strings.HasPrefix(p, "/lookup/"):
			wantCC = cacheLookup
		}
		if cc != wantCC {
			t.Errorf("GET %s: Cache-Control %q, want %q", p, cc, wantCC)
		}
	}
	if id, text, err := e.st.ReadMirrorRecord(t.Context(), e.m.Name(), "example.com/a/m5", "v1.0.0"); err != nil || string(text) != string(sumdbtest.SynthText("example.com/a/m5", "v1.0.0")) {
		t.Errorf("stored record of m5 = %d, %q, %v; want its text", id, text, err)
	}
	if st := e.m.Status(); st.Size != 300 || st.Fork != "" || st.Err != nil || !st.Verified.Equal(e.clock.Now()) {
		t.Errorf("Status() = %+v, want size 300, verified now, no fork or error", st)
	}
	e.clock.Advance(90 * time.Second)
	if got := gauge(t, e, "sumdb_mirror_head_age_seconds"); got != 90 {
		t.Errorf("sumdb_mirror_head_age_seconds = %v, want 90", got)
	}
	if got := gauge(t, e, "sumdb_mirror_head_size"); got != 300 {
		t.Errorf("sumdb_mirror_head_size = %v, want 300", got)
	}

	up.Stop()
	for _, p := range paths {
		code, got, _ := get(t, e.srv.URL+p)
		if code != http.StatusOK || !bytes.Equal(got, want[p]) {
			t.Errorf("upstream stopped: GET %s = %d %q, want 200 and the cached %q", p, code, got, want[p])
		}
	}
	if got := testutil.ToFloat64(e.m.metrics.requests.WithLabelValues("latest", sourceStale)); got != 1 {
		t.Errorf("requests{latest,stale} = %v, want 1", got)
	}
	if st := e.m.Status(); !errors.Is(st.Err, ErrUnavailable) {
		t.Errorf("Status().Err = %v, want the upstream unavailable", st.Err)
	}
	for _, p := range []string{"/lookup/example.com/a/m100@v1.0.0", "/tile/8/data/002"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if p == "/tile/8/data/002" {
			// Beyond the verified tree of 300 records.
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("upstream stopped: GET %s = %d, want 404", p, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("upstream stopped: GET %s = %d, Retry-After %q; want 503 with Retry-After", p, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}

// gauge returns the value of the gauge name of e's mirror.
func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// flipHash changes the first character of the first h1: hash of body
// to another base64 character: the text stays well formed.
func flipHash(body []byte) []byte {
	i := bytes.Index(body, []byte("h1:")) + 3
	if body[i] == 'A' {
		body[i] = 'B'
	} else {
		body[i] = 'A'
	}
	return body
}

// onPaths returns a tamper function that alters with f the answers to
// the paths that begin with prefix.
func onPaths(prefix string, f func(body []byte) []byte) func(t *testing.T, path string, body []byte) []byte {
	return func(t *testing.T, path string, body []byte) []byte {
		if strings.HasPrefix(path, prefix) {
			return f(body)
		}
		return body
	}
}

// TestRefuseTampering checks that upstream data that fails verification
// is neither served nor stored, and is logged with its reason; and that
// the same request succeeds once the upstream answers honestly.
func TestRefuseTampering(t *testing.T) {
	other := sumdbtest.NewKey(t, sumdbtest.KeyName)
	const mod = "example.com/a/m5"
	for _, tt := range []struct {
		name   string
		tamper func(t *testing.T, path string, body []byte) []byte
		path   string // requested of the mirror
		reason string
	}{
		{
			name: "hash tile",
			tamper: onPaths("/tile/8/0/", func(body []byte) []byte {
				body[len(body)-1] ^= 1
				return body
			}),
			path:   "/lookup/" + mod + "@v1.0.0",
			reason: reasonTile,
		},
		{
			name:   "record",
			tamper: onPaths("/lookup/", flipHash),
			path:   "/lookup/" + mod + "@v1.0.0",
			reason: reasonRecord,
		},
		{
			name:   "data tile",
			tamper: onPaths("/tile/8/data/", flipHash),
			path:   "/tile/8/data/000",
			reason: reasonRecord,
		},
		{
			name: "head of another key",
			tamper: func(t *testing.T, path string, body []byte) []byte {
				if path == "/latest" {
					tree, err := xtlog.ParseTree(body[:bytes.Index(body, []byte("\n\n"))+1])
					if err != nil {
						t.Error(err)
					}
					return other.SignTree(t, tree.N, tree.Hash)
				}
				return body
			},
			path:   "/latest",
			reason: reasonSignature,
		},
		{
			name: "lookup head of another key",
			tamper: func(t *testing.T, path string, body []byte) []byte {
				if strings.HasPrefix(path, "/lookup/") {
					id, text, _, err := xtlog.ParseRecord(body)
					if err != nil {
						t.Error(err)
					}
					rec, _ := xtlog.FormatRecord(id, text)
					return append(rec, other.SignTree(t, 300, xtlog.Hash{1})...)
				}
				return body
			},
			path:   "/lookup/" + mod + "@v1.0.0",
			reason: reasonSignature,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, 300)
			e := newEnv(t, up)
			up.SetTamper(func(path string, body []byte) []byte { return tt.tamper(t, path, body) })
			code, body, cc := get(t, e.srv.URL+tt.path)
			if code != http.StatusBadGateway || cc != cacheNone {
				t.Errorf("tampered GET %s = %d %q (Cache-Control %q), want 502, no-store", tt.path, code, body, cc)
			}
			if got := testutil.ToFloat64(e.m.metrics.upstreamErrors.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("upstream_errors{reason=%s} = %v, want 1", tt.reason, got)
			}
			lines := e.logs.errorLines()
			if len(lines) != 1 || !strings.Contains(lines[0], `db="`+e.m.Name()+`"`) || !strings.Contains(lines[0], `reason="`+tt.reason+`"`) || !strings.Contains(lines[0], "path=") {
				t.Errorf("logged at ERROR %q, want one line with the db, the path and reason %s", lines, tt.reason)
			}
			assertOnlyVerified(t, e, mod, tt.reason == reasonSignature)

			up.SetTamper(nil)
			e.clock.Advance(time.Minute) // past the spacing of upstream /latest requests
			code, body, _ = get(t, e.srv.URL+tt.path)
			if want := mustGet(t, up.URL+tt.path); code != http.StatusOK || !bytes.Equal(body, want) {
				t.Errorf("honest GET %s = %d %q, want 200 and the upstream's %q", tt.path, code, body, want)
			}
		})
	}
}

// assertOnlyVerified fails t if the mirror of e stored the record of mod,
// a data tile, a hash tile that is not the upstream's (for its tree of 300
// records), or, if noHead, a head.
func assertOnlyVerified(t *testing.T, e *env, mod string, noHead bool) {
	t.Helper()
	ctx := t.Context()
	if _, _, err := e.st.ReadMirrorRecord(ctx, e.m.Name(), mod, "v1.0.0"); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("ReadMirrorRecord(%s) = %v, want not found", mod, err)
	}
	for _, index := range []int64{0, 1} {
		if data, err := e.st.ReadMirrorTile(ctx, e.m.Name(), -1, index); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("ReadMirrorTile(-1, %d) = %d bytes, %v; want not found", index, len(data), err)
		}
	}
	assertTilesOf(t, e, e.up.Server)
	if noHead {
		if msg, err := e.st.ReadState(ctx, e.m.latestState()); msg != nil || err != nil {
			t.Errorf("ReadState(%s) = %q, %v; want unset", e.m.latestState(), msg, err)
		}
	}
}

// assertTilesOf fails t if the mirror of e stored a hash tile that is not
// a prefix of the one log serves for its tree of 300 records.
func assertTilesOf(t *testing.T, e *env, log http.Handler) {
	t.Helper()
	for _, tile := range []xtlog.Tile{{H: 8, L: 0, N: 0, W: 256}, {H: 8, L: 0, N: 1, W: 44}, {H: 8, L: 1, N: 0, W: 1}} {
		honest := httptestRecorder(log, "/"+tile.Path()).Body.Bytes()
		stored, err := e.st.ReadMirrorTile(t.Context(), e.m.Name(), tile.L, tile.N)
		if err == nil && !bytes.HasPrefix(honest, stored) {
			t.Errorf("stored tile %s is not the verified tree's", tile.Path())
		}
	}
}

// TestFork checks that a head of another tree under the upstream's key is
// refused, logged with both heads and recorded, and that the mirror goes
// on serving its verified tree, and accepting the heads that extend it.
func TestFork(t *testing.T) {
	for _, tt := range []struct {
		name string
		// fork serves the fork at the upstream's URL.
		fork func(t *testing.T, up *sumdbtest.DB, verified xtlog.Tree)
	}{
		{
			name: "same size, other root",
			fork: func(t *testing.T, up *sumdbtest.DB, verified xtlog.Tree) {
				up.SetHandler(sumdbtest.ClaimedHead(up.Key.SignTree(t, verified.N, xtlog.RecordHash([]byte("another tree\n")))))
			},
		},
		{
			name: "another log under the same key",
			fork: func(t *testing.T, up *sumdbtest.DB, verified xtlog.Tree) {
				other := sumdbtest.MustStart(t, sumdbtest.Options{Key: up.Key})
				other.AppendSynthetic("b", 600)
				up.SetHandler(other.Server)
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, 300)
			e := newEnv(t, up)
			verified := mustGet(t, e.srv.URL+"/latest")
			lookup := mustGet(t, e.srv.URL+"/lookup/example.com/a/m5@v1.0.0")
			tree, err := xtlog.ParseTree(verified[:bytes.Index(verified, []byte("\n\n"))+1])
			if err != nil {
				t.Fatal(err)
			}

			tt.fork(t, up, tree)
			e.clock.Advance(time.Minute)
			if got := mustGet(t, e.srv.URL+"/latest"); !bytes.Equal(got, verified) {
				t.Errorf("GET /latest after the fork = %q, want the verified head %q", got, verified)
			}
			st := e.m.Status()
			if !strings.Contains(st.Fork, "contradicts the verified tree of 300 records") || !errors.Is(st.Err, ErrFork) {
				t.Errorf("Status() = %+v, want the fork", st)
			}
			if got := testutil.ToFloat64(e.m.metrics.fork); got != 1 {
				t.Errorf("sumdb_mirror_fork = %v, want 1", got)
			}
			if msg, err := e.st.ReadState(t.Context(), e.m.forkState()); msg == nil || err != nil {
				t.Errorf("ReadState(%s) = %q, %v; want the forked head", e.m.forkState(), msg, err)
			}
			if msg, _ := e.st.ReadState(t.Context(), e.m.latestState()); !bytes.Equal(msg, verified) {
				t.Errorf("stored head = %q, want the verified %q", msg, verified)
			}
			lines := e.logs.errorLines()
			if len(lines) != 1 || !strings.Contains(lines[0], "forked") || !strings.Contains(lines[0], "verified=") || !strings.Contains(lines[0], "upstream=") {
				t.Errorf("logged at ERROR %q, want the fork with both heads", lines)
			}
			// The verified data is still served; the fork's is not.
			if got := mustGet(t, e.srv.URL+"/lookup/example.com/a/m5@v1.0.0"); !bytes.Equal(got, lookup) {
				t.Errorf("cached lookup after the fork = %q, want %q", got, lookup)
			}
			if code, body, _ := get(t, e.srv.URL+"/lookup/example.com/b/m1@v1.0.0"); code != http.StatusBadGateway {
				t.Errorf("lookup on the fork = %d %q, want 502", code, body)
			}
			assertTilesOf(t, e, up.Server)

			// A new mirror on the store knows of the fork.
			e2 := newEnvOn(t, up, e.st)
			if st := e2.m.Status(); st.Fork == "" || st.Size != 300 || testutil.ToFloat64(e2.m.metrics.fork) != 1 {
				t.Errorf("restarted: Status() = %+v, fork metric %v; want the fork and the verified size", st, testutil.ToFloat64(e2.m.metrics.fork))
			}

			// The honest log grows again: its heads are accepted.
			up.SetHandler(up.Server)
			up.AppendSynthetic("c", 20)
			e.clock.Advance(time.Minute)
			if got, want := mustGet(t, e.srv.URL+"/latest"), up.Latest(); !bytes.Equal(got, want) {
				t.Errorf("GET /latest on the honest log = %q, want %q", got, want)
			}
		})
	}
}

// TestProve checks that after Lookup and Prove, the go command's client
// verifies every record looked up through the mirror with the upstream
// gone; and that Prove is what stores the tiles of records that came to
// the store without them (as records copied from another store do).
func TestProve(t *testing.T) {
	up := startUpstream(t, 100)
	var mods []string
	for _, i := range []int{0, 5, 99} {
		mods = append(mods, fmt.Sprintf("example.com/a/m%d", i))
	}
	e := newEnv(t, up)
	lookupAll := func() []int64 {
		var ids []int64
		for _, mod := range mods {
			id, _, err := e.m.Lookup(t.Context(), mod, "v1.0.0")
			if err != nil {
				t.Fatalf("Lookup(%s) = %v", mod, err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	lookupAll()
	// The tree grows past a full first tile; a later lookup brings the
	// mirror to the new head.
	up.AppendSynthetic("b", 500)
	mods = append(mods, "example.com/b/m400")
	ids := lookupAll()
	if err := e.m.Prove(t.Context(), ids); err != nil {
		t.Fatalf("Prove(%v) = %v", ids, err)
	}

	// Another store gets the records and the head, not the tiles.
	copied := newEnvOn(t, up, copyRecords(t, e, mods))
	up.SetStatus(http.StatusServiceUnavailable)
	for _, mod := range mods {
		if err := goVerify(t, copied, mod, "v1.0.0"); err == nil {
			t.Errorf("records without their tiles, upstream failing: the go client verified %s, want a failure", mod)
		}
	}
	up.SetStatus(0)
	if err := copied.m.Prove(t.Context(), ids); err != nil {
		t.Fatalf("Prove(%v) = %v", ids, err)
	}

	up.Stop()
	for _, env := range []*env{e, copied} {
		for _, mod := range mods {
			if err := goVerify(t, env, mod, "v1.0.0"); err != nil {
				t.Errorf("upstream gone: go client lookup of %s: %v", mod, err)
			}
		}
	}
	if err := e.m.Prove(t.Context(), []int64{1 << 20}); err == nil {
		t.Errorf("Prove of a record beyond the tree = nil, want an error")
	}
}

// copyRecords returns a new store holding the records of mods and the
// newest verified head of e's store, and no tiles.
func copyRecords(t *testing.T, e *env, mods []string) *store.SQLite {
	t.Helper()
	ctx := t.Context()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	head, err := e.st.ReadState(ctx, e.m.latestState())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SwapState(ctx, e.m.latestState(), nil, head); err != nil {
		t.Fatal(err)
	}
	for _, mod := range mods {
		id, text, err := e.st.ReadMirrorRecord(ctx, e.m.Name(), mod, "v1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutMirrorRecord(ctx, e.m.Name(), mod, "v1.0.0", id, text); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestNewHandler checks the routes of /sumdb/<name>/: the own log, each
// mirror (by the longest name, names holding '/'), and 404 without an
// upstream request for any other name.
func TestNewHandler(t *testing.T) {
	upA := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "a.test"})
	upA.AppendSynthetic("a", 3)
	upSub := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "a.test/sub"})
	upSub.AppendSynthetic("a", 7)
	ma, msub := newEnv(t, upA), newEnv(t, upSub)

	var mu sync.Mutex
	var ownPaths []string
	own := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ownPaths = append(ownPaths, r.URL.Path)
		mu.Unlock()
		w.Write([]byte("own " + r.URL.Path))
	})
	h := NewHandler(own, "own.test", ma.m, msub.m)
	for _, tt := range []struct {
		path string
		code int
		body string // a substring of the answer
		own  string // the path own got, if any
	}{
		{"/lookup/example.com/m@v1.0.0", 200, "own /lookup/example.com/m@v1.0.0", "/lookup/example.com/m@v1.0.0"},
		{"/sumdb/own.test/supported", 200, "ok", ""},
		{"/sumdb/own.test/latest", 200, "own /latest", "/latest"},
		{"/sumdb/own.test/tile/8/0/000", 200, "own /tile/8/0/000", "/tile/8/0/000"},
		{"/sumdb/a.test/supported", 200, "ok", ""},
		{"/sumdb/a.test/latest", 200, "go.sum database tree\n3\n", ""},
		{"/sumdb/a.test/sub/supported", 200, "ok", ""},
		{"/sumdb/a.test/sub/latest", 200, "go.sum database tree\n7\n", ""},
		{"/sumdb/a.test/subway/latest", 404, "not found", ""}, // a.test's path /subway/latest
		{"/sumdb/other.test/supported", 404, "not found", ""},
		{"/sumdb/other.test/latest", 404, "not found", ""},
		{"/sumdb/a.tes/latest", 404, "not found", ""},
		{"/sumdb/", 404, "not found", ""},
	} {
		t.Run(tt.path, func(t *testing.T) {
			mu.Lock()
			ownPaths = nil
			mu.Unlock()
			upA.ResetRequests()
			upSub.ResetRequests()
			w := httptestRecorder(h, tt.path)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("GET %s = %d %q, want %d with %q", tt.path, w.Code, w.Body.String(), tt.code, tt.body)
			}
			mu.Lock()
			got := ownPaths
			mu.Unlock()
			if tt.own == "" && len(got) != 0 || tt.own != "" && (len(got) != 1 || got[0] != tt.own) {
				t.Errorf("GET %s: own got %q, want %q", tt.path, got, tt.own)
			}
			if tt.code == http.StatusNotFound {
				if r := append(upA.Requests(), upSub.Requests()...); len(r) != 0 {
					t.Errorf("GET %s: upstream requests %q, want none", tt.path, r)
				}
			}
		})
	}
}

// TestConcurrent checks that concurrent requests of the same path make
// one upstream request of each path that serves them, and are all
// answered correctly.
func TestConcurrent(t *testing.T) {
	up := startUpstream(t, 600)
	e := newEnv(t, up)
	mustGet(t, e.srv.URL+"/latest")
	for _, group := range [][]string{
		{"/tile/8/0/001"},         // and the tiles that prove it: 1/000.p/2, 0/002.p/88
		{"/tile/8/data/001.p/88"}, // and the hash tile 0/001, stored
		{"/lookup/example.com/a/m7@v1.0.0", "/lookup/example.com/a/m300@v1.0.0", "/lookup/example.com/a/m599@v1.0.0"},
	} {
		want := make(map[string][]byte)
		for _, p := range group {
			want[p] = mustGet(t, up.URL+p)
		}
		up.ResetRequests()
		var g sync.WaitGroup
		for range 8 {
			for _, p := range group {
				g.Go(func() {
					resp, err := http.Get(e.srv.URL + p)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					var buf bytes.Buffer
					buf.ReadFrom(resp.Body)
					if resp.StatusCode != http.StatusOK || !bytes.Equal(buf.Bytes(), want[p]) {
						t.Errorf("GET %s = %d %q, want the upstream's %q", p, resp.StatusCode, buf.Bytes(), want[p])
					}
				})
			}
		}
		g.Wait()
		seen := make(map[string]int)
		for _, p := range up.Requests() {
			seen[p]++
		}
		for p, n := range seen {
			if n > 1 || strings.HasPrefix(p, "/lookup/") && want[p] == nil {
				t.Errorf("requests of %q: upstream got %d of %s, want at most one, of what serves them", group, n, p)
			}
		}
		for _, p := range group {
			if seen[p] != 1 {
				t.Errorf("requests of %q: upstream got %d of %s, want 1", group, seen[p], p)
			}
		}
	}
}

// TestLatestSpacing checks that the upstream's /latest is asked at most
// once a second, however many requests the mirror gets.
func TestLatestSpacing(t *testing.T) {
	up := startUpstream(t, 10)
	e := newEnv(t, up)
	for range 5 {
		mustGet(t, e.srv.URL+"/latest")
	}
	if n := countRequests(up, "/latest"); n != 1 {
		t.Errorf("5 requests of /latest in a second: %d upstream requests, want 1", n)
	}
	e.clock.Advance(1500 * time.Millisecond)
	up.AppendSynthetic("b", 5)
	if got, want := mustGet(t, e.srv.URL+"/latest"), up.Latest(); !bytes.Equal(got, want) {
		t.Errorf("GET /latest a second later = %q, want the upstream's new head %q", got, want)
	}
	if n := countRequests(up, "/latest"); n != 2 {
		t.Errorf("a second later: %d upstream requests, want 2", n)
	}
}

// TestMalformed checks that malformed requests are refused without an
// upstream request.
func TestMalformed(t *testing.T) {
	up := startUpstream(t, 10)
	e := newEnv(t, up)
	up.ResetRequests()
	for _, p := range []string{
		"/lookup/example.com/A/m@v1.0.0",
		"/lookup/example.com/m",
		"/lookup/example.com/m@v1.0.0.0",
		"/tile/8/0/0",
		"/tile/8/0/000.p/256",
		"/tile/8/0/x000/001",
		"/tile/4/0/000",
		"/tile/8/data/000.p/0",
		"/other",
	} {
		if code, body, _ := get(t, e.srv.URL+p); code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("GET %s = %d %q, want 400 or 404", p, code, body)
		}
	}
	if r := up.Requests(); len(r) != 0 {
		t.Errorf("upstream requests %q, want none", r)
	}
}
