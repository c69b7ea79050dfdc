package check_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/sumdb/check"
	"github.com/sumdb/sumdb/sumdb/sumdbtest"
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
	for p, v := range tiles {
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
}
