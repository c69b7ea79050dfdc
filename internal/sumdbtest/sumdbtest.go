// Package sumdbtest runs checksum databases in-process for the tests of
// their clients: the project's own server, log and SQLite store, in front of
// an in-memory module proxy, on loopback HTTP servers. Its functions fail
// the test they are given on any error.
//
// The tests of package sumdb itself cannot use it (it imports sumdb); they
// have their own environment, which can also reach into the server.
package sumdbtest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// KeyName is the name of the key of a database whose test does not choose
// one.
const KeyName = "sumdb.test"

// A Key is a log's key pair.
type Key struct {
	SKey     string // the signer key, PRIVATE+KEY+<name>+<hash>+<key>
	VKey     string // the verifier key, <name>+<hash>+<key>, as in GOSUMDB
	Signer   note.Signer
	Verifier note.Verifier
}

// NewKey returns a new key pair named name.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Key{SKey: skey, VKey: vkey, Signer: signer, Verifier: verifier}
}

// Options configure a database. The zero Options start a database with a
// new key named KeyName, an empty log in a new SQLite file, and a module
// proxy of its own that serves nothing yet.
type Options struct {
	Key      Key               // the log's key; the zero Key for a new one
	KeyName  string            // the name of a new key; "" for KeyName
	File     string            // the SQLite store; "" for a new one in t.TempDir()
	Modules  []modproxy.Module // served by the database's proxy from the start
	ProxyURL string            // the module proxy to fetch from, instead of the database's own
}

// A DB is a checksum database served in-process. Its Front, whose URL is
// the database's, records the requests and can inject faults.
type DB struct {
	*Front
	Key      Key
	File     string          // the SQLite store; start another DB on it to restart the log
	Store    tlog.Store      // the open store
	Log      *tlog.Log       // the log, which tests may append to directly
	Server   *sumdb.Server   // the handler behind the Front
	Proxy    *modproxy.Proxy // the upstream; nil with Options.ProxyURL
	ProxyURL string          // the upstream's URL

	t    testing.TB
	mu   sync.Mutex
	stop []func() // guarded by mu; run in reverse order by Stop
}

// Start starts a checksum database as opts say. It is stopped when the test
// ends. If the store holds a log that does not open (its head not signed by
// the key, tiles that do not reproduce its root), Start returns the error of
// tlog.Open.
func Start(t testing.TB, opts Options) (*DB, error) {
	t.Helper()
	db := &DB{Key: opts.Key, File: opts.File, ProxyURL: opts.ProxyURL, t: t}
	if db.Key.SKey == "" {
		name := opts.KeyName
		if name == "" {
			name = KeyName
		}
		db.Key = NewKey(t, name)
	}
	if db.File == "" {
		db.File = filepath.Join(t.TempDir(), "sumdb.db")
	}
	// After t.TempDir, so that Stop runs before the directories go.
	spool := t.TempDir()
	t.Cleanup(db.Stop)

	if db.ProxyURL == "" {
		db.Proxy = modproxy.New()
		for _, m := range opts.Modules {
			db.Add(m)
		}
		psrv := httptest.NewServer(db.Proxy)
		db.onStop(psrv.Close)
		db.ProxyURL = psrv.URL
	} else if len(opts.Modules) > 0 {
		t.Fatal("sumdbtest: Options.Modules need the database's own proxy, not Options.ProxyURL")
	}
	st, err := store.OpenSQLite(t.Context(), db.File)
	if err != nil {
		t.Fatal(err)
	}
	db.onStop(func() { st.Close() })
	db.Store = st
	db.Log, err = tlog.Open(t.Context(), st, tlog.Config{Signer: db.Key.Signer, Verifier: db.Key.Verifier})
	if err != nil {
		db.Stop()
		return nil, err
	}
	db.onStop(db.Log.Close)
	up, err := fetch.New(fetch.Config{Proxy: db.ProxyURL, TempDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	// No per-client limit on fetches: every client of a test is on
	// loopback, one address to the limit, and a load test fetches more
	// module versions than the default burst.
	if db.Server, err = sumdb.NewServer(sumdb.ServerConfig{Log: db.Log, Fetcher: up, FetchRate: sumdb.Disabled}); err != nil {
		t.Fatal(err)
	}
	var hs *httptest.Server
	db.Front, hs = newFront(db.Server)
	db.onStop(hs.Close)
	return db, nil
}

// MustStart is Start, failing the test on an error.
func MustStart(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Start(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func (db *DB) onStop(f func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.stop = append(db.stop, f)
}

// Stop stops the servers and closes the log and the store, so that the
// store may be changed and a database started again on it. Stop may be
// called more than once.
func (db *DB) Stop() {
	db.mu.Lock()
	stop := db.stop
	db.stop = nil
	db.mu.Unlock()
	for i := len(stop) - 1; i >= 0; i-- {
		stop[i]()
	}
}

// GOSUMDB returns the GOSUMDB value naming db: "<verifier key> <URL>".
func (db *DB) GOSUMDB() string { return db.Key.VKey + " " + db.URL }

// Add serves m from the database's proxy.
func (db *DB) Add(m modproxy.Module) {
	db.t.Helper()
	if err := db.Proxy.Add(m); err != nil {
		db.t.Fatal(err)
	}
}

// GoSum looks each module up in the database, which logs it, and returns
// the go.sum lines that the log holds for them, in order.
func (db *DB) GoSum(mods ...modproxy.Module) string {
	db.t.Helper()
	var b strings.Builder
	for _, m := range mods {
		b.WriteString(db.Record(m.Path, m.Version))
	}
	return b.String()
}

// Record looks path@version up in the database and returns the record's
// text: its two go.sum lines.
func (db *DB) Record(path, version string) string {
	db.t.Helper()
	escPath, err := module.EscapePath(path)
	if err != nil {
		db.t.Fatal(err)
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		db.t.Fatal(err)
	}
	body := db.get("/lookup/" + escPath + "@" + escVersion)
	_, text, _, err := xtlog.ParseRecord(body)
	if err != nil {
		db.t.Fatalf("lookup %s@%s: %v", path, version, err)
	}
	return string(text)
}

// Latest returns the database's signed tree head.
func (db *DB) Latest() []byte {
	db.t.Helper()
	return db.get("/latest")
}

// get returns the body of a 200 answer to a request for path, which
// Requests then leaves out.
func (db *DB) get(path string) []byte {
	db.t.Helper()
	resp, err := http.Get(db.URL + path)
	if err != nil {
		db.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		db.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		db.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	db.forget(path)
	return body
}

// AppendSynthetic appends n records straight to the log, at once: the
// records of example.com/<prefix>/m<i>@v1.0.0, for i from 0 to n-1, with
// the hashes of SynthText.
func (db *DB) AppendSynthetic(prefix string, n int) {
	db.t.Helper()
	var g sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		g.Go(func() {
			path := fmt.Sprintf("example.com/%s/m%d", prefix, i)
			if _, _, err := db.Log.Append(db.t.Context(), path, "v1.0.0", SynthText(path, "v1.0.0")); err != nil {
				errs <- err
			}
		})
	}
	g.Wait()
	close(errs)
	for err := range errs {
		db.t.Fatal(err)
	}
}

// SynthText returns a well-formed record text for path@version, with
// made-up hashes that depend on both.
func SynthText(path, version string) []byte {
	h1 := sha256.Sum256([]byte(path + " " + version))
	h2 := sha256.Sum256([]byte(path + " " + version + "/go.mod"))
	return fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n",
		path, version, base64.StdEncoding.EncodeToString(h1[:]),
		path, version, base64.StdEncoding.EncodeToString(h2[:]))
}

// FreeAddr returns a loopback host:port that nothing listened on when it
// returned: for a server a test starts later, or for a client to find
// closed.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A Front is a loopback HTTP server in front of a handler, which can be
// swapped (to serve another log at the same URL). It records the paths
// requested, and can answer every request with an error status or alter
// the bodies of the handler's successful answers.
type Front struct {
	URL string // without a trailing slash

	mu      sync.Mutex
	handler http.Handler                          // guarded by mu
	status  int                                   // guarded by mu; nonzero: the status of every answer
	tamper  func(path string, body []byte) []byte // guarded by mu; nil for none
	paths   []string                              // guarded by mu; the paths requested, in order
}

// NewFront starts a Front in front of h. It is stopped when the test ends.
func NewFront(t testing.TB, h http.Handler) *Front {
	f, srv := newFront(h)
	t.Cleanup(srv.Close)
	return f
}

func newFront(h http.Handler) (*Front, *httptest.Server) {
	f := &Front{handler: h}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	return f, srv
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	h, status, tamper := f.handler, f.status, f.tamper
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if tamper == nil {
		h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		body = tamper(r.URL.Path, bytes.Clone(body))
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// SetHandler passes the requests to come to h.
func (f *Front) SetHandler(h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

// SetStatus makes the Front answer every request with the HTTP status
// code, without asking the handler; 0 restores normal service.
func (f *Front) SetStatus(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = code
}

// SetTamper makes the Front replace the body of each answer 200 of the
// handler with what fn returns, given the URL path requested (such as
// "/tile/8/0/000") and a copy of the body; nil restores normal service.
func (f *Front) SetTamper(fn func(path string, body []byte) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tamper = fn
}

// Requests returns the URL paths requested since the Front started or
// ResetRequests, in order; those of a DB's own methods are left out.
func (f *Front) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// ResetRequests forgets the requests so far.
func (f *Front) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = nil
}

// forget drops the last request of path: a DB method's own.
func (f *Front) forget(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.paths) - 1; i >= 0; i-- {
		if f.paths[i] == path {
			f.paths = append(f.paths[:i], f.paths[i+1:]...)
			return
		}
	}
}
