package sumdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// FuzzServeHTTP sends arbitrary requests to a server on a small log whose
// upstream knows one module version more than the log. The server must never
// fail internally, and must answer 200 only for the head, the logged (or
// loggable) module versions and the tiles the tree reaches.
func FuzzServeHTTP(f *testing.F) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(f.TempDir(), "sumdb.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	l, err := tlog.Open(ctx, st, tlog.Config{Signer: signer, Verifier: verifier, RefreshInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()

	known := map[string]bool{"example.com/Fuzz@v1.0.0": true} // in the upstream
	for i := range 3 {
		path := fmt.Sprintf("example.com/log/m%d", i)
		if _, _, err := l.Append(ctx, path, "v1.0.0", synthText(path, "v1.0.0")); err != nil {
			f.Fatal(err)
		}
		known[path+"@v1.0.0"] = true
	}
	fetcher := fetcherFunc(func(ctx context.Context, path, version string) ([]byte, error) {
		if path == "example.com/Fuzz" && version == "v1.0.0" {
			return synthText(path, version), nil
		}
		return nil, fmt.Errorf("%w: %s@%s: unknown revision", ErrNotFound, path, version)
	})
	s, err := NewServer(ServerConfig{Log: l, Fetcher: fetcher})
	if err != nil {
		f.Fatal(err)
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
