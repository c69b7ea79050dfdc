package fetch

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestUpstreamGoModFromGoCommand fetches through the upstream a module
// version that the go command itself made, from a git repository whose
// .gitattributes asks for CRLF line endings in go.mod ("text eol=crlf",
// common in Windows-first projects). The go command reads .mod with "git
// cat-file", which gives the blob as committed (LF), and builds the zip
// from "git archive", which applies the attributes (CRLF): the two go.mod
// files differ, and the go command, the public module proxy and the public
// checksum database accept the pair all the same. The upstream must log it
// too, with the hashes the go command computed.
func TestUpstreamGoModFromGoCommand(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no git to make the repository with: %v (.ci/run installs it)", err)
		}
		t.Skipf("no git to make the repository with: %v", err)
	}
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Fatalf("cannot find the go command: %v", err)
		}
	}
	const path, version = "example.com/crlf.git", "v1.0.0"
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "repo")
	gitconfig := filepath.Join(tmp, ".gitconfig") // $HOME/.gitconfig for a git older than GIT_CONFIG_GLOBAL
	// The go command asks git for https://example.com/crlf; git answers
	// from the local repository instead.
	cfg := fmt.Sprintf("[url \"file://%s\"]\n\tinsteadOf = https://example.com/crlf\n[protocol \"file\"]\n\tallow = always\n", repo)
	if err := os.WriteFile(gitconfig, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GIT_") || strings.HasPrefix(name, "GO") && name != "GOCACHE" && name != "GOROOT" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME="+tmp, "GIT_CONFIG_GLOBAL="+gitconfig, "GIT_CONFIG_NOSYSTEM=1", "GIT_ALLOW_PROTOCOL=file:https",
		"GOPATH="+filepath.Join(tmp, "gopath"), "GOPROXY=direct", "GOPRIVATE=example.com", "GOSUMDB=off",
		"GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOENV=off", "GOTELEMETRY=off",
	)
	runIn := func(dir string, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":         "module " + path + "\n\ngo 1.21\n",
		"crlf.go":        "package crlf\n",
		".gitattributes": "go.mod text eol=crlf\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runIn(repo, git, "init", "-q")
	runIn(repo, git, "add", "-A")
	runIn(repo, git, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "v1")
	runIn(repo, git, "tag", version)

	var dl struct{ Info, GoMod, Zip, Sum, GoModSum, Error string }
	if err := json.Unmarshal(runIn(tmp, goCmd, "mod", "download", "-json", path+"@"+version), &dl); err != nil || dl.Error != "" {
		t.Fatalf("go mod download: %v %s", err, dl.Error)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	info, mod, zipData := read(dl.Info), read(dl.GoMod), read(dl.Zip)

	// The premise: the go command's .mod is not its zip's go.mod.
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		t.Fatal(err)
	}
	zf, err := zr.Open(path + "@" + version + "/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	zipMod, err := io.ReadAll(zf)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(mod, zipMod) {
		t.Fatalf("the go command made .mod %q and the zip's go.mod alike: this git applies no eol attribute", mod)
	}

	p := startProxy(t, false)
	p.AddRaw(path, version, info, mod, zipData)
	u := newTestUpstream(t, Config{Proxy: p.URL})
	got, err := u.Fetch(t.Context(), path, version)
	want := fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, dl.Sum, path, version, dl.GoModSum)
	if err != nil || string(got) != want {
		t.Fatalf("Fetch(%q, %q) of the go command's own files (.mod %q, zip go.mod %q) = %q, %v; want %q", path, version, mod, zipMod, got, err, want)
	}
}
