package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/public"
)

// TestPublicFork shows and clears the evidence of a fork of the public
// checksum database that serve keeps in the store.
func TestPublicFork(t *testing.T) {
	clearEnv(t)
	_, vkey, err := note.GenerateKey(rand.Reader, "sum.public.test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	const evidence = "go.sum database tree\n5\nAAAA\n\n— sum.public.test x\n"
	if err := st.SwapState(t.Context(), "public/sum.public.test/fork", nil, []byte(evidence)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	runFork := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append([]string{"public-fork", "--data-dir", dir, "--public-sumdb", vkey}, args...), &stdout, &stderr)
		code := 0
		var xerr *exitError
		switch {
		case errors.As(err, &xerr):
			code = xerr.code
		case err != nil:
			code = -1
			stderr.WriteString(err.Error())
		}
		return code, stdout.String(), stderr.String()
	}
	if code, out, errOut := runFork(); code != 1 || !strings.Contains(out, "showed a fork") || !strings.Contains(out, "AAAA") {
		t.Errorf("public-fork with evidence = %d, %q, %q; want 1 and the evidence", code, out, errOut)
	}
	if code, out, errOut := runFork("--clear"); code != 0 || !strings.Contains(out, "cleared") {
		t.Errorf("public-fork --clear = %d, %q, %q; want 0 and cleared", code, out, errOut)
	}
	if code, out, errOut := runFork(); code != 0 || !strings.Contains(out, "no fork") {
		t.Errorf("public-fork after --clear = %d, %q, %q; want 0 and no fork", code, out, errOut)
	}
	st, err = store.OpenSQLite(t.Context(), filepath.Join(dir, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ev, err := public.ReadFork(t.Context(), st, "sum.public.test"); err != nil || ev != "" {
		t.Errorf("evidence after --clear = %q, %v; want none", ev, err)
	}

	// A mistyped data directory is not made a new, empty store.
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "nothing")
	if err := run(t.Context(), []string{"public-fork", "--data-dir", missing, "--public-sumdb", vkey}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "give the --data-dir") {
		t.Errorf("public-fork on a missing data directory: %v, want an error saying to give --data-dir", err)
	}
}
