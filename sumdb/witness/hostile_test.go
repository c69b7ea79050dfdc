package witness_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/fakewitness"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/witness"
)

// headSize returns the tree size of the signed head msg, which must open
// with the log's key.
func headSize(t *testing.T, msg []byte, v note.Verifier) int64 {
	t.Helper()
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(%q) = %v", msg, err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	return tree.N
}

// TestQuorumAfterRestart checks the documented contract of
// --witness-quorum ("/latest serves the newest head that has at least N
// cosignatures, and a newer head only once it has them") across a restart
// of the server, and on another replica: the head that reached the quorum
// is kept in the store with its cosignatures.
func TestQuorumAfterRestart(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	b := fakewitness.New(t, "witness-b.test", db.Key.Verifier)
	first := start(t, db, 2, a, b)
	size := first.appendHeads(t, 3)
	first.waitCosigned(t, a.Name, size)
	first.waitCosigned(t, b.Name, size)
	b.SetMode("403")
	newSize := first.appendHeads(t, 2)
	first.waitCosigned(t, a.Name, newSize)
	before, err := first.c.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := headSize(t, before, db.Key.Verifier); got != size {
		t.Fatalf("Latest() before the restart = head of size %d, want %d", got, size)
	}

	// The server restarts (or a second replica starts) on the same store.
	second := start(t, db, 2, a, b)
	second.n = first.n
	second.waitCosigned(t, a.Name, newSize)
	after, err := second.c.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	names := signers(t, after, db.Key.Verifier, a.VKey, b.VKey)
	if got := headSize(t, after, db.Key.Verifier); got != size || len(names) < 2 {
		t.Errorf("Latest() after a restart = head of size %d cosigned by %v, want the head of size %d with 2 cosignatures, as before the restart", got, names, size)
	}
}

// scripted starts a witness on loopback answering every add-checkpoint
// with answer, and counts the calls.
func scripted(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (string, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &calls
}

// TestConflictZeroNotFork checks that a witness answering 409 with
// size 0 to a submission from old size 0 is not reported as a FORK: there
// is one tree of size 0, so that answer is garbage, not another root hash.
func TestConflictZeroNotFork(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	good := fakewitness.New(t, "good.test", db.Key.Verifier)
	liar := fakewitness.New(t, "liar.test", db.Key.Verifier) // for its key only
	liar.URL, _ = scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, "0\n")
	})
	e := start(t, db, 0, good, liar)
	size := e.appendHeads(t, 2)
	e.waitCosigned(t, good.Name, size)
	waitFor(t, "a counted failure of liar.test", func() bool {
		return e.count(t, "liar.test", "fork")+e.count(t, "liar.test", "invalid")+e.count(t, "liar.test", "refused") > 0
	})
	if n := e.count(t, "liar.test", "fork"); n > 0 || strings.Contains(e.logs.String(), "FORK") {
		t.Errorf("409 \"0\" to old 0: %d submissions counted fork, logs %s; want invalid, and no FORK", n, e.logs.String())
	}
}

// TestBadWitnessBounds checks that a witness answering a huge body,
// garbage 409s, or a 409 naming a size larger than the log's, is counted,
// retried with backoff and never stops the other witness.
func TestBadWitnessBounds(t *testing.T) {
	for _, tt := range []struct {
		name   string
		result string
		answer func(w http.ResponseWriter, r *http.Request)
	}{
		{"huge 200", "invalid", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("a"), 1<<16)
			for range 1 << 10 { // 64 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"409 garbage", "invalid", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "twelve\n")
		}},
		{"409 negative", "invalid", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "-5\n")
		}},
		{"409 beyond the log", "refused", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "9223372036854775807\n")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := sumdbtest.MustStart(t, sumdbtest.Options{})
			good := fakewitness.New(t, "good.test", db.Key.Verifier)
			bad := fakewitness.New(t, "bad.test", db.Key.Verifier)
			var calls *atomic.Int64
			bad.URL, calls = scripted(t, tt.answer)
			e := start(t, db, 0, good, bad)
			size := e.appendHeads(t, 2)
			e.waitCosigned(t, good.Name, size)
			waitFor(t, "a counted failure", func() bool { return e.count(t, "bad.test", tt.result) > 0 })
			// No new head for 2.5s: the retries back off (1s, then 2s).
			start := calls.Load()
			time.Sleep(2500 * time.Millisecond)
			if n := calls.Load() - start; n > 4 {
				t.Errorf("%d calls in 2.5s without a new head, want at most 4 (a retry after 1s, then 2s, each at most 2 calls)", n)
			}
			size = e.appendHeads(t, 1)
			e.waitCosigned(t, good.Name, size)
		})
	}
}

// TestStalledWitnessCommit checks that a witness that holds every
// submission does not slow the log's appends.
func TestStalledWitnessCommit(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	a.SetMode("hold")
	e := start(t, db, 1, a)
	begin := time.Now()
	e.appendHeads(t, 20)
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("20 appends with a stalled witness took %v, want well under the 1s submission timeout each", d)
	}
	begin = time.Now()
	if _, err := e.c.Latest(t.Context()); err != nil || time.Since(begin) > time.Second {
		t.Errorf("Latest() with a stalled witness = %v after %v, want at once", err, time.Since(begin))
	}
}

// TestMLDSAWitnessRefused checks that Check refuses a witness key
// whose cosignatures the store can never keep: an ML-DSA-44 cosignature
// line is over 3 KiB, and the store bounds a line to 1024 bytes.
func TestMLDSAWitnessRefused(t *testing.T) {
	_, vkey, err := fnote.GenerateMLDSAKey("pq.witness.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := witness.Check([]witness.Witness{{VKey: vkey, URL: "https://pq.witness.test"}}, 1); err == nil {
		t.Errorf("Check(ML-DSA-44 witness key) = nil, want an error: its cosignature lines exceed the store's 1024-byte bound, so it could never be stored")
	}
}
