package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/cosigntest"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

type cosigner = cosigntest.Witness

var newCosigner = cosigntest.New

// cosignHead appends the cosignatures of cs to msg, a head of db.
func cosignHead(t *testing.T, db *sumdbtest.DB, msg []byte, cs ...cosigner) []byte {
	return cosigntest.Cosign(t, msg, db.Key.Verifier, cs...)
}

// serveCosigned makes db's /latest come with the cosignatures of cs.
func serveCosigned(t *testing.T, db *sumdbtest.DB, cs ...cosigner) {
	db.SetTamper(func(path string, body []byte) []byte {
		if path != "/latest" {
			return body
		}
		return cosignHead(t, db, body, cs...)
	})
}

func TestCheckWitnesses(t *testing.T) {
	checkEnv(t)
	a, b := newCosigner(t, "a.witness.test"), newCosigner(t, "b.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	file := writeIn(t, t.TempDir(), "go.sum", db.GoSum(checkModules...))
	n := 2 * len(checkModules)
	policy := writeIn(t, t.TempDir(), "policy", fmt.Sprintf("witness a %s https://a.witness.test/\nwitness b %s https://b.witness.test/\ngroup both all a b\nquorum both\n", a.VKey, b.VKey))

	tests := []struct {
		name    string
		signers []cosigner
		args    []string
		env     map[string]string
		status  int
		stdout  []string
	}{
		{
			name: "both of two", signers: []cosigner{a, b},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "2"},
			stdout: []string{fmt.Sprintf("(tree size %d), witnessed at size %d by a.witness.test, b.witness.test: %d verified; exit status 0", len(checkModules), len(checkModules), n)},
		},
		{
			name: "one of two, quorum 2", signers: []cosigner{a},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "2"},
			status: 1,
			stdout: []string{"sumdb check: witnesses: the log's tree head of size 4: tree head not cosigned by a quorum of the witnesses: cosigned by a.witness.test; missing b.witness.test; the policy wants all of (a.witness.test, b.witness.test)", fmt.Sprintf("%d could not check; exit status 1", n), "not checked: no tree head of the log cosigned by a quorum of the witnesses"},
		},
		{
			name: "one of two, quorum 1", signers: []cosigner{a},
			args:   []string{"--witness", a.VKey, "--witness", b.VKey, "--quorum", "1"},
			stdout: []string{"witnessed at size 4 by a.witness.test:", "exit status 0"},
		},
		{
			name: "quorum defaults to all", signers: []cosigner{b},
			args:   []string{"--witness", a.VKey + "," + b.VKey},
			status: 1,
			stdout: []string{"cosigned by b.witness.test; missing a.witness.test", "exit status 1"},
		},
		{
			name: "no cosignature", signers: nil,
			args:   []string{"--witness", a.VKey},
			status: 1,
			stdout: []string{"no witness cosigned it; missing a.witness.test", "exit status 1"},
		},
		{
			name: "environment", signers: []cosigner{a},
			env:    map[string]string{"SUMDB_CHECK_WITNESS": a.VKey + "," + b.VKey, "SUMDB_CHECK_QUORUM": "2"},
			status: 1,
			stdout: []string{"missing b.witness.test", "exit status 1"},
		},
		{
			name: "policy file met", signers: []cosigner{a, b},
			args:   []string{"--witness-policy", policy},
			stdout: []string{"witnessed at size 4 by a.witness.test, b.witness.test:", "exit status 0"},
		},
		{
			name: "policy file not met", signers: []cosigner{b},
			env:    map[string]string{"SUMDB_CHECK_WITNESS_POLICY": policy},
			status: 1,
			stdout: []string{"missing a.witness.test", "exit status 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			serveCosigned(t, db, tt.signers...)
			args := append([]string{"--sumdb", db.GOSUMDB(), "--state", filepath.Join(t.TempDir(), "state")}, tt.args...)
			status, stdout, stderr := sumdbCheck(t, append(args, file)...)
			if status != tt.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tt.status, stdout, stderr)
			}
			wantOutput(t, stdout, tt.stdout...)
		})
	}
}

// TestCheckWitnessesFormats checks that the JSON and GitHub formats report
// a head without the quorum.
func TestCheckWitnessesFormats(t *testing.T) {
	checkEnv(t)
	a, b := newCosigner(t, "a.witness.test"), newCosigner(t, "b.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules[:1]})
	file := writeIn(t, t.TempDir(), "go.sum", db.GoSum(checkModules[:1]...))
	serveCosigned(t, db, a)
	args := []string{"--sumdb", db.GOSUMDB(), "--state=", "--witness", a.VKey, "--witness", b.VKey}

	status, stdout, _ := sumdbCheck(t, append(args, "--format", "json", file)...)
	if status != 1 {
		t.Errorf("json: exit status %d, want 1", status)
	}
	var doc struct {
		Witnesses struct {
			Head    struct{ Size int64 }
			Signers []string
			Missing []string
			Error   string
			Status  int
		}
		Summary struct {
			ExitStatus int `json:"exit_status"`
		}
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	w := doc.Witnesses
	if w.Head.Size != 1 || !slices.Equal(w.Signers, []string{"a.witness.test"}) || !slices.Equal(w.Missing, []string{"b.witness.test"}) || w.Status != 1 || !strings.Contains(w.Error, "missing b.witness.test") || doc.Summary.ExitStatus != 1 {
		t.Errorf("json witnesses = %+v, exit status %d; want head 1, signers [a.witness.test], missing [b.witness.test], status 1\n%s", w, doc.Summary.ExitStatus, stdout)
	}

	status, stdout, _ = sumdbCheck(t, append(args, "--format", "github", file)...)
	if status != 1 {
		t.Errorf("github: exit status %d, want 1", status)
	}
	wantOutput(t, stdout, "::error title=sumdb check%3A witnesses::the log's tree head of size 1: tree head not cosigned by a quorum of the witnesses: cosigned by a.witness.test; missing b.witness.test")
}

// TestCheckWitnessedHeadBound checks that a record the log added after
// the newest head the witnesses cosigned is not verified: the lookup comes
// with a newer head, consistent with the witnessed one, but nobody
// witnessed that head.
func TestCheckWitnessedHeadBound(t *testing.T) {
	checkEnv(t)
	a := newCosigner(t, "a.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: checkModules})
	old := db.GoSum(checkModules[:2]...)
	witnessed := cosignHead(t, db, db.Latest(), a)
	file := writeIn(t, t.TempDir(), "go.sum", old+db.GoSum(checkModules[2]))
	db.SetTamper(func(path string, body []byte) []byte {
		if path == "/latest" {
			return witnessed // the witnesses are behind
		}
		return body
	})
	state := filepath.Join(t.TempDir(), "state")
	status, stdout, stderr := sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state", state, "--witness", a.VKey, file)
	if status != 3 {
		t.Errorf("exit status %d, want 3\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	third := checkModules[2].Path + " " + checkModules[2].Version
	wantOutput(t, stdout, third+": could not check: record newer than the newest tree head the witnesses cosigned: the log holds it as record 2, and the witnesses cosigned its tree up to size 2", "(tree size 3), witnessed at size 2 by a.witness.test: 4 verified, 2 could not check; exit status 3")

	// Once the witnesses caught up, the line verifies.
	serveCosigned(t, db, a)
	status, stdout, stderr = sumdbCheck(t, "--sumdb", db.GOSUMDB(), "--state", state, "--witness", a.VKey, file)
	if status != 0 {
		t.Errorf("after the witnesses caught up: exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
}

func TestCheckWitnessFlagsInvalid(t *testing.T) {
	checkEnv(t)
	a := newCosigner(t, "a.witness.test")
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	file := writeIn(t, t.TempDir(), "go.sum", "")
	policy := writeIn(t, t.TempDir(), "policy", "quorum none\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"policy and flags", []string{"--witness", a.VKey, "--witness-policy", policy}, "--witness and --witness-policy exclude each other"},
		{"quorum alone", []string{"--quorum", "1"}, "--quorum is set without --witness"},
		{"quorum too large", []string{"--witness", a.VKey, "--quorum", "2"}, "quorum 2 of 1 witnesses"},
		{"bad key", []string{"--witness", "a.witness.test+00000000+AAAA"}, "invalid witness key"},
		{"quorum none", []string{"--witness-policy", policy}, "requires no witness"},
		{"no policy file", []string{"--witness-policy", filepath.Join(t.TempDir(), "missing")}, "invalid --witness-policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := sumdbCheck(t, append(append([]string{"--sumdb", db.GOSUMDB(), "--state="}, tt.args...), file)...)
			if status != statusCouldNotCheck {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, statusCouldNotCheck, stdout, stderr)
			}
			wantOutput(t, stderr, tt.want)
		})
	}
}

// TestCheckWitnessedFork checks that a witnessed head inconsistent with
// the state's head is a SECURITY ERROR, before any lookup.
func TestCheckWitnessedFork(t *testing.T) {
	checkEnv(t)
	w := newCosigner(t, "a.witness.test")
	key := sumdbtest.NewKey(t, sumdbtest.KeyName)
	state := filepath.Join(t.TempDir(), "state")
	a := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: checkModules[:2]})
	fileA := writeIn(t, t.TempDir(), "go.sum", a.GoSum(checkModules[:2]...))
	serveCosigned(t, a, w)
	if status, stdout, stderr := sumdbCheck(t, "--sumdb", a.GOSUMDB(), "--state", state, "--witness", w.VKey, fileA); status != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	// B: the same key, another tree, which the witness cosigned too.
	b := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: checkModules[2:]})
	fileB := writeIn(t, t.TempDir(), "go.sum", b.GoSum(checkModules[2:]...))
	serveCosigned(t, b, w)
	b.ResetRequests()
	status, stdout, _ := sumdbCheck(t, "--sumdb", b.GOSUMDB(), "--state", state, "--witness", w.VKey, fileB)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	wantOutput(t, stdout, "SECURITY ERROR\ngo.sum database server misbehavior detected!", "proof of misbehavior:", "is inconsistent with the newest one verified before, of size 2: the log forked")
	for _, p := range b.Requests() {
		if strings.HasPrefix(p, "/lookup/") {
			t.Errorf("check looked up %s after the fork", p)
		}
	}
}
