package fetch

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGoCommandFetchVersionKinds checks that the go.mod the fetch writes
// into its work directory changes nothing the go command reports for the
// kinds of versions a repository serves: an +incompatible version, a
// pseudo-version of an untagged commit, and a module whose go line is newer
// than the toolchain (which GOTOOLCHAIN=local refuses outside a module
// too). Each Fetch must equal "go mod download" run outside any module.
func TestGoCommandFetchVersionKinds(t *testing.T) {
	f := newGitFixture(t)
	f.git.NewRepo(t, "incompat", map[string]string{"a.go": "package a\n"}, "v2.0.0")
	f.git.NewRepo(t, "untagged", map[string]string{"go.mod": "module vcs.test/untagged.git\n", "a.go": "package a\n"})
	f.git.NewRepo(t, "newgo", map[string]string{"go.mod": "module vcs.test/newgo.git\n\ngo 1.99\n\ntoolchain go1.99.1\n", "a.go": "package a\n"}, "v1.0.0")
	env := f.git.ClientEnv(t, "vcs.test", true)
	for _, tc := range []struct{ path, query string }{
		{"vcs.test/incompat.git", "v2.0.0+incompatible"},
		{"vcs.test/untagged.git", "main"}, // resolved to its pseudo-version
		{"vcs.test/newgo.git", "v1.0.0"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			dl := goModDownloadOutside(t, env, tc.path, tc.query)
			got, err := f.gocmd.Fetch(t.Context(), tc.path, dl.Version)
			if dl.Error != "" {
				if err == nil {
					t.Errorf("Fetch(%q, %q) = %q, nil; want an error, as go mod download outside a module gives: %s", tc.path, dl.Version, got, dl.Error)
				}
				return
			}
			want := fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", tc.path, dl.Version, dl.Sum, tc.path, dl.Version, dl.GoModSum)
			if err != nil || string(got) != want {
				t.Errorf("Fetch(%q, %q) = %q, %v; want %q (go mod download outside a module)", tc.path, dl.Version, got, err, want)
			}
		})
	}
}

// goModDownloadOutside runs "go mod download -json path@query" in an empty
// directory, outside any module, and returns what it reports.
func goModDownloadOutside(t *testing.T, env []string, path, query string) goDownload {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(testGoBin(t), "mod", "download", "-json", path+"@"+query)
	cmd.Dir = tmp
	cmd.Env = append(env, "GOPROXY=direct", "GOPRIVATE=vcs.test", "GONOSUMDB=vcs.test", "GOFLAGS=-modcacherw",
		"GOMODCACHE="+filepath.Join(tmp, "modcache"), "GOTOOLCHAIN=local", "GOENV=off", "GOINSECURE=", "GOWORK=off")
	out, _ := cmd.Output() // an error is reported in the JSON too
	var dl goDownload
	if err := json.Unmarshal(out, &dl); err != nil || dl.Version == "" {
		t.Fatalf("go mod download %s@%s = %s, %v", path, query, out, err)
	}
	return dl
}
