package gittest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A Local is a git repository with a work tree in a temporary directory,
// for the tests of code that reads a clone. Its commits are the same on
// every run (fixed author, committer and dates).
type Local struct {
	Dir string // the work tree
	git string
	env []string
}

// NewLocal makes an empty repository on branch main, with a configuration
// of its own (the user's is not read).
func NewLocal(t testing.TB) *Local {
	t.Helper()
	home := t.TempDir()
	env := append(cleanEnv(), commitEnv...)
	env = append(env, "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"))
	r := &Local{Dir: t.TempDir(), git: Git(t), env: env}
	r.Run(t, "init", "-q", "-b", "main")
	return r
}

// Commit writes files (by slash-separated path, with their contents) over
// the work tree, commits all of the work tree, and tags the commit with
// each of tags.
func (r *Local) Commit(t testing.TB, files map[string]string, tags ...string) {
	t.Helper()
	for name, data := range files {
		file := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.Run(t, "add", "-A")
	r.Run(t, "commit", "-q", "--allow-empty", "-m", "commit")
	for _, tag := range tags {
		r.Run(t, "tag", tag)
	}
}

// Run runs git with args in the work tree, failing the test if it fails.
func (r *Local) Run(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), r.git, args...)
	cmd.Dir, cmd.Env = r.Dir, r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
