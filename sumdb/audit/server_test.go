package audit

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// lookup adds mods to db's proxy and looks them up, so that db logs them.
func lookup(db *sumdbtest.DB, mods ...modproxy.Module) {
	for _, m := range mods {
		db.Add(m)
	}
	db.GoSum(mods...)
}

// realModule returns a small module example.com/real/<name>@v1.0.0, whose
// record a server computes from the files.
func realModule(name string) modproxy.Module {
	path := "example.com/real/" + name
	return modproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{
		"go.mod":     "module " + path + "\n",
		name + ".go": "package " + name + "\n",
	}}
}

// realModules returns the realModule of each name.
func realModules(names ...string) []modproxy.Module {
	var mods []modproxy.Module
	for _, name := range names {
		mods = append(mods, realModule(name))
	}
	return mods
}

// requests returns the requests f got since the last call (or since it
// started), counted by path without its leading slash.
func requests(f *sumdbtest.Front) map[string]int {
	counts := make(map[string]int)
	for _, p := range f.Requests() {
		counts[strings.TrimPrefix(p, "/")]++
	}
	f.ResetRequests()
	return counts
}

// A staticLog is a log made up by a test, which may break every rule: its
// tiles are computed with tlog.Edge from any record texts, and its heads are
// signed with note.Sign. Records can be added; the log serves its newest head.
type staticLog struct {
	key sumdbtest.Key

	mu    sync.Mutex
	texts [][]byte            // guarded by mu
	edge  *tlog.Edge          // guarded by mu
	tiles map[[2]int64][]byte // guarded by mu; (level, index) → content
	note  []byte              // guarded by mu; the signed head
	notes map[int64][]byte    // guarded by mu; every head signed, by size
}

func newStaticLog(t testing.TB, k sumdbtest.Key, texts [][]byte) *staticLog {
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
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, l.key.Signer)
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
		texts[i] = sumdbtest.SynthText(path, "v1.0.0")
	}
	return texts
}

// openRemote opens the log at url with verifier key vkey.
func openRemote(t testing.TB, vkey, url string) *client.Remote {
	t.Helper()
	r, err := client.Open(t.Context(), client.Config{GOSUMDB: vkey + " " + url, Retries: 1})
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

// A forger serves l, but, while on, serves forged records in the data tiles
// 1 to 64 (records [256, 16640)), with level-0 hash tiles to match, and
// fails data tile 65 with 500: a clone from the start of tile 1 verifies
// the forged records against the forged hash tiles and stores them, under
// a checkpoint of the auditor, before it fails.
type forger struct {
	l  *staticLog
	on atomic.Bool
}

func (f *forger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	t, err := xtlog.ParseTilePath(p)
	if !f.on.Load() || err != nil || t.W != 256 || t.L > 0 || t.N < 1 || t.N > 65 {
		f.l.ServeHTTP(w, r)
		return
	}
	if t.N == 65 {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var body []byte
	for _, text := range synthTexts(fmt.Sprintf("forged%d", t.N), 256) {
		if t.L == -1 {
			body = append(body, text...)
			body = append(body, '\n')
		} else {
			h := xtlog.RecordHash(text)
			body = append(body, h[:]...)
		}
	}
	w.Write(body)
}

// A refuser serves l, but, while on, refuses every tile with 404, which
// the auditor does not retry. It counts the requests of the signed head.
type refuser struct {
	l       *staticLog
	on      atomic.Bool
	latests atomic.Int64
}

func (f *refuser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest" {
		f.latests.Add(1)
	} else if f.on.Load() {
		http.Error(w, "refused", http.StatusNotFound)
		return
	}
	f.l.ServeHTTP(w, r)
}

// latestSize returns the size of the newest verified signed head in the
// state directory dir, 0 if none.
func latestSize(dir string, v note.Verifier) int64 {
	msg, err := os.ReadFile(filepath.Join(dir, latestFile))
	if err != nil {
		return 0
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return 0
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return 0
	}
	return tree.N
}
