package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sumdb/sumdb/internal/authfile"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// childArgsEnv names the variable that holds the arguments of the sumdb
// command run by TestSumdbChild, in JSON.
const childArgsEnv = "SUMDBTEST_CHILD_ARGS"

// TestSumdbChild runs the sumdb command's function with the arguments of
// childArgsEnv, as the process's whole work, and exits with its status.
// Tests run it in a child process of their own environment: one that must
// trust a test server's certificate through SSL_CERT_FILE, which a process
// reads only once.
func TestSumdbChild(t *testing.T) {
	raw := os.Getenv(childArgsEnv)
	if raw == "" {
		t.Skip("run by the tests that need a process of their own (TestCheckAuth)")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(report(run(context.Background(), args, os.Stdout, os.Stderr), os.Stderr))
}

// runChild runs "sumdb args..." in a child process with the environment of
// the test and env, and returns its exit status and output.
func runChild(t *testing.T, env []string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSumdbChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childArgsEnv+"="+string(raw)), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var xerr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &xerr):
		status = xerr.ExitCode()
	default:
		t.Fatalf("sumdb %q: %v", args, err)
	}
	return status, out.String(), errOut.String()
}

// TestCheckAuth runs check and audit against a checksum database that
// only the users of its auth file may read, over HTTPS: with the
// credentials of the .netrc that GOAUTH names, they pass; without them,
// they fail, saying how to give them.
func TestCheckAuth(t *testing.T) {
	checkEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	gosum := db.GoSum(checkModules...)
	authFile := filepath.Join(t.TempDir(), "users")
	h, err := bcrypt.GenerateFromPassword([]byte("wonderland"), 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authFile, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := authfile.New(authfile.Config{File: authFile})
	if err != nil {
		t.Fatal(err)
	}
	srv, certFile := sumdbtest.ServeTLS(t, a.Wrap(db.Server))
	host := strings.TrimPrefix(srv.URL, "https://")
	gosumdb := db.Key.VKey + " " + srv.URL
	file := writeIn(t, t.TempDir(), "go.sum", gosum)
	n := 2 * len(checkModules)
	clean := fmt.Sprintf("%d lines in 1 file against sumdb.test (tree size %d): %d verified; exit status 0", n, len(checkModules), n)

	tests := []struct {
		name   string
		goauth string
		netrc  string // "" for no .netrc
		status int
		stdout string
		output []string // in stdout or stderr
	}{
		{
			name:   "netrc",
			goauth: "netrc",
			netrc:  "machine " + host + " login alice password wonderland\n",
			stdout: clean,
		},
		{
			name:   "the default GOAUTH",
			netrc:  "machine " + host + " login alice password wonderland\n",
			stdout: clean,
		},
		{
			name:   "no .netrc",
			goauth: "netrc",
			status: statusCouldNotCheck,
			output: []string{"401 Unauthorized: this checksum database is readable only by its users", "give your credentials in .netrc (machine " + host + " login USER password PASSWORD)"},
		},
		{
			name:   "wrong password",
			goauth: "netrc",
			netrc:  "machine " + host + " login alice password looking-glass\n",
			status: statusCouldNotCheck,
			output: []string{"401 Unauthorized: wrong user name or password", "give your credentials in .netrc"},
		},
		{
			name:   "GOAUTH off",
			goauth: "off",
			netrc:  "machine " + host + " login alice password wonderland\n",
			status: statusCouldNotCheck,
			output: []string{"401 Unauthorized"},
		},
		{
			name:   "GOAUTH command",
			goauth: "/usr/local/bin/auth-helper",
			status: statusCouldNotCheck,
			output: []string{"sumdb: check: GOAUTH command \"/usr/local/bin/auth-helper\": authentication programs are not run by sumdb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			if tt.netrc != "" {
				writeIn(t, home, ".netrc", tt.netrc)
			}
			env := []string{"HOME=" + home, "GOAUTH=" + tt.goauth, "SSL_CERT_FILE=" + certFile, "SSL_CERT_DIR=" + t.TempDir()}
			args := []string{"check", "--sumdb", gosumdb, "--state=", file}
			status, stdout, stderr := runChild(t, env, args...)
			if status != tt.status || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("sumdb %q: exit status %d, stdout %q; want %d, %q\nstderr:\n%s", args, status, stdout, tt.status, tt.stdout, stderr)
			}
			wantOutput(t, stdout+stderr, tt.output...)
			if tt.status != 0 && strings.Contains(stdout+stderr, "try again later") {
				t.Errorf("the output tells to try again later, which changes nothing without other credentials:\n%s\n%s", stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "wonderland") || strings.Contains(stdout+stderr, "looking-glass") {
				t.Errorf("the output shows a password:\n%s\n%s", stdout, stderr)
			}
		})
	}

	t.Run("audit", func(t *testing.T) {
		for _, tt := range []struct {
			netrc  string
			status int
			stderr string
		}{
			{"machine " + host + " login alice password wonderland\n", 0, ""},
			{"", statusIncomplete, "give your credentials in .netrc"},
		} {
			home := t.TempDir()
			if tt.netrc != "" {
				writeIn(t, home, ".netrc", tt.netrc)
			}
			env := []string{"HOME=" + home, "GOAUTH=netrc", "SSL_CERT_FILE=" + certFile, "SSL_CERT_DIR=" + t.TempDir()}
			args := []string{"audit", "--sumdb", gosumdb, "--state", t.TempDir()}
			status, stdout, stderr := runChild(t, env, args...)
			if status != tt.status || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("sumdb %q with .netrc %v: exit status %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", args, tt.netrc != "", status, tt.status, tt.stderr, stdout, stderr)
			}
		}
	})
}
