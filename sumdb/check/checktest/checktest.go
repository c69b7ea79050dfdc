// Package checktest runs a checksum database in-process for the tests of
// its clients: the project's own server, log and SQLite store, in front of
// an in-memory module proxy, on loopback HTTP servers.
package checktest

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/modproxy"
	"github.com/sumdb/sumdb/tlog"
)

// KeyName is the name of the keys NewKey makes.
const KeyName = "sumdb.test"

// A Key is a log's key pair, encoded.
type Key struct {
	Signer   string // PRIVATE+KEY+<name>+<hash>+<key>
	Verifier string // <name>+<hash>+<key>
}

// NewKey returns a new key pair named KeyName.
func NewKey(t testing.TB) Key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: skey, Verifier: vkey}
}

// A DB is a checksum database served in-process.
type DB struct {
	URL   string          // of the checksum database, without a trailing slash
	Key   Key             // its key pair
	File  string          // its SQLite store
	Proxy *modproxy.Proxy // its upstream

	t      testing.TB
	status atomic.Int32 // nonzero: the status every request is answered with
	mu     sync.Mutex
	paths  []string // guarded by mu; the paths requested, in order
	stop   []func() // guarded by mu; run in reverse order by Stop
}

// Start starts a checksum database signed by key (the zero Key for a new one) with
// its log in the SQLite file ("" for a new one in t.TempDir()), which
// fetches modules from its own proxy, serving mods. It is stopped when the
// test ends. If the store holds a log that does not open (its head not
// signed by key, tiles that do not reproduce its root), Start returns the
// error of tlog.Open.
func Start(t testing.TB, key Key, file string, mods ...modproxy.Module) (*DB, error) {
	t.Helper()
	db := &DB{Key: key, File: file, Proxy: modproxy.New(), t: t}
	t.Cleanup(db.Stop)
	if db.Key == (Key{}) {
		db.Key = NewKey(t)
	}
	signer, err := note.NewSigner(db.Key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(db.Key.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	if db.File == "" {
		db.File = filepath.Join(t.TempDir(), "sumdb.db")
	}
	for _, m := range mods {
		db.Add(m)
	}

	psrv := httptest.NewServer(db.Proxy)
	db.onStop(psrv.Close)
	st, err := store.OpenSQLite(t.Context(), db.File)
	if err != nil {
		t.Fatal(err)
	}
	db.onStop(func() { st.Close() })
	lg, err := tlog.Open(t.Context(), st, tlog.Config{Signer: signer, Verifier: verifier})
	if err != nil {
		db.Stop()
		return nil, err
	}
	db.onStop(lg.Close)
	up, err := sumdb.NewUpstream(sumdb.UpstreamConfig{Proxy: psrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sumdb.NewServer(sumdb.ServerConfig{Log: lg, Fetcher: up})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.mu.Lock()
		db.paths = append(db.paths, r.URL.Path)
		db.mu.Unlock()
		if code := int(db.status.Load()); code != 0 {
			http.Error(w, http.StatusText(code), code)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	db.onStop(hs.Close)
	db.URL = hs.URL
	return db, nil
}

// MustStart is Start, failing the test on an error.
func MustStart(t testing.TB, key Key, file string, mods ...modproxy.Module) *DB {
	t.Helper()
	db, err := Start(t, key, file, mods...)
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
// store may be changed and the database started again from it. Stop may be
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
func (db *DB) GOSUMDB() string { return db.Key.Verifier + " " + db.URL }

// Add serves m from the database's upstream proxy.
func (db *DB) Add(m modproxy.Module) {
	db.t.Helper()
	if err := db.Proxy.Add(m); err != nil {
		db.t.Fatal(err)
	}
}

// Log looks each module up in the database, which logs it, and returns the
// go.sum lines that the log holds for them, in order.
func (db *DB) Log(mods ...modproxy.Module) string {
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
	resp, err := http.Get(db.URL + "/lookup/" + escPath + "@" + escVersion)
	if err != nil {
		db.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		db.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		db.t.Fatalf("lookup %s@%s: %s: %s", path, version, resp.Status, body)
	}
	_, text, _, err := xtlog.ParseRecord(body)
	if err != nil {
		db.t.Fatalf("lookup %s@%s: %v", path, version, err)
	}
	db.forget("/lookup/" + escPath + "@" + escVersion)
	return string(text)
}

// forget drops the last request of path from Requests: the helper's own.
func (db *DB) forget(path string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for i := len(db.paths) - 1; i >= 0; i-- {
		if db.paths[i] == path {
			db.paths = append(db.paths[:i], db.paths[i+1:]...)
			return
		}
	}
}

// Requests returns the paths requested from the database by others than
// Log and Record, in order.
func (db *DB) Requests() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]string(nil), db.paths...)
}

// SetStatus makes the database answer every request with the HTTP status
// code; 0 restores normal service.
func (db *DB) SetStatus(code int) { db.status.Store(int32(code)) }
