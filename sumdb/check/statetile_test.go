package check_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/check"
)

// TestStateFileDamagedTile damages, on the local disk, a tile kept in the
// state file by an earlier run, and checks again against the same honest
// log. The tiles of the state file are not signed: one that does not hash
// to the state's own signed head is a local failure (a bad disk, an edited
// file), which must not be reported as the log's answer failing its proof
// (exit status 1, "the log ... serves altered data").
func TestStateFileDamagedTile(t *testing.T) {
	t.Parallel()
	db := sumdbtest.MustStart(t, sumdbtest.Options{Modules: modules[:2]})
	gosum := db.GoSum(modules[:2]...)
	state := filepath.Join(t.TempDir(), "latest")
	rep := run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state}, "go.sum", gosum)
	wantStatus(t, rep, 0)

	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	tiles, _ := st["tiles"].(map[string]any)
	if len(tiles) == 0 {
		t.Fatalf("state file keeps no tiles:\n%s", data)
	}
	good := make(map[string]any, len(tiles))
	for p, v := range tiles {
		good[p] = v
		// Base64 of the tile's hashes: change its first character.
		s := v.(string)
		c := "A"
		if s[0] == 'A' {
			c = "B"
		}
		tiles[p] = c + s[1:]
	}
	if data, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, data, 0o644); err != nil {
		t.Fatal(err)
	}

	rep = run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state}, "go.sum", gosum)
	out := text(t, rep)
	if rep.ExitStatus() == 1 || strings.Contains(out, "serves altered data") {
		t.Errorf("check with a damaged tile in the state file: exit status %d, blaming the log; want a local failure (3), or the tile fetched from the log (0):\n%s", rep.ExitStatus(), out)
	}
	// The log's tile proves the state's head: nothing was left unchecked,
	// and the report says what was found on disk.
	wantStatus(t, rep, 0)
	if !strings.Contains(rep.StateWarning, "do not prove its signed tree head") || !strings.Contains(out, "sumdb check: warning: ") {
		t.Errorf("StateWarning = %q, want one saying the state's tiles do not prove its head; report:\n%s", rep.StateWarning, out)
	}

	// The state file now keeps the log's tiles again, and the next run has
	// nothing to say about them.
	if data, err = os.ReadFile(state); err != nil {
		t.Fatal(err)
	}
	var again map[string]any
	if err := json.Unmarshal(data, &again); err != nil {
		t.Fatal(err)
	}
	if got, _ := again["tiles"].(map[string]any); !reflect.DeepEqual(got, good) {
		t.Errorf("state tiles after the run = %v, want the log's %v", got, good)
	}
	rep = run(t, check.Config{Remote: remote(t, db.GOSUMDB()), State: state}, "go.sum", gosum)
	wantStatus(t, rep, 0)
	if rep.StateWarning != "" {
		t.Errorf("StateWarning of the run after = %q, want none", rep.StateWarning)
	}
}

// TestStateFileDamagedTileFork checks that leaving the damaged tiles of a
// state file unused does not let a fork through: the log's tiles are then
// checked against the state's head, and a log that forked since cannot
// give tiles that prove it.
func TestStateFileDamagedTileFork(t *testing.T) {
	t.Parallel()
	key := sumdbtest.NewKey(t, sumdbtest.KeyName)
	state := filepath.Join(t.TempDir(), "latest")
	a := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: modules[:2]})
	rep := run(t, check.Config{Remote: remote(t, a.GOSUMDB()), State: state}, "go.sum", a.GoSum(modules[:2]...))
	wantStatus(t, rep, 0)

	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Head  string            `json:"head"`
		Tiles map[string][]byte `json:"tiles"`
	}
	if err := json.Unmarshal(data, &st); err != nil || len(st.Tiles) == 0 {
		t.Fatalf("state file %s, %v; want a head and its tiles", data, err)
	}
	for _, tile := range st.Tiles {
		tile[0] ^= 1
	}
	// A tile the head does not need, which nothing can prove.
	st.Tiles["tile/8/1/000.p/1"] = make([]byte, 32)
	if data, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// B: the same key, another tree, larger than A's.
	var other []modproxy.Module
	for i := range 5 {
		other = append(other, mod(fmt.Sprintf("example.com/fork/m%d", i), "v1.0.0"))
	}
	b := sumdbtest.MustStart(t, sumdbtest.Options{Key: key, Modules: other})
	rep = run(t, check.Config{Remote: remote(t, b.GOSUMDB()), State: state}, "go.sum", b.GoSum(other...))
	wantStatus(t, rep, 1)
	if got := rep.Counts()[check.BadProof]; got != len(rep.Results) {
		t.Errorf("%d lines of kind bad-proof, want all %d:\n%s", got, len(rep.Results), text(t, rep))
	}
	want := fmt.Sprintf("%d of the %d tiles", len(st.Tiles), len(st.Tiles))
	if !strings.Contains(rep.StateWarning, want) {
		t.Errorf("StateWarning = %q, want it to say %q", rep.StateWarning, want)
	}
	// No newer head was verified: the state file still holds A's.
	if data, err := os.ReadFile(state); err != nil || string(noteOf(t, data)) != st.Head {
		t.Errorf("state file after the fork = %s, %v; want A's head", data, err)
	}
}
