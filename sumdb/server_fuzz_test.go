package sumdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modver"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// newFuzzServer returns a server on a new SQLite log holding the records
// of the module versions logged ("path@version"), whose upstream knows the
// versions upstream and no other; the records are those of synthText.
func newFuzzServer(f *testing.F, logged []string, upstream ...string) (*Server, *tlog.Log) {
	l, _, _ := openLog(f, openSQLite(f), tlog.Config{RefreshInterval: -1})
	for _, m := range logged {
		path, version, _ := strings.Cut(m, "@")
		if _, _, err := l.Append(f.Context(), path, version, synthText(path, version)); err != nil {
			f.Fatal(err)
		}
	}
	fetcher := fetcherFunc(func(ctx context.Context, path, version string) ([]byte, error) {
		if slices.Contains(upstream, path+"@"+version) {
			return synthText(path, version), nil
		}
		return nil, fmt.Errorf("%w: %s@%s: unknown revision", fetch.ErrNotFound, path, version)
	})
	s, err := NewServer(ServerConfig{Log: l, Fetcher: fetcher})
	if err != nil {
		f.Fatal(err)
	}
	return s, l
}

// FuzzServeHTTP sends arbitrary requests to a server on a small log whose
// upstream knows one module version more than the log. The server must never
// fail internally, and must answer 200 only for the head, the logged (or
// loggable) module versions and the tiles the tree reaches.
func FuzzServeHTTP(f *testing.F) {
	logged := []string{"example.com/log/m0@v1.0.0", "example.com/log/m1@v1.0.0", "example.com/log/m2@v1.0.0"}
	const upstream = "example.com/Fuzz@v1.0.0"
	s, l := newFuzzServer(f, logged, upstream)
	known := map[string]bool{upstream: true}
	for _, m := range logged {
		known[m] = true
	}

	for _, seed := range []struct{ method, path string }{
		{"GET", "/latest"},
		{"HEAD", "/latest"},
		{"POST", "/latest"},
		{"GET", "/lookup/example.com/!fuzz@v1.0.0"},
		{"GET", "/lookup/example.com/log/m1@v1.0.0"},
		{"GET", "/lookup/example.com/log/m1@v1.0"},
		{"GET", "/lookup/example.com/Fuzz@v1.0.0"},
		{"GET", "/lookup/example.com/nope@v1.0.0"},
		{"GET", "/lookup/example.com/m/v2@v2.0.0+incompatible"},
		{"GET", "/lookup/example.com/m\x00@v1.0.0"},
		{"GET", "/lookup/example.com/m"},
		{"GET", "/tile/8/0/000.p/3"},
		{"GET", "/tile/8/0/000.p/1"},
		{"GET", "/tile/8/0/000.p/5"},
		{"GET", "/tile/8/data/000.p/2"},
		{"GET", "/tile/8/1/000.p/1"},
		{"GET", "/tile/8/0/000"},
		{"GET", "/tile/8/0/x001/000"},
		{"GET", "/tile/8/0/1"},
		{"GET", "/tile/9/0/000"},
		{"GET", "/tile/8/0/000.p/256"},
		{"GET", "/"},
		{"GET", ""},
	} {
		f.Add(seed.method, seed.path)
	}

	f.Fuzz(func(t *testing.T, method, path string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Method = method
		r.URL.Path = path
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		code, body := w.Code, w.Body.Bytes()
		switch code {
		case 200, 400, 404, 405, 502, 503:
		default:
			t.Fatalf("%s %q = %d %q", method, path, code, body)
		}
		if (method == "GET" || method == "HEAD") == (code == 405) {
			t.Fatalf("%s %q = %d %q", method, path, code, body)
		}
		if code != 200 {
			if msg := checkErrorBody(w.Header(), body); msg != "" {
				t.Fatalf("%s %q = %d %q: %s", method, path, code, body, msg)
			}
			return
		}
		size := l.Head().Size
		switch {
		case path == "/latest":
			if !bytes.Equal(body, l.Head().Note) {
				t.Fatalf("GET /latest = %q, want the head %q", body, l.Head().Note)
			}
		case strings.HasPrefix(path, "/lookup/"):
			p, v, err := ParseLookup(strings.TrimPrefix(path, "/lookup/"))
			if err != nil || !known[p+"@"+v] {
				t.Fatalf("GET %q = 200 for a module version that is not in the log (%v)", path, err)
			}
			// Only the canonical URL of a module version answers.
			ep, _ := module.EscapePath(p)
			ev, _ := module.EscapeVersion(v)
			if "/lookup/"+ep+"@"+ev != path {
				t.Fatalf("GET %q = 200, but the canonical URL is /lookup/%s@%s", path, ep, ev)
			}
			id, text, rest, err := xtlog.ParseRecord(body)
			if err != nil || id < 0 || id >= size || !bytes.Equal(text, synthText(p, v)) || len(rest) == 0 {
				t.Fatalf("GET %q = %q: record %d %q, %v", path, body, id, text, err)
			}
		case strings.HasPrefix(path, "/tile/"):
			tile, err := xtlog.ParseTilePath(path[1:])
			if err != nil || !inTree(tile, size) {
				t.Fatalf("GET %q = 200 for a tile beyond the tree of size %d", path, size)
			}
			if tile.L >= 0 && len(body) != tile.W*xtlog.HashSize {
				t.Fatalf("GET %q: %d bytes, want %d", path, len(body), tile.W*xtlog.HashSize)
			}
			if tile.L == -1 && bytes.Count(body, []byte("\n\n")) != tile.W {
				t.Fatalf("GET %q = %q: want %d records", path, body, tile.W)
			}
		default:
			t.Fatalf("GET %q = 200 %q", path, body)
		}
	})
}

// FuzzParseTilePath checks that parseTilePath admits exactly the canonical
// paths of tiles of height 8, and that inTree agrees with the tile math.
func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{
		"tile/8/0/000", "tile/8/0/000.p/1", "tile/8/0/000.p/255", "tile/8/data/x001/234.p/7",
		"tile/8/7/000.p/64", "tile/8/0/x018/x014/x398/x509/x481/983", "tile/8/0/001", "tile/8/0/1",
		"tile/8/0/0001", "tile/8/0/000.p/256", "tile/8/0/000.p/0", "tile/8/-1/000", "tile/9/0/000",
		"tile/8/0/x999/x999/x999/x999/x999/x999/999", "tile/8/2147483648/000", "tile/8/0/000.p/01",
	} {
		f.Add(s, int64(70000))
	}
	f.Fuzz(func(t *testing.T, path string, size int64) {
		tile, err := parseTilePath(path)
		// The same verdict as x/mod's parser, at height 8.
		ref, rerr := xtlog.ParseTilePath(path)
		if rerr == nil && ref.H != 8 {
			rerr = errors.New("height")
		}
		if (err == nil) != (rerr == nil) || err == nil && tile != ref {
			t.Fatalf("parseTilePath(%q) = %+v, %v; xtlog.ParseTilePath: %+v, %v", path, tile, err, ref, rerr)
		}
		if err != nil {
			// The same short message whatever the path: a hostile path is
			// never repeated to the client.
			if _, want := parseTilePath(""); err.Error() != want.Error() {
				t.Fatalf("parseTilePath(%q) = %v, want %v", path, err, want)
			}
			return
		}
		if tile.H != 8 || tile.L < -1 || tile.N < 0 || tile.W < 1 || tile.W > 256 {
			t.Fatalf("parseTilePath(%q) = %+v, out of range", path, tile)
		}
		if tile.Path() != path {
			t.Fatalf("parseTilePath(%q) = %+v, whose path is %q", path, tile, tile.Path())
		}
		again, err := parseTilePath(tile.Path())
		if err != nil || again != tile {
			t.Fatalf("parseTilePath(%q) = %+v, %v; want %+v", tile.Path(), again, err, tile)
		}
		if size < 0 {
			return
		}
		// A tile is in the tree when the tree has all the hashes it holds
		// at its level (a data tile: those of its level-0 tile).
		level := max(tile.L, 0)
		want := false
		if level < 8 && tile.N <= (math.MaxInt64-256)/256 { // else N*256+W > any size
			want = tile.N*256+int64(tile.W) <= size>>(8*uint(level))
		}
		if got := inTree(tile, size); got != want {
			t.Fatalf("inTree(%s, %d) = %v, want %v", path, size, got, want)
		}
	})
}

// FuzzLookup sends lookups of arbitrary module versions to a server whose
// upstream has one: the answer must be 200 exactly for it and for the
// logged versions, 400 exactly for what ParseLookup refuses, 404 else, and
// the log must grow only by that one version.
func FuzzLookup(f *testing.F) {
	inLog := []string{"example.com/log@v1.0.0", "example.com/Log@v2.0.0+incompatible"}
	const upstream = "golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64"
	s, l := newFuzzServer(f, inLog, upstream)
	logged := map[string]bool{}
	for _, m := range inLog {
		logged[m] = true
	}
	for _, seed := range modver.Examples() {
		f.Add(seed)
	}
	f.Add("example.com/log@v1.0.0")
	f.Add("example.com/!log@v2.0.0+incompatible")
	f.Add(upstream)

	f.Fuzz(func(t *testing.T, escaped string) {
		size := l.Head().Size
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = "/lookup/" + escaped
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		code, body := w.Code, w.Body.Bytes()
		path, version, perr := ParseLookup(escaped)
		key := path + "@" + version
		switch {
		case perr != nil:
			if code != 400 {
				t.Fatalf("lookup %q = %d %q, want 400 (%v)", escaped, code, body, perr)
			}
		case logged[key] || key == upstream:
			if code != 200 {
				t.Fatalf("lookup %q = %d %q, want 200", escaped, code, body)
			}
			id, text, rest, err := xtlog.ParseRecord(body)
			if err != nil || id < 0 || id >= l.Head().Size || !bytes.Equal(text, synthText(path, version)) || len(rest) == 0 {
				t.Fatalf("lookup %q = %q: record %d %q, %v", escaped, body, id, text, err)
			}
		default:
			if code != 404 {
				t.Fatalf("lookup %q = %d %q, want 404", escaped, code, body)
			}
		}
		if code != 200 {
			if msg := checkErrorBody(w.Header(), body); msg != "" {
				t.Fatalf("lookup %q = %d %q: %s", escaped, code, body, msg)
			}
		}
		if grew := l.Head().Size - size; grew != 0 && !(grew == 1 && key == upstream && size == 2) {
			t.Fatalf("lookup %q: the tree grew from %d to %d", escaped, size, l.Head().Size)
		}
	})
}

// FuzzCheckRecordText checks that checkRecordText admits only the two
// go.sum lines of the module version, which make a valid record.
func FuzzCheckRecordText(f *testing.F) {
	h := "h1:" + strings.Repeat("A", 43) + "="
	for _, s := range []struct{ path, version, text string }{
		{"example.com/m", "v1.0.0", "example.com/m v1.0.0 " + h + "\nexample.com/m v1.0.0/go.mod " + h + "\n"},
		{"example.com/m", "v1.0.0", "example.com/m v1.0.0 " + h + "\nexample.com/m v1.0.0/go.mod " + h},
		{"example.com/m", "v1.0.0", "example.com/m v1.0.0 " + h + "\n"},
		{"example.com/m", "v1.0.0", "example.com/n v1.0.0 " + h + "\nexample.com/n v1.0.0/go.mod " + h + "\n"},
		{"example.com/m", "v1.0.0", ""},
	} {
		f.Add(s.path, s.version, []byte(s.text))
	}
	f.Fuzz(func(t *testing.T, path, version string, text []byte) {
		if err := checkRecordText(path, version, text); err != nil {
			return
		}
		lines := strings.Split(string(text), "\n")
		if len(lines) != 3 || lines[2] != "" {
			t.Fatalf("checkRecordText(%q, %q, %q) = nil, want two lines", path, version, text)
		}
		for i, suffix := range []string{"", "/go.mod"} {
			f := strings.Split(lines[i], " ")
			if len(f) != 3 || f[0] != path || f[1] != version+suffix || !strings.HasPrefix(f[2], "h1:") {
				t.Fatalf("checkRecordText(%q, %q, %q) = nil, but line %d is %q", path, version, text, i+1, lines[i])
			}
		}
		if _, err := xtlog.FormatRecord(0, text); err != nil {
			t.Fatalf("checkRecordText(%q, %q, %q) = nil, but FormatRecord: %v", path, version, text, err)
		}
	})
}
