package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/gittest"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/client"
)

// A recorder is a Sink that keeps the alerts delivered; fail, if set, is
// called before each delivery and its error returned.
type recorder struct {
	mu     sync.Mutex
	alerts []Alert
	fail   func() error
}

func (r *recorder) Deliver(_ context.Context, alerts []Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(); err != nil {
			return err
		}
	}
	r.alerts = append(r.alerts, alerts...)
	return nil
}

// got returns the alerts delivered as "kind path@version", and forgets them.
func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, a := range r.alerts {
		s = append(s, fmt.Sprintf("%s %s@%s", a.Kind, a.Module, a.Version))
	}
	r.alerts = nil
	return s
}

func openRemote(t *testing.T, db *sumdbtest.DB) *client.Remote {
	t.Helper()
	r, err := client.Open(t.Context(), client.Config{GOSUMDB: db.GOSUMDB(), Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func patterns(t *testing.T, ss ...string) []Pattern {
	t.Helper()
	var ps []Pattern
	for _, s := range ss {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// log serves m from db's proxy and logs it.
func log(db *sumdbtest.DB, mods ...modproxy.Module) {
	for _, m := range mods {
		db.Add(m)
	}
	db.GoSum(mods...)
}

func mod(path, version, content string) modproxy.Module {
	return modproxy.Module{Path: path, Version: version, Files: map[string]string{
		"go.mod": "module " + path + "\n",
		"a.go":   "package a\n\n// " + content + "\n",
	}}
}

func sameAlerts(got, want []string) bool {
	return strings.Join(got, "\n") == strings.Join(want, "\n")
}

func TestGitAuthorized(t *testing.T) {
	repo := gittest.NewLocal(t)
	m := mod("example.com/m", "v1.0.0", "one")
	sub := mod("example.com/m/sub", "v1.0.0", "sub")
	files := map[string]string{"go.mod": m.Files["go.mod"], "a.go": m.Files["a.go"], "sub/go.mod": sub.Files["go.mod"], "sub/a.go": sub.Files["a.go"]}
	repo.Commit(t, files, "v1.0.0", "sub/v1.0.0", "not-a-version")
	repo.Commit(t, map[string]string{"a.go": mod("", "", "two").Files["a.go"]}, "v1.0.1")

	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db,
		m,   // released: quiet
		sub, // released, in a subdirectory: quiet
		mod("example.com/m", "v1.0.1", "not what the tag holds"),  // mismatch
		mod("example.com/m", "v1.1.0", "never released"),          // unauthorized
		mod("example.com/other", "v1.0.0", "not watched"),         // quiet
		mod("example.com/m/sub", "v1.2.0", "never released, sub"), // unauthorized
	)

	auth := NewAuthorized()
	ms := patterns(t, "example.com/m/...")
	match := func(p string) bool { return ms[0].Match(p) }
	if err := auth.AddGit(t.Context(), repo.Dir, match, nil); err != nil {
		t.Fatal(err)
	}
	if auth.Len() != 3 {
		t.Errorf("AddGit authorized %d versions, want 3 (v1.0.0, v1.0.1, sub v1.0.0)", auth.Len())
	}
	rec := &recorder{}
	cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: ms, Authorized: auth, Once: true, Sinks: []Sink{rec}}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mismatch example.com/m@v1.0.1", "unauthorized example.com/m@v1.1.0", "unauthorized example.com/m/sub@v1.2.0"}
	var mismatch Alert
	if len(rec.alerts) > 0 {
		mismatch = rec.alerts[0]
	}
	if got := rec.got(); !sameAlerts(got, want) || res.Alerts != 3 {
		t.Fatalf("Run = %q (%d alerts), want %q", got, res.Alerts, want)
	}
	// Both hashes are named: the logged one and the tag's.
	logged := db.Record("example.com/m", "v1.0.1")
	if mismatch.Authorized == nil || mismatch.Authorized.Zip == mismatch.Hashes.Zip || !strings.Contains(logged, mismatch.Hashes.Zip) {
		t.Errorf("mismatch alert = %+v, want the logged zip hash (record %q) and the tag's", mismatch, logged)
	}
	if s := mismatch.String(); !strings.Contains(s, mismatch.Hashes.Zip) || !strings.Contains(s, mismatch.Authorized.Zip) {
		t.Errorf("mismatch alert reads %q, want both zip hashes", s)
	}

	// Once reported, never again.
	res, err = Run(t.Context(), cfg)
	if got := rec.got(); err != nil || len(got) != 0 || res.Alerts != 0 {
		t.Errorf("second Run = %q, %v; want no alert", got, err)
	}
}

func TestAuthorizedFile(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	released := mod("example.com/m", "v1.0.0", "one")
	log(db, released)
	auth := NewAuthorized()
	if err := auth.AddGoSum("go.sum", []byte("# released\n"+db.GoSum(released))); err != nil {
		t.Fatal(err)
	}
	modOnly := mod("example.com/m", "v1.0.1", "two")
	log(db, modOnly)
	// Only the go.mod line: the zip hash is not compared.
	_, modLine, _ := strings.Cut(db.Record(modOnly.Path, modOnly.Version), "\n")
	if err := auth.AddGoSum("go.sum", []byte(modLine)); err != nil {
		t.Fatal(err)
	}
	log(db, mod("example.com/m", "v1.0.2", "three"))

	rec := &recorder{}
	cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: patterns(t, "example.com/m"), Authorized: auth, Once: true, Sinks: []Sink{rec}}
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"unauthorized example.com/m@v1.0.2"}; !sameAlerts(got, want) {
		t.Errorf("Run = %q, want %q", got, want)
	}
}

func TestAddGoSumErrors(t *testing.T) {
	h := "h1:" + strings.Repeat("A", 43) + "="
	h2 := "h1:" + strings.Repeat("B", 42) + "A="
	for _, tt := range []struct{ name, data, want string }{
		{"fields", "example.com/m v1.0.0\n", "not a go.sum line"},
		{"version", "example.com/m v1.0 " + h + "\n", "v1.0"},
		{"hash", "example.com/m v1.0.0 h1:short\n", "h1:short"},
		{"two hashes", "example.com/m v1.0.0 " + h + "\nexample.com/m v1.0.0 " + h2 + "\n", "two zip hashes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := NewAuthorized().AddGoSum("f", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AddGoSum(%q) = %v, want an error with %q", tt.data, err, tt.want)
			}
		})
	}
}

func TestPattern(t *testing.T) {
	for _, tt := range []struct {
		pattern, path string
		want          bool
	}{
		{"example.com/m", "example.com/m", true},
		{"example.com/m", "example.com/m/v2", false},
		{"example.com/m/...", "example.com/m/v2", true},
		{"example.com/m/...", "example.com/m", true},
		{"example.com/m/", "example.com/m/sub", true},
		{"example.com/m/...", "example.com/mm", false},
	} {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tt.path); got != tt.want {
				t.Errorf("ParsePattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "/...", "not a path"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) = nil error, want one", bad)
		}
	}
}

// TestRestart stops a watch between two alerts, at a batch boundary and at
// a failed delivery: the next run delivers what was not, and only that.
func TestRestart(t *testing.T) {
	defer func(n int64) { batchTiles = n }(batchTiles)
	batchTiles = 1

	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"))
	db.AppendSynthetic("other", 300) // the next alert in another batch
	log(db, mod("example.com/m", "v1.1.0", "b"))

	rec := &recorder{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec.fail = func() error {
		cancel() // stopped right after the first delivery
		return nil
	}
	dir := t.TempDir()
	cfg := Config{Remote: openRemote(t, db), Dir: dir, Modules: patterns(t, "example.com/m"), Once: true, Sinks: []Sink{rec}, Concurrency: 1}
	if _, err := Run(ctx, cfg); err == nil {
		t.Fatal("Run stopped between alerts = nil error, want the context's")
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.0.0"}; !sameAlerts(got, want) {
		t.Fatalf("Run stopped after the first alert = %q, want %q", got, want)
	}

	// The second alert's delivery fails.
	down := errors.New("sink down")
	rec.fail = func() error { return down }
	res, err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrDeliver) || res.Undelivered != 1 {
		t.Fatalf("Run with a failing sink = %+v, %v; want 1 undelivered, ErrDeliver", res, err)
	}
	log(db, mod("example.com/m", "v1.2.0", "c"))
	rec.fail = nil
	res, err = Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.1.0", "new example.com/m@v1.2.0"}; !sameAlerts(got, want) || res.Alerts != 2 {
		t.Errorf("Run after the restarts = %q, want %q", got, want)
	}

	// Scanned again from record 0: nothing already reported is repeated.
	log(db, mod("example.com/m", "v1.3.0", "d"))
	cfg.From, cfg.Restart = 0, true
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.3.0"}; !sameAlerts(got, want) {
		t.Errorf("Run from record 0 = %q, want %q", got, want)
	}
}

func TestFromHead(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"))
	rec := &recorder{}
	cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: patterns(t, "example.com/m"), From: FromHead, Once: true, Sinks: []Sink{rec}}
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	log(db, mod("example.com/m", "v1.1.0", "b"))
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.1.0"}; !sameAlerts(got, want) {
		t.Errorf("Run from the head = %q, want %q", got, want)
	}
}

// TestTamperedDataTile serves a data tile whose record is not the signed
// tree's: it is refused, not scanned, and the state stays.
func TestTamperedDataTile(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"), mod("example.com/m", "v1.1.0", "b"))
	good := db.Record("example.com/m", "v1.1.0")
	forged := strings.ReplaceAll(good, "v1.1.0", "v1.9.0")
	db.SetTamper(func(path string, body []byte) []byte {
		if strings.Contains(path, "/tile/8/data/") {
			return bytes.Replace(body, []byte(good), []byte(forged), 1)
		}
		return body
	})
	rec := &recorder{}
	dir := t.TempDir()
	cfg := Config{Remote: openRemote(t, db), Dir: dir, Modules: patterns(t, "example.com/m"), Once: true, Sinks: []Sink{rec}}
	res, err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not in the signed tree") {
		t.Fatalf("Run with a forged data tile = %v, want ErrRefused naming the record", err)
	}
	if got := rec.got(); len(got) != 0 || res.Scanned != 0 {
		t.Fatalf("Run with a forged data tile delivered %q, scanned %d; want nothing", got, res.Scanned)
	}
	db.SetTamper(nil)
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.0.0", "new example.com/m@v1.1.0"}; !sameAlerts(got, want) {
		t.Errorf("Run after the forgery = %q, want %q", got, want)
	}
}

// TestFork serves a head that is not consistent with the one verified
// before: refused.
func TestFork(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"))
	rec := &recorder{}
	cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: patterns(t, "example.com/m"), Once: true, Sinks: []Sink{rec}}
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// Another log of the same key and size, of another record.
	other := sumdbtest.MustStart(t, sumdbtest.Options{Key: db.Key})
	log(other, mod("example.com/m", "v1.0.0", "forged"))
	cfg.Remote = openRemote(t, other)
	_, err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "fork") {
		t.Errorf("Run on a fork = %v, want ErrRefused, a fork", err)
	}
}

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		if r.URL.Path != "/hook/s3cret" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook request %s %s, want /hook/s3cret with JSON", r.URL.Path, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, b)
	}))
	defer srv.Close()

	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"))
	hook, err := NewWebhook(srv.URL+"/hook/s3cret", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	hook.Backoff = time.Millisecond
	cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: patterns(t, "example.com/m"), Once: true, Sinks: []Sink{hook}}
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || len(bodies) != 1 {
		t.Fatalf("webhook got %d requests, %d delivered; want 2 (a 500, then a retry), 1", calls, len(bodies))
	}
	var a Alert
	if err := json.Unmarshal(bodies[0], &a); err != nil {
		t.Fatal(err)
	}
	logged := db.Record("example.com/m", "v1.0.0")
	if a.Kind != KindNew || a.Module != "example.com/m" || a.Version != "v1.0.0" || a.Record != 0 || a.HeadSize != 1 || !strings.Contains(logged, a.Hashes.Zip) || !strings.Contains(logged, a.Hashes.Mod) {
		t.Errorf("webhook body = %s, want the alert of record 0 (%q)", bodies[0], logged)
	}
}

// TestWebhookSecret fails every request: the error names the webhook by
// its host only.
func TestWebhookSecret(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadGateway)
	}))
	defer srv.Close()
	hook, err := NewWebhook(strings.Replace(srv.URL, "://", "://user:pa55@", 1)+"/hook/s3cret?token=t0ken", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	hook.Attempts, hook.Backoff = 3, time.Millisecond
	err = hook.Deliver(t.Context(), []Alert{{Kind: KindNew, Module: "example.com/m", Version: "v1.0.0"}})
	if err == nil || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("Deliver to a failing webhook = %v, want 3 attempts failed", err)
	}
	for _, secret := range []string{"s3cret", "t0ken", "pa55", "user"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Deliver error %q shows %q", err, secret)
		}
	}
}

// TestOlderStateEntries checks that an alert delivered under an older
// state file, whose entries name the record and kind but no module, is not
// delivered again when the log is scanned from the start.
func TestOlderStateEntries(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	log(db, mod("example.com/m", "v1.0.0", "a"))
	rec := &recorder{}
	dir := t.TempDir()
	cfg := Config{Remote: openRemote(t, db), Dir: dir, Modules: patterns(t, "example.com/m"), Once: true, Sinks: []Sink{rec}, Concurrency: 1}
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), []string{"new example.com/m@v1.0.0"}; !sameAlerts(got, want) {
		t.Fatalf("first Run = %q, want %q", got, want)
	}
	// The state as the older format wrote it: no module, no version.
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Reported {
		st.Reported[i].Module, st.Reported[i].Version = "", ""
	}
	if err := st.write(dir); err != nil {
		t.Fatal(err)
	}
	cfg.From, cfg.Restart = 0, true
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 0 {
		t.Errorf("Run from record 0 over an older state delivered %q again, want nothing", got)
	}
}
