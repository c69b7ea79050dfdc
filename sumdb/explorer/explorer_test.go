package explorer

import (
	"context"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/cosigntest"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

func TestHome(t *testing.T) {
	ev := newEnv(t, Config{}, modules("org", 120))

	resp, body := ev.get(t, "/", "text/html")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %s: %s", resp.Status, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /: Cache-Control = %q, want no-cache", cc)
	}
	head := ev.db.Log.Head()
	for _, want := range []string{
		`<html lang="en">`, `name="viewport"`, `<label for="q">Module path or prefix</label>`,
		"<h1>" + sumdbtest.KeyName + "</h1>", htmlText(ev.db.Key.VKey), "120 records",
		strings.SplitN(string(head.Note), "\n", 2)[0], `href="/record/119"`, `href="/?before=70"`,
		"No witness has cosigned it.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}

	var p homePage
	ev.getJSON(t, "/", http.StatusOK, &p)
	if p.LogName != sumdbtest.KeyName || p.VKey != ev.db.Key.VKey || p.TreeSize != 120 || p.Checkpoint != string(head.Note) || len(p.Cosigners) != 0 {
		t.Errorf("GET / (JSON) = name %q, vkey %q, size %d, checkpoint %q, cosigners %q; want %q, %q, 120, %q, none",
			p.LogName, p.VKey, p.TreeSize, p.Checkpoint, p.Cosigners, sumdbtest.KeyName, ev.db.Key.VKey, head.Note)
	}

	// The pages, followed by their next links, list every record once,
	// newest first, each with its time.
	var ids []int64
	next := "/"
	for pages := 0; next != ""; pages++ {
		if pages == 3 {
			t.Fatalf("GET /: more than 3 pages of 50 for 120 records")
		}
		var p homePage
		ev.getJSON(t, next, http.StatusOK, &p)
		for _, r := range p.Records {
			if want := baseTime.Add(time.Duration(r.ID) * time.Minute); !r.Time.Equal(want) {
				t.Errorf("GET %s: record %d time %v, want %v", next, r.ID, r.Time, want)
			}
			ids = append(ids, r.ID)
		}
		next = p.Next
	}
	if len(ids) != 120 || ids[0] != 119 || !slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }) || slices.Compact(slices.Clone(ids))[119] != 0 {
		t.Errorf("GET / pages = ids %v, want 119 down to 0, once each", ids)
	}

	// ?limit= caps the page; ?format=json is the twin too.
	resp, body = ev.get(t, "/?limit=1000&format=json", "text/html")
	if n := strings.Count(body, `"url": "/record/`); resp.StatusCode != http.StatusOK || n != MaxPage {
		t.Errorf("GET /?limit=1000&format=json = %s with %d records, want 200 with %d", resp.Status, n, MaxPage)
	}
}

func TestHomeEmpty(t *testing.T) {
	ev := newEnv(t, Config{}, nil)
	resp, body := ev.get(t, "/", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "The log is empty") {
		t.Errorf("GET / of an empty log = %s: %s, want 200 saying the log is empty", resp.Status, body)
	}
}

func TestHomeCosigned(t *testing.T) {
	var ev *env
	w := cosigntest.New(t, "witness.example")
	ev = newEnv(t, Config{Latest: func(ctx context.Context) ([]byte, error) {
		return cosigntest.Cosign(t, ev.db.Log.Head().Note, ev.db.Key.Verifier, w), nil
	}}, modules("org", 3))
	var p homePage
	ev.getJSON(t, "/", http.StatusOK, &p)
	if !slices.Equal(p.Cosigners, []string{"witness.example"}) || !strings.Contains(p.Checkpoint, "\n— witness.example ") {
		t.Errorf("GET / (JSON) = cosigners %q, checkpoint %q; want the witness's", p.Cosigners, p.Checkpoint)
	}
	if _, body := ev.get(t, "/", ""); !strings.Contains(body, "Cosigned by: witness.example.") {
		t.Errorf("GET / does not name the witness")
	}
	// The record's proof is against the cosigned head.
	var r recordPage
	ev.getJSON(t, "/record/1", http.StatusOK, &r)
	if !strings.Contains(r.Proof.Checkpoint, "— witness.example ") {
		t.Errorf("GET /record/1: proof checkpoint %q, want the cosigned head", r.Proof.Checkpoint)
	}
}

func TestSearch(t *testing.T) {
	paths := append(modules("org", 60), "example.com/other/a@v1.0.0", "example.com/org/ma@v1.1.0", "example.com/org/ma@v1.2.0")
	ev := newEnv(t, Config{}, paths)

	resp, body := ev.get(t, "/search?q=example.com/org/ma&exact=1", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /search = %s: %s", resp.Status, body)
	}
	zip, gomod := hashes(sumdbtest.SynthText("example.com/org/ma", "v1.2.0"))
	for _, want := range []string{"Versions of example.com/org/ma", "v1.1.0", "v1.2.0", htmlText(zip), htmlText(gomod), `href="/record/62"`, "2026-03-01 13:02:00 UTC",
		`href="/feed?exact=1&amp;module=example.com%2Forg%2Fma"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /search?q=example.com/org/ma&exact=1 lacks %q", want)
		}
	}

	tests := []struct {
		query string
		want  []string // path@version of each record, over all pages
	}{
		{"q=example.com/org/ma&exact=1", []string{"example.com/org/ma@v1.0.0", "example.com/org/ma@v1.1.0", "example.com/org/ma@v1.2.0"}},
		{"q=example.com/other/", []string{"example.com/other/a@v1.0.0"}},
		{"q=example.com/org/", append(modules("org", 60), "example.com/org/ma@v1.1.0", "example.com/org/ma@v1.2.0")},
		{"q=example.com/none/", nil},
		{"q=example.com/org/&limit=7", append(modules("org", 60), "example.com/org/ma@v1.1.0", "example.com/org/ma@v1.2.0")},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got []string
			next := "/search?" + tt.query
			for pages := 0; next != ""; pages++ {
				if pages > 10 {
					t.Fatalf("GET /search?%s: more than 10 pages", tt.query)
				}
				var p searchPage
				ev.getJSON(t, next, http.StatusOK, &p)
				for _, r := range p.Records {
					text := sumdbtest.SynthText(r.Path, r.Version)
					if zip, gomod := hashes(text); r.Hash != zip || r.GoModHash != gomod {
						t.Errorf("GET %s: %s@%s hashes %s %s, want %s %s", next, r.Path, r.Version, r.Hash, r.GoModHash, zip, gomod)
					}
					got = append(got, r.Path+"@"+r.Version)
				}
				next = p.Next
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("GET /search?%s = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	ev := newEnv(t, Config{}, modules("org", 300), 290) // 290 to 299 not indexed yet
	for _, id := range []int64{0, 5, 255, 256, 290, 299} {
		t.Run(fmt.Sprint(id), func(t *testing.T) {
			var p recordPage
			ev.getJSON(t, fmt.Sprintf("/record/%d", id), http.StatusOK, &p)
			pv := modules("org", 300)[id]
			path, version, _ := strings.Cut(pv, "@")
			text := sumdbtest.SynthText(path, version)
			if p.ID != id || p.Path != path || p.Version != version || p.GoSum != string(text) {
				t.Errorf("GET /record/%d = %d %s %s %q, want %d %s %s %q", id, p.ID, p.Path, p.Version, p.GoSum, id, path, version, text)
			}
			if indexed := id < 290; indexed == p.Time.IsZero() { // else read from its data tile
				t.Errorf("GET /record/%d has time %v, want one only if indexed", id, p.Time)
			}

			// The downloaded proof verifies against the log's key.
			resp, body := ev.get(t, p.ProofURL, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-cache" {
				t.Fatalf("GET %s = %s, Cache-Control %q: %s", p.ProofURL, resp.Status, resp.Header.Get("Cache-Control"), body)
			}
			if err := checkProof([]byte(body), ev.db.Key.Verifier, id, text); err != nil {
				t.Errorf("GET %s: %v\n%s", p.ProofURL, err, body)
			}
			if !strings.HasPrefix(body, fmt.Sprintf("c2sp.org/tlog-proof@v1\nindex %d\n", id)) || !strings.HasSuffix(body, "\n\n"+string(ev.db.Log.Head().Note)) {
				t.Errorf("GET %s = %q, want the header, the index, the hashes and the head's note", p.ProofURL, body)
			}

			// Every tile link is served, and the data tile holds the record.
			if len(p.Tiles) < 2 || !strings.HasPrefix(p.Tiles[0].URL, "/tile/8/data/") || !strings.HasPrefix(p.Tiles[1].URL, "/tile/8/0/") {
				t.Fatalf("GET /record/%d: tiles %v, want the data tile and the level-0 hash tile first", id, p.Tiles)
			}
			for _, tl := range p.Tiles {
				resp, tile := ev.get(t, tl.URL, "")
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s = %s: %s", tl.URL, resp.Status, tile)
				}
				if tl.Name == "data tile" && !strings.Contains(tile, string(text)) {
					t.Errorf("data tile %s does not hold record %d", tl.URL, id)
				}
			}
		})
	}

	// A record in a complete tile has a hash in the level-1 tile; one in
	// the partial tile at the end of the tree not yet.
	for path, wants := range map[string][]string{
		"/record/256": {`<pre class="gosum"`, "example.com/org/mwxxxxxxxxx v1.0.0 h1:", `href="/record/256/proof"`, `href="/tile/8/data/001.p/44"`, `href="/tile/8/0/001.p/44"`},
		"/record/5":   {`href="/tile/8/data/000"`, `href="/tile/8/0/000"`, `href="/tile/8/1/000.p/1"`},
	} {
		resp, body := ev.get(t, path, "")
		for _, want := range wants {
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("GET %s = %s, lacks %q", path, resp.Status, want)
			}
		}
		if path == "/record/256" && strings.Contains(body, "/tile/8/1/") {
			t.Errorf("GET %s links a level-1 tile, which does not hold the record's hash yet", path)
		}
	}
}

// checkProof checks a proof in the c2sp.org/tlog-proof format of record id
// with text against the log whose verifier is v.
func checkProof(body []byte, v note.Verifier, id int64, text []byte) error {
	var p proof.TLogProof
	if err := p.Unmarshal(body); err != nil {
		return err
	}
	n, err := note.Open(p.Checkpoint, note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("open checkpoint: %w", err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return err
	}
	if p.Index != uint64(id) {
		return fmt.Errorf("proof of index %d, want %d", p.Index, id)
	}
	var rp xtlog.RecordProof
	for _, h := range p.Hashes {
		rp = append(rp, h)
	}
	return xtlog.CheckRecord(rp, tree.N, tree.Hash, id, xtlog.RecordHash(text))
}

func TestBadInput(t *testing.T) {
	ev := newEnv(t, Config{}, modules("org", 3))
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/search", http.StatusBadRequest},
		{"GET", "/search?q=", http.StatusBadRequest},
		{"GET", "/search?q=a%20b", http.StatusBadRequest},
		{"GET", "/search?q=a%00b", http.StatusBadRequest},
		{"GET", "/search?q=%C3%A9", http.StatusBadRequest},
		{"GET", "/search?q=" + strings.Repeat("a", MaxQuery+1), http.StatusBadRequest},
		{"GET", "/search?q=" + strings.Repeat("a", MaxQuery), http.StatusOK},
		{"GET", "/search?q=example.com/org/&exact=1", http.StatusBadRequest}, // not a module path
		{"GET", "/search?q=example.com/org/&after=x", http.StatusBadRequest},
		{"GET", "/search?q=example.com/org/&after=-1", http.StatusBadRequest},
		{"GET", "/search?q=example.com/org/&limit=0", http.StatusBadRequest},
		{"GET", "/?before=x", http.StatusBadRequest},
		{"GET", "/?before=01", http.StatusBadRequest},
		{"GET", "/?before=99999999999999999999", http.StatusBadRequest},
		{"GET", "/?limit=-5", http.StatusBadRequest},
		{"GET", "/record/abc", http.StatusBadRequest},
		{"GET", "/record/01", http.StatusBadRequest},
		{"GET", "/record/", http.StatusBadRequest},
		{"GET", "/record/3", http.StatusNotFound},
		{"GET", "/record/99999", http.StatusNotFound},
		{"GET", "/record/1/x", http.StatusNotFound},
		{"GET", "/static/other.css", http.StatusNotFound},
		{"GET", "/feed", http.StatusBadRequest},
		{"GET", "/feed?module=a%20b", http.StatusBadRequest},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"DELETE", "/record/1", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, accept := range []string{"text/html", "application/json"} {
				req, err := http.NewRequestWithContext(t.Context(), tt.method, ev.srv.URL+tt.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Accept", accept)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("%s %s (Accept %s) = %s, want %d", tt.method, tt.path, accept, resp.Status, tt.want)
				}
			}
		})
	}

	// The JSON twin of an error says what is wrong.
	var f failure
	ev.getJSON(t, "/search?q=a%20b", http.StatusBadRequest, &f)
	if f.Status != http.StatusBadRequest || !strings.Contains(f.Error, "space") {
		t.Errorf("GET /search?q=a%%20b (JSON) = %+v, want 400 naming the space", f)
	}
	// The HTML page escapes what it shows back.
	_, body := ev.get(t, "/search?q="+url.QueryEscape("<script>"), "")
	if strings.Contains(body, "<script>") {
		t.Errorf("GET /search?q=<script> shows the query unescaped")
	}
}

func TestNew(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	other := sumdbtest.NewKey(t, sumdbtest.KeyName)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey}, true},
		{"base URL", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey, BaseURL: "https://sum.example.com/"}, true},
		{"no log", Config{Index: &memIndex{}, VKey: db.Key.VKey}, false},
		{"no index", Config{Log: db.Log, VKey: db.Key.VKey}, false},
		{"no key", Config{Log: db.Log, Index: &memIndex{}}, false},
		{"another key", Config{Log: db.Log, Index: &memIndex{}, VKey: other.VKey}, false},
		{"base URL with path", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey, BaseURL: "https://sum.example.com/x"}, false},
		{"base URL with user", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey, BaseURL: "https://u:p@sum.example.com"}, false},
		{"base URL not http", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey, BaseURL: "ftp://sum.example.com"}, false},
		{"negative timeout", Config{Log: db.Log, Index: &memIndex{}, VKey: db.Key.VKey, Timeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("New(%s) = %v, want ok %v", tt.name, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("New(%s) = %v, shows the URL's user info", tt.name, err)
			}
		})
	}
}

func TestIsExplorerPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/search": true, "/feed": true, "/record/1": true, "/record/1/proof": true, "/static/style.css": true,
		"/latest": false, "/lookup/example.com/a@v1.0.0": false, "/tile/8/0/000": false, "/tile/8/data/000": false,
		"/healthz": false, "/readyz": false, "/metrics": false, "/search/": false, "": false,
	} {
		if got := IsExplorerPath(p); got != want {
			t.Errorf("IsExplorerPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestStatic(t *testing.T) {
	ev := newEnv(t, Config{}, nil)
	resp, body := ev.get(t, "/static/style.css", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(body, "body {") {
		t.Errorf("GET /static/style.css = %s, %q: %.40q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

func TestHashes(t *testing.T) {
	text := sumdbtest.SynthText("example.com/a", "v1.0.0")
	zip, gomod := hashes(text)
	lines := strings.Split(string(text), "\n")
	if want := strings.Fields(lines[0])[2]; zip != want {
		t.Errorf("hashes(%q) zip = %s, want %s", text, zip, want)
	}
	if want := strings.Fields(lines[1])[2]; gomod != want {
		t.Errorf("hashes(%q) go.mod = %s, want %s", text, gomod, want)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(zip, "h1:")); err != nil || zip == gomod {
		t.Errorf("hashes(%q) = %s, %s: want two distinct h1: hashes", text, zip, gomod)
	}
}

// htmlText returns s as html/template writes it in a page's text.
func htmlText(s string) string {
	return strings.ReplaceAll(template.HTMLEscapeString(s), "+", "&#43;")
}
