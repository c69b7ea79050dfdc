package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// checkModules are served by the test databases: an upper-case path, an
// +incompatible version, a pseudo-version, a module without go.mod.
var checkModules = []modproxy.Module{
	{Path: "example.com/Upper/Mod", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/Upper/Mod\n", "a.go": "package a\n"}},
	{Path: "example.com/inc", Version: "v2.0.0+incompatible", Files: map[string]string{"inc.go": "package inc\n"}},
	{Path: "example.com/pseudo", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{"go.mod": "module example.com/pseudo\n", "p.go": "package p\n"}},
	{Path: "example.com/nogomod", Version: "v1.2.3", Files: map[string]string{"x.go": "package x\n"}},
}

// checkEnv fixes the go command's settings and the SUMDB_* variables for
// the test, so that the environment and go env file of whoever runs the
// tests cannot change their outcome. Tests that call it cannot be parallel.
func checkEnv(t *testing.T) {
	t.Helper()
	clearEnv(t)
	for k, v := range map[string]string{
		"GOENV":            "off",
		"GOFLAGS":          "",
		"GOTOOLCHAIN":      "local",
		"GONOSUMDB":        "",
		"GOPRIVATE":        "",
		"GOSUMDB":          "",
		"GOPROXY":          "off", // no network
		"GOWORK":           "",
		"GITHUB_WORKSPACE": "",
	} {
		t.Setenv(k, v)
	}
}

// sumdbCheck runs "sumdb check args..." and returns its exit status and
// output.
func sumdbCheck(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), append([]string{"check"}, args...), &out, &errOut)
	status = report(err, &errOut)
	return status, out.String(), errOut.String()
}

// writeIn writes a file in dir and returns its path.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	file := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func wantOutput(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
}

// hashOf returns the hash of the line of gosum that begins with prefix.
func hashOf(t *testing.T, gosum, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(gosum, "\n") {
		if h, ok := strings.CutPrefix(l, prefix+" "); ok {
			return h
		}
	}
	t.Fatalf("no line %q in %q", prefix, gosum)
	return ""
}

func TestCheck(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	gosum := db.GoSum(checkModules...)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	badHash := "h1:" + strings.Repeat("A", 43) + "="
	first := checkModules[0].Path + " " + checkModules[0].Version
	logHash := hashOf(t, gosum, first+"/go.mod")
	mismatch := strings.Replace(gosum, first+"/go.mod "+logHash, first+"/go.mod "+badHash, 1)
	unknown := gosum + "example.com/nowhere v1.0.0/go.mod " + badHash + "\n"
	zipOnly := first + " " + hashOf(t, gosum, first) + "\n"
	n := 2 * len(checkModules)

	tests := []struct {
		name    string
		content string
		args    []string
		status  int
		stdout  []string
	}{
		{
			name:    "clean",
			content: gosum,
			status:  0,
			stdout:  []string{fmt.Sprintf("sumdb check: %d lines in 1 file against sumdb.test (tree size %d): %d verified; exit status 0", n, len(checkModules), n)},
		},
		{
			name:    "mismatch",
			content: mismatch,
			status:  1,
			stdout:  []string{fmt.Sprintf("go.sum:2: %s/go.mod: mismatch: go.sum has %s, log has %s", first, badHash, logHash), "exit status 1"},
		},
		{
			name:    "unknown to the log",
			content: unknown,
			status:  2,
			stdout:  []string{fmt.Sprintf("go.sum:%d: example.com/nowhere v1.0.0/go.mod: unknown to the log: not found: example.com/nowhere@v1.0.0", n+1), "exit status 2"},
		},
		{
			name:    "zip line without go.mod line",
			content: zipOnly,
			status:  0,
			stdout:  []string{"sumdb check: 1 line in 1 file against sumdb.test (tree size 4): 1 verified; exit status 0"},
		},
		{
			name:    "conflicting hashes",
			content: unknown + "example.com/nowhere v1.0.0/go.mod h1:" + strings.Repeat("B", 43) + "=\n",
			status:  2,
			stdout:  []string{fmt.Sprintf("go.sum:%d: example.com/nowhere v1.0.0/go.mod: conflicting hashes: go.sum:%d has h1:BBBB", n+1, n+2), "2 conflicting hashes; exit status 2"},
		},
		{
			name:    "json",
			content: mismatch,
			args:    []string{"--format", "json"},
			status:  1,
			stdout:  []string{`"kind": "mismatch"`, `"exit_status": 1`},
		},
		{
			name:    "github",
			content: mismatch,
			args:    []string{"--format=github"},
			status:  1,
			stdout:  []string{fmt.Sprintf("::error file=go.sum,line=2,title=sumdb check%%3A mismatch::%s/go.mod: mismatch: go.sum has %s, log has %s\n", first, badHash, logHash), "::error title=sumdb check::sumdb check: "},
		},
		{
			name:    "github clean",
			content: gosum,
			args:    []string{"--format=github"},
			status:  0,
			stdout:  []string{"::notice title=sumdb check::sumdb check: "},
		},
		{
			name:    "github unknown",
			content: unknown,
			args:    []string{"--format", "github", "--concurrency", "1"},
			status:  2,
			stdout:  []string{fmt.Sprintf("::error file=go.sum,line=%d,title=sumdb check%%3A unknown to the log::", n+1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir)
			writeIn(t, dir, "go.sum", tt.content)
			args := append([]string{"--sumdb", db.GOSUMDB(), "--state", state}, tt.args...)
			status, stdout, stderr := sumdbCheck(t, append(args, "go.sum")...)
			if status != tt.status {
				t.Errorf("sumdb check %q: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", args, status, tt.status, stdout, stderr)
			}
			wantOutput(t, stdout, tt.stdout...)
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing (the report is on stdout)", stderr)
			}
		})
	}

	t.Run("json document", func(t *testing.T) {
		path := writeIn(t, t.TempDir(), "go.sum", mismatch)
		status, stdout, _ := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state", state, "--format", "json", path)
		var doc struct {
			Database string
			Files    []string
			Head     struct{ Size int64 }
			Entries  []struct {
				File, Path, Version, Hash, Kind string
				Line                            int
				LogHash                         string `json:"log_hash"`
			}
			Summary struct {
				Lines      int
				Counts     map[string]int
				ExitStatus int `json:"exit_status"`
			}
		}
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, stdout)
		}
		if status != 1 || doc.Summary.ExitStatus != 1 || doc.Summary.Lines != n || len(doc.Entries) != n || doc.Summary.Counts["mismatch"] != 1 || doc.Summary.Counts["ok"] != n-1 {
			t.Errorf("exit status %d, summary %+v, %d entries; want 1, 1 mismatch and %d ok of %d", status, doc.Summary, len(doc.Entries), n-1, n)
		}
		e := doc.Entries[1]
		if e.File != path || e.Line != 2 || e.Kind != "mismatch" || e.Hash != badHash || e.LogHash != logHash || e.Path != checkModules[0].Path {
			t.Errorf("entry of line 2 = %+v, want the mismatch", e)
		}
		if doc.Database != "sumdb.test" || doc.Head.Size != int64(len(checkModules)) {
			t.Errorf("database %q at size %d, want sumdb.test at %d", doc.Database, doc.Head.Size, len(checkModules))
		}
	})

	// The state file holds the head the runs verified.
	data, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(data), fmt.Sprintf(`go.sum database tree\n%d\n`, len(checkModules))) {
		t.Errorf("state file = %q, %v; want the head of size %d", data, err, len(checkModules))
	}
}

// TestCheckDefaults runs check with no arguments in a module: the database
// is GOSUMDB, the file the module's go.sum, the settings from SUMDB_CHECK_*.
func TestCheckDefaults(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	gosum := db.GoSum(checkModules...)
	dir := t.TempDir()
	writeIn(t, dir, "go.mod", "module example.com/main\n\ngo 1.21\n")
	writeIn(t, dir, "go.sum", gosum)
	writeIn(t, dir, "sub/x.go", "package sub\n")
	t.Chdir(filepath.Join(dir, "sub"))
	t.Setenv("GOSUMDB", db.GOSUMDB())
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("SUMDB_CHECK_STATE", state)
	t.Setenv("SUMDB_CHECK_FORMAT", "github")
	// Audit's variables are no concern of check.
	t.Setenv("SUMDB_AUDIT_STATE", filepath.Join(t.TempDir(), "audit"))
	t.Setenv("SUMDB_AUDIT_CONCURRENCY", "0")

	status, stdout, stderr := sumdbCheck(t)
	if status != 0 || stderr != "" {
		t.Fatalf("exit status %d, want 0 and nothing on stderr\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	wantOutput(t, stdout, "::notice title=sumdb check::sumdb check: 8 lines in 1 file against sumdb.test")
	if _, err := os.Stat(state); err != nil {
		t.Errorf("SUMDB_CHECK_STATE: %v", err)
	}

	// Names in annotations are relative to the workspace of GitHub Actions.
	writeIn(t, dir, "go.sum", strings.Replace(gosum, " h1:", " h1:x", 1))
	t.Setenv("GITHUB_WORKSPACE", dir)
	status, stdout, _ = sumdbCheck(t)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	wantOutput(t, stdout, "::error file=go.sum,line=1,")

	// A flag wins over the environment.
	status, stdout, _ = sumdbCheck(t, "--format", "text")
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	wantOutput(t, stdout, "../go.sum:1: ")

	// The default state file is in the user's cache directory.
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	t.Setenv("SUMDB_CHECK_STATE", "")
	// The name without the command is none of check's: it is ignored, with
	// a warning.
	t.Setenv("SUMDB_STATE", state)
	writeIn(t, dir, "go.sum", gosum)
	status, stdout, stderr = sumdbCheck(t)
	if status != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	if want := "sumdb: check: ignoring environment variable SUMDB_STATE: no such setting (did you mean SUMDB_AUDIT_STATE or SUMDB_CHECK_STATE?)\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	userCache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(userCache, "sumdb", "check", "sumdb.test.latest")); err != nil {
		t.Errorf("default state file: %v", err)
	}
	// --state= keeps none.
	other := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	writeIn(t, dir, "go.sum", other.GoSum(checkModules...))
	t.Setenv("GOSUMDB", other.GOSUMDB())
	if status, stdout, stderr := sumdbCheck(t); status != 3 || !strings.Contains(stderr, "belongs to another checksum database") {
		t.Errorf("with the default state of another log of the same name: exit status %d, want 3 and an error saying so\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	if status, stdout, stderr := sumdbCheck(t, "--state="); status != 0 {
		t.Errorf("with --state=: exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestCheckWorkspace runs check with no arguments in a workspace: it reads
// the go.work.sum and the go.sum of each module.
func TestCheckWorkspace(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	dir := t.TempDir()
	writeIn(t, dir, "go.work", "go 1.21\n\nuse (\n\t./a\n\t./b\n)\n")
	writeIn(t, dir, "a/go.mod", "module example.com/a\n\ngo 1.21\n")
	writeIn(t, dir, "a/go.sum", db.GoSum(checkModules[0]))
	writeIn(t, dir, "b/go.mod", "module example.com/b\n\ngo 1.21\n") // no go.sum
	work := db.GoSum(checkModules[1])
	writeIn(t, dir, "go.work.sum", strings.Replace(work, " h1:", " h1:x", 1))
	t.Chdir(filepath.Join(dir, "a"))

	status, stdout, stderr := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state=")
	if status != 1 {
		t.Fatalf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	wantOutput(t, stdout, "../go.work.sum:1: "+checkModules[1].Path+" "+checkModules[1].Version+": mismatch: ", "sumdb check: 4 lines in 2 files")

	// The same files, named.
	status, stdout, _ = sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state=", "go.sum", "../go.work.sum")
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	wantOutput(t, stdout, "../go.work.sum:1: ", "sumdb check: 4 lines in 2 files")
}

func TestCheckPrivate(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	private := "corp.example/secret v1.0.0 h1:" + strings.Repeat("C", 43) + "=\n" +
		"corp.example/secret v1.0.0/go.mod h1:" + strings.Repeat("D", 43) + "=\n"
	file := writeIn(t, t.TempDir(), "go.sum", private+db.GoSum(checkModules...))
	for _, env := range []string{"GONOSUMDB", "GOPRIVATE"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "corp.example")
			status, stdout, stderr := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state=", file)
			if status != 0 {
				t.Errorf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
			}
			wantOutput(t, stdout, file+":1: corp.example/secret v1.0.0: skipped: private module ("+env+"=corp.example)", "8 verified, 2 skipped")
			for _, p := range db.Requests() {
				if strings.Contains(p, "corp.example") {
					t.Errorf("the log was asked for %s", p)
				}
			}
		})
	}
}

func TestCheckFork(t *testing.T) {
	checkEnv(t)
	key := sumdbtest.NewKey(t, sumdbtest.KeyName)
	state := filepath.Join(t.TempDir(), "state")
	a := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: checkModules[:2]})
	fileA := writeIn(t, t.TempDir(), "go.sum", a.GoSum(checkModules[:2]...))
	if status, stdout, stderr := sumdbCheck(t, "--sumdb", a.GOSUMDB(), "--state", state, fileA); status != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	headA := string(a.Latest())

	// B: the same key, another tree.
	var other []modproxy.Module
	for i := range 4 {
		other = append(other, modproxy.Module{Path: fmt.Sprintf("example.com/fork/m%d", i), Version: "v1.0.0", Files: map[string]string{"go.mod": fmt.Sprintf("module example.com/fork/m%d\n", i)}})
	}
	b := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: other})
	fileB := writeIn(t, t.TempDir(), "go.sum", b.GoSum(other...))
	headB := string(b.Latest())
	status, stdout, _ := sumdbCheck(t, "--sumdb", b.GOSUMDB(), "--state", state, fileB)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	indent := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n\t") }
	wantOutput(t, stdout, "SECURITY ERROR\ngo.sum database server misbehavior detected!", "old database:\n\t"+indent(headA), "new database:\n\t"+indent(headB), "proof of misbehavior:", fileB+":1: example.com/fork/m0 v1.0.0: SECURITY ERROR")
}

func TestCheckCouldNotCheck(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	dir := t.TempDir()
	file := writeIn(t, dir, "go.sum", db.GoSum(checkModules...))
	other := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules[:1]})
	other.GoSum(checkModules[0])
	// A signed note alone, as the go command keeps it.
	otherState := writeIn(t, dir, "other-state", string(other.Latest()))
	t.Chdir(t.TempDir()) // no module

	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"bad flag", []string{"--sumbd", "x", file}, "sumdb: check: unknown flag: --sumbd (run sumdb check --help)"},
		{"bad format", []string{"--sumdb", db.GOSUMDB(), "--format", "xml", file}, `sumdb: check: invalid --format: unknown format "xml" (want text, json or github)`},
		{"bad concurrency", []string{"--sumdb", db.GOSUMDB(), "--concurrency", "0", file}, "sumdb: check: invalid --concurrency"},
		{"missing file", []string{"--sumdb", db.GOSUMDB(), "--state=", filepath.Join(dir, "nothing")}, "no such file or directory"},
		{"no module", []string{"--sumdb", db.GOSUMDB(), "--state="}, "no module in the current directory"},
		{"GOSUMDB=off", []string{"--sumdb", "off", file}, "GOSUMDB=off"},
		{"state of another log", []string{"--sumdb", db.GOSUMDB(), "--state", otherState, file}, "belongs to another checksum database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := sumdbCheck(t, tt.args...)
			if status != 3 || !strings.Contains(stderr, tt.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("sumdb check %q: exit status %d, stderr %q; want 3 and one line containing %q\nstdout:\n%s", tt.args, status, stderr, tt.stderr, stdout)
			}
		})
	}

	// A database answering 500, after retries.
	db.SetStatus(http.StatusInternalServerError)
	status, stdout, _ := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state=", file)
	if status != 3 {
		t.Errorf("with the database answering 500: exit status %d, want 3", status)
	}
	wantOutput(t, stdout, file+":1: "+checkModules[0].Path+" "+checkModules[0].Version+": could not check: ", "Internal Server Error", "exit status 3")
}

// TestCheckTidyZipOnly checks a go.sum that go mod tidy wrote with a zip
// hash and no go.mod hash for one module version: one the go command needs
// only to rule out an ambiguous import. A test of dependency dep imports
// example.com/tidy/a/b/c, from module example.com/tidy/a; module
// example.com/tidy/a/b, which dep requires too, might hold that package,
// so the go command downloads its zip to see that it does not, and keeps
// the zip's hash. Its go.mod the go command never reads: dep is the only
// root of the pruned module graph, so dep's requirements are in the graph
// without their own requirements, and a package that only a test of a
// dependency imports adds no root. The file is correct, and check must
// pass it.
func TestCheckTidyZipOnly(t *testing.T) {
	checkEnv(t)
	const goMod = "\n\ngo 1.21\n"
	mods := []modproxy.Module{
		{Path: "example.com/tidy/dep", Version: "v1.0.0", Files: map[string]string{
			"go.mod":      "module example.com/tidy/dep" + goMod + "\nrequire (\n\texample.com/tidy/a v1.0.0\n\texample.com/tidy/a/b v1.0.0\n)\n",
			"dep.go":      "package dep\n",
			"dep_test.go": "package dep\n\nimport _ \"example.com/tidy/a/b/c\"\n",
		}},
		{Path: "example.com/tidy/a", Version: "v1.0.0", Files: map[string]string{
			"go.mod":   "module example.com/tidy/a" + goMod,
			"b/c/c.go": "package c\n",
		}},
		{Path: "example.com/tidy/a/b", Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module example.com/tidy/a/b" + goMod,
			"b.go":   "package b\n",
		}},
	}
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: mods})
	dir := newMainModule(t, "example.com/tidy/dep")
	newGoUser(t, db.ProxyURL).mustRun(dir, db.GOSUMDB(), "mod", "tidy")

	lines := goSumLines(t, dir)
	const zip, gomod = "example.com/tidy/a/b v1.0.0 h1:", "example.com/tidy/a/b v1.0.0/go.mod h1:"
	hasPrefix := func(prefix string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	if !hasPrefix(zip) || hasPrefix(gomod) {
		t.Fatalf("go mod tidy wrote no zip-only line for example.com/tidy/a/b v1.0.0, which this test is about; go.sum:\n%s", strings.Join(lines, "\n"))
	}

	t.Logf("go.sum:\n%s", strings.Join(lines, "\n"))
	status, stdout, stderr := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state=", filepath.Join(dir, "go.sum"))
	if status != 0 {
		t.Errorf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	wantOutput(t, stdout, fmt.Sprintf("%d verified; exit status 0", len(lines)))
}

// TestCheckBuiltinName runs check with the bare name of the go command's
// built-in checksum database, the go command's default GOSUMDB, and GOROOT
// pointing at an empty directory: the key must come from sumdb itself, not
// from the go command's sources. The database at the URL given knows no
// module, so that the run gets as far as asking it, and no further.
func TestCheckBuiltinName(t *testing.T) {
	checkEnv(t)
	// With GOSUMDB unset, go env prints the go command's default.
	name, err := goEnv(t.Context(), "GOSUMDB")
	if err != nil {
		t.Fatal(err)
	}
	if name == "" || strings.ContainsAny(name, "+ ") || name == "off" {
		t.Fatalf("the go command's default GOSUMDB is %q, not a bare name: this Go installation changed it in its go.env", name)
	}
	db := sumdbtest.NewFront(t, http.NotFoundHandler())
	file := writeIn(t, t.TempDir(), "go.sum", "example.com/m v1.0.0/go.mod h1:"+strings.Repeat("A", 43)+"=\n")
	t.Setenv("GOROOT", t.TempDir())

	status, stdout, stderr := sumdbCheck(t, "--sumdb", name+" "+db.URL, "--state=", file)
	if status != 2 || stderr != "" {
		t.Errorf("exit status %d, want 2 and nothing on stderr\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	wantOutput(t, stdout, file+":1: example.com/m v1.0.0/go.mod: unknown to the log", "against "+name+": 1 unknown to the log")
}

func TestCheckHelp(t *testing.T) {
	checkEnv(t)
	status, stdout, _ := sumdbCheck(t, "--help")
	if status != 0 {
		t.Errorf("exit status %d, want 0", status)
	}
	wantOutput(t, stdout, "Usage: sumdb check [flags] [FILE...]", "--state file", "Exit status", "SUMDB_CHECK_STATE", "SUMDB_CHECK_FORMAT", "SUMDB_CHECK_CONCURRENCY")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"help"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	wantOutput(t, out.String(), "sumdb check [flags] [FILE...]")
}

// TestCheckPublic checks this module's go.sum against the user's
// checksum database (go env GOSUMDB), reached through go env GOPROXY, as
// the go command reaches it. It needs the network, so it runs only with
// SUMDB_TEST_PUBLIC=1.
func TestCheckPublic(t *testing.T) {
	if os.Getenv("SUMDB_TEST_PUBLIC") != "1" {
		t.Skip("set SUMDB_TEST_PUBLIC=1 to check this module's go.sum against the public checksum database")
	}
	file, err := filepath.Abs(filepath.Join("..", "..", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	for range 2 { // the second run proves the new head consistent with the first one's
		status, stdout, stderr := sumdbCheck(t, "--state", state, file)
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		if status != 0 {
			t.Fatalf("exit status %d, want 0", status)
		}
	}
}

// TestCheckAbsurdTreeSize runs check against a log whose lookups are proved
// by a validly signed head of 2^62 records, on which x/mod's tree arithmetic
// never ends: check must refuse it and exit 1, naming the size, well within
// its deadline; the state file must not take the head.
func TestCheckAbsurdTreeSize(t *testing.T) {
	checkEnv(t)
	k := sumdbtest.NewKey(t, sumdbtest.KeyName)
	const n = 1 << 62
	f := sumdbtest.NewFront(t, sumdbtest.ClaimedHead(k.SignTree(t, n, xtlog.RecordHash([]byte("absurd\n")))))
	dir := t.TempDir()
	file := writeIn(t, dir, "go.sum", "example.com/m v1.0.0/go.mod h1:"+strings.Repeat("A", 43)+"=\n")
	state := filepath.Join(dir, "state")
	type outcome struct {
		status         int
		stdout, stderr string
	}
	out := sumdbtest.Returns(t, func(ctx context.Context) outcome {
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"check", "--sumdb", k.VKey + " " + f.URL, "--state", state, file}, &stdout, &stderr)
		return outcome{report(err, &stderr), stdout.String(), stderr.String()}
	})
	if out.status != 1 {
		t.Errorf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", out.status, out.stdout, out.stderr)
	}
	wantOutput(t, out.stdout, file+":1: example.com/m v1.0.0/go.mod: invalid proof: ", fmt.Sprintf("tree head of %d records", int64(n)), "exit status 1")
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file after the run: %v, want none", err)
	}
}

// TestCheckStateUnwritable runs check with a state file that cannot be
// read or written, in ways that stop root too: under a regular file (it
// cannot be read: check cannot start), or under a dangling symbolic link
// where its directory should be created (it cannot be written once the
// lines are verified). Both are local problems: exit status 3, with a
// message naming the file and saying what to do, never evidence against
// the log.
func TestCheckStateUnwritable(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	dir := t.TempDir()
	file := writeIn(t, dir, "go.sum", db.GoSum(checkModules...))
	underFile := filepath.Join(writeIn(t, dir, "regular", "a file\n"), "state")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	underLink := filepath.Join(link, "state")

	status, stdout, stderr := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state", underFile, file)
	if status != 3 || !strings.Contains(stderr, underFile) || !strings.Contains(stderr, "name another state file") {
		t.Errorf("state under a regular file: exit status %d, stderr %q; want 3, naming %s and what to do\nstdout:\n%s", status, stderr, underFile, stdout)
	}

	status, stdout, stderr = sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state", underLink, file)
	if status != 3 {
		t.Errorf("state under a dangling link: exit status %d, want 3\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	wantOutput(t, stdout, "sumdb check: state file "+underLink+" could not be kept up to date", "name another state file", fmt.Sprintf("%d verified; state file not updated; exit status 3", 2*len(checkModules)))
	if strings.Contains(stdout, "invalid proof") {
		t.Errorf("the report blames the log:\n%s", stdout)
	}
}
