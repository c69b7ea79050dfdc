package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/modproxy"
	"github.com/sumdb/sumdb/tlog"
)

// A front is the URL an auditor reaches: it passes requests to a handler
// that can be swapped (to serve another log at the same URL), counts them
// by path, and can alter responses.
type front struct {
	url string

	mu      sync.Mutex
	handler http.Handler                          // guarded by mu
	tamper  func(path string, body []byte) []byte // guarded by mu; nil for none
	counts  map[string]int                        // guarded by mu; requests by path
}

func newFront(t testing.TB, h http.Handler) *front {
	f := &front{handler: h, counts: make(map[string]int)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	h, tamper := f.handler, f.tamper
	f.counts[strings.TrimPrefix(r.URL.Path, "/")]++
	f.mu.Unlock()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if tamper != nil && rec.Code == http.StatusOK {
		body = tamper(strings.TrimPrefix(r.URL.Path, "/"), bytes.Clone(body))
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}

func (f *front) set(h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

func (f *front) setTamper(fn func(path string, body []byte) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tamper = fn
}

// requests returns the requests counted so far and resets the counts.
func (f *front) requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.counts
	f.counts = make(map[string]int)
	return c
}

// A key is a log's signer and verifier.
type key struct {
	skey, vkey string
	signer     note.Signer
	verifier   note.Verifier
}

func newKey(t testing.TB, name string) key {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return key{skey, vkey, s, v}
}

// A server is a real checksum database (tlog.Log on SQLite, sumdb.Server)
// with an in-memory module proxy as its upstream.
type server struct {
	t        testing.TB
	key      key
	st       *store.SQLite
	log      *tlog.Log
	proxy    *modproxy.Proxy
	proxyURL string
	handler  *sumdb.Server
}

func newServer(t testing.TB, k key) *server {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serverOn(t, k, st)
}

// serverOn starts a server on the log in st.
func serverOn(t testing.TB, k key, st *store.SQLite) *server {
	t.Helper()
	l, err := tlog.Open(t.Context(), st, tlog.Config{Signer: k.signer, Verifier: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	s := &server{t: t, key: k, st: st, log: l, proxy: modproxy.New()}
	psrv := httptest.NewServer(s.proxy)
	t.Cleanup(psrv.Close)
	s.proxyURL = psrv.URL
	up, err := sumdb.NewUpstream(sumdb.UpstreamConfig{Proxy: psrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if s.handler, err = sumdb.NewServer(sumdb.ServerConfig{Log: l, Fetcher: up}); err != nil {
		t.Fatal(err)
	}
	return s
}

// appendSynthetic appends n well-formed records with made-up hashes.
func (s *server) appendSynthetic(prefix string, n int) {
	s.t.Helper()
	var g sync.WaitGroup
	var failed atomic.Value
	for i := range n {
		g.Go(func() {
			path := fmt.Sprintf("example.com/%s/m%d", prefix, i)
			if _, _, err := s.log.Append(context.Background(), path, "v1.0.0", synthText(path, "v1.0.0")); err != nil {
				failed.Store(err)
			}
		})
	}
	g.Wait()
	if err := failed.Load(); err != nil {
		s.t.Fatal(err)
	}
}

// lookup adds m to the proxy and looks it up through the server, which
// fetches and logs it.
func (s *server) lookup(m modproxy.Module) {
	s.t.Helper()
	if err := s.proxy.Add(m); err != nil {
		s.t.Fatal(err)
	}
	path, err := module.EscapePath(m.Path)
	if err != nil {
		s.t.Fatal(err)
	}
	version, err := module.EscapeVersion(m.Version)
	if err != nil {
		s.t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/lookup/"+path+"@"+version, nil))
	if rec.Code != http.StatusOK {
		s.t.Fatalf("lookup %s@%s: %d %s", m.Path, m.Version, rec.Code, rec.Body)
	}
}

func synthText(path, version string) []byte {
	h1 := sha256.Sum256([]byte(path + " " + version))
	h2 := sha256.Sum256([]byte(path + " " + version + "/go.mod"))
	return fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n",
		path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
}

func realModule(name string) modproxy.Module {
	path := "example.com/real/" + name
	return modproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{
		"go.mod":     "module " + path + "\n",
		name + ".go": "package " + name + "\n",
	}}
}

// A staticLog is a log made up by a test, which may break every rule: its
// tiles are computed with tlog.Edge from any record texts, and its heads are
// signed with note.Sign. Records can be added; the log serves its newest head.
type staticLog struct {
	key key

	mu    sync.Mutex
	texts [][]byte            // guarded by mu
	edge  *tlog.Edge          // guarded by mu
	tiles map[[2]int64][]byte // guarded by mu; (level, index) → content
	note  []byte              // guarded by mu; the signed head
	notes map[int64][]byte    // guarded by mu; every head signed, by size
}

func newStaticLog(t testing.TB, k key, texts [][]byte) *staticLog {
	l := &staticLog{key: k, edge: tlog.NewEdge(), tiles: make(map[[2]int64][]byte), notes: make(map[int64][]byte)}
	l.add(t, texts...)
	return l
}

// add appends records and signs a new head.
func (l *staticLog) add(t testing.TB, texts ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([]xtlog.Hash, len(texts))
	for i, text := range texts {
		hs[i] = xtlog.RecordHash(text)
	}
	l.texts = append(l.texts, texts...)
	for _, tl := range l.edge.Append(hs) {
		l.tiles[[2]int64{int64(tl.Level), tl.Index}] = tl.Hashes
	}
	tree := xtlog.Tree{N: l.edge.Size(), Hash: l.edge.Root()}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, l.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	l.note = msg
	l.notes[tree.N] = msg
}

func (l *staticLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "latest" {
		w.Write(l.note)
		return
	}
	t, err := xtlog.ParseTilePath(p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if t.L == -1 {
		lo, hi := t.N*256, t.N*256+int64(t.W)
		if hi > int64(len(l.texts)) {
			http.Error(w, "beyond the tree", http.StatusNotFound)
			return
		}
		var data []byte
		for _, text := range l.texts[lo:hi] {
			data = append(data, text...)
			data = append(data, '\n')
		}
		w.Write(data)
		return
	}
	hashes := l.tiles[[2]int64{int64(t.L), t.N}]
	if len(hashes) < t.W*32 {
		http.Error(w, "beyond the tree", http.StatusNotFound)
		return
	}
	w.Write(hashes[:t.W*32])
}

// synthTexts returns n well-formed record texts.
func synthTexts(prefix string, n int) [][]byte {
	texts := make([][]byte, n)
	for i := range texts {
		path := fmt.Sprintf("example.com/%s/m%d", prefix, i)
		texts[i] = synthText(path, "v1.0.0")
	}
	return texts
}

// openRemote opens the log at url with verifier key vkey.
func openRemote(t testing.TB, vkey, url string) *sumdb.Remote {
	t.Helper()
	r, err := sumdb.OpenRemote(t.Context(), sumdb.RemoteConfig{GOSUMDB: vkey + " " + url, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFor polls cond until it holds or the test has waited too long.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
