package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

// audit runs an audit of the log at url into dir.
func audit(t *testing.T, vkey, url, dir string, edit func(*Config)) (*Report, error) {
	t.Helper()
	cfg := Config{Remote: openRemote(t, vkey, url), Dir: dir}
	if edit != nil {
		edit(&cfg)
	}
	return Run(t.Context(), cfg)
}

// openClone opens the clone of the state directory dir.
func openClone(t *testing.T, dir string) *store.SQLite {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// mustAudit runs an audit that must complete without violations.
func mustAudit(t *testing.T, vkey, url, dir string, edit func(*Config)) *Report {
	t.Helper()
	rep, err := audit(t, vkey, url, dir, edit)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Run found violations: %v", rep.Violations)
	}
	return rep
}

// only returns the one violation of rep, failing the test if there is not
// exactly one.
func only(t *testing.T, rep *Report) Violation {
	t.Helper()
	if len(rep.Violations) != 1 {
		var b strings.Builder
		rep.WriteText(&b)
		t.Fatalf("got %d violations, want 1:\n%s", len(rep.Violations), b.String())
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("report:\n%s", b.String())
	return rep.Violations[0]
}

// violation runs an audit that must complete, with exactly one violation,
// and returns the report and the violation.
func violation(t *testing.T, vkey, url, dir string, edit func(*Config)) (*Report, Violation) {
	t.Helper()
	rep, err := audit(t, vkey, url, dir, edit)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	return rep, only(t, rep)
}

// newPopulated returns a database whose log holds 300 synthetic records, 3
// real modules and 300 more synthetic records: 603 records, so that the
// tiles are data/000, data/001, data/002.p/91 and 1/000.p/2.
func newPopulated(t *testing.T) *sumdbtest.DB {
	t.Helper()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("a", 300)
	lookup(db, realModules("alpha", "beta", "gamma")...)
	db.AppendSynthetic("b", 300)
	if n := db.Log.Head().Size; n != 603 {
		t.Fatalf("log size = %d, want 603", n)
	}
	return db
}

func TestAuditCleanAndResume(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("a", 300)
	lookup(db, realModules("alpha", "beta", "gamma")...)
	dir := t.TempDir()

	var progress bytes.Buffer
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, func(c *Config) { c.Progress = &progress })
	if rep.Records != 303 || rep.NewRecords != 303 || rep.Heads != 1 || rep.Latest.Size != 303 {
		t.Errorf("first run: records %d, new %d, heads %d, latest %d; want 303, 303, 1, 303", rep.Records, rep.NewRecords, rep.Heads, rep.Latest.Size)
	}
	if !strings.Contains(progress.String(), "303 of 303 records verified") {
		t.Errorf("progress = %q, want a line with 303 of 303 records verified", progress.String())
	}
	if got := requests(db.Front)["tile/8/data/001.p/47"]; got != 1 {
		t.Errorf("first run fetched tile/8/data/001.p/47 %d times, want 1", got)
	}

	// The second run fetches only the new records' tiles.
	db.AppendSynthetic("b", 300)
	rep = mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	if rep.Records != 603 || rep.NewRecords != 300 || rep.Latest.Size != 603 {
		t.Errorf("second run: records %d, new %d, latest %d; want 603, 300, 603", rep.Records, rep.NewRecords, rep.Latest.Size)
	}
	reqs := requests(db.Front)
	var data []string
	for p, n := range reqs {
		if strings.HasPrefix(p, "tile/8/data/") {
			for range n {
				data = append(data, p)
			}
		}
	}
	slices.Sort(data)
	if want := []string{"tile/8/data/001", "tile/8/data/002.p/91"}; !slices.Equal(data, want) {
		t.Errorf("second run fetched data tiles %v, want %v", data, want)
	}

	// Nothing new: only the head is fetched.
	rep = mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	if rep.NewRecords != 0 || rep.Records != 603 {
		t.Errorf("third run: records %d, new %d; want 603, 0", rep.Records, rep.NewRecords)
	}
	if reqs := requests(db.Front); len(reqs) != 1 || reqs["latest"] != 1 {
		t.Errorf("third run made requests %v, want only latest", reqs)
	}

	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "603 records verified") || !strings.Contains(b.String(), "no violations") {
		t.Errorf("report = %q", b.String())
	}

	// The clone's head is the log's own signed head.
	msg, err := os.ReadFile(filepath.Join(dir, latestFile))
	if err != nil {
		t.Fatal(err)
	}
	if h := db.Log.Head(); !bytes.Equal(msg, h.Note) {
		t.Errorf("latest = %q, want the log's head %q", msg, h.Note)
	}
}

// alterRecord changes the first character of the zip hash of record i of
// a data tile, which keeps the record well formed.
func alterRecord(body []byte, i int) []byte {
	recs := bytes.SplitAfter(body, []byte("\n\n"))
	j := bytes.Index(recs[i], []byte("h1:")) + 3
	if recs[i][j] == 'A' {
		recs[i][j] = 'B'
	} else {
		recs[i][j] = 'A'
	}
	return bytes.Join(recs, nil)
}

// TestAuditTampered serves a log whose responses are altered on the way.
func TestAuditTampered(t *testing.T) {
	t.Parallel()
	db := newPopulated(t)
	at := func(path string, fn func([]byte) []byte) func(string, []byte) []byte {
		return func(p string, body []byte) []byte {
			if p == "/"+path {
				return fn(body)
			}
			return body
		}
	}
	flipHash := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i*32+7] ^= 1; return b }
	}
	tests := []struct {
		name    string
		tamper  func(string, []byte) []byte
		kind    Kind
		records []int64 // want among the violation's records
		tile    string
		kept    int64 // records the clone keeps
	}{
		{
			name:    "flipped record",
			tamper:  at("tile/8/data/001", func(b []byte) []byte { return alterRecord(b, 44) }),
			kind:    KindRecord,
			records: []int64{300},
			tile:    "tile/8/data/001",
			kept:    256,
		},
		{
			name:    "flipped record in the partial tile",
			tamper:  at("tile/8/data/002.p/91", func(b []byte) []byte { return alterRecord(b, 90) }),
			kind:    KindRecord,
			records: []int64{602},
			tile:    "tile/8/data/002.p/91",
			kept:    512,
		},
		{
			name:    "flipped hash at level 0",
			tamper:  at("tile/8/0/001", flipHash(44)),
			kind:    KindHashTile,
			records: []int64{300},
			tile:    "tile/8/0/001",
			kept:    256,
		},
		{
			name:   "flipped hash at level 1",
			tamper: at("tile/8/1/000.p/2", flipHash(1)),
			kind:   KindHashTile,
			tile:   "tile/8/1/000.p/2",
			kept:   256,
		},
		{
			name:   "short hash tile",
			tamper: at("tile/8/0/000", func(b []byte) []byte { return b[:len(b)-32] }),
			kind:   KindHashTile,
			tile:   "tile/8/0/000",
			kept:   0,
		},
		{
			name:   "data tile without its last blank line",
			tamper: at("tile/8/data/000", func(b []byte) []byte { return b[:len(b)-1] }),
			kind:   KindDataTile,
			tile:   "tile/8/data/000",
			kept:   0,
		},
		{
			name:   "bad signature",
			tamper: at("latest", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }),
			kind:   KindSignature,
			kept:   0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sumdbtest.NewFront(t, db.Server)
			f.SetTamper(tt.tamper)
			dir := t.TempDir()
			rep, v := violation(t, db.Key.VKey, f.URL, dir, nil)
			if v.Kind != tt.kind {
				t.Errorf("violation %v, want kind %s", v, tt.kind)
			}
			for _, id := range tt.records {
				if !slices.Contains(v.Records, id) {
					t.Errorf("violation names records %v, want %d among them", v.Records, id)
				}
				if !strings.Contains(v.Message, fmt.Sprint(id)) {
					t.Errorf("message %q does not name record %d", v.Message, id)
				}
			}
			if v.Tile != tt.tile || tt.tile != "" && !strings.Contains(v.Message, tt.tile) {
				t.Errorf("violation names tile %q (%s), want %q", v.Tile, v.Message, tt.tile)
			}
			if rep.Records != tt.kept {
				t.Errorf("clone keeps %d records, want %d", rep.Records, tt.kept)
			}

			// The next run finds it again; once the server behaves, the
			// audit resumes and completes.
			rep, err := audit(t, db.Key.VKey, f.URL, dir, nil)
			if err != nil || len(rep.Violations) != 1 || rep.Violations[0].Kind != tt.kind {
				t.Errorf("second run = %v, %v; want the same violation", err, rep.Violations)
			}
			f.SetTamper(nil)
			rep = mustAudit(t, db.Key.VKey, f.URL, dir, nil)
			if rep.Records != 603 || rep.NewRecords != 603-tt.kept {
				t.Errorf("after repair: records %d, new %d; want 603, %d", rep.Records, rep.NewRecords, 603-tt.kept)
			}
		})
	}
}

// TestAuditFork audits a log, then serves another log signed with the same
// key at the same URL.
func TestAuditFork(t *testing.T) {
	t.Parallel()
	a := sumdbtest.MustStart(t, sumdbtest.Options{})
	a.AppendSynthetic("a", 603)
	for _, n := range []int{100, 603, 700} {
		t.Run(fmt.Sprintf("other log of %d records", n), func(t *testing.T) {
			t.Parallel()
			f := sumdbtest.NewFront(t, a.Server)
			dir := t.TempDir()
			first := mustAudit(t, a.Key.VKey, f.URL, dir, nil)

			b := sumdbtest.MustStart(t, sumdbtest.Options{Key: a.Key})
			b.AppendSynthetic("b", n)
			f.SetHandler(b.Server)
			rep, v := violation(t, a.Key.VKey, f.URL, dir, nil)
			if v.Kind != KindFork {
				t.Fatalf("violation %v, want a fork", v)
			}
			if len(v.Heads) != 2 || !bytes.Equal(v.Heads[0], first.Latest.Note) || !bytes.Equal(v.Heads[1], b.Log.Head().Note) {
				t.Errorf("violation heads = %q, want the verified head %q and the new one %q", v.Heads, first.Latest.Note, b.Log.Head().Note)
			}
			var out strings.Builder
			rep.WriteText(&out)
			for _, want := range []string{"VIOLATION fork", "go.sum database tree\n\t\t603\n", fmt.Sprintf("go.sum database tree\n\t\t%d\n", n)} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, out.String())
				}
			}
			if rep.Latest.Size != 603 || rep.Records != 603 {
				t.Errorf("after the fork: latest %d, records %d; want 603, 603", rep.Latest.Size, rep.Records)
			}
		})
	}
}

// TestAuditStaleHead serves an older signed head after a newer one.
func TestAuditStaleHead(t *testing.T) {
	t.Parallel()
	db := newPopulated(t)
	dir := t.TempDir()
	mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	heads, err := db.Store.ReadHeads(t.Context(), 1, 602)
	if err != nil || len(heads) == 0 {
		t.Fatalf("ReadHeads = %v, %v", heads, err)
	}
	old := heads[len(heads)/2]
	db.SetTamper(func(p string, b []byte) []byte {
		if p == "/latest" {
			return old.Note
		}
		return b
	})
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "stale") {
		t.Errorf("warnings = %q, want one about a stale head", rep.Warnings)
	}
	if rep.Latest.Size != 603 {
		t.Errorf("latest = %d, want 603", rep.Latest.Size)
	}
}

// TestAuditEmptyHead serves signed heads of size 0. The tree of size 0 is
// the empty tree, as x/mod's client has it before it trusts any head: a
// head of size 0 with another root is a fork, before or after other heads;
// one with the empty root is nothing to audit on a first run, and stale
// after a larger head.
func TestAuditEmptyHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		first bool // the log has been audited before
		root  xtlog.Hash
		kind  Kind // "" for none
		warn  string
	}{
		{name: "bogus-first", root: xtlog.RecordHash([]byte("x\n")), kind: KindFork},
		{name: "bogus-after", first: true, root: xtlog.RecordHash([]byte("x\n")), kind: KindFork},
		{name: "empty-first", root: emptyRoot(), warn: "nothing to audit"},
		{name: "empty-after", first: true, root: emptyRoot(), warn: "stale signed head: size 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := sumdbtest.NewKey(t, "empty.test")
			l := newStaticLog(t, k, synthTexts("real", 300))
			f := sumdbtest.NewFront(t, l)
			dir := t.TempDir()
			if tc.first {
				mustAudit(t, k.VKey, f.URL, dir, nil)
			}
			msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: 0, Hash: tc.root}))}, k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			l.note = msg
			l.mu.Unlock()
			if tc.kind != "" {
				_, v := violation(t, k.VKey, f.URL, dir, nil)
				if v.Kind != tc.kind || len(v.Heads) != 1 || !bytes.Equal(v.Heads[0], msg) {
					t.Errorf("violation = %v, want a %s violation naming the head", v, tc.kind)
				}
				return
			}
			rep := mustAudit(t, k.VKey, f.URL, dir, nil)
			if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], tc.warn) {
				t.Errorf("warnings = %q, want one with %q", rep.Warnings, tc.warn)
			}
		})
	}
}

// otherHashes returns a record text for path@version with other hashes.
func otherHashes(path, version string) []byte {
	h := sha256.Sum256([]byte("other " + path))
	b64 := base64.StdEncoding.EncodeToString(h[:])
	return fmt.Appendf(nil, "%s %s h1:%s\n%s %s/go.mod h1:%s\n", path, version, b64, path, version, b64)
}

// TestAuditBadLogs audits logs that break the rules from the start.
func TestAuditBadLogs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		texts   func() [][]byte
		kind    Kind
		records []int64
		msg     string
		kept    int64
	}{
		{
			name: "duplicate with different hashes",
			texts: func() [][]byte {
				texts := synthTexts("d", 300)
				texts[200] = otherHashes("example.com/d/m5", "v1.0.0")
				return texts
			},
			kind:    KindDuplicate,
			records: []int64{5, 200},
			msg:     "example.com/d/m5@v1.0.0 is logged twice, with different hashes",
			kept:    200,
		},
		{
			name: "duplicate with the same hashes",
			texts: func() [][]byte {
				texts := synthTexts("d", 300)
				texts[299] = texts[7]
				return texts
			},
			kind:    KindDuplicate,
			records: []int64{7, 299},
			msg:     "with the same hashes",
			kept:    299,
		},
		{
			name: "one line",
			texts: func() [][]byte {
				texts := synthTexts("m", 300)
				line, _, _ := bytes.Cut(texts[100], []byte("\n"))
				texts[100] = append(line, '\n')
				return texts
			},
			kind:    KindMalformed,
			records: []int64{100},
			msg:     "has one line",
			kept:    100,
		},
		{
			name: "invalid version",
			texts: func() [][]byte {
				texts := synthTexts("m", 10)
				texts[3] = sumdbtest.SynthText("example.com/m/x", "v1.0")
				return texts
			},
			kind:    KindMalformed,
			records: []int64{3},
			msg:     "must be canonical",
			kept:    3,
		},
		{
			name: "two modules in one record",
			texts: func() [][]byte {
				texts := synthTexts("m", 10)
				a, b := sumdbtest.SynthText("example.com/m/a", "v1.0.0"), sumdbtest.SynthText("example.com/m/b", "v1.0.0")
				l1, _, _ := bytes.Cut(a, []byte("\n"))
				_, l2, _ := bytes.Cut(b, []byte("\n"))
				texts[9] = slices.Concat(l1, []byte("\n"), l2)
				return texts
			},
			kind:    KindMalformed,
			records: []int64{9},
			msg:     "line 2 is of example.com/m/b",
			kept:    9,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := sumdbtest.NewKey(t, "bad.test")
			f := sumdbtest.NewFront(t, newStaticLog(t, k, tt.texts()))
			rep, v := violation(t, k.VKey, f.URL, t.TempDir(), nil)
			if v.Kind != tt.kind || !slices.Equal(v.Records, tt.records) || !strings.Contains(v.Message, tt.msg) {
				t.Errorf("violation = %s %v %q, want %s %v with %q", v.Kind, v.Records, v.Message, tt.kind, tt.records, tt.msg)
			}
			if rep.Records != tt.kept {
				t.Errorf("clone keeps %d records, want %d", rep.Records, tt.kept)
			}
		})
	}
}

// TestAuditDuplicateLater finds a module version logged again after an
// earlier run: the clone's store, not the batch, catches it.
func TestAuditDuplicateLater(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, "dup.test")
	l := newStaticLog(t, k, synthTexts("d", 300))
	f := sumdbtest.NewFront(t, l)
	dir := t.TempDir()
	mustAudit(t, k.VKey, f.URL, dir, nil)
	l.add(t, synthTexts("e", 5)...)
	l.add(t, otherHashes("example.com/d/m42", "v1.0.0"))
	l.add(t, synthTexts("f", 5)...)
	rep, v := violation(t, k.VKey, f.URL, dir, nil)
	if v.Kind != KindDuplicate || !slices.Equal(v.Records, []int64{42, 305}) || !strings.Contains(v.Message, "different hashes") {
		t.Errorf("violation = %v %v, want a duplicate of records 42 and 305 with different hashes", v, v.Records)
	}
	if rep.Records != 305 || rep.Latest.Size != 300 {
		t.Errorf("clone keeps %d records, latest %d; want 305, 300", rep.Records, rep.Latest.Size)
	}

	// A signed head at the size where the clone stopped replaces the
	// auditor's checkpoint as the clone's head.
	l.mu.Lock()
	l.note = l.notes[305]
	l.mu.Unlock()
	rep = mustAudit(t, k.VKey, f.URL, dir, nil)
	if rep.Records != 305 || rep.Latest.Size != 305 {
		t.Errorf("at the head of size 305: records %d, latest %d; want 305, 305", rep.Records, rep.Latest.Size)
	}
	st := openClone(t, dir)
	defer st.Close()
	h, err := st.ReadHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Note, l.notes[305]) {
		t.Errorf("clone's head note = %q, want the log's head of size 305", h.Note)
	}
}

// TestAuditWrongRoot serves a head signed by the log's key whose root is not
// the root of the records.
func TestAuditWrongRoot(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, "root.test")
	l := newStaticLog(t, k, synthTexts("r", 300))
	wrong := xtlog.Tree{N: 300, Hash: xtlog.RecordHash([]byte("no such tree\n"))}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(wrong))}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	l.note = msg
	f := sumdbtest.NewFront(t, l)
	// The partial tiles at the head are the records' own, so the
	// disagreement is with the head itself.
	if _, v := violation(t, k.VKey, f.URL, t.TempDir(), nil); v.Kind != KindRoot || len(v.Heads) != 1 || !bytes.Equal(v.Heads[0], msg) {
		t.Errorf("violation = %v, want a root violation naming the head", v)
	}
}

// TestAuditLimit audits a prefix of the log, then the rest.
func TestAuditLimit(t *testing.T) {
	t.Parallel()
	db := newPopulated(t)
	dir := t.TempDir()
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, func(c *Config) { c.Limit = 300 })
	if rep.Records != 512 || rep.Latest.Size != 603 {
		t.Errorf("with limit 300: records %d, latest %d; want 512, 603", rep.Records, rep.Latest.Size)
	}
	if reqs := requests(db.Front); reqs["tile/8/data/002.p/91"] != 0 {
		t.Errorf("with limit 300, fetched the data tile of records [512, 603)")
	}
	rep = mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	if rep.Records != 603 || rep.NewRecords != 91 {
		t.Errorf("without limit: records %d, new %d; want 603, 91", rep.Records, rep.NewRecords)
	}

	// A limited audit of a forged prefix is caught by the root check.
	db.SetTamper(func(p string, b []byte) []byte {
		if p == "/tile/8/1/000.p/2" {
			b[40] ^= 1
		}
		return b
	})
	if _, v := violation(t, db.Key.VKey, db.URL, t.TempDir(), func(c *Config) { c.Limit = 256 }); v.Kind != KindHashTile {
		t.Errorf("violation = %v, want a hash tile violation", v)
	}
}

// TestAuditLimitThenForgedRecords stores forged records behind a clone cut
// by --limit: a first run clones 256 records of a log of 20,000 and keeps
// its signed head as the newest verified one; a second run resumes at
// record 256, where the server serves forged records with hash tiles to
// match, and fails before the clone reaches a signed head, leaving them
// under the auditor's checkpoint, below the newest verified head. A later
// run must prove that checkpoint against a signed head, whatever it clones:
// nothing with --limit 256 again, nothing on a stale head, the rest
// otherwise. The root of the clone is not the signed tree's at its size,
// and the report names the first forged record.
func TestAuditLimitThenForgedRecords(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name  string
		limit int64
		stale bool // the server serves an older signed head
	}{
		{name: "limit", limit: 256},
		{name: "stale", stale: true},
		{name: "full"},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			k := sumdbtest.NewKey(t, "limit.test")
			l := newStaticLog(t, k, synthTexts("real", 18000))
			l.add(t, synthTexts("more", 2000)...)
			fg := &forger{l: l}
			f := sumdbtest.NewFront(t, fg)
			dir := t.TempDir()

			rep := mustAudit(t, k.VKey, f.URL, dir, func(c *Config) { c.Limit = 256 })
			if rep.Records != 256 || rep.Latest.Size != 20000 {
				t.Fatalf("with limit 256: records %d, latest %d; want 256, 20000", rep.Records, rep.Latest.Size)
			}
			fg.on.Store(true)
			rep, err := audit(t, k.VKey, f.URL, dir, nil)
			if err == nil || !rep.OK() || rep.Records != 16640 {
				t.Fatalf("forged run: %v, ok %v, records %d; want an error, no violation, 16640 records", err, rep.OK(), rep.Records)
			}

			fg.on.Store(false)
			if run.stale {
				l.mu.Lock()
				l.note = l.notes[18000]
				l.mu.Unlock()
			}
			rep, v := violation(t, k.VKey, f.URL, dir, func(c *Config) { c.Limit = run.limit })
			if v.Kind != KindRoot || !slices.Equal(v.Records, []int64{256}) || !strings.Contains(v.Message, "forged1/m0") {
				t.Errorf("violation = %v, records %v; want a root violation naming record 256 (forged1/m0)", v, v.Records)
			}
			if rep.Latest.Size != 20000 {
				t.Errorf("latest = %d, want 20000", rep.Latest.Size)
			}
		})
	}
}

// TestAuditProvenCheckpoint reruns audits of a clone cut by --limit, whose
// head is a checkpoint of the auditor below the newest verified head: each
// run proves it against the signed head with a few hash tiles (no data
// tile), once (a follow does not prove it again at every poll), and the
// rest of the log is cloned from it as usual.
func TestAuditProvenCheckpoint(t *testing.T) {
	t.Parallel()
	db := newPopulated(t)
	dir := t.TempDir()
	limit := func(c *Config) { c.Limit = 256 }
	mustAudit(t, db.Key.VKey, db.URL, dir, limit)
	requests(db.Front)
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, limit)
	if rep.Records != 256 || rep.NewRecords != 0 {
		t.Errorf("rerun with limit 256: records %d, new %d; want 256, 0", rep.Records, rep.NewRecords)
	}
	reqs := requests(db.Front)
	t.Logf("rerun with limit 256: requests %v", reqs)
	for p := range reqs {
		if strings.HasPrefix(p, "tile/8/data/") {
			t.Errorf("rerun with limit 256 fetched %s: the clone is proven with hash tiles only", p)
		}
	}
	if len(reqs) > 4 {
		t.Errorf("rerun with limit 256 made %d requests, want the signed head and at most 3 hash tiles", len(reqs))
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Remote: openRemote(t, db.Key.VKey, db.URL), Dir: dir, Follow: true, Interval: 10 * time.Millisecond, Limit: 256})
		done <- err
	}()
	waitFor(t, "five polls", func() bool {
		n := 0
		for _, p := range db.Front.Requests() {
			if p == "/latest" {
				n++
			}
		}
		return n >= 5
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow with limit 256 = %v", err)
	}
	var tiles int
	for p, n := range requests(db.Front) {
		if p != "latest" {
			tiles += n
		}
	}
	if want := len(reqs) - 1; tiles > want {
		t.Errorf("follow with limit 256 fetched %d tiles in five polls or more, want %d, those of the first poll", tiles, want)
	}
	rep = mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	if rep.Records != 603 || rep.NewRecords != 347 {
		t.Errorf("without limit: records %d, new %d; want 603, 347", rep.Records, rep.NewRecords)
	}
}

// TestAuditRehash compares the log's records with the modules the upstream
// serves now.
func TestAuditRehash(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	lookup(db, realModules("alpha", "beta", "gamma")...)
	db.AppendSynthetic("gone", 2) // not served by the upstream
	up, err := fetch.New(fetch.Config{Proxy: db.ProxyURL})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rehash := func(c *Config) { c.Rehash = 10; c.Upstream = up }
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, rehash)
	if rep.Rehashed != 3 || len(rep.Warnings) != 2 {
		t.Errorf("rehashed %d, warnings %q; want 3 rehashed and 2 warnings about modules not served", rep.Rehashed, rep.Warnings)
	}

	beta := realModule("beta")
	beta.Files["beta.go"] = "package beta // changed\n"
	db.Add(beta)
	rec, err := db.Store.Lookup(t.Context(), beta.Path, beta.Version)
	if err != nil {
		t.Fatal(err)
	}
	_, v := violation(t, db.Key.VKey, db.URL, dir, rehash)
	if v.Kind != KindRehash || !slices.Equal(v.Records, []int64{rec.ID}) || !strings.Contains(v.Message, fmt.Sprintf("record %d: %s@%s", rec.ID, beta.Path, beta.Version)) {
		t.Errorf("violation = %v %v, want a rehash violation of record %d", v, v.Records, rec.ID)
	}
}

// TestAuditFollow follows a growing log.
func TestAuditFollow(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("a", 100)
	dir := t.TempDir()
	rep, err := follow(t, db.Key.VKey, db.URL, dir, func() {
		waitFor(t, "the first head", func() bool { return latestSize(dir, db.Key.Verifier) == 100 })
		db.AppendSynthetic("b", 200)
		waitFor(t, "the new head", func() bool { return latestSize(dir, db.Key.Verifier) == 300 })
	})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !rep.OK() || rep.Records != 300 || rep.Heads < 2 {
		t.Errorf("report: ok %v, records %d, heads %d; want ok, 300, at least 2", rep.OK(), rep.Records, rep.Heads)
	}
}

// follow runs a follow audit of the log of vkey at url in dir while during
// runs, and returns its outcome once it is cancelled.
func follow(t *testing.T, vkey, url, dir string, during func()) (*Report, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type outcome struct {
		rep *Report
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		rep, err := Run(ctx, Config{Remote: openRemote(t, vkey, url), Dir: dir, Follow: true, Interval: 20 * time.Millisecond})
		done <- outcome{rep, err}
	}()
	during()
	cancel()
	out := <-done
	return out.rep, out.err
}

// TestAuditFollowFailedPolls follows a log that refuses the tiles of the
// consistency proof of its new head: a follow that ends while the last
// poll failed must fail (exit 3), not report the log audited; one whose
// last poll, after failed ones, verified the head ends without error.
func TestAuditFollowFailedPolls(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, "follow.test")
	l := newStaticLog(t, k, synthTexts("a", 300))
	rf := &refuser{l: l}
	f := sumdbtest.NewFront(t, rf)
	dir := t.TempDir()
	mustAudit(t, k.VKey, f.URL, dir, nil)

	// polled waits until a poll that started after the call has ended:
	// until the signed head is requested twice more.
	polled := func() {
		n := rf.latests.Load()
		waitFor(t, "a poll", func() bool { return rf.latests.Load() >= n+2 })
	}

	// Refused, then served: the last poll verified the head.
	l.add(t, synthTexts("b", 100)...)
	rf.on.Store(true)
	rep, err := follow(t, k.VKey, f.URL, dir, func() {
		polled()
		rf.on.Store(false)
		waitFor(t, "the new head", func() bool { return latestSize(dir, k.Verifier) == 400 })
		polled()
	})
	if err != nil || !rep.OK() {
		t.Errorf("follow, last poll verified: %v, ok %v; want no error, no violation", err, rep.OK())
	}

	// Refused to the end.
	l.add(t, synthTexts("c", 100)...)
	rf.on.Store(true)
	rep, err = follow(t, k.VKey, f.URL, dir, polled)
	if err == nil || !errors.Is(err, client.ErrNotFound) || !rep.OK() || rep.Heads == 0 {
		t.Errorf("follow, every poll refused: %v, ok %v, heads %d; want the refused tile's error, no violation, heads checked", err, rep.OK(), rep.Heads)
	}
	if latestSize(dir, k.Verifier) != 400 {
		t.Errorf("latest = %d, want 400", latestSize(dir, k.Verifier))
	}
}

// TestAuditStateDir refuses a state directory of another log.
func TestAuditStateDir(t *testing.T) {
	t.Parallel()
	db := newPopulated(t)
	dir := t.TempDir()
	mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	other := sumdbtest.NewKey(t, "other.test")
	_, err := audit(t, other.VKey, db.URL, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "use another state directory") {
		t.Errorf("audit of another log in the same directory = %v, want an error", err)
	}
}

// TestAuditUnreachable is an audit that cannot complete.
func TestAuditUnreachable(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, sumdbtest.KeyName)
	rep, err := audit(t, k.VKey, "http://127.0.0.1:1", t.TempDir(), nil)
	if err == nil || rep == nil || !rep.OK() {
		t.Errorf("Run = %v, %v; want an error and a report without violations", rep, err)
	}
}

// TestAuditRealModules checks the real modules the server logged are
// well formed (their records come from the upstream, not from the test).
func TestAuditRealModules(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	mods := []modproxy.Module{
		{Path: "example.com/Upper/Mod", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/Upper/Mod\n"}},
		{Path: "example.com/inc", Version: "v2.0.0+incompatible", Files: map[string]string{"inc.go": "package inc\n"}},
		{Path: "example.com/pseudo", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n"}},
		{Path: "gopkg.in/yaml.v2", Version: "v2.4.0", Files: map[string]string{"go.mod": "module gopkg.in/yaml.v2\n"}},
		{Path: "golang.org/toolchain", Version: "v0.0.1-go1.21.0.linux-amd64", Files: map[string]string{"go.mod": "module golang.org/toolchain\n"}},
	}
	lookup(db, mods...)
	rep := mustAudit(t, db.Key.VKey, db.URL, t.TempDir(), nil)
	if rep.Records != int64(len(mods)) {
		t.Errorf("records = %d, want %d", rep.Records, len(mods))
	}
}

// TestAuditRewrittenRecord serves, after the log grew, a data tile whose
// start (already in the clone) differs from what it served before.
func TestAuditRewrittenRecord(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("a", 300)
	dir := t.TempDir()
	mustAudit(t, db.Key.VKey, db.URL, dir, nil)
	db.AppendSynthetic("b", 100)
	db.SetTamper(func(p string, b []byte) []byte {
		if p == "/tile/8/data/001.p/144" {
			return alterRecord(b, 4)
		}
		return b
	})
	rep, v := violation(t, db.Key.VKey, db.URL, dir, nil)
	if v.Kind != KindRecord || !slices.Equal(v.Records, []int64{260}) || !strings.Contains(v.Message, "differs from the record served before") {
		t.Errorf("violation = %v %v, want record 260 differing from before", v, v.Records)
	}
	if rep.Records != 300 {
		t.Errorf("clone holds %d records, want 300", rep.Records)
	}
}

// TestAuditBulkClone clones a new log in the store's bulk-load mode: a run
// cut off by a failing server leaves the clone in that mode for the next
// run to go on with, and a module version logged twice, in batches far
// apart, is found when the index of module versions is built, and found
// again by every later run.
func TestAuditBulkClone(t *testing.T) {
	t.Parallel()
	const n, first, again = 20000, 10, 19000
	texts := synthTexts("b", n)
	texts[again] = otherHashes(fmt.Sprintf("example.com/b/m%d", first), "v1.0.0")
	k := sumdbtest.NewKey(t, "bulk.test")
	l := newStaticLog(t, k, texts)
	const broken = "/tile/8/data/070"
	f := sumdbtest.NewFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == broken {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		l.ServeHTTP(w, r)
	}))
	dir := t.TempDir()
	bulkLoading := func() bool {
		t.Helper()
		st := openClone(t, dir)
		defer st.Close()
		loading, err := st.BulkLoading(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return loading
	}

	rep, err := audit(t, k.VKey, f.URL, dir, nil)
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Fatalf("Run with %s failing = %v, want an error naming it", broken, err)
	}
	if rep.Records != 70*256 || !rep.OK() {
		t.Errorf("cut off at tile 70: records %d, violations %v; want %d records, none", rep.Records, rep.Violations, 70*256)
	}
	if !bulkLoading() {
		t.Errorf("a clone cut off is not in bulk-load mode")
	}

	f.SetHandler(l)
	for run := range 2 {
		rep, v := violation(t, k.VKey, f.URL, dir, nil)
		if v.Kind != KindDuplicate || !slices.Equal(v.Records, []int64{first, again}) || !strings.Contains(v.Message, "different hashes") {
			t.Errorf("run %d: violation = %v %v, want a duplicate of records %d and %d with different hashes", run, v, v.Records, first, again)
		}
		if rep.Records != n || rep.Latest.Size != 0 {
			t.Errorf("run %d: records %d, latest %d; want %d, 0", run, rep.Records, rep.Latest.Size, n)
		}
		if !bulkLoading() {
			t.Errorf("run %d: the clone of a log with a duplicate left bulk-load mode", run)
		}
	}

	// Without the duplicate the index is built.
	texts[again] = sumdbtest.SynthText("example.com/b/other", "v1.0.0")
	f.SetHandler(newStaticLog(t, k, texts))
	dir = t.TempDir()
	if rep := mustAudit(t, k.VKey, f.URL, dir, nil); rep.Records != n {
		t.Errorf("clean log: records %d, want %d", rep.Records, n)
	}
	if bulkLoading() {
		t.Errorf("a clone that completed is still in bulk-load mode")
	}
}

// TestAuditPasses clones a log in passes of 1024 records, as a large log is
// cloned in passes of passRecords: every data tile is fetched once, each
// pass ends verified against the signed head, the clone ends at the log's
// signed head, and a hash tile the last pass completes is still compared.
// It sets passRecords, so it does not run in parallel.
func TestAuditPasses(t *testing.T) {
	defer func(n int64) { passRecords = n }(passRecords)
	passRecords = 1024
	db := newPopulated(t)
	db.AppendSynthetic("c", 3000) // 3603 records: passes end at 1024, 2048, 3072
	dir := t.TempDir()
	rep := mustAudit(t, db.Key.VKey, db.URL, dir, func(c *Config) { c.Concurrency = 3 })
	if rep.Records != 3603 || rep.Latest.Size != 3603 {
		t.Errorf("records %d, latest %d; want 3603, 3603", rep.Records, rep.Latest.Size)
	}
	for p, n := range requests(db.Front) {
		if strings.HasPrefix(p, "tile/8/data/") && n != 1 {
			t.Errorf("fetched %s %d times, want 1", p, n)
		}
	}
	st := openClone(t, dir)
	head, err := st.ReadHead(t.Context())
	st.Close()
	if err != nil || !bytes.Equal(head.Note, db.Log.Head().Note) {
		t.Errorf("clone's head = %v, %v; want the log's signed head", head, err)
	}

	db.SetTamper(func(p string, b []byte) []byte {
		if p == "/tile/8/1/000.p/14" {
			b[3*32] ^= 1
		}
		return b
	})
	if _, v := violation(t, db.Key.VKey, db.URL, t.TempDir(), nil); v.Kind != KindHashTile {
		t.Errorf("violation = %v, want a hash tile violation", v)
	}
}

// TestAuditHugeHead serves a signed head of 2^30 records, and no tile: the
// clone must not list the tiles of the whole tree (4 million data tiles,
// and as many entries of the map of tiles to compare) before its first
// request, but those of one pass. A head of 2^40 records would list a
// billion. It measures the memory allocated, so it does not run in
// parallel.
func TestAuditHugeHead(t *testing.T) {
	k := sumdbtest.NewKey(t, "huge.test")
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: 1 << 30, Hash: xtlog.RecordHash([]byte("huge\n"))}))}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f := sumdbtest.NewFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest" {
			w.Write(msg)
			return
		}
		http.Error(w, "no tiles", http.StatusNotFound)
	}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := audit(t, k.VKey, f.URL, t.TempDir(), nil)
	runtime.ReadMemStats(&after)
	if err == nil || !rep.OK() {
		t.Errorf("Run = %v, ok %v; want an error (no tiles), no violation", err, rep.OK())
	}
	const most = 64 << 20
	if got := after.TotalAlloc - before.TotalAlloc; got > most {
		t.Errorf("the audit allocated %d MB, want at most %d MB", got>>20, most>>20)
	}
}

// TestAuditAbsurdTreeSize serves a validly signed head of a size no log
// reaches. From 2^62 records on, x/mod's tree arithmetic never ends, and an
// audit that computed a proof for such a head would spin past its
// deadline. The head must be refused, as a violation naming its size, on a
// first audit, after a verified head, and while following (which must
// report it and return); the head verified before stays the latest.
func TestAuditAbsurdTreeSize(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, "absurd.test")
	type outcome struct {
		rep *Report
		err error
	}
	for _, n := range []int64{1 << 62, 1<<63 - 1, 1<<40 + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			huge := k.SignTree(t, n, xtlog.RecordHash([]byte("absurd\n")))
			l := newStaticLog(t, k, synthTexts("a", 300))
			// The honest log for the first poll, the absurd head after.
			var polls atomic.Int64
			f := sumdbtest.NewFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/latest" && polls.Add(1) > 1 {
					w.Write(huge)
					return
				}
				l.ServeHTTP(w, r)
			}))
			wantSize := func(what string, out outcome) {
				t.Helper()
				if out.err != nil || len(out.rep.Violations) != 1 {
					var b strings.Builder
					out.rep.WriteText(&b)
					t.Errorf("%s: Run = %v, report:\n%s\nwant no error, one violation", what, out.err, b.String())
					return
				}
				if v := out.rep.Violations[0]; v.Kind != Kind("size") || !strings.Contains(v.Message, fmt.Sprintf("tree head of %d records", n)) || len(v.Heads) != 1 || !bytes.Equal(v.Heads[0], huge) {
					t.Errorf("%s: violation %v, want a size violation naming %d records, with the head", what, v, n)
				}
			}

			polls.Store(1)
			first := sumdbtest.Returns(t, func(ctx context.Context) outcome {
				rep, err := Run(ctx, Config{Remote: openRemote(t, k.VKey, f.URL), Dir: t.TempDir()})
				return outcome{rep, err}
			})
			wantSize("first audit", first)

			dir := t.TempDir()
			polls.Store(0)
			mustAudit(t, k.VKey, f.URL, dir, nil)
			later := sumdbtest.Returns(t, func(ctx context.Context) outcome {
				rep, err := Run(ctx, Config{Remote: openRemote(t, k.VKey, f.URL), Dir: dir})
				return outcome{rep, err}
			})
			wantSize("after a verified head", later)
			if got := latestSize(dir, k.Verifier); got != 300 {
				t.Errorf("latest verified head after the absurd one: size %d, want 300", got)
			}

			polls.Store(0)
			followed := sumdbtest.Returns(t, func(ctx context.Context) outcome {
				rep, err := Run(ctx, Config{Remote: openRemote(t, k.VKey, f.URL), Dir: t.TempDir(), Follow: true, Interval: 20 * time.Millisecond})
				return outcome{rep, err}
			})
			wantSize("follow", followed)
			if followed.rep.Records != 300 {
				t.Errorf("follow: %d records verified, want the 300 of the first head", followed.rep.Records)
			}
		})
	}
}

// TestAuditStateUnwritable audits an honest log into a state directory
// that cannot be written, in ways that stop root too: under a regular
// file (it cannot be created), or one whose "latest" became a directory
// during the run (the verified head cannot be kept). Both are local
// problems: an error naming the file and what to do, no violation.
func TestAuditStateUnwritable(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, "unwritable.test")
	l := newStaticLog(t, k, synthTexts("a", 300))

	tmp := t.TempDir()
	regular := filepath.Join(tmp, "regular")
	if err := os.WriteFile(regular, []byte("a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(regular, "state")
	f := sumdbtest.NewFront(t, l)
	rep, err := audit(t, k.VKey, f.URL, dir, nil)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "another state directory") || rep != nil && !rep.OK() {
		t.Errorf("audit into a directory under a regular file = %v; want an error naming %s and what to do, no violation", err, dir)
	}

	dir = t.TempDir()
	latest := filepath.Join(dir, latestFile)
	var once sync.Once
	f.SetTamper(func(path string, body []byte) []byte {
		if strings.HasPrefix(path, "/tile/") {
			once.Do(func() {
				if err := os.MkdirAll(filepath.Join(latest, "in the way"), 0o755); err != nil {
					t.Error(err)
				}
			})
		}
		return body
	})
	rep, err = audit(t, k.VKey, f.URL, dir, nil)
	if err == nil || !strings.Contains(err.Error(), latest) || !strings.Contains(err.Error(), "another state directory") || !rep.OK() {
		t.Errorf("audit with %s in the way = %v, ok %v; want an error naming it and what to do, no violation", latest, err, rep.OK())
	}
}
