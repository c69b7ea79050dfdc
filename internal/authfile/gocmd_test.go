package authfile_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sumdb/sumdb/internal/authfile"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// goCommand returns the go command of the toolchain running the tests.
func goCommand(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return p
}

// writeUsers writes the auth file with the user and password given.
func writeUsers(t *testing.T, file, user, password string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("# the log's readers\n"+user+":$2y$"+strings.TrimPrefix(string(h), "$2a$")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGoCommand runs the real go command against a checksum database that
// only the users of its auth file may read, over HTTPS: with the .netrc
// credentials it downloads, without them it fails with its own 401
// message, and a password changed in the file refuses the old .netrc
// without a restart.
func TestGoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd := goCommand(t)
	mods := []modproxy.Module{
		{Path: "example.com/first", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/first\n", "f.go": "package first\n"}},
		{Path: "example.com/second", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/second\n", "s.go": "package second\n"}},
		{Path: "example.com/third", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/third\n", "t.go": "package third\n"}},
		{Path: "example.com/fourth", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/fourth\n", "t.go": "package fourth\n"}},
	}
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: mods})
	authFile := filepath.Join(t.TempDir(), "users")
	writeUsers(t, authFile, "alice", "wonderland")
	a, err := authfile.New(authfile.Config{File: authFile})
	if err != nil {
		t.Fatal(err)
	}
	srv, certFile := sumdbtest.ServeTLS(t, a.Wrap(db.Server))
	host := strings.TrimPrefix(srv.URL, "https://")

	gocache, err := exec.Command(goCmd, "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	modDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(modDir, "go.mod"), []byte("module example.com/user\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// goDownload runs go mod download of m as a user whose home holds
	// netrc ("" for no .netrc), with a module cache of its own, so that
	// the database is asked every time.
	goDownload := func(m modproxy.Module, netrc string, extra ...string) (string, error) {
		t.Helper()
		home := t.TempDir()
		if netrc != "" {
			if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(netrc), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, "mod", "download", m.Path+"@"+m.Version)
		cmd.Dir = modDir
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"GOPATH=" + filepath.Join(home, "go"),
			"GOMODCACHE=" + t.TempDir(),
			"GOCACHE=" + strings.TrimSpace(string(gocache)),
			"GOPROXY=" + db.ProxyURL,
			"GOSUMDB=" + db.Key.VKey + " " + srv.URL,
			"GONOSUMDB=", "GOPRIVATE=", "GONOPROXY=", "GOINSECURE=",
			"GOFLAGS=-mod=mod -modcacherw",
			"GOTOOLCHAIN=local",
			"GOWORK=off",
			"GOENV=off",
			"GOAUTH=netrc",
			"SSL_CERT_FILE=" + certFile,
			"SSL_CERT_DIR=" + t.TempDir(),
		}
		cmd.Env = append(cmd.Env, extra...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	alice := "machine " + host + " login alice password wonderland\n"

	if out, err := goDownload(mods[0], alice); err != nil {
		t.Fatalf("go mod download with the .netrc credentials: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name, netrc string
	}{
		{"no .netrc", ""},
		{"wrong password", "machine " + host + " login alice password looking-glass\n"},
		{"another port", "machine 127.0.0.1 login alice password wonderland\n"},
	} {
		out, err := goDownload(mods[1], tt.netrc)
		if want := "reading " + srv.URL + "/lookup/" + mods[1].Path + "@" + mods[1].Version + ": 401 Unauthorized"; err == nil || !strings.Contains(out, want) {
			t.Errorf("go mod download, %s: %v, want the go command's 401 message:\n%s", tt.name, err, out)
		}
	}

	// GOAUTH's git mode: the go command asks git's credential helpers,
	// here git's own store of credentials, for the database's host.
	t.Run("GOAUTH git", func(t *testing.T) {
		if _, err := exec.LookPath("git"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("git is not installed")
			}
			t.Skip("git is not installed")
		}
		dir := t.TempDir()
		store := filepath.Join(dir, "credentials")
		if err := os.WriteFile(store, []byte("https://alice:wonderland@"+host+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		gitconfig := filepath.Join(dir, "gitconfig")
		if err := os.WriteFile(gitconfig, []byte("[credential]\n\thelper = store --file="+store+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		git := []string{"GOAUTH=git " + dir, "GIT_CONFIG_GLOBAL=" + gitconfig, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}
		if out, err := goDownload(mods[1], "", git...); err != nil {
			t.Errorf("go mod download with GOAUTH=git and git's stored credentials: %v\n%s", err, out)
		}
	})

	// The password changes in the file, the server runs on.
	writeUsers(t, authFile, "alice", "new-password")
	time.Sleep(1100 * time.Millisecond) // the file is looked at once a second
	out, err := goDownload(mods[2], alice)
	if err == nil || !strings.Contains(out, "401 Unauthorized") {
		t.Errorf("go mod download with the old password: %v, want 401:\n%s", err, out)
	}
	if out, err := goDownload(mods[3], "machine "+host+" login alice password new-password\n"); err != nil {
		t.Errorf("go mod download with the new password: %v\n%s", err, out)
	}
}
