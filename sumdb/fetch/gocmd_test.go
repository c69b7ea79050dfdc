package fetch

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/gittest"
	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
)

// The private module of the tests, served by a gittest.Server as the
// repository "repo".
const (
	privPath    = "vcs.test/repo.git"
	privVersion = "v1.0.0"
)

var privFiles = map[string]string{
	"go.mod":    "module " + privPath + "\n\ngo 1.21\n",
	"priv.go":   "package priv\n\n// Answer is private.\nconst Answer = 42\n",
	"sub/x.go":  "package sub\n",
	"README.md": "private\n",
}

// testGoBin returns the go command of the toolchain running the test.
func testGoBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("cannot find the go command: %v", err)
		}
	}
	return bin
}

// gitFixture is a git server holding the private module, a GoCommand
// reaching it with the server's credentials, and a public proxy and
// checksum database, named in the GoCommand's environment, which must
// hear nothing.
type gitFixture struct {
	git    *gittest.Server
	gocmd  *GoCommand
	env    []string   // the GoCommand's base environment
	public *testProxy // an empty proxy: answers 404, records requests
	logs   *guardtest.Logs
	tmp    string // the GoCommand's TempDir
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	s := gittest.NewServer(t, guardtest.SecretUser, guardtest.SecretPass)
	s.NewRepo(t, "repo", privFiles, privVersion, "v1.1.0")
	public := startProxy(t, false)
	env := append(s.ClientEnv(t, "vcs.test", true),
		// What the server's own environment may say; none of it may
		// apply to a private module.
		"GOPROXY="+public.URL,
		"GOSUMDB=sum.public.test "+public.URL,
		"GONOSUMDB=", "GOPRIVATE=", "GOFLAGS=-insecure", "GOINSECURE=*",
	)
	f := &gitFixture{git: s, env: env, public: public, logs: &guardtest.Logs{}, tmp: t.TempDir()}
	f.gocmd = f.newGoCommand(t, GoCommandConfig{})
	t.Cleanup(func() {
		if reqs := public.requested(); len(reqs) > 0 {
			t.Errorf("the public proxy and checksum database were asked for %q", reqs)
		}
		checkEmptyDir(t, f.tmp)
	})
	return f
}

// newGoCommand returns a GoCommand for cfg, whose zero fields are the
// fixture's.
func (f *gitFixture) newGoCommand(t *testing.T, cfg GoCommandConfig) *GoCommand {
	t.Helper()
	if cfg.GoBin == "" {
		cfg.GoBin = testGoBin(t)
	}
	if cfg.Private == "" {
		cfg.Private = "vcs.test"
	}
	if cfg.Env == nil {
		cfg.Env = f.env
	}
	if cfg.TempDir == "" {
		cfg.TempDir = f.tmp
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(f.logs, t.Output()), nil))
	g, err := NewGoCommand(cfg)
	if err != nil {
		t.Fatalf("NewGoCommand(%+v) = %v", cfg, err)
	}
	return g
}

// goModDownload runs "go mod download -json" for path@version as a
// developer would, with env, and returns the go.sum lines it reports.
func goModDownload(t *testing.T, env []string, path, version string) string {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(testGoBin(t), "mod", "download", "-json", path+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(env, "GOPROXY=direct", "GOPRIVATE=vcs.test", "GONOSUMDB=vcs.test", "GOFLAGS=-modcacherw",
		"GOMODCACHE="+filepath.Join(tmp, "modcache"), "GOTOOLCHAIN=local", "GOENV=off", "GOINSECURE=")
	out, err := cmd.Output()
	var dl goDownload
	if jerr := json.Unmarshal(out, &dl); err != nil || jerr != nil || dl.Error != "" {
		t.Fatalf("go mod download %s@%s = %s, %v", path, version, out, err)
	}
	return fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, dl.Sum, path, version, dl.GoModSum)
}

// TestGoCommandFetch fetches the private module from git over HTTP with
// the credentials of the GoCommand's .netrc, and checks that the record is
// the go.sum lines the go command itself writes and those a module proxy
// serving the same files would give, and that the public proxy and
// checksum database of the environment heard nothing.
func TestGoCommandFetch(t *testing.T) {
	f := newGitFixture(t)
	got, err := f.gocmd.Fetch(t.Context(), privPath, privVersion)
	want := goModDownload(t, f.git.ClientEnv(t, "vcs.test", true), privPath, privVersion)
	if err != nil || string(got) != want {
		t.Fatalf("Fetch(%q, %q) = %q, %v; want %q (go mod download)", privPath, privVersion, got, err, want)
	}

	p := modproxy.New()
	if err := p.Add(modproxy.Module{Path: privPath, Version: privVersion, Files: privFiles}); err != nil {
		t.Fatal(err)
	}
	if proxySum, err := p.GoSum(privPath, privVersion); err != nil || string(proxySum) != string(got) {
		t.Errorf("Fetch(%q, %q) = %q; want %q, %v (a module proxy's hashes of the same files)", privPath, privVersion, got, proxySum, err)
	}
	if !slices.ContainsFunc(f.git.Requests(), func(r string) bool { return strings.HasPrefix(r, "POST /repo/git-upload-pack 200") }) {
		t.Errorf("git server requests %q: no fetch of the repository", f.git.Requests())
	}
	if logs := f.logs.String(); !strings.Contains(logs, `msg="go command fetch" module=`+privPath+` version=`+privVersion+` result=ok`) {
		t.Errorf("log %q: no line for the fetch", logs)
	}
}

// TestGoCommandFetchErrors checks the errors of fetches that cannot
// succeed: the kind the server answers with, a message naming the
// module, the reason and no secret.
func TestGoCommandFetchErrors(t *testing.T) {
	f := newGitFixture(t)
	noNetrc := slices.DeleteFunc(f.git.ClientEnv(t, "vcs.test", true), func(kv string) bool { return strings.HasPrefix(kv, "NETRC=") })
	for _, kv := range noNetrc {
		if home, ok := strings.CutPrefix(kv, "HOME="); ok {
			if err := os.Remove(filepath.Join(home, ".netrc")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name, path, version string
		env                 []string
		kind                error
		reason              string
	}{
		{"no such tag", privPath, "v1.2.0", nil, ErrNotFound, "not found: " + privPath + "@v1.2.0: unknown revision v1.2.0"},
		{"no such repository", "vcs.test/nope.git", "v1.0.0", nil, ErrNotFound, "not found: vcs.test/nope.git@v1.0.0: repository not found"},
		{"wrong password", privPath, privVersion, f.git.ClientEnv(t, "vcs.test", false), ErrForbidden, "forbidden: " + privPath + "@" + privVersion + ": the version control server refused the credentials"},
		{"no credentials", privPath, privVersion, noNetrc, ErrForbidden, "forbidden: " + privPath + "@" + privVersion + ": the version control server refused the credentials"},
		{"not canonical", privPath, "v1.0", nil, ErrInvalid, privPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := f.gocmd
			if tc.env != nil {
				g = f.newGoCommand(t, GoCommandConfig{Env: tc.env})
			}
			before := len(f.logs.String())
			got, err := g.Fetch(t.Context(), tc.path, tc.version)
			if !errors.Is(err, tc.kind) || !strings.Contains(fmt.Sprint(err), tc.reason) {
				t.Fatalf("Fetch(%q, %q) = %q, %v; want an error wrapping %v and showing %q", tc.path, tc.version, got, err, tc.kind, tc.reason)
			}
			guardtest.CheckNoSecret(t, "Fetch", err, f.logs.String()[before:])
			if strings.Contains(err.Error(), f.tmp) || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("Fetch(%q, %q) = %v; shows a local path or the server's real address", tc.path, tc.version, err)
			}
		})
	}
}

// TestGoCommandFetchVersionOnly checks that each version is logged under
// its own name: two tags of one commit give two records.
func TestGoCommandFetchVersionOnly(t *testing.T) {
	f := newGitFixture(t)
	// v1.1.0 tags the same commit as v1.0.0: both are valid, each under
	// its own name.
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		got, err := f.gocmd.Fetch(t.Context(), privPath, v)
		if err != nil || !strings.HasPrefix(string(got), privPath+" "+v+" h1:") {
			t.Errorf("Fetch(%q, %q) = %q, %v; want the record of %s", privPath, v, got, err, v)
		}
	}
}

// TestGoCommandTimeout checks that a git server that never answers ends
// the fetch at the timeout, as ErrUpstream wrapping
// context.DeadlineExceeded, and that git is killed with the go command:
// the server sees its connections close.
func TestGoCommandTimeout(t *testing.T) {
	f := newGitFixture(t)
	f.git.SetStall(true)
	const timeout = 2 * time.Second
	g := f.newGoCommand(t, GoCommandConfig{Timeout: timeout})
	start := time.Now()
	got, err := g.Fetch(t.Context(), privPath, privVersion)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.DeadlineExceeded) || Result(err) != ResultTimeout {
		t.Fatalf("Fetch(%q, %q) from a stalled server = %q, %v; want a timeout", privPath, privVersion, got, err)
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("Fetch(%q, %q) from a stalled server took %v; want about %v", privPath, privVersion, elapsed, timeout)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.git.Held() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.git.Held(); n > 0 {
		t.Errorf("after the timeout, the git server still holds %d requests: git was not killed", n)
	}
	if !slices.ContainsFunc(f.git.Requests(), func(r string) bool { return strings.HasSuffix(r, " 0") }) {
		t.Errorf("git server requests %q: none held", f.git.Requests())
	}
}

// TestGoCommandConcurrency checks that no more go commands run at once
// than MaxConcurrent: with one slot and a stalled server, a second fetch
// waits for the first, and its wait counts against its own timeout.
func TestGoCommandConcurrency(t *testing.T) {
	f := newGitFixture(t)
	f.git.SetStall(true)
	g := f.newGoCommand(t, GoCommandConfig{MaxConcurrent: 1, Timeout: 3 * time.Second})
	first := make(chan error, 1)
	go func() {
		_, err := g.Fetch(t.Context(), privPath, privVersion)
		first <- err
	}()
	deadline := time.Now().Add(3 * time.Second)
	for f.git.Held() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := g.Fetch(ctx, privPath, "v1.1.0")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free go command") {
		t.Errorf("Fetch with the only slot taken = %v; want a timeout waiting for it", err)
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("first Fetch from a stalled server = %v; want a timeout", err)
	}
}

// TestNewGoCommandInvalid checks that invalid configurations are refused.
func TestNewGoCommandInvalid(t *testing.T) {
	for _, cfg := range []GoCommandConfig{
		{GoBin: filepath.Join(t.TempDir(), "nogo")},
		{Timeout: -time.Second},
		{MaxZipSize: -1},
		{MaxZipSize: 1 << 40},
		{MaxConcurrent: -1},
		{TempDir: filepath.Join(t.TempDir(), "none")},
		{Private: "vcs.test\nGOPROXY=x"},
	} {
		if cfg.GoBin == "" {
			cfg.GoBin = testGoBin(t)
		}
		if g, err := NewGoCommand(cfg); err == nil {
			t.Errorf("NewGoCommand(%+v) = %v, nil; want an error", cfg, g)
		}
	}
}

// TestGoEnv checks the environment of the go command: the variables that
// choose the source and the checksum database are the GoCommand's, the
// credentials the environment's.
func TestGoEnv(t *testing.T) {
	base := []string{
		"HOME=/home/sumdb", "NETRC=/home/sumdb/.netrc", "GOAUTH=netrc", "GIT_CONFIG_GLOBAL=/etc/sumdb.gitconfig",
		"GOPROXY=https://proxy.example", "GOSUMDB=sum.example", "GOFLAGS=-insecure", "GONOSUMDB=", "GOPRIVATE=x",
		"GOINSECURE=*", "GOMODCACHE=/shared", "GIT_TERMINAL_PROMPT=1", "GOTOOLCHAIN=auto",
	}
	env := goEnv(base, "vcs.test,corp.example")
	want := map[string]string{
		"HOME": "/home/sumdb", "NETRC": "/home/sumdb/.netrc", "GOAUTH": "netrc", "GIT_CONFIG_GLOBAL": "/etc/sumdb.gitconfig",
		"GOPROXY": "direct", "GOSUMDB": "off", "GOFLAGS": "-modcacherw", "GONOSUMDB": "vcs.test,corp.example",
		"GOPRIVATE": "vcs.test,corp.example", "GONOPROXY": "vcs.test,corp.example", "GOINSECURE": "", "GIT_TERMINAL_PROMPT": "0",
		"GOTOOLCHAIN": "local", "GOWORK": "off", "GOENV": "off", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ControlMaster=no",
	}
	got := make(map[string][]string)
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		got[name] = append(got[name], value)
	}
	for name, value := range want {
		if !slices.Equal(got[name], []string{value}) {
			t.Errorf("goEnv(...)[%s] = %q, want [%q]", name, got[name], value)
		}
	}
	if _, ok := got["GOMODCACHE"]; ok {
		t.Errorf("goEnv(...) sets GOMODCACHE %q; want it per fetch", got["GOMODCACHE"])
	}
	env = goEnv(append(base, "GIT_SSH_COMMAND=ssh -i key"), "")
	if !slices.Contains(env, "GIT_SSH_COMMAND=ssh -i key") || slices.Contains(env, want["GIT_SSH_COMMAND"]) {
		t.Errorf("goEnv with GIT_SSH_COMMAND = %q; want it kept", env)
	}
}

// TestRedactURLs checks the redaction of the go command's and git's
// texts.
func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"fatal: unable to access 'https://" + guardtest.SecretUser + ":" + guardtest.SecretPass + "@git.example/r/': 403", "fatal: unable to access 'https://xxxxx@git.example/r/': 403"},
		{"fetch https://git.example/r?token=" + guardtest.SecretToken + " failed", "fetch https://git.example/r?token=xxxxx failed"},
		{"clone " + guardtest.SecretUser + ":" + guardtest.SecretPass + "@git.example:r", "clone xxxxx@git.example:r"},
		{"vcs.test/repo.git@v1.0.0: invalid version: unknown revision v1.0.0", "vcs.test/repo.git@v1.0.0: invalid version: unknown revision v1.0.0"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
	} {
		if got := redactURLs(tc.in); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// fakeGoScript is a go command that "downloads" the files of $FAKE_DIR
// into the module cache and prints $FAKE_DIR/json with @D@ replaced by
// their directory, or misbehaves as $FAKE_STDERR, $FAKE_EXIT and
// $FAKE_FLOOD say: the answers the real go command should never give.
const fakeGoScript = `#!/bin/sh
d="$GOMODCACHE/cache/download/vcs.test/repo.git/@v"
mkdir -p "$d"
cp "$FAKE_DIR/mod" "$d/v1.0.0.mod"
cp "$FAKE_DIR/zip" "$d/v1.0.0.zip"
if [ -n "$FAKE_STDERR" ]; then printf '%s\n' "$FAKE_STDERR" >&2; fi
if [ -n "$FAKE_EXIT" ]; then exit "$FAKE_EXIT"; fi
if [ -n "$FAKE_FLOOD" ]; then yes '{}' | head -c 3000000; exit 0; fi
sed -e "s|@D@|$d|g" "$FAKE_DIR/json"
`

// TestGoCommandChecks runs a fake go command to check what GoCommand
// verifies of the real one's answer: the version it resolved, the files'
// place, the zip and .mod, its hashes against those computed here, the
// bounds on its output, and the redaction of its errors.
func TestGoCommandChecks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake go command is a shell script")
	}
	bin := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(bin, []byte(fakeGoScript), 0o755); err != nil {
		t.Fatal(err)
	}
	mod := []byte(privFiles["go.mod"])
	inZip := func(prefix string, files map[string]string) []byte {
		named := make(map[string]string)
		for name, data := range files {
			named[prefix+"/"+name] = data
		}
		return makeZip(t, named)
	}
	goodZip := inZip(privPath+"@"+privVersion, privFiles)
	otherMod := inZip(privPath+"@"+privVersion, map[string]string{"go.mod": "module " + privPath + "\n\ngo 1.22\n"})
	badZip := inZip("vcs.test/other.git@"+privVersion, privFiles)
	record := wantRecord(t, privPath, privVersion, privFiles)
	zipHash, modHash, _ := strings.Cut(strings.TrimSuffix(record, "\n"), "\n")
	zipHash = zipHash[strings.LastIndex(zipHash, " ")+1:]
	modHash = modHash[strings.LastIndex(modHash, " ")+1:]
	jsonOf := func(version, zipName, sum, modSum string) string {
		return fmt.Sprintf(`{"Path": %q, "Version": %q, "Info": "@D@/v1.0.0.info", "GoMod": "@D@/v1.0.0.mod", "Zip": %q, "Sum": %q, "GoModSum": %q}`,
			privPath, version, zipName, sum, modSum)
	}
	secretURL := "https://" + guardtest.SecretUser + ":" + guardtest.SecretPass + "@git.example/repo"
	for _, tc := range []struct {
		name     string
		zip      []byte
		json     string
		env      []string
		want     string // the record, or the start of the error
		errLevel bool   // logged at ERROR
	}{
		{"agrees", goodZip, jsonOf(privVersion, "@D@/v1.0.0.zip", zipHash, modHash), nil, record, false},
		{"another version", goodZip, jsonOf("v1.1.0", "@D@/v1.0.0.zip", zipHash, modHash), nil,
			"not found: " + privPath + "@" + privVersion + ": the go command resolved it to v1.1.0", false},
		{"zip hash differs", goodZip, jsonOf(privVersion, "@D@/v1.0.0.zip", "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", modHash), nil,
			"upstream unavailable: " + privPath + "@" + privVersion + ": the hashes computed by the checksum database differ from the go command's", true},
		{"go.mod hash differs", goodZip, jsonOf(privVersion, "@D@/v1.0.0.zip", zipHash, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), nil,
			"upstream unavailable: " + privPath + "@" + privVersion + ": the hashes computed by the checksum database differ from the go command's", true},
		{"zip outside the module cache", goodZip, jsonOf(privVersion, "/etc/passwd", zipHash, modHash), nil,
			"upstream unavailable: " + privPath + "@" + privVersion + ": the go command reported files outside its module cache", false},
		{"invalid zip", badZip, jsonOf(privVersion, "@D@/v1.0.0.zip", zipHash, modHash), nil,
			"not found: " + privPath + "@" + privVersion + ": invalid module zip", false},
		{".mod is not the zip's go.mod", otherMod, jsonOf(privVersion, "@D@/v1.0.0.zip", zipHash, modHash), nil,
			"not found: " + privPath + "@" + privVersion + ": .mod differs from the zip's go.mod", true},
		{"unknown error", goodZip, `{"Path": "` + privPath + `", "Version": "v1.0.0", "Error": "` + privPath + `@v1.0.0: reading ` + secretURL + `: 500 Internal Server Error\nsecond line"}`, nil,
			"upstream unavailable: " + privPath + "@" + privVersion + ": go command failed: reading https://xxxxx@git.example/repo: 500 Internal Server Error", false},
		{"no JSON", goodZip, "", []string{"FAKE_EXIT=2", "FAKE_STDERR=go: cannot fetch " + secretURL + "\nsecond line"},
			"upstream unavailable: " + privPath + "@" + privVersion + ": go command failed: cannot fetch https://xxxxx@git.example/repo", false},
		{"endless output", goodZip, "", []string{"FAKE_FLOOD=1"},
			"upstream unavailable: " + privPath + "@" + privVersion + ": go command printed more than 1048576 bytes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range map[string][]byte{"mod": mod, "zip": tc.zip, "json": []byte(tc.json)} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			logs := &guardtest.Logs{}
			tmp := t.TempDir()
			g, err := NewGoCommand(GoCommandConfig{
				GoBin:   bin,
				Env:     append([]string{"PATH=" + os.Getenv("PATH"), "FAKE_DIR=" + dir}, tc.env...),
				TempDir: tmp,
				Logger:  slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.Fetch(t.Context(), privPath, privVersion)
			if err != nil {
				if !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("Fetch(%q, %q) = %v; want %q", privPath, privVersion, err, tc.want)
				}
				guardtest.CheckNoSecret(t, "Fetch", err, logs.String())
				if strings.Contains(err.Error(), "second line") {
					t.Errorf("Fetch(%q, %q) = %v; shows more than the first line", privPath, privVersion, err)
				}
			} else if string(got) != tc.want {
				t.Errorf("Fetch(%q, %q) = %q; want %q", privPath, privVersion, got, tc.want)
			}
			if gotLevel := strings.Contains(logs.String(), "level=ERROR"); gotLevel != tc.errLevel {
				t.Errorf("Fetch(%q, %q) logged %q; want at ERROR: %v", privPath, privVersion, logs.String(), tc.errLevel)
			}
			checkEmptyDir(t, tmp)
		})
	}
}

// TestGoCommandDiskLimit checks that a fetch whose repository takes more
// disk than MaxDisk is stopped and answered as a module that cannot be
// logged, and leaves nothing behind.
func TestGoCommandDiskLimit(t *testing.T) {
	f := newGitFixture(t)
	big := make([]byte, 4<<20)
	rand.Read(big) // incompressible: the clone takes all of it
	f.git.NewRepo(t, "big", map[string]string{
		"go.mod":  "module vcs.test/big.git\n\ngo 1.21\n",
		"big.go":  "package big\n",
		"big.bin": string(big),
	}, "v1.0.0")
	g := f.newGoCommand(t, GoCommandConfig{MaxDisk: 1 << 20})
	got, err := g.Fetch(t.Context(), "vcs.test/big.git", "v1.0.0")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "bytes of disk") {
		t.Fatalf("Fetch of a repository over the disk limit = %q, %v; want ErrNotFound naming the limit", got, err)
	}
	// Under the default limit, the same module is logged.
	if _, err := f.gocmd.Fetch(t.Context(), "vcs.test/big.git", "v1.0.0"); err != nil {
		t.Errorf("Fetch under the default disk limit: %v", err)
	}
}
