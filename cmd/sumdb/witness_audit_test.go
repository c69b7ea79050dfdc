package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

func TestAuditWitnesses(t *testing.T) {
	clearEnv(t)
	a, b := newCosigner(t, "a.witness.test"), newCosigner(t, "b.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "audit.test"})
	db.AppendSynthetic("audit", 300)
	tests := []struct {
		name    string
		signers []cosigner
		args    []string
		status  int
		stdout  []string
		file    string // the line of the cosigned file
	}{
		{
			name: "both of two", signers: []cosigner{a, b},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "2"},
			stdout: []string{"signed head of size 300 cosigned by a.witness.test, b.witness.test\n", "no violations"},
			file:   "a.witness.test,b.witness.test",
		},
		{
			name: "one of two, quorum 2", signers: []cosigner{a},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "2"},
			status: statusViolation,
			stdout: []string{"signed head of size 300 cosigned by a.witness.test; missing b.witness.test\n", "NOT WITNESSED: the signed head of size 300: tree head not cosigned by a quorum of the witnesses: cosigned by a.witness.test; missing b.witness.test"},
			file:   "a.witness.test",
		},
		{
			name: "one of two, quorum 1", signers: []cosigner{a},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "1"},
			stdout: []string{"signed head of size 300 cosigned by a.witness.test; missing b.witness.test\n", "no violations"},
			file:   "a.witness.test",
		},
		{
			name: "none", signers: nil,
			args:   []string{"--witness", a.VKey},
			status: statusViolation,
			stdout: []string{"signed head of size 300 cosigned by no witness; missing a.witness.test\n", "NOT WITNESSED"},
			file:   "-",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serveCosigned(t, db, tt.signers...)
			state := t.TempDir()
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"audit", "--sumdb", db.GOSUMDB(), "--state", state}, tt.args...), &stdout, &stderr)
			if status := report(err, &stderr); status != tt.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tt.status, stdout.String(), stderr.String())
			}
			wantOutput(t, stdout.String(), tt.stdout...)
			data, err := os.ReadFile(filepath.Join(state, "cosigned"))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("300 %s %s\n", headHash(t, db), tt.file); string(data) != want {
				t.Errorf("cosigned file = %q, want %q", data, want)
			}
		})
	}
}

// headHash returns the root of db's signed head.
func headHash(t *testing.T, db *sumdbtest.DB) string {
	t.Helper()
	lines := strings.Split(string(db.Latest()), "\n")
	if len(lines) < 3 {
		t.Fatalf("head %q", db.Latest())
	}
	return lines[2]
}

// TestAuditFollowWitnesses follows a log whose head first lacks a
// cosignature: the poll is retried, and the audit ends well once a newer
// head meets the policy, every head's witnesses recorded.
func TestAuditFollowWitnesses(t *testing.T) {
	clearEnv(t)
	a, b := newCosigner(t, "a.witness.test"), newCosigner(t, "b.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "audit.test"})
	db.AppendSynthetic("audit", 300)
	serveCosigned(t, db, a)
	state := t.TempDir()
	file := filepath.Join(state, "cosigned")
	first := fmt.Sprintf("300 %s a.witness.test\n", headHash(t, db))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() {
		err := run(ctx, []string{"audit", "--sumdb", db.GOSUMDB(), "--state", state, "--follow", "--interval", "1s", "--witness", a.VKey, "--witness", b.VKey}, &stdout, &stderr)
		done <- report(err, &stderr)
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if data, _ := os.ReadFile(file); strings.Contains(string(data), want) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		data, _ := os.ReadFile(file)
		t.Fatalf("cosigned file = %q, want it to hold %q", data, want)
	}
	waitFor(first)
	db.AppendSynthetic("more", 10)
	serveCosigned(t, db, a, b)
	second := fmt.Sprintf("310 %s a.witness.test,b.witness.test\n", headHash(t, db))
	waitFor(second)
	cancel()
	if status := <-done; status != 0 {
		t.Errorf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	if data, _ := os.ReadFile(file); string(data) != first+second {
		t.Errorf("cosigned file = %q, want %q", data, first+second)
	}
	wantOutput(t, stdout.String(), "signed head of size 300 cosigned by a.witness.test; missing b.witness.test\nsigned head of size 310 cosigned by a.witness.test, b.witness.test\n", "no violations")
	if strings.Contains(stdout.String(), "NOT WITNESSED") {
		t.Errorf("report after a witnessed head says NOT WITNESSED:\n%s", stdout.String())
	}
	wantOutput(t, stderr.String(), "signed head without the witnesses' quorum")
}
