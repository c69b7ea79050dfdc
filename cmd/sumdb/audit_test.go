package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// auditServer starts a checksum database in the test with n synthetic
// records, whose answers tamper (if set) alters. It returns the verifier
// key and the URL.
func auditServer(t *testing.T, n int, tamper func(path string, body []byte) []byte) (vkey, url string) {
	t.Helper()
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "audit.test"})
	db.AppendSynthetic("audit", n)
	db.SetTamper(tamper)
	return db.Key.VKey, db.URL
}

func TestAuditCommand(t *testing.T) {
	clearEnv(t)
	vkey, url := auditServer(t, 300, nil)
	flipped := func(path string, body []byte) []byte {
		if path == "/tile/8/0/000" {
			body[100] ^= 1
		}
		return body
	}
	badVkey, badURL := auditServer(t, 300, flipped)
	state := t.TempDir()
	// Not a directory that can be created, even by root.
	regular := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(regular, []byte("a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		status int
		stdout []string // in the report
		stderr string   // in the error output
	}{
		{
			name:   "clean",
			args:   []string{"--sumdb", vkey + " " + url, "--state", state},
			stdout: []string{"300 records verified (300 new)", "no violations"},
		},
		{
			name:   "resumed",
			args:   []string{"--sumdb", vkey + " " + url, "--state", state},
			stdout: []string{"300 records verified (0 new)", "no violations"},
		},
		{
			name:   "flipped hash",
			args:   []string{"--sumdb", badVkey + " " + badURL, "--state", t.TempDir()},
			status: 1,
			stdout: []string{"VIOLATION hash-tile", "tile/8/0/000", "records: 3"},
		},
		{
			name:   "another log in the state directory",
			args:   []string{"--sumdb", badVkey + " " + badURL, "--state", state},
			status: 3,
			stderr: "use another state directory",
		},
		{
			name:   "state directory under a regular file",
			args:   []string{"--sumdb", vkey + " " + url, "--state", filepath.Join(regular, "state")},
			status: 3,
			stderr: "create state directory " + filepath.Join(regular, "state"),
		},
		{
			name:   "unreachable",
			args:   []string{"--sumdb", vkey + " http://127.0.0.1:1", "--state", t.TempDir()},
			status: 3,
			stderr: "sumdb: audit incomplete: fetch the signed head",
		},
		{
			name:   "no state directory",
			args:   []string{"--sumdb", vkey + " " + url},
			status: 2,
			stderr: "--state is required",
		},
		{
			name:   "bad flag",
			args:   []string{"--sumdb", vkey + " " + url, "--state", state, "--concurrency", "0"},
			status: 2,
			stderr: "invalid --concurrency",
		},
		{
			name:   "argument",
			args:   []string{"--state", state, "extra"},
			status: 2,
			stderr: `unexpected argument "extra"`,
		},
		{
			name:   "bad key",
			args:   []string{"--sumdb", "nokey+1234 " + url, "--state", t.TempDir()},
			status: 3,
			stderr: "invalid checksum database key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"audit"}, tt.args...), &stdout, &stderr)
			status := report(err, &stderr)
			if status != tt.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tt.status, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}

func TestAuditHelp(t *testing.T) {
	clearEnv(t)
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"audit", "--help"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: sumdb audit", "--follow", "--rehash", "Exit status", "SUMDB_AUDIT_STATE", "SUMDB_AUDIT_INTERVAL", "SUMDB_AUDIT_CONCURRENCY", "SUMDB_AUDIT_UPSTREAM"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestAuditConfig checks where the settings come from, and that the go
// command is asked only for what the flags leave open.
func TestAuditConfig(t *testing.T) {
	const vkey = "sum.example.com+01234567+AbCd"
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		goEnv  map[string]string
		check  func(*AuditConfig) string
		errMsg string
	}{
		{
			name: "all given",
			args: []string{"--sumdb", vkey + " https://sum.example.com", "--state", "d"},
			check: func(c *AuditConfig) string {
				if c.GOSUMDB != vkey+" https://sum.example.com" || c.State != "d" || c.GOPROXY != "" || c.Interval != defaultAuditInterval || c.Concurrency != defaultAuditConcurrency {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			},
		},
		{
			name:  "from go env",
			args:  []string{"--state", "d", "--rehash", "5"},
			goEnv: map[string]string{"GOSUMDB": vkey, "GOPROXY": "https://proxy.example.com,direct"},
			check: func(c *AuditConfig) string {
				if c.GOSUMDB != vkey || c.GOPROXY != "https://proxy.example.com,direct" || c.Upstream != c.GOPROXY || c.Rehash != 5 {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			},
		},
		{
			name:  "bare name: GOPROXY is asked, GOROOT is not",
			args:  []string{"--sumdb", "sum.example.com", "--state", "d"},
			goEnv: map[string]string{"GOPROXY": "https://proxy.example.com"},
			check: func(c *AuditConfig) string {
				if c.GOSUMDB != "sum.example.com" || c.GOPROXY != "https://proxy.example.com" {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			},
		},
		{
			name: "environment",
			args: []string{"--sumdb", vkey + " https://sum.example.com"},
			env:  map[string]string{"SUMDB_AUDIT_STATE": "envdir", "SUMDB_AUDIT_CONCURRENCY": "3", "SUMDB_AUDIT_INTERVAL": "5s", "SUMDB_AUDIT_UPSTREAM": "https://up.example.com"},
			check: func(c *AuditConfig) string {
				if c.State != "envdir" || c.Concurrency != 3 || c.Interval.Seconds() != 5 || c.Upstream != "https://up.example.com" || len(c.Warnings) != 0 {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			},
		},
		{
			name:   "bad environment",
			args:   []string{"--sumdb", vkey + " https://sum.example.com", "--state", "d"},
			env:    map[string]string{"SUMDB_AUDIT_CONCURRENCY": "many"},
			errMsg: "invalid SUMDB_AUDIT_CONCURRENCY",
		},
		{
			// The variables of serve and check, and the names without the
			// command, are no audit settings.
			name: "other commands' environment",
			args: []string{"--sumdb", vkey + " https://sum.example.com", "--state", "d", "--rehash", "1"},
			env: map[string]string{"SUMDB_UPSTREAM": "https://serve.example.com", "SUMDB_CHECK_CONCURRENCY": "3", "SUMDB_CHECK_STATE": "file",
				"SUMDB_STATE": "envdir", "SUMDB_CONCURRENCY": "5"},
			goEnv: map[string]string{"GOPROXY": "https://proxy.example.com"},
			check: func(c *AuditConfig) string {
				if c.State != "d" || c.Concurrency != defaultAuditConcurrency || c.Upstream != "https://proxy.example.com" || len(c.Warnings) != 2 ||
					!strings.Contains(strings.Join(c.Warnings, "\n"), "SUMDB_STATE: no such setting (did you mean SUMDB_AUDIT_STATE or SUMDB_CHECK_STATE?)") {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			},
		},
		{
			name:   "no go command",
			args:   []string{"--state", "d"},
			errMsg: "cannot read the go command's GOSUMDB",
		},
		{
			name:   "invalid GOAUTH",
			args:   []string{"--sumdb", vkey + " https://sum.example.com", "--state", "d"},
			goEnv:  map[string]string{"GOAUTH": "git relative/dir"},
			errMsg: "audit: GOAUTH: the git method wants an absolute path",
		},
		{
			name:   "negative limit",
			args:   []string{"--sumdb", vkey + " https://sum.example.com", "--state", "d", "--limit", "-1"},
			errMsg: "invalid --limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := newAuditFlags()
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			goEnv := func(_ context.Context, name string) (string, error) {
				if v, ok := tt.goEnv[name]; ok {
					return v, nil
				}
				if name == "GOAUTH" {
					return "off", nil // asked by every audit
				}
				return "", errors.New("unexpected go env " + name)
			}
			cfg, err := loadAuditConfig(t.Context(), fs, goEnv)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Errorf("loadAuditConfig(%q) = %v, want an error with %q", tt.args, err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadAuditConfig(%q) = %v", tt.args, err)
			}
			if msg := tt.check(cfg); msg != "" {
				t.Errorf("loadAuditConfig(%q) = %s", tt.args, msg)
			}
		})
	}
}

// TestAuditAbsurdTreeSize runs audit against a log whose signed head has
// 2^63-1 records, on which x/mod's tree arithmetic never ends, after an
// audit of its honest head: audit must report a size violation and exit 1,
// well within its deadline.
func TestAuditAbsurdTreeSize(t *testing.T) {
	clearEnv(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "audit.test"})
	db.AppendSynthetic("audit", 300)
	state := t.TempDir()
	args := []string{"audit", "--sumdb", db.GOSUMDB(), "--state", state}
	if err := run(t.Context(), args, io.Discard, io.Discard); err != nil {
		t.Fatalf("audit of the honest log: %v", err)
	}
	const n = 1<<63 - 1
	db.SetHandler(sumdbtest.ClaimedHead(db.Key.SignTree(t, n, xtlog.RecordHash([]byte("absurd\n")))))
	type outcome struct {
		status         int
		stdout, stderr string
	}
	out := sumdbtest.Returns(t, func(ctx context.Context) outcome {
		var stdout, stderr bytes.Buffer
		err := run(ctx, args, &stdout, &stderr)
		return outcome{report(err, &stderr), stdout.String(), stderr.String()}
	})
	if out.status != 1 || !strings.Contains(out.stdout, "VIOLATION size: ") || !strings.Contains(out.stdout, fmt.Sprintf("tree head of %d records", int64(n))) {
		t.Errorf("exit status %d, want 1 and a size violation naming %d records\nstdout:\n%s\nstderr:\n%s", out.status, int64(n), out.stdout, out.stderr)
	}
}
