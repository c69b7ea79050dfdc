package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
)

// The fault tests (fault_test.go, replica_test.go) run sumdb serve
// processes, hurt them, and check afterwards, with x/mod's tlog proofs,
// that nothing any client saw was contradicted or lost. A witness is that
// client.

// faultEnv is the environment of the servers of the fault tests: they look
// up thousands of new module versions from one address, which the
// per-client limit of new-module fetches would refuse.
var faultEnv = []string{"SUMDB_FETCH_RATE=0"}

// addModules adds n small module versions under prefix to each proxy and
// returns them.
func addModules(t *testing.T, prefix string, n int, proxies ...*modproxy.Proxy) []module.Version {
	t.Helper()
	mods := make([]module.Version, n)
	for i := range mods {
		// Ten versions per module path.
		path, version := fmt.Sprintf("%s/m%d", prefix, i/10), fmt.Sprintf("v1.0.%d", i%10)
		m := modproxy.Module{Path: path, Version: version, Files: map[string]string{
			"go.mod": "module " + path + "\n",
			"m.go":   fmt.Sprintf("package m\n\nconst N = %d\n", i),
		}}
		for _, p := range proxies {
			if err := p.Add(m); err != nil {
				t.Fatal(err)
			}
		}
		mods[i] = module.Version{Path: path, Version: version}
	}
	return mods
}

// A witness is a client of one log, served by one or more servers. It
// checks every answer it gets (signatures, a head covering the record, the
// same record for a module version every time) and remembers every head
// and record, for check to prove against the final tree.
type witness struct {
	t        *testing.T
	verifier note.Verifier
	client   *http.Client

	mu       sync.Mutex
	heads    map[int64]xtlog.Tree // guarded by mu; every head seen, by size
	records  map[string]seen      // guarded by mu; every record answered 200, by path@version
	statuses map[string]int       // guarded by mu; answers by kind of request and status (see lookup)
}

// A seen record is one a server answered 200 for.
type seen struct {
	id   int64
	text []byte
}

// newWitness returns a witness of the log with verifier key vkey whose
// requests time out after timeout.
func newWitness(t *testing.T, vkey string, timeout time.Duration) *witness {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &witness{
		t:        t,
		verifier: v,
		client:   &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		heads:    make(map[int64]xtlog.Tree),
		records:  make(map[string]seen),
		statuses: make(map[string]int),
	}
}

// get fetches url. A transport error (refused, reset, timed out) is err.
func (w *witness) get(ctx context.Context, url string) (code int, h http.Header, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}

// see checks a signed tree note a server gave and remembers its tree.
func (w *witness) see(msg []byte) (xtlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(w.verifier))
	if err != nil {
		return xtlog.Tree{}, fmt.Errorf("open signed tree %q: %w", msg, err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return xtlog.Tree{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.heads[tree.N]; ok && old.Hash != tree.Hash {
		w.t.Errorf("FORK: two signed heads of size %d: %v and %v", tree.N, old.Hash, tree.Hash)
	}
	w.heads[tree.N] = tree
	return tree, nil
}

// count counts an answer of kind ("lookup", "tile", ...) with status code
// (0 for a transport error).
func (w *witness) count(kind string, code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.statuses[fmt.Sprintf("%s %d", kind, code)]++
}

// counts returns the answers counted so far, "kind code: n" sorted.
func (w *witness) counts() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var list []string
	for k, n := range w.statuses {
		list = append(list, fmt.Sprintf("%s: %d", k, n))
	}
	slices.Sort(list)
	return strings.Join(list, ", ")
}

// n returns the number of answers of kind with status code.
func (w *witness) n(kind string, code int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statuses[fmt.Sprintf("%s %d", kind, code)]
}

// lookup looks mv up at the server at base and checks a 200 answer. It
// returns the status code (0 for a transport error) and the header.
func (w *witness) lookup(ctx context.Context, base string, mv module.Version) (int, http.Header) {
	escPath, err := module.EscapePath(mv.Path)
	if err != nil {
		w.t.Error(err)
		return 0, nil
	}
	escVersion, err := module.EscapeVersion(mv.Version)
	if err != nil {
		w.t.Error(err)
		return 0, nil
	}
	code, h, body, err := w.get(ctx, base+"/lookup/"+escPath+"@"+escVersion)
	if err != nil {
		code = 0
	}
	w.count("lookup", code)
	if code != http.StatusOK {
		return code, h
	}
	id, text, signed, err := xtlog.ParseRecord(body)
	if err != nil {
		w.t.Errorf("lookup %s: %v", mv, err)
		return code, h
	}
	tree, err := w.see(signed)
	if err != nil {
		w.t.Errorf("lookup %s: %v", mv, err)
		return code, h
	}
	if id >= tree.N {
		w.t.Errorf("lookup %s: record %d with a head of size %d, which does not cover it", mv, id, tree.N)
	}
	key := mv.Path + "@" + mv.Version
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.records[key]; ok && (old.id != id || !bytes.Equal(old.text, text)) {
		w.t.Errorf("lookup %s: record %d %q, earlier record %d %q", mv, id, text, old.id, old.text)
	} else if !ok {
		w.records[key] = seen{id, text}
	}
	return code, h
}

// load looks up module versions at the servers that servers returns, from
// workers goroutines, until ctx ends: mostly the next new one of mods (next
// counts them out), and one in five times one already handed out. When
// mods run out, it looks up old ones only. Each worker pauses about pace
// between lookups, and a little after a failed one, so that a dead server
// is not hammered.
func (w *witness) load(ctx context.Context, servers func() []string, mods []module.Version, next *atomic.Int64, workers int, pace time.Duration) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				list := servers()
				if len(list) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				base := list[rand.IntN(len(list))]
				var mv module.Version
				if i := next.Load(); i > 0 && (rand.IntN(5) == 0 || i >= int64(len(mods))) {
					mv = mods[rand.Int64N(min(i, int64(len(mods))))]
				} else if i = next.Add(1) - 1; i < int64(len(mods)) {
					mv = mods[i]
				} else {
					continue
				}
				pause := pace/2 + rand.N(pace+1)
				if code, _ := w.lookup(ctx, base, mv); code != http.StatusOK {
					pause += time.Duration(5+rand.IntN(20)) * time.Millisecond
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	wg.Wait()
}

// httpTiles reads tiles from a server, for x/mod's TileHashReader. Tiles at
// a given path never change: it keeps those it has read.
type httpTiles struct {
	w    *witness
	base string

	mu    sync.Mutex
	cache map[string][]byte // guarded by mu; by tile path
}

func (r *httpTiles) Height() int { return 8 }

func (r *httpTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.read(t.Path())
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return data, nil
}

func (r *httpTiles) read(path string) ([]byte, error) {
	r.mu.Lock()
	b, ok := r.cache[path]
	r.mu.Unlock()
	if ok {
		return b, nil
	}
	code, _, b, err := r.w.get(context.Background(), r.base+"/"+path)
	if err != nil {
		return nil, fmt.Errorf("GET /%s: %w", path, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /%s: %d %s", path, code, b)
	}
	r.mu.Lock()
	r.cache[path] = b
	r.mu.Unlock()
	return b, nil
}

func (r *httpTiles) SaveTiles([]xtlog.Tile, [][]byte) {}

// check checks the log served at base against everything w saw, and
// returns the log's ids by path@version:
//
//   - every head w saw is consistent with the server's latest tree (a
//     consistency proof from its hash tiles, x/mod's ProveTree/CheckTree);
//   - the data tiles hold records 0 to N-1, each the record of its leaf
//     hash (proven against the latest tree), each module version once;
//   - every record w got an answer 200 for is in the log with the same id
//     and text, which is what the upstream up serves.
func (w *witness) check(base string, up *modproxy.Proxy) map[string]int64 {
	t := w.t
	t.Helper()
	code, _, body, err := w.get(context.Background(), base+"/latest")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /latest: %d %s %v", code, body, err)
	}
	final, err := w.see(body)
	if err != nil {
		t.Fatal(err)
	}
	hr := xtlog.TileHashReader(final, &httpTiles{w: w, base: base, cache: make(map[string][]byte)})

	w.mu.Lock()
	heads := make([]xtlog.Tree, 0, len(w.heads))
	for _, h := range w.heads {
		heads = append(heads, h)
	}
	records := make(map[string]seen, len(w.records))
	for k, r := range w.records {
		records[k] = r
	}
	w.mu.Unlock()
	slices.SortFunc(heads, func(a, b xtlog.Tree) int { return int(a.N - b.N) })
	for _, h := range heads {
		if h.N > final.N {
			t.Errorf("a client saw a head of size %d, larger than the latest %d", h.N, final.N)
			continue
		}
		p, err := xtlog.ProveTree(final.N, h.N, hr)
		if err != nil {
			t.Fatalf("prove head %d consistent with the latest %d: %v", h.N, final.N, err)
		}
		if err := xtlog.CheckTree(p, final.N, final.Hash, h.N, h.Hash); err != nil {
			t.Errorf("FORK: head of size %d that a client saw is not consistent with the latest tree of size %d: %v", h.N, final.N, err)
		}
	}

	// The records, from the data tiles, against the leaf hashes.
	texts := make([][]byte, 0, final.N)
	for k := int64(0); k*256 < final.N; k++ {
		tile := xtlog.Tile{H: 8, L: -1, N: k, W: int(min(256, final.N-k*256))}
		code, _, data, err := w.get(context.Background(), base+"/"+tile.Path())
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /%s: %d %s %v", tile.Path(), code, data, err)
		}
		recs := bytes.SplitAfter(data, []byte("\n\n"))
		if len(recs) > 0 && len(recs[len(recs)-1]) == 0 {
			recs = recs[:len(recs)-1]
		}
		if len(recs) != tile.W {
			t.Fatalf("data tile %s holds %d records, want %d: the log has a gap", tile.Path(), len(recs), tile.W)
		}
		for _, r := range recs {
			texts = append(texts, r[:len(r)-1]) // without the separating blank line
		}
	}
	indexes := make([]int64, final.N)
	for i := range indexes {
		indexes[i] = xtlog.StoredHashIndex(0, int64(i))
	}
	leaves, err := hr.ReadHashes(indexes)
	if err != nil {
		t.Fatalf("read the %d leaf hashes of the latest tree: %v", final.N, err)
	}
	ids := make(map[string]int64, final.N)
	for i, text := range texts {
		if xtlog.RecordHash(text) != leaves[i] {
			t.Fatalf("record %d of the data tiles is not the record of leaf %d of the tree", i, i)
		}
		f := strings.Fields(string(text))
		if len(f) != 6 {
			t.Fatalf("record %d: %q is not two go.sum lines", i, text)
		}
		key := f[0] + "@" + f[1]
		if old, ok := ids[key]; ok {
			t.Errorf("%s is in the log twice, as records %d and %d", key, old, i)
		}
		ids[key] = int64(i)
	}

	for key, r := range records {
		id, ok := ids[key]
		if !ok {
			t.Errorf("LOST: %s was answered as record %d, but the log does not hold it", key, r.id)
			continue
		}
		if id != r.id || !bytes.Equal(texts[id], r.text) {
			t.Errorf("%s was answered as record %d %q; the log holds it as record %d %q", key, r.id, r.text, id, texts[id])
		}
		path, version, _ := strings.Cut(key, "@")
		if want, err := up.GoSum(path, version); err != nil || !bytes.Equal(r.text, want) {
			t.Errorf("%s: record %q, want the upstream's %q (%v)", key, r.text, want, err)
		}
	}
	t.Logf("checked the log of %d records at %s: %d heads consistent, %d answered records present", final.N, base, len(heads), len(records))
	return ids
}
