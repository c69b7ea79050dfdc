package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// TestServeStartErrors checks that serve ends at once, with one line saying
// what to fix, when it cannot start.
func TestServeStartErrors(t *testing.T) {
	t.Parallel()
	bin := sumdbBinary(t)

	goodKey := func(t *testing.T, dir string) string {
		_, skey, err := generateKey("sum.example.com")
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "signer.key")
		if err := writeKeyFile(file, skey); err != nil {
			t.Fatal(err)
		}
		return file
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	// A database that accepts connections and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) []string // returns extra flags
		status int
		want   []string // in the error line
		secret string   // must not appear anywhere
	}{
		{
			name:   "bad flag",
			setup:  func(*testing.T, string) []string { return []string{"--lissten", ":1"} },
			status: 2,
			want:   []string{"unknown flag: --lissten"},
		},
		{
			name: "unreachable database",
			setup: func(*testing.T, string) []string {
				return []string{"--database-url", "postgres://postgres:hunter2@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=5"}
			},
			status: 1,
			want:   []string{"127.0.0.1", "nowhere"},
			secret: "hunter2",
		},
		{
			name: "silent database",
			setup: func(*testing.T, string) []string {
				return []string{"--database-url", "postgres://postgres@" + mute.Addr().String() + "/silent?sslmode=disable"}
			},
			status: 1,
			want:   []string{"no answer within 10s"},
		},
		{
			name: "key readable by others",
			setup: func(t *testing.T, dir string) []string {
				file := goodKey(t, dir)
				if err := os.Chmod(file, 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"run chmod 600 "},
		},
		{
			name: "malformed key",
			setup: func(t *testing.T, dir string) []string {
				file := filepath.Join(dir, "bad.key")
				if err := os.WriteFile(file, []byte("PRIVATE+KEY+sum.example.com+01234567+hunter2\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"is not a signer key"},
			secret: "hunter2",
		},
		{
			name: "unreadable key",
			setup: func(t *testing.T, dir string) []string {
				file := filepath.Join(dir, "dir.key")
				if err := os.Mkdir(file, 0o700); err != nil {
					t.Fatal(err)
				}
				return []string{"--key-file", file}
			},
			status: 1,
			want:   []string{"is not a regular file"},
		},
		{
			name: "schema too new",
			setup: func(t *testing.T, dir string) []string {
				db, err := sql.Open("sqlite", filepath.Join(dir, "sumdb.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				for _, q := range []string{
					`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '') STRICT`,
					`INSERT INTO schema_version (version, name) VALUES (999, '0999_future.sql')`,
				} {
					if _, err := db.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			},
			status: 1,
			want:   []string{"schema version 999 is newer than this sumdb"},
		},
		{
			name: "key lost",
			setup: func(t *testing.T, dir string) []string {
				logOneRecord(t, filepath.Join(dir, "sumdb.db"))
				return []string{"--key-file", filepath.Join(dir, "lost.key")}
			},
			status: 1,
			want:   []string{"lost.key does not exist, but the store holds a log of 1 records"},
		},
		{
			name: "other key",
			setup: func(t *testing.T, dir string) []string {
				logOneRecord(t, filepath.Join(dir, "sumdb.db"))
				return []string{"--key-file", goodKey(t, t.TempDir())}
			},
			status: 1,
			want:   []string{"open log:", "must hold a log signed by the key in"},
		},
		{
			name:   "address in use",
			setup:  func(*testing.T, string) []string { return []string{"--listen", busy.Addr().String()} },
			status: 1,
			want:   []string{"choose another --listen address"},
		},
		{
			name:   "bad upstream",
			setup:  func(*testing.T, string) []string { return []string{"--upstream", "ftp://proxy.example.com"} },
			status: 1,
			want:   []string{"check --upstream"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}
			args = append(args, tt.setup(t, dir)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = environ()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("sumdb %s did not end within 30s", strings.Join(args, " "))
			}
			var xerr *exec.ExitError
			if !errors.As(err, &xerr) || xerr.ExitCode() != tt.status {
				t.Fatalf("sumdb %s: %v, want exit status %d; stderr:\n%s", strings.Join(args, " "), err, tt.status, &stderr)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("sumdb took %v to fail", d)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "sumdb: ") {
				t.Errorf("last stderr line %q, want \"sumdb: <what to fix>\"", last)
			}
			for _, w := range tt.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line %q does not contain %q", last, w)
				}
			}
			all := stdout.String() + stderr.String()
			if strings.Contains(all, "goroutine ") || strings.Contains(all, "panic") {
				t.Errorf("sumdb printed a stack trace:\n%s", all)
			}
			if stdout.Len() > 0 {
				t.Errorf("sumdb printed %q on stdout, want nothing when it cannot start", stdout.String())
			}
			if tt.secret != "" && strings.Contains(all, tt.secret) {
				t.Errorf("sumdb printed the secret %q:\n%s", tt.secret, all)
			}
		})
	}
}

// logOneRecord creates an embedded store at file holding a log of one
// record, signed by a key that is then forgotten.
func logOneRecord(t *testing.T, file string) {
	t.Helper()
	ctx := context.Background()
	k, _, err := generateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lg, err := tlog.Open(ctx, st, tlog.Config{Signer: k.Signer, Verifier: k.Verifier})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	h1 := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	text := fmt.Sprintf("example.com/m v1.0.0 %s\nexample.com/m v1.0.0/go.mod %s\n", h1("zip"), h1("mod"))
	if _, _, err := lg.Append(ctx, "example.com/m", "v1.0.0", []byte(text)); err != nil {
		t.Fatal(err)
	}
}
