package public

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

var (
	_ StateStore = (*store.SQLite)(nil)
	_ StateStore = (*store.Postgres)(nil)
	_ Fetcher    = (*fetch.Upstream)(nil)
)

// pubName is the name of the public checksum database of the tests.
const pubName = "public.test"

// An env is a public checksum database on loopback, a module proxy that is
// the upstream of Next, and a StateStore, with a CrossCheck between them.
type env struct {
	t      *testing.T
	pub    *sumdbtest.DB   // the public checksum database
	up     *modproxy.Proxy // the upstream of next
	next   *fetch.Upstream
	remote *client.Remote
	st     StateStore
	logs   *guardtest.Logs
	cc     *CrossCheck
}

// newEnv starts an env with a StateStore in a new SQLite file.
func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvStore(t, st)
}

// newEnvStore starts an env with StateStore st.
func newEnvStore(t *testing.T, st StateStore) *env {
	t.Helper()
	e := &env{t: t, st: st, logs: new(guardtest.Logs)}
	e.pub = sumdbtest.MustStart(t, sumdbtest.Options{KeyName: pubName})
	e.up = modproxy.New()
	upSrv := httptest.NewServer(e.up)
	t.Cleanup(upSrv.Close)
	var err error
	if e.next, err = fetch.New(fetch.Config{Proxy: upSrv.URL, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	// No retries: a failure is seen at once.
	if e.remote, err = client.Open(t.Context(), client.Config{GOSUMDB: e.pub.GOSUMDB(), Retries: -1}); err != nil {
		t.Fatal(err)
	}
	e.cc = e.newCrossCheck(Config{Private: "example.com/private,*.corp.test"})
	return e
}

// newCrossCheck returns a CrossCheck of cfg, whose zero fields are the
// env's: another replica of the server, or the server restarted.
func (e *env) newCrossCheck(cfg Config) *CrossCheck {
	e.t.Helper()
	if cfg.Remote == nil {
		cfg.Remote = e.remote
	}
	if cfg.Next == nil {
		cfg.Next = e.next
	}
	if cfg.State == nil {
		cfg.State = e.st
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cc, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return cc
}

// modVersion returns a module version of example.com/<name>, its files made
// of content.
func modVersion(name, version, content string) modproxy.Module {
	path := "example.com/" + name
	return modproxy.Module{Path: path, Version: version, Files: map[string]string{
		"go.mod": "module " + path + "\n",
		"m.go":   "package m\n\n// " + content + "\n",
	}}
}

// serve serves m from the upstream.
func (e *env) serve(m modproxy.Module) {
	e.t.Helper()
	if err := e.up.Add(m); err != nil {
		e.t.Fatal(err)
	}
}

// publish logs m in the public checksum database, which fetches it from its
// own proxy, and returns the record's text.
func (e *env) publish(m modproxy.Module) string {
	e.t.Helper()
	e.pub.Add(m)
	return e.pub.Record(m.Path, m.Version)
}

// served serves m from the upstream and logs it in the public checksum
// database: a public module version as it should be.
func (e *env) served(m modproxy.Module) string {
	e.t.Helper()
	e.serve(m)
	return e.publish(m)
}

// disagreeing logs a version of example.com/<name> in the public log and
// serves alter's version of it from the upstream. It returns the version
// and the record texts of both sides.
func (e *env) disagreeing(name string, alter func(m modproxy.Module) modproxy.Module) (m modproxy.Module, pubText, upText string) {
	e.t.Helper()
	m = modVersion(name, "v1.0.0", "genuine")
	pubText = e.publish(m)
	e.serve(alter(m))
	text, err := e.next.Fetch(e.t.Context(), m.Path, m.Version)
	if err != nil {
		e.t.Fatal(err)
	}
	return m, pubText, string(text)
}

// confirmed has cc confirm a first version of example.com/<name>, and
// returns the public head it stored.
func (e *env) confirmed(cc *CrossCheck, name string) xtlog.Tree {
	e.t.Helper()
	m := modVersion(name, "v1.0.0", "one")
	e.served(m)
	if _, err := cc.Fetch(e.t.Context(), m.Path, m.Version); err != nil {
		e.t.Fatal(err)
	}
	return e.storedHead()
}

// storedHead returns the tree of the public head kept in the StateStore,
// or the zero tree if none is.
func (e *env) storedHead() xtlog.Tree {
	e.t.Helper()
	msg, err := e.st.ReadState(e.t.Context(), "public/"+pubName+"/latest")
	if err != nil {
		e.t.Fatal(err)
	}
	if msg == nil {
		return xtlog.Tree{}
	}
	tree, err := client.OpenTreeHead(msg, note.VerifierList(e.pub.Key.Verifier))
	if err != nil {
		e.t.Fatalf("stored head does not verify: %v\n%s", err, msg)
	}
	return tree
}

// pubTree returns the tree of the public checksum database's newest head.
func (e *env) pubTree() xtlog.Tree {
	e.t.Helper()
	tree, err := client.OpenTreeHead(e.pub.Latest(), note.VerifierList(e.pub.Key.Verifier))
	if err != nil {
		e.t.Fatal(err)
	}
	return tree
}

// lookups returns the count of sumdb_public_lookups_total{result} of cc.
func lookups(cc *CrossCheck, result string) float64 {
	return testutil.ToFloat64(cc.metrics.lookups.WithLabelValues(result))
}

// checkLookups fails the test unless cc counted want lookups of each
// result, and none of the others.
func checkLookups(t *testing.T, cc *CrossCheck, want map[string]float64) {
	t.Helper()
	for _, r := range []string{resultOK, resultMismatch, resultMissing, resultUnavailable, resultInvalid, resultFork, resultError} {
		if got := lookups(cc, r); got != want[r] {
			t.Errorf("sumdb_public_lookups_total{result=%q} = %v, want %v", r, got, want[r])
		}
	}
}

// hashes returns the hashes of the two go.sum lines of a record text.
func hashes(t *testing.T, text string) (zip, mod string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("record text %q: want two lines", text)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("go.sum line %q: want three fields", l)
		}
		lines[i] = f[2]
	}
	return lines[0], lines[1]
}

func TestFetchAgrees(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	m1 := modVersion("agree", "v1.0.0", "one")
	want := e.served(m1)
	text, err := e.cc.Fetch(ctx, m1.Path, m1.Version)
	if err != nil || string(text) != want {
		t.Fatalf("Fetch(%s@%s) = %q, %v, want %q, nil", m1.Path, m1.Version, text, err, want)
	}
	if got, pub := e.storedHead(), e.pubTree(); got != pub {
		t.Errorf("stored head = %+v, want the public head %+v", got, pub)
	}

	// Across a few tiles of growth: the new head is proved consistent with
	// the stored one, and replaces it.
	e.pub.AppendSynthetic("more", 600)
	m2 := modVersion("agree", "v1.1.0", "two")
	want = e.served(m2)
	old := e.storedHead()
	text, err = e.cc.Fetch(ctx, m2.Path, m2.Version)
	if err != nil || string(text) != want {
		t.Fatalf("Fetch(%s@%s) = %q, %v, want %q, nil", m2.Path, m2.Version, text, err, want)
	}
	if got, pub := e.storedHead(), e.pubTree(); got != pub || got.N <= old.N {
		t.Errorf("stored head after growth = %+v, want the public head %+v, newer than %+v", got, pub, old)
	}
	checkLookups(t, e.cc, map[string]float64{resultOK: 2})

	// A replica sharing the store, with a cache of its own, starts from the
	// stored head.
	m3 := modVersion("agree", "v1.2.0", "three")
	want = e.served(m3)
	if text, err := e.newCrossCheck(Config{}).Fetch(ctx, m3.Path, m3.Version); err != nil || string(text) != want {
		t.Errorf("replica Fetch(%s@%s) = %q, %v, want %q, nil", m3.Path, m3.Version, text, err, want)
	}
}

func TestFetchMismatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		upstream func(m modproxy.Module) modproxy.Module // the upstream's version of m
		zip, mod bool                                    // whether the message names their hashes
	}{
		{"zip", func(m modproxy.Module) modproxy.Module {
			m.Files = map[string]string{"go.mod": m.Files["go.mod"], "m.go": "package m // altered\n"}
			return m
		}, true, false},
		{"go.mod", func(m modproxy.Module) modproxy.Module {
			m.Files = map[string]string{"go.mod": m.Files["go.mod"] + "\nrequire example.com/evil v1.0.0\n", "m.go": m.Files["m.go"]}
			return m
		}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := t.Context()
			m, pubText, upText := e.disagreeing("mismatch", tt.upstream)
			text, err := e.cc.Fetch(ctx, m.Path, m.Version)
			if text != nil || !errors.Is(err, fetch.ErrNotFound) {
				t.Fatalf("Fetch(%s@%s) = %q, %v, want nil, ErrNotFound", m.Path, m.Version, text, err)
			}
			msg := err.Error()
			pubZip, pubMod := hashes(t, pubText)
			upZip, upMod := hashes(t, upText)
			for _, s := range []struct {
				hash string
				want bool
			}{{pubZip, tt.zip}, {upZip, tt.zip}, {pubMod, tt.mod}, {upMod, tt.mod}} {
				if strings.Contains(msg, s.hash) != s.want {
					t.Errorf("Fetch() error %q names %s: %v, want %v", msg, s.hash, !s.want, s.want)
				}
			}
			for _, s := range []string{m.Path + "@" + m.Version, "public checksum database " + pubName} {
				if !strings.Contains(msg, s) {
					t.Errorf("Fetch() error %q does not name %q", msg, s)
				}
			}
			if got := testutil.ToFloat64(e.cc.metrics.mismatches); got != 1 {
				t.Errorf("sumdb_public_mismatches_total = %v, want 1", got)
			}
			checkLookups(t, e.cc, map[string]float64{resultMismatch: 1})
			if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, m.Path) {
				t.Errorf("logs lack an ERROR line naming %s:\n%s", m.Path, logs)
			}
		})
	}
}

func TestFetchMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()

	// Unknown upstream: Next's answer, without a question to the public log.
	text, err := e.cc.Fetch(ctx, "example.com/nowhere", "v1.0.0")
	if text != nil || !errors.Is(err, fetch.ErrNotFound) {
		t.Errorf("Fetch(unknown version) = %q, %v, want nil, ErrNotFound", text, err)
	}
	if got := e.pub.Requests(); len(got) != 0 {
		t.Errorf("the public checksum database got %q for a version the upstream does not have, want nothing", got)
	}

	// Known upstream, unknown to the public log.
	m := modVersion("unpublished", "v1.0.0", "never published")
	e.serve(m)
	text, err = e.cc.Fetch(ctx, m.Path, m.Version)
	want := fmt.Sprintf("%s@%s is not in the public checksum database %s: a public module version must be there first; if the path is private, add it to --private", m.Path, m.Version, pubName)
	if text != nil || !errors.Is(err, fetch.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Errorf("Fetch(%s@%s) = %q, %v, want nil and ErrNotFound with %q", m.Path, m.Version, text, err, want)
	}
	checkLookups(t, e.cc, map[string]float64{resultMissing: 1})
}

// stall is a handler that answers nothing until its request ends.
var stall = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

func TestFetchUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		breakIt func(e *env)
	}{
		{"status 500", func(e *env) { e.pub.SetStatus(http.StatusInternalServerError) }},
		{"status 503", func(e *env) { e.pub.SetStatus(http.StatusServiceUnavailable) }},
		{"stopped", func(e *env) { e.pub.Stop() }},
		{"stalled", func(e *env) { e.pub.SetHandler(stall) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cc := e.newCrossCheck(Config{Timeout: 500 * time.Millisecond})
			before := e.confirmed(cc, "unavailable")
			m2 := modVersion("unavailable", "v1.1.0", "two")
			e.served(m2)
			tt.breakIt(e)
			start := time.Now()
			type result struct {
				text []byte
				err  error
			}
			r := sumdbtest.Returns(t, func(ctx context.Context) result {
				text, err := cc.Fetch(ctx, m2.Path, m2.Version)
				return result{text, err}
			})
			err := r.err
			if r.text != nil || !errors.Is(err, fetch.ErrRetryLater) || errors.Is(err, fetch.ErrNotFound) {
				t.Errorf("Fetch(%s@%s) = %q, %v, want nil, ErrRetryLater", m2.Path, m2.Version, r.text, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Fetch() took %v, want about the timeout of 500ms at most", d)
			}
			if err != nil && (strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "http")) {
				t.Errorf("Fetch() error %q shows the public checksum database's address to the user", err)
			}
			if got := e.storedHead(); got != before {
				t.Errorf("stored head = %+v, want %+v unchanged", got, before)
			}
			checkLookups(t, cc, map[string]float64{resultOK: 1, resultUnavailable: 1})
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := modVersion("canceled", "v1.0.0", "one")
	e.served(m)
	e.pub.SetHandler(stall)
	err := sumdbtest.Returns(t, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := e.cc.Fetch(ctx, m.Path, m.Version) // the default timeout of 30s
		return err
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, fetch.ErrRetryLater) {
		t.Errorf("Fetch(canceled) = %v, want context.Canceled", err)
	}
}

func TestFetchPrivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	for _, path := range []string{"example.com/private", "example.com/private/sub", "git.corp.test/team/repo"} {
		m := modproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{"go.mod": "module " + path + "\n"}}
		e.serve(m)
		e.publish(m) // were it sent, the public log would confirm it
		e.pub.ResetRequests()
		text, err := e.cc.Fetch(ctx, m.Path, m.Version)
		if text != nil || !errors.Is(err, fetch.ErrNotFound) || !strings.Contains(err.Error(), "private") {
			t.Errorf("Fetch(%s@%s) = %q, %v, want nil and ErrNotFound saying it is private", m.Path, m.Version, text, err)
		}
		if got := e.pub.Requests(); len(got) != 0 {
			t.Errorf("Fetch(%s@%s) sent %q to the public checksum database, want nothing", m.Path, m.Version, got)
		}
		if got := e.up.Requests(""); got.Total() != 0 {
			t.Errorf("Fetch(%s@%s) made %+v requests to the upstream, want none", m.Path, m.Version, got)
		}

		// The client's own guard, behind Fetch's.
		if _, err := e.cc.lookup(ctx, m.Path, m.Version); !errors.Is(err, fetch.ErrNotFound) {
			t.Errorf("lookup(%s@%s) = %v, want ErrNotFound", m.Path, m.Version, err)
		}
		if got := e.pub.Requests(); len(got) != 0 {
			t.Errorf("lookup(%s@%s) sent %q to the public checksum database, want nothing", m.Path, m.Version, got)
		}
	}
	// The counts above count: a public path reaches both.
	m := modVersion("notprivate", "v1.0.0", "public")
	e.served(m)
	e.pub.ResetRequests()
	if _, err := e.cc.Fetch(ctx, m.Path, m.Version); err != nil {
		t.Fatal(err)
	}
	if len(e.pub.Requests()) == 0 || e.up.Requests("").Total() == 0 {
		t.Errorf("Fetch(public path) reached the public checksum database with %q and the upstream %+v times, want both", e.pub.Requests(), e.up.Requests(""))
	}
	checkLookups(t, e.cc, map[string]float64{resultOK: 1})
}

// fakeClock returns the clock of a CrossCheck that is off by an offset the
// test moves on.
func fakeClock(cc *CrossCheck) *atomic.Int64 {
	off := new(atomic.Int64)
	cc.now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	return off
}

func TestFork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	stored := e.confirmed(e.cc, "fork")
	// A replica that saw no fork a moment ago.
	replica := e.newCrossCheck(Config{})
	replicaClock := fakeClock(replica)
	if ev, err := replica.Fork(ctx); ev != "" || err != nil {
		t.Fatalf("Fork() = %q, %v, want no fork", ev, err)
	}

	// The public log's URL serves another tree under the same key, larger
	// and not an extension of the stored head's.
	other := sumdbtest.MustStart(t, sumdbtest.Options{Key: e.pub.Key})
	other.AppendSynthetic("other", 5)
	m2 := modVersion("fork", "v1.1.0", "two")
	e.serve(m2)
	other.Add(m2)
	other.Record(m2.Path, m2.Version)
	e.pub.SetHandler(other.Server)

	text, err := e.cc.Fetch(ctx, m2.Path, m2.Version)
	if text != nil || !errors.Is(err, fetch.ErrRetryLater) || !strings.Contains(err.Error(), "showed a fork") || !strings.Contains(err.Error(), "operator") {
		t.Fatalf("Fetch(%s@%s) from a forked log = %q, %v, want nil and ErrRetryLater saying it forked", m2.Path, m2.Version, text, err)
	}
	if got := testutil.ToFloat64(e.cc.metrics.fork); got != 1 {
		t.Errorf("sumdb_public_fork = %v, want 1", got)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "SECURITY ERROR") {
		t.Errorf("logs lack the ERROR line with the evidence:\n%s", logs)
	}
	evidence, err := e.st.ReadState(ctx, "public/"+pubName+"/fork")
	if err != nil {
		t.Fatal(err)
	}
	// Both heads: the stored one, and the other tree's.
	otherTree, err := client.OpenTreeHead(other.Latest(), note.VerifierList(e.pub.Key.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []xtlog.Tree{stored, otherTree} {
		if s := xtlog.FormatTree(h); !bytes.Contains(evidence, indent(s)) {
			t.Errorf("stored evidence lacks head %q:\n%s", s, evidence)
		}
	}
	if got := e.storedHead(); got != stored {
		t.Errorf("stored head = %+v, want %+v unchanged", got, stored)
	}

	// Every later public version is refused, without a question to either
	// side, here and after a restart.
	e.pub.SetHandler(e.pub.Server) // even where the log answers well again
	// The honest tree grows to the other's size, so that their tiles have
	// the same names: the other's, verified against its own head before the
	// fork showed, must not be taken for the honest ones after it.
	e.pub.AppendSynthetic("pad", int(otherTree.N-stored.N-1))
	m3 := modVersion("fork", "v1.2.0", "three")
	e.served(m3)
	if got := e.pubTree().N; got != otherTree.N {
		t.Fatalf("public tree has %d records, want %d", got, otherTree.N)
	}
	e.pub.ResetRequests()
	upBefore := e.up.Requests("").Total()
	restarted := e.newCrossCheck(Config{})
	for name, cc := range map[string]*CrossCheck{"same": e.cc, "restarted": restarted} {
		if text, err := cc.Fetch(ctx, m3.Path, m3.Version); text != nil || !errors.Is(err, fetch.ErrRetryLater) || !strings.Contains(err.Error(), "showed a fork") {
			t.Errorf("%s: Fetch(%s@%s) after the fork = %q, %v, want nil and ErrRetryLater saying it forked", name, m3.Path, m3.Version, text, err)
		}
	}
	if got := restarted.metrics.fork; testutil.ToFloat64(got) != 1 {
		t.Errorf("restarted: sumdb_public_fork = %v, want 1", testutil.ToFloat64(got))
	}
	if got, ev := e.pub.Requests(), e.up.Requests("").Total(); len(got) != 0 || ev != upBefore {
		t.Errorf("after the fork, Fetch reached the public checksum database with %q and the upstream %d times, want neither", got, ev-upBefore)
	}
	if ev, err := restarted.Fork(ctx); ev != string(evidence) || err != nil {
		t.Errorf("Fork() = %q, %v, want the stored evidence", ev, err)
	}
	if ev, err := ReadFork(ctx, e.st, pubName); ev != string(evidence) || err != nil {
		t.Errorf("ReadFork() = %q, %v, want the stored evidence", ev, err)
	}

	// The replica sees the fork once its re-check is due.
	replicaClock.Add(int64(forkRecheck))
	if text, err := replica.Fetch(ctx, m3.Path, m3.Version); text != nil || !errors.Is(err, fetch.ErrRetryLater) {
		t.Errorf("replica: Fetch(%s@%s) after another replica's fork = %q, %v, want nil and ErrRetryLater", m3.Path, m3.Version, text, err)
	}

	// An operator clears it: every replica goes on once it re-checks.
	if err := ClearFork(ctx, e.st, pubName); err != nil {
		t.Fatal(err)
	}
	if ev, err := restarted.Fork(ctx); ev != "" || err != nil {
		t.Errorf("Fork() after ClearFork = %q, %v, want no fork", ev, err)
	}
	if ev, err := ReadFork(ctx, e.st, pubName); ev != "" || err != nil {
		t.Errorf("ReadFork() after ClearFork = %q, %v, want no fork", ev, err)
	}
	fakeClock(e.cc).Add(int64(forkRecheck))
	replicaClock.Add(int64(forkRecheck))
	for name, cc := range map[string]*CrossCheck{"same": e.cc, "restarted": restarted, "replica": replica} {
		want := e.pub.Record(m3.Path, m3.Version)
		if text, err := cc.Fetch(ctx, m3.Path, m3.Version); string(text) != want || err != nil {
			t.Errorf("%s: Fetch(%s@%s) after ClearFork = %q, %v, want %q, nil", name, m3.Path, m3.Version, text, err, want)
		}
		if got := testutil.ToFloat64(cc.metrics.fork); got != 0 {
			t.Errorf("%s: sumdb_public_fork = %v, want 0", name, got)
		}
	}
	if err := ClearFork(ctx, e.st, pubName); err != nil {
		t.Errorf("ClearFork() without a fork = %v, want nil", err)
	}
}

// TestForkSameSize serves a head of the stored head's size and another
// root hash, and nothing that proves it: the tiles of the stored head,
// which the CrossCheck verified and keeps, prove the fork.
func TestForkSameSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	stored := e.confirmed(e.cc, "samesize")
	claimed := e.pub.Key.SignTree(t, stored.N, xtlog.RecordHash([]byte("other")))
	e.pub.SetHandler(sumdbtest.ClaimedHead(claimed))
	m2 := modVersion("samesize", "v1.1.0", "two")
	e.serve(m2)

	// A new process, without the tiles of the stored head, cannot prove
	// the fork, and refuses as it would a tile altered.
	restarted := e.newCrossCheck(Config{})
	if text, err := restarted.Fetch(ctx, m2.Path, m2.Version); text != nil || !errors.Is(err, fetch.ErrRetryLater) || strings.Contains(err.Error(), "fork") {
		t.Errorf("restarted: Fetch(%s@%s) = %q, %v, want nil and ErrRetryLater, no fork", m2.Path, m2.Version, text, err)
	}
	checkLookups(t, restarted, map[string]float64{resultInvalid: 1})

	text, err := e.cc.Fetch(ctx, m2.Path, m2.Version)
	if text != nil || !errors.Is(err, fetch.ErrRetryLater) || !strings.Contains(err.Error(), "showed a fork") {
		t.Fatalf("Fetch(%s@%s) = %q, %v, want nil and ErrRetryLater saying it forked", m2.Path, m2.Version, text, err)
	}
	evidence, err := e.cc.Fork(ctx)
	if err != nil || !strings.Contains(evidence, "SECURITY ERROR") || !strings.Contains(evidence, string(indent(claimed))) {
		t.Errorf("Fork() = %q, %v, want the evidence with the claimed head", evidence, err)
	}
	checkLookups(t, e.cc, map[string]float64{resultOK: 1, resultFork: 1})
}

func TestFetchTampered(t *testing.T) {
	t.Parallel()
	other := sumdbtest.NewKey(t, pubName) // the same name, another key
	for _, tt := range []struct {
		name   string
		attack func(e *env, upZip, pubZip string)
	}{
		{"head of another key", func(e *env, _, _ string) {
			e.pub.SetHandler(sumdbtest.ClaimedHead(other.SignTree(t, 1, xtlog.RecordHash([]byte("x")))))
		}},
		{"head too large", func(e *env, _, _ string) {
			e.pub.SetHandler(sumdbtest.ClaimedHead(e.pub.Key.SignTree(t, client.MaxTreeSize+1, xtlog.RecordHash([]byte("x")))))
		}},
		{"tile", func(e *env, _, _ string) {
			e.pub.SetTamper(func(path string, body []byte) []byte {
				if strings.HasPrefix(path, "/tile/") && len(body) > 0 {
					body[0] ^= 1
				}
				return body
			})
		}},
		{"record made to agree", func(e *env, upZip, pubZip string) {
			e.pub.SetTamper(func(path string, body []byte) []byte {
				if strings.HasPrefix(path, "/lookup/") {
					return bytes.ReplaceAll(body, []byte(pubZip), []byte(upZip))
				}
				return body
			})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := t.Context()
			m, pubText, upText := e.disagreeing("tampered", func(m modproxy.Module) modproxy.Module {
				return modVersion("tampered", m.Version, "altered")
			})
			upZip, _ := hashes(t, upText)
			pubZip, _ := hashes(t, pubText)
			genuine := e.pubTree()
			tt.attack(e, upZip, pubZip)
			text, err := e.cc.Fetch(ctx, m.Path, m.Version)
			if text != nil || !errors.Is(err, fetch.ErrRetryLater) || errors.Is(err, fetch.ErrNotFound) {
				t.Fatalf("Fetch(%s@%s) = %q, %v, want nil, ErrRetryLater", m.Path, m.Version, text, err)
			}
			if !strings.Contains(err.Error(), "does not verify") {
				t.Errorf("Fetch() error %q does not say the answer does not verify", err)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR") {
				t.Errorf("logs lack an ERROR line:\n%s", logs)
			}
			// The signed head of a lookup is verified, and kept, before the
			// record; only a genuine one.
			if got := e.storedHead(); got != (xtlog.Tree{}) && got != genuine {
				t.Errorf("stored head = %+v, want none or the genuine %+v", got, genuine)
			}
			checkLookups(t, e.cc, map[string]float64{resultInvalid: 1})
		})
	}
}

// TestReplicas runs lookups of two replicas sharing one store at once:
// every version is confirmed, and the stored head is the public log's.
func TestReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	replicas := []*CrossCheck{e.cc, e.newCrossCheck(Config{})}
	var mods []modproxy.Module
	want := make(map[string]string)
	for i := range 8 {
		m := modVersion("replicas", fmt.Sprintf("v1.0.%d", i), fmt.Sprint(i))
		want[m.Version] = e.served(m)
		mods = append(mods, m)
	}
	var wg sync.WaitGroup
	for _, cc := range replicas {
		for _, m := range mods {
			wg.Go(func() {
				if text, err := cc.Fetch(ctx, m.Path, m.Version); err != nil || string(text) != want[m.Version] {
					t.Errorf("Fetch(%s@%s) = %q, %v, want %q, nil", m.Path, m.Version, text, err, want[m.Version])
				}
			})
		}
	}
	wg.Wait()
	if got, pub := e.storedHead(), e.pubTree(); got != pub {
		t.Errorf("stored head = %+v, want the public head %+v", got, pub)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	st, err := store.OpenPostgres(t.Context(), storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnvStore(t, st)
	m := modVersion("postgres", "v1.0.0", "one")
	want := e.served(m)
	if text, err := e.cc.Fetch(t.Context(), m.Path, m.Version); err != nil || string(text) != want {
		t.Fatalf("Fetch(%s@%s) = %q, %v, want %q, nil", m.Path, m.Version, text, err, want)
	}
	if got, pub := e.storedHead(), e.pubTree(); got != pub {
		t.Errorf("stored head = %+v, want the public head %+v", got, pub)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no remote", Config{Next: e.next, State: e.st}},
		{"no next", Config{Remote: e.remote, State: e.st}},
		{"no state", Config{Remote: e.remote, Next: e.next}},
		{"negative timeout", Config{Remote: e.remote, Next: e.next, State: e.st, Timeout: -1}},
		{"negative cache", Config{Remote: e.remote, Next: e.next, State: e.st, CacheSize: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if cc, err := New(tt.cfg); err == nil {
				t.Errorf("New(%s) = %v, nil, want an error", tt.name, cc)
			}
		})
	}

	reg := prometheus.NewRegistry()
	cc, err := New(Config{Remote: e.remote, Next: e.next, State: e.st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if cc.timeout != DefaultTimeout || cc.cacheSize != DefaultCacheSize {
		t.Errorf("New() timeout, cache size = %v, %d, want %v, %d", cc.timeout, cc.cacheSize, DefaultTimeout, DefaultCacheSize)
	}
	for _, name := range []string{"sumdb_public_lookups_total", "sumdb_public_mismatches_total", "sumdb_public_fork"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("GatherAndCount(%s) = %d, %v, want some", name, n, err)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint() = %v, %v", problems, err)
	}
	if _, err := New(Config{Remote: e.remote, Next: e.next, State: e.st, Registerer: reg}); err == nil {
		t.Error("New() on a registry holding its metrics = nil error, want one")
	}
}

// indent indents the lines of a note after the first, as the x/mod
// client's SECURITY ERROR shows notes.
func indent(msg []byte) []byte {
	return bytes.ReplaceAll(bytes.TrimSuffix(msg, []byte("\n")), []byte("\n"), []byte("\n\t"))
}
