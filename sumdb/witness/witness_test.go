package witness_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/fakewitness"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/witness"
)

// env is a log with a Cosigner running over witnesses.
type env struct {
	db   *sumdbtest.DB
	c    *witness.Cosigner
	reg  *prometheus.Registry
	logs *syncBuffer
	n    int // records appended so far
}

// A syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs a Cosigner over db's log and the witnesses ws until the test
// ends.
func start(t *testing.T, db *sumdbtest.DB, quorum int, ws ...*fakewitness.Witness) *env {
	t.Helper()
	e := &env{db: db, reg: prometheus.NewRegistry(), logs: new(syncBuffer)}
	var list []witness.Witness
	for _, w := range ws {
		list = append(list, witness.Witness{VKey: w.VKey, URL: w.URL})
	}
	c, err := witness.New(witness.Config{
		Witnesses:  list,
		Log:        db.Log,
		Store:      db.Store.(witness.CosignatureStore),
		Quorum:     quorum,
		Logger:     slog.New(slog.NewTextHandler(e.logs, nil)),
		Registerer: e.reg,
		Timeout:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// appendHeads appends n records, one head each, telling the Cosigner of
// each, and returns the newest size.
func (e *env) appendHeads(t *testing.T, n int) int64 {
	t.Helper()
	for range n {
		path := fmt.Sprintf("example.com/m%d", e.n)
		e.n++
		if _, _, err := e.db.Log.Append(t.Context(), path, "v1.0.0", sumdbtest.SynthText(path, "v1.0.0")); err != nil {
			t.Fatal(err)
		}
		e.c.Notify()
	}
	return e.db.Log.Head().Size
}

// waitFor fails t unless cond holds within 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// waitCosigned waits until the witness named name cosigned size for e.
func (e *env) waitCosigned(t *testing.T, name string, size int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to cosign tree size %d", name, size), func() bool {
		for _, st := range e.c.Status() {
			if st.Name == name && st.Size >= size {
				return true
			}
		}
		return false
	})
}

// count returns sumdb_witness_submissions_total{witness=name, result=result}.
func (e *env) count(t *testing.T, name, result string) int {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sumdb_witness_submissions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["witness"] == name && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// signers returns the names of the keys of vkeys whose signatures on msg
// verify, failing t unless msg opens with the log's key as the go command
// opens it.
func signers(t *testing.T, msg []byte, logV note.Verifier, vkeys ...string) []string {
	t.Helper()
	if _, err := note.Open(msg, note.VerifierList(logV)); err != nil {
		t.Fatalf("note.Open(latest, log key) = %v, want the go command to accept it", err)
	}
	vs := []note.Verifier{logV}
	for _, k := range vkeys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("note.Open(latest, all keys) = %v", err)
	}
	var names []string
	for _, s := range n.Sigs[1:] {
		names = append(names, s.Name)
	}
	return names
}

func TestCosigned(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	b := fakewitness.New(t, "witness-b.test", db.Key.Verifier)
	e := start(t, db, 0, a, b)
	if got, err := e.c.Latest(t.Context()); err != nil || got != nil {
		t.Errorf("Latest(empty log) = %q, %v, want nil, nil", got, err)
	}
	for round := range 3 {
		size := e.appendHeads(t, 2)
		e.waitCosigned(t, a.Name, size)
		e.waitCosigned(t, b.Name, size)
		latest, err := e.c.Latest(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(signers(t, latest, db.Key.Verifier, a.VKey, b.VKey), ","), "witness-a.test,witness-b.test"; got != want {
			t.Errorf("round %d: Latest() cosigned by %s, want %s", round, got, want)
		}
		if !bytes.HasPrefix(latest, db.Log.Head().Note) {
			t.Errorf("round %d: Latest() = %q, want the newest head %q with lines appended", round, latest, db.Log.Head().Note)
		}
		lines, err := db.Store.(witness.CosignatureStore).ReadCosignatures(t.Context(), size)
		if err != nil || len(lines) != 2 {
			t.Errorf("round %d: ReadCosignatures(%d) = %d lines, %v, want 2", round, size, len(lines), err)
		}
	}
	// After the first head, each submission proves consistency from the
	// size the witness last cosigned, with no 409.
	for _, w := range []*fakewitness.Witness{a, b} {
		_, reqs := w.State()
		for i, r := range reqs {
			if r.Status != 200 {
				t.Errorf("%s: call %d = %+v, want 200", w.Name, i, r)
			}
			if i > 0 && (r.Old != reqs[i-1].Size || r.Proof == 0) {
				t.Errorf("%s: call %d from old %d with %d proof hashes, want from %d with a proof", w.Name, i, r.Old, r.Proof, reqs[i-1].Size)
			}
		}
		if n := e.count(t, w.Name, "ok"); n != len(reqs) {
			t.Errorf("%s: %d submissions counted ok, want %d", w.Name, n, len(reqs))
		}
	}
}

// TestConflictRecovery checks that a Cosigner that does not know the size
// a witness holds (a restart, another replica) learns it from the 409
// answer and catches up with one proof.
func TestConflictRecovery(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	first := start(t, db, 0, a)
	size := first.appendHeads(t, 3)
	first.waitCosigned(t, a.Name, size)

	second := start(t, db, 0, a) // knows nothing of a: starts from old 0
	second.n = first.n
	newSize := second.appendHeads(t, 5)
	second.waitCosigned(t, a.Name, newSize)
	if got := second.count(t, a.Name, "ok"); got < 1 {
		t.Errorf("ok submissions = %d, want at least 1", got)
	}
	_, reqs := a.State()
	var conflicts, fromOld int
	for _, r := range reqs {
		if r.Status == 409 {
			conflicts++
		}
		if r.Status == 200 && r.Old >= size && r.Size == newSize && r.Proof > 0 {
			fromOld++
		}
	}
	if conflicts == 0 || fromOld == 0 {
		t.Errorf("witness calls %+v: want a 409 then a cosigned head of size %d proved from at least %d", reqs, newSize, size)
	}
}

// TestFailingWitnesses checks that a witness that is down, slow, refuses
// or answers garbage is counted and shown while the others cosign, and
// that it catches up with one proof once it is back.
func TestFailingWitnesses(t *testing.T) {
	for _, tt := range []struct {
		mode, result, status string
	}{
		// A connection kept alive may end in EOF before a new one is
		// refused.
		{"down", "error", "connect|EOF"},
		{"slow", "error", "deadline"},
		{"403", "refused", "403"},
		{"500", "error", "500"},
		{"garbage", "invalid", "without a valid cosignature"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			db := sumdbtest.MustStart(t, sumdbtest.Options{})
			good := fakewitness.New(t, "good.test", db.Key.Verifier)
			bad := fakewitness.New(t, "bad.test", db.Key.Verifier)
			e := start(t, db, 0, good, bad)
			size := e.appendHeads(t, 2)
			e.waitCosigned(t, bad.Name, size)
			if tt.mode == "down" {
				bad.Server.Listener.Close()
				bad.Server.CloseClientConnections()
			} else {
				bad.SetMode(tt.mode)
			}
			sizeDown := e.appendHeads(t, 3)
			e.waitCosigned(t, good.Name, sizeDown)
			waitFor(t, "a counted failure", func() bool { return e.count(t, bad.Name, tt.result) > 0 })
			var st witness.WitnessStatus
			for _, s := range e.c.Status() {
				if s.Name == bad.Name {
					st = s
				}
			}
			if st.Err == nil || !slices.ContainsFunc(strings.Split(tt.status, "|"), func(w string) bool { return strings.Contains(st.Err.Error(), w) }) || st.Size != size {
				t.Errorf("Status(%s) = size %d, err %v, want size %d, an error with %q", bad.Name, st.Size, st.Err, size, tt.status)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "witness=bad.test") || !strings.Contains(logs, "level=WARN") {
				t.Errorf("logs = %s, want a warning naming bad.test", logs)
			}
			latest, err := e.c.Latest(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(signers(t, latest, db.Key.Verifier, good.VKey, bad.VKey), ","); got != "good.test" {
				t.Errorf("Latest() cosigned by %s, want good.test", got)
			}
			if tt.mode == "down" {
				return // the listener is gone for good
			}
			bad.SetMode("")
			e.waitCosigned(t, bad.Name, sizeDown) // by the retry, without a new head
			_, reqs := bad.State()
			last := reqs[len(reqs)-1]
			// From the size it last cosigned, or from a head submitted
			// while the fault was being lifted (a request on its way
			// when SetMode ran): either way one proof to the newest.
			if last.Status != 200 || last.Old < size || last.Old >= sizeDown || last.Size != sizeDown || last.Proof == 0 {
				t.Errorf("catch-up call %+v, want 200 from an old size in [%d, %d) to %d with a proof", last, size, sizeDown, sizeDown)
			}
		})
	}
}

// TestCoalesce checks that a witness busy with one head gets only the
// newest of the heads committed meanwhile.
func TestCoalesce(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	a.SetMode("hold")
	e := start(t, db, 0, a)
	e.appendHeads(t, 1)
	waitFor(t, "the first submission to reach the witness", func() bool { return a.Held() > 0 })
	size := e.appendHeads(t, 10)
	a.SetMode("")
	e.waitCosigned(t, a.Name, size)
	_, reqs := a.State()
	if len(reqs) > 3 {
		t.Errorf("witness calls %+v for 11 heads, want at most 3 (the held one, then the newest)", reqs)
	}
}

// TestFork checks that a witness that cosigned one log refuses a second
// log under the same key with a different tree, and that the second
// Cosigner reports it as a fork.
func TestFork(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	e := start(t, db, 0, a)
	e.n = 100
	size := e.appendHeads(t, 4)
	e.waitCosigned(t, a.Name, size)

	fork := sumdbtest.MustStart(t, sumdbtest.Options{Key: db.Key})
	f := start(t, fork, 0, a)
	f.appendHeads(t, 6) // other records: another tree
	waitFor(t, "the fork to be counted", func() bool { return f.count(t, a.Name, "fork") > 0 })
	if logs := f.logs.String(); !strings.Contains(logs, "FORK") || !strings.Contains(logs, "level=ERROR") {
		t.Errorf("logs = %s, want an error saying FORK", logs)
	}
	if st := f.c.Status()[0]; st.Size != 0 || st.Err == nil {
		t.Errorf("Status() = %+v, want nothing cosigned and the fork", st)
	}
	if held, _ := a.State(); held != size {
		t.Errorf("witness holds size %d, want %d of the first log", held, size)
	}
}

// TestQuorum checks the head Latest serves with a quorum: the newest head
// with enough cosignatures, not a newer one without.
func TestQuorum(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	b := fakewitness.New(t, "witness-b.test", db.Key.Verifier)
	e := start(t, db, 2, a, b)
	size := e.appendHeads(t, 3)
	e.waitCosigned(t, a.Name, size)
	e.waitCosigned(t, b.Name, size)
	quorate, err := e.c.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.SetMode("403")
	newSize := e.appendHeads(t, 2)
	e.waitCosigned(t, a.Name, newSize)
	got, err := e.c.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, quorate) {
		t.Errorf("Latest() with quorum 2 and one witness failing = %q, want the head of size %d with both lines %q", got, size, quorate)
	}
	if names := signers(t, got, db.Key.Verifier, a.VKey, b.VKey); len(names) != 2 {
		t.Errorf("Latest() cosigned by %v, want both", names)
	}
	b.SetMode("")
	e.waitCosigned(t, b.Name, newSize)
	got, err = e.c.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, db.Log.Head().Note) {
		t.Errorf("Latest() once both cosigned = %q, want the newest head", got)
	}
}

func TestNewErrors(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	a := fakewitness.New(t, "witness-a.test", db.Key.Verifier)
	st := db.Store.(witness.CosignatureStore)
	ok := witness.Witness{VKey: a.VKey, URL: a.URL}
	for _, tt := range []struct {
		name string
		cfg  witness.Config
		want string
	}{
		{"no log", witness.Config{Store: st, Witnesses: []witness.Witness{ok}}, "log is required"},
		{"no store", witness.Config{Log: db.Log, Witnesses: []witness.Witness{ok}}, "store is required"},
		{"no witness", witness.Config{Log: db.Log, Store: st}, "at least one witness"},
		{"quorum", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{ok}, Quorum: 2}, "quorum 2"},
		{"negative quorum", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{ok}, Quorum: -1}, "quorum -1"},
		{"bad key", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{{VKey: "nope", URL: a.URL}}}, "key \"nope\""},
		{"same name", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{ok, ok}}, "two witnesses"},
		{"bad URL", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{{VKey: a.VKey, URL: "ftp://x"}}}, "want http://"},
		{"URL secret", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{{VKey: a.VKey, URL: "https://u:secret@x?q"}}}, "want http://"},
		{"negative timeout", witness.Config{Log: db.Log, Store: st, Witnesses: []witness.Witness{ok}, Timeout: -1}, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := witness.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("New(%s) = %v, want an error with %q and no secret", tt.name, err, tt.want)
			}
		})
	}
}
