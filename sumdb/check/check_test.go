package check_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xtlog "golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to tamper with a log

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/check"
	"github.com/sumdb/sumdb/sumdb/client"
)

// modules are served by the test databases: an upper-case path, an
// +incompatible version, the three pseudo-version forms, a module without
// go.mod and a toolchain.
var modules = []modproxy.Module{
	{Path: "example.com/Upper/Mod", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/Upper/Mod\n", "a.go": "package a\n"}},
	{Path: "example.com/inc", Version: "v2.0.0+incompatible", Files: map[string]string{"inc.go": "package inc\n"}},
	{Path: "example.com/pseudo", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p\n"}},
	{Path: "example.com/pseudo", Version: "v1.2.4-0.20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p // 2\n"}},
	{Path: "example.com/pseudo", Version: "v1.2.3-pre.0.20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p // 3\n"}},
	{Path: "example.com/nogomod", Version: "v1.2.3", Files: map[string]string{"x.go": "package x\n"}},
	{Path: "golang.org/toolchain", Version: "v0.0.1-go1.21.0.linux-amd64", Files: map[string]string{"go.mod": "module golang.org/toolchain\n", "bin/go": "#!/bin/sh\n"}},
}

// mod returns a small module path@version.
func mod(path, version string) modproxy.Module {
	return modproxy.Module{Path: path, Version: version, Files: map[string]string{"go.mod": "module " + path + "\n", "x.go": "package x // " + version + "\n"}}
}

// remote opens db as a Remote that retries once.
func remote(t *testing.T, gosumdb string) *client.Remote {
	t.Helper()
	r, err := client.Open(t.Context(), client.Config{GOSUMDB: gosumdb, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run checks the go.sum files (name, content) against db.
func run(t *testing.T, cfg check.Config, files ...string) *check.Report {
	t.Helper()
	var fs []check.File
	for i := 0; i < len(files); i += 2 {
		fs = append(fs, check.File{Name: files[i], Data: []byte(files[i+1])})
	}
	rep, err := check.Run(t.Context(), cfg, fs)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// text returns the report as text.
func text(t *testing.T, rep *check.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.Write(&b, check.Text); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// kinds returns the kind of each result, by "file:line".
func kinds(rep *check.Report) map[string]check.Kind {
	m := make(map[string]check.Kind)
	for _, r := range rep.Results {
		m[fmt.Sprintf("%s:%d", r.File, r.Line)] = r.Kind
	}
	return m
}

func wantStatus(t *testing.T, rep *check.Report, want int) {
	t.Helper()
	if got := rep.ExitStatus(); got != want {
		t.Errorf("ExitStatus() = %d, want %d; report:\n%s", got, want, text(t, rep))
	}
}

func wantText(t *testing.T, rep *check.Report, want ...string) {
	t.Helper()
	out := text(t, rep)
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("report does not contain %q:\n%s", w, out)
		}
	}
}

// replaceLine replaces line n (1-based) of s.
func replaceLine(s string, n int, line string) string {
	lines := strings.SplitAfter(s, "\n")
	lines[n-1] = line + "\n"
	return strings.Join(lines, "")
}

func TestParseGoSum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data      string
		lines     []check.Entry
		malformed []int // line numbers
	}{
		{"empty", "", nil, nil},
		{"blank lines", "\n  \n\t\n", nil, nil},
		{
			"pair, CRLF, no final newline",
			"example.com/m v1.0.0 h1:zip=\r\nexample.com/m v1.0.0/go.mod h1:mod=",
			[]check.Entry{
				{File: "go.sum", Line: 1, Path: "example.com/m", Version: "v1.0.0", Hash: "h1:zip="},
				{File: "go.sum", Line: 2, Path: "example.com/m", Version: "v1.0.0", GoMod: true, Hash: "h1:mod="},
			},
			nil,
		},
		{
			"malformed",
			"example.com/m v1.0.0\n\nexample.com/m v1.0.0 h1:x= extra\nexample.com/m v1.0.0 h2:x=\nexample.com/m v1.0.0/go.mod h1:ok=\n",
			[]check.Entry{{File: "go.sum", Line: 5, Path: "example.com/m", Version: "v1.0.0", GoMod: true, Hash: "h1:ok="}},
			[]int{1, 3, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, malformed := check.ParseGoSum("go.sum", []byte(tt.data))
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("ParseGoSum(%q) lines = %+v, want %+v", tt.data, lines, tt.lines)
			}
			var got []int
			for _, r := range malformed {
				if r.Kind != check.Malformed || r.File != "go.sum" || r.Message == "" {
					t.Errorf("ParseGoSum(%q) malformed result %+v: want kind malformed, file go.sum, a message", tt.data, r)
				}
				got = append(got, r.Line)
			}
			if !slices.Equal(got, tt.malformed) {
				t.Errorf("ParseGoSum(%q) malformed lines = %v, want %v", tt.data, got, tt.malformed)
			}
		})
	}
}

func FuzzParseGoSum(f *testing.F) {
	f.Add([]byte("example.com/m v1.0.0 h1:zip=\nexample.com/m v1.0.0/go.mod h1:mod=\n"))
	f.Add([]byte("a b\n\n c d e f\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, malformed := check.ParseGoSum("go.sum", data)
		n := bytes.Count(data, []byte("\n")) + 1
		for _, l := range lines {
			if l.Line < 1 || l.Line > n || !strings.HasPrefix(l.Hash, "h1:") || l.Path == "" || l.Version == "" {
				t.Fatalf("bad entry %+v", l)
			}
			// The entry is its line, fields normalized.
			raw := strings.Split(string(data), "\n")[l.Line-1]
			if got, want := strings.Join(strings.Fields(raw), " "), l.Module()+" "+l.Hash; got != want {
				t.Fatalf("entry of line %q reads back as %q", got, want)
			}
		}
		for _, r := range malformed {
			if r.Line < 1 || r.Line > n || r.Kind != check.Malformed {
				t.Fatalf("bad malformed result %+v", r)
			}
		}
	})
}

func TestClean(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
	gosum := db.GoSum(modules...)
	state := filepath.Join(t.TempDir(), "state", "latest")
	rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state, Concurrency: 3}, "go.sum", gosum)
	wantStatus(t, rep, 0)
	if got, want := rep.Counts()[check.OK], 2*len(modules); got != want {
		t.Errorf("%d lines verified, want %d", got, want)
	}
	wantText(t, rep, fmt.Sprintf("sumdb check: %d lines in 1 file against %s (tree size %d): %d verified; exit status 0", 2*len(modules), sumdbtest.KeyName, len(modules), 2*len(modules)))
	if rep.Head == nil || rep.Head.Size != int64(len(modules)) || rep.StartHead != nil {
		t.Errorf("Head, StartHead = %+v, %+v, want size %d and nil", rep.Head, rep.StartHead, len(modules))
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if !strings.HasPrefix(string(noteOf(t, data)), fmt.Sprintf("go.sum database tree\n%d\n", len(modules))) {
		t.Errorf("state file holds %q, want the signed head of size %d", data, len(modules))
	}

	// The log grows; the next run proves the new head consistent with the
	// one in the state file, and moves it on.
	more := mod("example.com/later", "v1.0.0")
	db.Add(more)
	gosum += db.GoSum(more)
	rep = run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state}, "go.sum", gosum)
	wantStatus(t, rep, 0)
	if rep.StartHead == nil || rep.StartHead.Size != int64(len(modules)) || rep.Head == nil || rep.Head.Size != int64(len(modules)+1) {
		t.Errorf("StartHead, Head = %+v, %+v, want sizes %d, %d", rep.StartHead, rep.Head, len(modules), len(modules)+1)
	}
	wantText(t, rep, fmt.Sprintf("(tree size %d, up from %d)", len(modules)+1, len(modules)))
}

func TestManyModules(t *testing.T) {
	t.Parallel()
	var mods []modproxy.Module
	for i := range 300 { // across a full tile
		mods = append(mods, mod(fmt.Sprintf("example.com/many/m%d", i), "v1.0.0"))
	}
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: mods})
	gosum := db.GoSum(mods...)
	// Progress is written by one goroutine, and Run waits for it to end.
	var progress bytes.Buffer
	rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), Concurrency: 16, Progress: &progress}, "go.sum", gosum)
	wantStatus(t, rep, 0)
	if got := rep.Counts()[check.OK]; got != 600 {
		t.Errorf("%d lines verified, want 600", got)
	}
	// Every module version is looked up once, for both its lines.
	lookups := 0
	for _, p := range db.Requests() {
		if strings.HasPrefix(p, "/lookup/") {
			lookups++
		}
	}
	if lookups != 300 {
		t.Errorf("%d lookups, want 300", lookups)
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
	gosum := db.GoSum(modules...)
	zip0, mod0, _ := strings.Cut(strings.TrimSpace(db.GoSum(modules[0])), "\n")
	_, logHash, _ := strings.Cut(strings.TrimPrefix(mod0, modules[0].Path+" "), " ")
	_, zipHash, _ := strings.Cut(strings.TrimPrefix(zip0, modules[0].Path+" "), " ")
	badHash := "h1:" + strings.Repeat("A", 43) + "="
	if logHash == badHash {
		t.Fatal("the test's altered hash is the real one")
	}
	unknownMod := "example.com/nowhere v1.0.0/go.mod h1:" + strings.Repeat("B", 43) + "=\n"

	tests := []struct {
		name   string
		files  []string // name, content
		status int
		kinds  map[string]check.Kind
		want   []string // in the text report
	}{
		{
			name:   "mismatch",
			files:  []string{"go.sum", replaceLine(gosum, 2, modules[0].Path+" "+modules[0].Version+"/go.mod "+badHash)},
			status: 1,
			kinds:  map[string]check.Kind{"go.sum:1": check.OK, "go.sum:2": check.Mismatch, "go.sum:3": check.OK},
			want:   []string{fmt.Sprintf("go.sum:2: %s %s/go.mod: mismatch: go.sum has %s, log has %s", modules[0].Path, modules[0].Version, badHash, logHash), "1 mismatch; exit status 1"},
		},
		{
			name:   "unknown",
			files:  []string{"go.sum", gosum + unknownMod},
			status: 2,
			kinds:  map[string]check.Kind{fmt.Sprintf("go.sum:%d", 2*len(modules)+1): check.Unknown},
			want:   []string{fmt.Sprintf("go.sum:%d: example.com/nowhere v1.0.0/go.mod: unknown to the log: ", 2*len(modules)+1), "example.com/nowhere@v1.0.0", "1 unknown to the log; exit status 2"},
		},
		{
			name:   "unknown and mismatch",
			files:  []string{"go.sum", unknownMod + replaceLine(gosum, 1, modules[0].Path+" "+modules[0].Version+" "+badHash)},
			status: 1,
			kinds:  map[string]check.Kind{"go.sum:1": check.Unknown, "go.sum:2": check.Mismatch},
		},
		{
			// go mod tidy writes such lines (TestCheckTidyZipOnly in
			// cmd/sumdb has the go command write one).
			name:   "zip line without go.mod line",
			files:  []string{"go.sum", zip0 + "\n"},
			status: 0,
			kinds:  map[string]check.Kind{"go.sum:1": check.OK},
			want:   []string{"1 verified; exit status 0"},
		},
		{
			name:   "zip line without go.mod line, mismatch",
			files:  []string{"go.sum", modules[0].Path + " " + modules[0].Version + " " + badHash + "\n"},
			status: 1,
			kinds:  map[string]check.Kind{"go.sum:1": check.Mismatch},
			want:   []string{fmt.Sprintf("go.sum:1: %s %s: mismatch: go.sum has %s, log has %s", modules[0].Path, modules[0].Version, badHash, zipHash)},
		},
		{
			name:   "go.work.sum zip line, go.mod line in a module's go.sum",
			files:  []string{"a/go.sum", mod0 + "\n", "go.work.sum", zip0 + "\n"},
			status: 0,
			kinds:  map[string]check.Kind{"a/go.sum:1": check.OK, "go.work.sum:1": check.OK},
		},
		{
			name:   "go.sum zip line, go.mod line in another go.sum",
			files:  []string{"a/go.sum", mod0 + "\n", "b/go.sum", zip0 + "\n"},
			status: 0,
			kinds:  map[string]check.Kind{"a/go.sum:1": check.OK, "b/go.sum:1": check.OK},
		},
		{
			name:   "go.work.sum mismatch",
			files:  []string{"go.sum", gosum, "go.work.sum", replaceLine(zip0+"\n"+mod0+"\n", 1, modules[0].Path+" "+modules[0].Version+" "+badHash)},
			status: 1,
			kinds:  map[string]check.Kind{"go.sum:1": check.OK, "go.work.sum:1": check.Mismatch, "go.work.sum:2": check.OK},
			want:   []string{"go.work.sum:1: " + modules[0].Path},
		},
		{
			name:   "malformed",
			files:  []string{"go.sum", "example.com/m v1.0.0\nexample.com/m v1.0 h1:x=\nExample.com/m v1.0.0 h1:x=\n" + gosum},
			status: 2,
			kinds:  map[string]check.Kind{"go.sum:1": check.Malformed, "go.sum:2": check.Malformed, "go.sum:3": check.Malformed, "go.sum:4": check.OK},
			want:   []string{"go.sum:1: example.com/m v1.0.0: malformed: wrong number of fields 2", "go.sum:2: example.com/m v1.0: malformed: example.com/m@v1.0: invalid version: must be canonical (v1.0.0)"},
		},
		{
			name:   "empty go.mod hash of old go commands",
			files:  []string{"go.sum", "example.com/old v1.0.0/go.mod h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=\n"},
			status: 0,
			kinds:  map[string]check.Kind{"go.sum:1": check.Skipped},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB())}, tt.files...)
			wantStatus(t, rep, tt.status)
			got := kinds(rep)
			for line, want := range tt.kinds {
				if got[line] != want {
					t.Errorf("%s: kind %q, want %q", line, got[line], want)
				}
			}
			wantText(t, rep, tt.want...)
		})
	}
}

// TestConflict checks lines that give one module version, and one kind of
// hash, different hashes: in one file, or in two files of a run.
func TestConflict(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
	zip0, mod0, _ := strings.Cut(strings.TrimSpace(db.GoSum(modules[0])), "\n")
	first := modules[0].Path + " " + modules[0].Version
	badZip := first + " h1:" + strings.Repeat("A", 43) + "=\n"
	unknownA := "example.com/nowhere v1.0.0/go.mod h1:" + strings.Repeat("A", 43) + "=\n"
	unknownB := "example.com/nowhere v1.0.0/go.mod h1:" + strings.Repeat("B", 43) + "=\n"
	privateC := "corp.example/secret v1.0.0 h1:" + strings.Repeat("C", 43) + "=\n"
	privateD := "corp.example/secret v1.0.0 h1:" + strings.Repeat("D", 43) + "=\n"

	tests := []struct {
		name    string
		files   []string // name, content
		noSumDB string
		status  int
		kinds   map[string]check.Kind
		want    []string // in the text report
	}{
		{
			// The log decides: the line it contradicts is the mismatch.
			name:   "the log holds one of the hashes",
			files:  []string{"go.sum", zip0 + "\n" + badZip + mod0 + "\n"},
			status: 1,
			kinds:  map[string]check.Kind{"go.sum:1": check.OK, "go.sum:2": check.Mismatch, "go.sum:3": check.OK},
		},
		{
			name:   "the log holds one of the hashes, in two files",
			files:  []string{"a/go.sum", badZip, "go.work.sum", zip0 + "\n"},
			status: 1,
			kinds:  map[string]check.Kind{"a/go.sum:1": check.Mismatch, "go.work.sum:1": check.OK},
		},
		{
			name:   "the log does not have the module version",
			files:  []string{"go.sum", unknownA + zip0 + "\n" + unknownB},
			status: 2,
			kinds:  map[string]check.Kind{"go.sum:1": check.Conflict, "go.sum:2": check.OK, "go.sum:3": check.Conflict},
			want: []string{
				"go.sum:1: example.com/nowhere v1.0.0/go.mod: conflicting hashes: go.sum:3 has h1:BBBB",
				"go.sum:3: example.com/nowhere v1.0.0/go.mod: conflicting hashes: go.sum:1 has h1:AAAA",
				"2 conflicting hashes; exit status 2",
			},
		},
		{
			name:    "a private module, in two files",
			files:   []string{"a/go.sum", privateC, "b/go.sum", privateD},
			noSumDB: "corp.example",
			status:  2,
			kinds:   map[string]check.Kind{"a/go.sum:1": check.Conflict, "b/go.sum:1": check.Conflict},
			want:    []string{"a/go.sum:1: corp.example/secret v1.0.0: conflicting hashes: b/go.sum:1 has h1:DDDD", "private module (GONOSUMDB=corp.example)"},
		},
		{
			name:    "a private module twice with one hash",
			files:   []string{"a/go.sum", privateC, "b/go.sum", privateC},
			noSumDB: "corp.example",
			status:  0,
			kinds:   map[string]check.Kind{"a/go.sum:1": check.Skipped, "b/go.sum:1": check.Skipped},
		},
		{
			name:   "the same line twice",
			files:  []string{"go.sum", unknownA + unknownA},
			status: 2,
			kinds:  map[string]check.Kind{"go.sum:1": check.Unknown, "go.sum:2": check.Unknown},
		},
		{
			// The go command ignores the empty go.mod hash of old go
			// commands: it conflicts with nothing.
			name:   "empty go.mod hash beside the real one",
			files:  []string{"go.sum", first + "/go.mod h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=\n" + mod0 + "\n"},
			status: 0,
			kinds:  map[string]check.Kind{"go.sum:1": check.Skipped, "go.sum:2": check.OK},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), NoSumDB: tt.noSumDB}, tt.files...)
			wantStatus(t, rep, tt.status)
			got := kinds(rep)
			for line, want := range tt.kinds {
				if got[line] != want {
					t.Errorf("%s: kind %q, want %q", line, got[line], want)
				}
			}
			wantText(t, rep, tt.want...)
		})
	}
	for _, p := range db.Requests() {
		if strings.Contains(p, "corp.example") {
			t.Errorf("the log was asked for %s", p)
		}
	}
}

func TestPrivate(t *testing.T) {
	t.Parallel()
	// Private modules that the log does not have (and must not hear of),
	// with paths that need not be valid public ones.
	private := "corp.example/secret v1.0.0 h1:" + strings.Repeat("C", 43) + "=\n" +
		"corp.example/secret v1.0.0/go.mod h1:" + strings.Repeat("D", 43) + "=\n" +
		"internal/thing v0.1.0/go.mod h1:" + strings.Repeat("E", 43) + "=\n"
	tests := []struct {
		name             string
		noSumDB, private string
		status           int
		skipped          int
		want             string
	}{
		{"GONOSUMDB", "corp.example,internal", "", 0, 3, "skipped: private module (GONOSUMDB=corp.example,internal)"},
		{"GOPRIVATE", "", "corp.example/*,internal", 0, 3, "skipped: private module (GOPRIVATE=corp.example/*,internal)"},
		// As for the go command, GONOSUMDB overrides GOPRIVATE.
		{"GONOSUMDB over GOPRIVATE", "corp.example", "corp.example,internal", 2, 2, "internal/thing v0.1.0/go.mod: malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
			gosum := db.GoSum(modules...)
			rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), NoSumDB: tt.noSumDB, Private: tt.private}, "go.sum", private+gosum)
			wantStatus(t, rep, tt.status)
			if got := rep.Counts()[check.Skipped]; got != tt.skipped {
				t.Errorf("%d lines skipped, want %d", got, tt.skipped)
			}
			wantText(t, rep, tt.want)
			for _, p := range db.Requests() {
				if strings.Contains(p, "corp.example") || strings.Contains(p, "internal") {
					t.Errorf("the log was asked for %s", p)
				}
			}
			if len(db.Requests()) == 0 {
				t.Errorf("the log was asked nothing; want lookups of the public modules")
			}
		})
	}
}

func TestUnchecked(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
	gosum := db.GoSum(modules...)

	t.Run("server error", func(t *testing.T) {
		t.Parallel()
		db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
		gosum := db.GoSum(modules...)
		db.SetStatus(http.StatusInternalServerError)
		rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB())}, "go.sum", gosum)
		wantStatus(t, rep, 3)
		wantText(t, rep, "go.sum:1: "+modules[0].Path+" "+modules[0].Version+": could not check: ", "Internal Server Error (try again later)", "exit status 3")
		// Retried once: two requests per module version.
		if got, want := len(db.Requests()), 2*len(modules); got != want {
			t.Errorf("%d requests, want %d", got, want)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		rep := run(t, check.Config{Remote: remote(t, db.Key.VKey+" http://"+sumdbtest.FreeAddr(t))}, "go.sum", gosum)
		wantStatus(t, rep, 3)
		wantText(t, rep, "could not check: ", "exit status 3")
	})
	t.Run("a mismatch wins", func(t *testing.T) {
		t.Parallel()
		db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules})
		gosum := db.GoSum(modules...)
		// One module version is unknown; another's go.mod line mismatches.
		bad := replaceLine(gosum, 4, modules[1].Path+" "+modules[1].Version+"/go.mod h1:"+strings.Repeat("A", 43)+"=")
		bad = "example.com/nowhere v1.0.0/go.mod h1:" + strings.Repeat("B", 43) + "=\n" + bad
		rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB())}, "go.sum", bad)
		wantStatus(t, rep, 1)
	})
	t.Run("no such host", func(t *testing.T) {
		t.Parallel()
		// .invalid names never resolve (RFC 6761).
		rep := run(t, check.Config{Remote: remote(t, db.Key.VKey+" http://sumdb.invalid")}, "go.sum", gosum)
		wantStatus(t, rep, 3)
		wantText(t, rep, "could not check: ", "exit status 3")
	})
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		// A log that answers the first lookup, then none before the
		// deadline: the lines in flight or after are not checked, and
		// none is held against the log.
		var n atomic.Int64
		f := sumdbtest.NewFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) > 1 {
				<-r.Context().Done()
				return
			}
			db.ServeHTTP(w, r)
		}))
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		rep, err := check.Run(ctx, check.Config{Remote: remote(t, db.Key.VKey+" "+f.URL), Concurrency: 1}, []check.File{{Name: "go.sum", Data: []byte(gosum)}})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, rep, 3)
		c := rep.Counts()
		if c[check.BadProof] != 0 || c[check.Unchecked] == 0 {
			t.Errorf("counts %v, want lines not checked and none of bad-proof:\n%s", c, text(t, rep))
		}
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		rep, err := check.Run(ctx, check.Config{Remote: remote(t, db.GOSUMDB())}, []check.File{{Name: "go.sum", Data: []byte(gosum)}})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, rep, 3)
	})
}

func TestFork(t *testing.T) {
	t.Parallel()
	key := sumdbtest.NewKey(t, sumdbtest.KeyName)
	state := filepath.Join(t.TempDir(), "latest")

	a := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: modules[:2]})
	gosumA := a.GoSum(modules[:2]...)
	rep := run(t, check.Config{Remote: remote(t, a.GOSUMDB()), State: state}, "go.sum", gosumA)
	wantStatus(t, rep, 0)
	headA, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	// B: the same key, another tree, larger than A's.
	var other []modproxy.Module
	for i := range 5 {
		other = append(other, mod(fmt.Sprintf("example.com/fork/m%d", i), "v1.0.0"))
	}
	b := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: other})
	gosumB := b.GoSum(other...)
	rep = run(t, check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, "go.sum", gosumB)
	wantStatus(t, rep, 1)
	if len(rep.SecurityErrors) != 1 {
		t.Fatalf("%d security errors, want 1:\n%s", len(rep.SecurityErrors), text(t, rep))
	}
	if got := rep.Counts()[check.Fork]; got != len(rep.Results) {
		t.Errorf("%d lines of kind fork, want all %d", got, len(rep.Results))
	}
	out := text(t, rep)
	for _, want := range []string{"SECURITY ERROR", "go.sum database server misbehavior detected!", indent(noteOf(t, headA)), indent(b.Latest()), "go.sum:1: example.com/fork/m0 v1.0.0: SECURITY ERROR: "} {
		if !strings.Contains(out, want) {
			t.Errorf("report does not contain %q:\n%s", want, out)
		}
	}
	// The state file still holds A's head: the next run fails too.
	if data, err := os.ReadFile(state); err != nil || !bytes.Equal(data, headA) {
		t.Errorf("state file after the fork = %q, %v; want A's head %q", data, err, headA)
	}
	rep = run(t, check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, "go.sum", gosumB)
	wantStatus(t, rep, 1)

	// C: the same key, another tree, smaller than A's.
	c := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: modules[5:6]})
	gosumC := c.GoSum(modules[5])
	rep = run(t, check.Config{Remote: remote(t, c.GOSUMDB()), State: state}, "go.sum", gosumC)
	wantStatus(t, rep, 1)
	if got := rep.Counts()[check.Fork]; got != 2 || len(rep.SecurityErrors) != 1 {
		t.Errorf("%d lines of kind fork and %d security errors, want 2 and 1:\n%s", got, len(rep.SecurityErrors), text(t, rep))
	}

	// Without the tiles that prove A's head, the client must ask B for
	// them, and B's do not prove it: no SECURITY ERROR, but an answer that
	// does not verify, which fails the check as well.
	if err := os.WriteFile(state, noteOf(t, headA), 0o644); err != nil {
		t.Fatal(err)
	}
	rep = run(t, check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, "go.sum", gosumB)
	wantStatus(t, rep, 1)
	if got := rep.Counts()[check.BadProof]; got != len(rep.Results) {
		t.Errorf("%d lines of kind bad-proof, want all %d:\n%s", got, len(rep.Results), text(t, rep))
	}
}

// indent indents a note as the SECURITY ERROR message does.
func indent(note []byte) string {
	return string(bytes.ReplaceAll(bytes.TrimRight(note, "\n"), []byte("\n"), []byte("\n\t")))
}

// noteOf returns the signed head in a state file.
func noteOf(t *testing.T, state []byte) []byte {
	t.Helper()
	var st struct{ Head string }
	if err := json.Unmarshal(state, &st); err != nil || st.Head == "" {
		t.Fatalf("state file %q: %v", state, err)
	}
	return []byte(st.Head)
}

// TestTamperedRecord changes a record in the store after its head was
// signed, and restarts the server on the store: the server starts (it
// checks its tiles, not its records), and serves the altered record, which
// the check must refuse as not proved by the signed head.
func TestTamperedRecord(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules[:3]})
	gosum := db.GoSum(modules[:3]...)

	// modules[1] is record 1: its zip line gets another hash.
	zip1, _, _ := strings.Cut(strings.TrimSpace(db.GoSum(modules[1])), "\n")
	newZip1 := modules[1].Path + " " + modules[1].Version + " h1:" + strings.Repeat("Z", 43) + "="
	altered := strings.Replace(gosum, zip1, newZip1, 1)
	db.Stop()

	sqldb, err := sql.Open("sqlite", db.File)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	if _, err := sqldb.Exec(`DROP TRIGGER records_no_update`); err != nil {
		t.Fatal(err)
	}
	res, err := sqldb.Exec(`UPDATE records SET text = CAST(replace(CAST(text AS TEXT), $1, $2) AS BLOB) WHERE id = 1`, zip1, newZip1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("UPDATE changed %d rows (%v), want 1", n, err)
	}
	sqldb.Close()

	db2, err := sumdbtest.Start(t, sumdbtest.Options{Key: db.Key, File: db.File})
	if err != nil {
		// Refusing to serve a tampered store is right too: there is nothing
		// left for a checker to catch.
		t.Logf("the log refuses to open the tampered store: %v", err)
		return
	}
	for _, file := range []string{gosum, altered} {
		rep := run(t, check.Config{Remote: remote(t, db2.GOSUMDB())}, "go.sum", file)
		wantStatus(t, rep, 1)
		got := kinds(rep)
		if got["go.sum:3"] != check.BadProof || got["go.sum:4"] != check.BadProof || got["go.sum:1"] != check.OK {
			t.Errorf("kinds %v, want bad-proof for lines 3 and 4 only", got)
		}
		wantText(t, rep, "go.sum:3: "+modules[1].Path+" "+modules[1].Version+": invalid proof: the log's answer does not verify against its signed tree head: ")
	}
}

func TestStateFile(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "latest")
	a := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules[:2]})
	gosumA := a.GoSum(modules[:1]...)

	// A signed note alone, as the go command keeps it, is a state.
	if err := os.WriteFile(state, a.Latest(), 0o644); err != nil {
		t.Fatal(err)
	}
	a.GoSum(modules[1])
	rep := run(t, check.Config{Remote: remote(t, a.GOSUMDB()), State: state}, "go.sum", gosumA)
	wantStatus(t, rep, 0)
	if rep.StartHead == nil || rep.StartHead.Size != 1 || rep.Head == nil || rep.Head.Size != 2 {
		t.Errorf("StartHead, Head = %+v, %+v, want sizes 1 and 2", rep.StartHead, rep.Head)
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Head  string
		Tiles map[string][]byte
	}
	if err := json.Unmarshal(data, &st); err != nil || !strings.HasPrefix(st.Head, "go.sum database tree\n2\n") || len(st.Tiles["tile/8/0/000.p/2"]) != 64 {
		t.Errorf("state file %s, %v; want the head of size 2 and its tile", data, err)
	}

	// The state of another log is refused.
	b := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules[:1]})
	_, err = check.Run(t.Context(), check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, []check.File{{Name: "go.sum", Data: []byte(b.GoSum(modules[:1]...))}})
	if err == nil || !strings.Contains(err.Error(), "belongs to another checksum database") {
		t.Errorf("Run with the state of another log: %v, want an error saying it belongs to another checksum database", err)
	}

	if err := os.WriteFile(state, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = check.Run(t.Context(), check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, nil)
	if err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("Run with a corrupt state file: %v, want an error saying so", err)
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kinds    []check.Kind
		security bool
		state    bool // the state file could not be kept up to date
		want     int
	}{
		{nil, false, false, 0},
		{[]check.Kind{check.OK, check.Skipped}, false, false, 0},
		{[]check.Kind{check.OK, check.Unknown}, false, false, 2},
		{[]check.Kind{check.OK, check.Malformed}, false, false, 2},
		{[]check.Kind{check.Skipped, check.Conflict}, false, false, 2},
		{[]check.Kind{check.Conflict, check.Unchecked}, false, false, 3},
		{[]check.Kind{check.Conflict, check.Mismatch}, false, false, 1},
		{[]check.Kind{check.Unknown, check.Unchecked}, false, false, 3},
		{[]check.Kind{check.Unchecked, check.Mismatch}, false, false, 1},
		{[]check.Kind{check.Unknown, check.Fork}, false, false, 1},
		{[]check.Kind{check.BadProof}, false, false, 1},
		{[]check.Kind{check.OK}, true, false, 1},
		{[]check.Kind{check.OK}, false, true, 3},
		{[]check.Kind{check.Unknown}, false, true, 3},
		{[]check.Kind{check.Mismatch}, false, true, 1},
		{[]check.Kind{check.OK}, true, true, 1},
	}
	for _, tt := range tests {
		rep := &check.Report{}
		for _, k := range tt.kinds {
			rep.Results = append(rep.Results, check.Result{Kind: k})
		}
		if tt.security {
			rep.SecurityErrors = []string{"SECURITY ERROR"}
		}
		if tt.state {
			rep.StateError = "state file st could not be kept up to date"
		}
		if got := rep.ExitStatus(); got != tt.want {
			t.Errorf("ExitStatus() of %v (security error %v, state error %v) = %d, want %d", tt.kinds, tt.security, tt.state, got, tt.want)
		}
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	rep := &check.Report{
		Database: "sumdb.test",
		URL:      "http://127.0.0.1:1",
		Files:    []string{"go.sum"},
		Head:     &check.Head{Size: 7, Hash: "abc="},
		Results: []check.Result{
			{Entry: check.Entry{File: "go.sum", Line: 1, Path: "example.com/a", Version: "v1.0.0", Hash: "h1:a="}, Kind: check.OK, LogHash: "h1:a="},
			{Entry: check.Entry{File: "go.sum", Line: 2, Path: "example.com/a", Version: "v1.0.0", GoMod: true, Hash: "h1:b="}, Kind: check.Mismatch, LogHash: "h1:c=", Message: "go.sum has h1:b=, log has h1:c="},
			{Entry: check.Entry{File: "go.sum", Line: 3, Path: "corp.example/x", Version: "v1.0.0", Hash: "h1:d="}, Kind: check.Skipped, Message: "private module (GOPRIVATE=corp.example)"},
		},
		SecurityErrors: []string{"SECURITY ERROR\nold database:\n\tx\n"},
		StateError:     "state file st could not be kept up to date: fix it",
	}
	tests := []struct {
		format check.Format
		want   string
	}{
		{check.Text, `go.sum:2: example.com/a v1.0.0/go.mod: mismatch: go.sum has h1:b=, log has h1:c=
go.sum:3: corp.example/x v1.0.0: skipped: private module (GOPRIVATE=corp.example)
SECURITY ERROR
old database:
	x
sumdb check: state file st could not be kept up to date: fix it
sumdb check: 3 lines in 1 file against sumdb.test (tree size 7): 1 verified, 1 skipped, 1 mismatch; state file not updated; exit status 1
`},
		{check.GitHub, `::error file=go.sum,line=2,title=sumdb check%3A mismatch::example.com/a v1.0.0/go.mod: mismatch: go.sum has h1:b=, log has h1:c=
go.sum:3: corp.example/x v1.0.0: skipped: private module (GOPRIVATE=corp.example)
::error title=sumdb check%3A SECURITY ERROR::SECURITY ERROR%0Aold database:%0A	x
::error title=sumdb check%3A state file::state file st could not be kept up to date: fix it
::error title=sumdb check::sumdb check: 3 lines in 1 file against sumdb.test (tree size 7): 1 verified, 1 skipped, 1 mismatch; state file not updated; exit status 1
`},
		{check.JSON, `{
  "database": "sumdb.test",
  "url": "http://127.0.0.1:1",
  "files": [
    "go.sum"
  ],
  "head": {
    "size": 7,
    "hash": "abc="
  },
  "entries": [
    {
      "file": "go.sum",
      "line": 1,
      "path": "example.com/a",
      "version": "v1.0.0",
      "hash": "h1:a=",
      "kind": "ok",
      "log_hash": "h1:a="
    },
    {
      "file": "go.sum",
      "line": 2,
      "path": "example.com/a",
      "version": "v1.0.0",
      "go_mod": true,
      "hash": "h1:b=",
      "kind": "mismatch",
      "log_hash": "h1:c=",
      "message": "go.sum has h1:b=, log has h1:c="
    },
    {
      "file": "go.sum",
      "line": 3,
      "path": "corp.example/x",
      "version": "v1.0.0",
      "hash": "h1:d=",
      "kind": "skipped",
      "message": "private module (GOPRIVATE=corp.example)"
    }
  ],
  "security_errors": [
    "SECURITY ERROR\nold database:\n\tx\n"
  ],
  "state_error": "state file st could not be kept up to date: fix it",
  "summary": {
    "lines": 3,
    "counts": {
      "mismatch": 1,
      "ok": 1,
      "skipped": 1
    },
    "exit_status": 1
  }
}
`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := rep.Write(&b, tt.format); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("Write(%s) =\n%s\nwant\n%s", tt.format, b.String(), tt.want)
		}
	}
	if _, err := check.ParseFormat("xml"); err == nil {
		t.Errorf("ParseFormat(xml) succeeded")
	}
}

// TestAbsurdTreeSize serves lookups proved by a validly signed tree head of
// a size no log reaches. From 2^62 records on, x/mod's tree arithmetic
// never ends, and a check that let its client see such a head would spin
// past its deadline. The head must be refused before any proof, as evidence
// against the log (exit status 1), naming its size, with or without an
// earlier head in the state file; the state file must not take it. A head
// of client.MaxTreeSize records, the largest accepted, only fails for want
// of tiles (could not check).
func TestAbsurdTreeSize(t *testing.T) {
	t.Parallel()
	k := sumdbtest.NewKey(t, sumdbtest.KeyName)
	gosum := "example.com/m v1.0.0/go.mod h1:" + strings.Repeat("A", 43) + "=\n"
	// An earlier head of one record, with the tile that proves it, so that
	// the client trusts it without asking the log.
	leaf := xtlog.RecordHash([]byte("earlier\n"))
	earlier, err := json.Marshal(map[string]any{
		"head":  string(k.SignTree(t, 1, leaf)),
		"tiles": map[string][]byte{"tile/8/0/000.p/1": leaf[:]},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		n      int64
		status int
	}{
		{1 << 62, 1},
		{1<<63 - 1, 1},
		{1<<40 + 1, 1},
		{1 << 40, 3},
	} {
		for _, withState := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/state=%v", tt.n, withState), func(t *testing.T) {
				t.Parallel()
				f := sumdbtest.NewFront(t, sumdbtest.ClaimedHead(k.SignTree(t, tt.n, xtlog.RecordHash([]byte("absurd\n")))))
				state := ""
				if withState {
					state = filepath.Join(t.TempDir(), "state")
					if err := os.WriteFile(state, earlier, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				cfg := check.Config{Remote: remote(t, k.VKey+" "+f.URL), State: state}
				type outcome struct {
					rep *check.Report
					err error
				}
				out := sumdbtest.Returns(t, func(ctx context.Context) outcome {
					rep, err := check.Run(ctx, cfg, []check.File{{Name: "go.sum", Data: []byte(gosum)}})
					return outcome{rep, err}
				})
				if out.err != nil {
					t.Fatalf("Run: %v", out.err)
				}
				wantStatus(t, out.rep, tt.status)
				if tt.status == 1 {
					wantText(t, out.rep, "go.sum:1: example.com/m v1.0.0/go.mod: invalid proof: ", fmt.Sprintf("tree head of %d records", tt.n))
				}
				if withState {
					if data, err := os.ReadFile(state); err != nil || !bytes.Equal(data, earlier) {
						t.Errorf("state file after the run = %q, %v; want the earlier head %q", data, err, earlier)
					}
				}
			})
		}
	}
}

// TestStateFileUnwritable checks against an honest log while the state
// file cannot be written: its directory was replaced by a file after the
// run began, or cannot be created (a dangling symbolic link stands where
// it should be), or the file was overwritten during the run with a head of
// another log. These fail for root too, which permission bits do not
// stop. The lines verify, but the head is not kept, so that the next run
// cannot prove the log's heads consistent with this one's: a local
// problem, to be fixed where the report says, that could not check (exit
// status 3), never evidence against the log.
func TestStateFileUnwritable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, db *sumdbtest.DB) (state string)
	}{
		{"directory replaced by a file", func(t *testing.T, db *sumdbtest.DB) string {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			db.SetTamper(func(path string, body []byte) []byte {
				once.Do(func() {
					if err := os.Remove(dir); err != nil {
						t.Error(err)
					}
					if err := os.WriteFile(dir, []byte("a file\n"), 0o644); err != nil {
						t.Error(err)
					}
				})
				return body
			})
			return filepath.Join(dir, "latest")
		}},
		{"directory cannot be created", func(t *testing.T, db *sumdbtest.DB) string {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "state")
			if err := os.Symlink(filepath.Join(tmp, "nowhere"), dir); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "latest")
		}},
		{"overwritten with another log's head", func(t *testing.T, db *sumdbtest.DB) string {
			state := filepath.Join(t.TempDir(), "latest")
			other := sumdbtest.NewKey(t, sumdbtest.KeyName).SignTree(t, 1, xtlog.RecordHash([]byte("other\n")))
			var once sync.Once
			db.SetTamper(func(path string, body []byte) []byte {
				once.Do(func() {
					if err := os.WriteFile(state, other, 0o644); err != nil {
						t.Error(err)
					}
				})
				return body
			})
			return state
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules[:2]})
			gosum := db.GoSum(modules[:2]...)
			state := tt.setup(t, db)
			rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state}, "go.sum", gosum)
			wantStatus(t, rep, 3)
			if got := rep.Counts()[check.OK]; got != 4 {
				t.Errorf("%d lines verified, want 4:\n%s", got, text(t, rep))
			}
			wantText(t, rep, "state file "+state, "name another state file", "exit status 3")
			if out := text(t, rep); strings.Contains(out, "invalid proof") {
				t.Errorf("report blames the log:\n%s", out)
			}
		})
	}
}
