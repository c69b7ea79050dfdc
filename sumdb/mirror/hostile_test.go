package mirror

import (
	"bytes"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog/export"
)

// TestNegativeRecordID checks a lookup answer whose record id is
// negative, with the true text of record 0: xtlog.ParseRecord accepts a
// negative id and xtlog.StoredHashIndex(0, -1) is 0, so the inclusion
// proof passes. The answer must be refused as upstream data that failed
// verification (502, counted and logged with reason "record"), not
// reported as the store being unavailable.
func TestNegativeRecordID(t *testing.T) {
	up := startUpstream(t, 300)
	e := newEnv(t, up)
	mustGet(t, e.srv.URL+"/latest")
	recs, err := up.Store.ReadRecords(t.Context(), 0, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadRecords(0, 1) = %v, %v", recs, err)
	}
	mod := recs[0].Path
	tamper := onPaths("/lookup/", func(body []byte) []byte {
		rest, ok := bytes.CutPrefix(body, []byte("0\n"))
		if !ok {
			t.Errorf("lookup answer %q is not of record 0", body)
		}
		return append([]byte("-1\n"), rest...)
	})
	up.SetTamper(func(path string, body []byte) []byte { return tamper(t, path, body) })
	code, body, _ := get(t, e.srv.URL+"/lookup/"+mod+"@v1.0.0")
	if code != http.StatusBadGateway {
		t.Errorf("GET /lookup/%s@v1.0.0 answered with record id -1 = %d %q, want 502 (refused)", mod, code, body)
	}
	if got := testutil.ToFloat64(e.m.metrics.upstreamErrors.WithLabelValues(reasonRecord)); got != 1 {
		t.Errorf("upstream_errors{reason=record} = %v, want 1", got)
	}
	if st := e.m.Status(); !errors.Is(st.Err, ErrRefused) {
		t.Errorf("Status().Err = %v, want a refusal", st.Err)
	}
}

// TestLatestSpacingWithoutHead checks that a mirror with no verified
// head yet, whose upstream fails, does not pass every /latest request on
// to the upstream: at most one upstream /latest a second.
func TestLatestSpacingWithoutHead(t *testing.T) {
	up := startUpstream(t, 10)
	e := newEnv(t, up)
	up.SetStatus(http.StatusServiceUnavailable)
	for range 20 {
		if code, _, _ := get(t, e.srv.URL+"/latest"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /latest with no head and the upstream failing = %d, want 503", code)
		}
	}
	if n := countRequests(up, "/latest"); n > 1 {
		t.Errorf("20 requests of /latest in the same second, no verified head: %d upstream /latest requests, want at most 1", n)
	}
}

// TestOlderHeads checks heads older than the verified one: the
// honest log's (a lagging replica) is accepted without a fork, and a
// forked older head is refused as a fork; neither replaces the verified
// head.
func TestOlderHeads(t *testing.T) {
	for _, tt := range []struct {
		name string
		fork bool
	}{{"honest", false}, {"forked", true}} {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, 200)
			older := up.Latest()
			if tt.fork {
				older = up.Key.SignTree(t, 200, xtlog.Hash{7})
			}
			up.AppendSynthetic("b", 100)
			e := newEnv(t, up)
			verified := mustGet(t, e.srv.URL+"/latest")
			up.SetHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/latest" {
					w.Write(older)
					return
				}
				up.Server.ServeHTTP(w, r)
			}))
			e.clock.Advance(time.Minute)
			if got := mustGet(t, e.srv.URL+"/latest"); !bytes.Equal(got, verified) {
				t.Errorf("GET /latest, upstream at an older head = %q, want the verified %q", got, verified)
			}
			if st := e.m.Status(); (st.Fork != "") != tt.fork || st.Size != 300 {
				t.Errorf("Status() = %+v, want size 300 and fork %v", st, tt.fork)
			}
		})
	}
}

// TestHeadTooLarge checks that a head of more than
// client.MaxTreeSize records, signed by the upstream's key, is refused
// and not stored.
func TestHeadTooLarge(t *testing.T) {
	up := startUpstream(t, 10)
	e := newEnv(t, up)
	up.SetHandler(sumdbtest.ClaimedHead(up.Key.SignTree(t, client.MaxTreeSize+1, xtlog.Hash{1})))
	if code, body, _ := get(t, e.srv.URL+"/latest"); code != http.StatusBadGateway {
		t.Errorf("GET /latest of a head of 2^40+1 records = %d %q, want 502", code, body)
	}
	if msg, err := e.st.ReadState(t.Context(), e.m.latestState()); msg != nil || err != nil {
		t.Errorf("stored head = %q, %v; want none", msg, err)
	}
}

// TestImportHeadTooLarge checks that an export file whose mirror
// section holds a head of more than client.MaxTreeSize records, signed by
// the database's key, is refused by Import, as the mirror refuses such a
// head from the upstream: once stored, the store's mirror cannot start.
func TestImportHeadTooLarge(t *testing.T) {
	ctx := t.Context()
	key := sumdbtest.NewKey(t, "sum.huge.test")
	huge := key.SignTree(t, client.MaxTreeSize+1, xtlog.Hash{1})
	src, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// One tile, so that the database is listed and its section written.
	if err := src.PutMirrorTile(ctx, "sum.huge.test", 0, 0, make([]byte, 32*256)); err != nil {
		t.Fatal(err)
	}
	if err := src.SwapState(ctx, export.MirrorHeadState("sum.huge.test"), nil, huge); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := export.WriteFile(ctx, src, &file, "", nil); err != nil {
		t.Fatal(err)
	}
	dst, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	_, err = export.Import(ctx, dst, bytes.NewReader(file.Bytes()), export.ImportConfig{MirrorKeys: map[string]string{"sum.huge.test": key.VKey}})
	if err == nil {
		t.Errorf("Import(file with a mirror head of 2^40+1 records) = nil, want an error")
	}
	remote, err := client.Open(ctx, client.Config{GOSUMDB: key.VKey + " http://127.0.0.1:1", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Remote: remote, Store: dst}); err != nil {
		t.Errorf("New() on the store after the import = %v, want a mirror (the import must not store what New refuses)", err)
	}
}

// TestStalledUpstreamLatest checks that a mirror holding a verified
// head answers /latest promptly while its upstream stalls (accepts the
// request and never answers), rather than holding each request for the
// whole upstream Timeout.
func TestStalledUpstreamLatest(t *testing.T) {
	up := startUpstream(t, 10)
	e := newEnv(t, up) // Timeout: 5s
	verified := mustGet(t, e.srv.URL+"/latest")
	release := make(chan struct{})
	up.SetHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	e.clock.Advance(time.Minute)
	c := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	resp, err := c.Get(e.srv.URL + "/latest")
	if err != nil {
		t.Fatalf("GET /latest, upstream stalled, verified head held: %v after %v, want the verified head within 2s", err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body.Bytes(), verified) {
		t.Errorf("GET /latest, upstream stalled = %d %q, want the verified head", resp.StatusCode, body.Bytes())
	}
}
