package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
)

// TestMirrorFetchPrivate checks that sumdb mirror fetch, like the go
// command and sumdb check, never sends the paths of private modules
// (GONOSUMDB, or GOPRIVATE when it is empty) to the mirrored database.
func TestMirrorFetchPrivate(t *testing.T) {
	clearEnv(t)
	up := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.mirrored.test"})
	up.AppendSynthetic("a", 5)
	public := "example.com/a/m1"
	sum := up.Record(public, "v1.0.0") + string(sumdbtest.SynthText("corp.example.com/secret", "v1.0.0"))
	gosum := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(gosum, []byte(sum), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{
		{"GOPROXY": "off", "GONOSUMDB": "corp.example.com", "GOPRIVATE": ""},
		{"GOPROXY": "off", "GONOSUMDB": "", "GOPRIVATE": "corp.example.com"},
	} {
		up.ResetRequests()
		var stdout, stderr bytes.Buffer
		err := runMirror(t.Context(), []string{"fetch", "--of", up.GOSUMDB(), "--data-dir", t.TempDir(), gosum}, &stdout, &stderr, mapGoEnv(env))
		for _, p := range up.Requests() {
			if strings.Contains(p, "corp.example.com") {
				t.Errorf("mirror fetch with %v: the mirrored database was asked %s, a private module", env, p)
			}
		}
		if err != nil {
			t.Errorf("mirror fetch with %v = %v, want the public module cached and the private one skipped\n%s", env, err, stderr.String())
		}
	}
}

// TestMirrorFetchMismatch checks that a go.sum line whose hash is
// not the database's fails mirror fetch with exit status 1, naming the
// line, and that what is cached is the database's verified record.
func TestMirrorFetchMismatch(t *testing.T) {
	clearEnv(t)
	up := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.mirrored.test"})
	up.AppendSynthetic("a", 5)
	const mod = "example.com/a/m2"
	record := up.Record(mod, "v1.0.0")
	i := strings.Index(record, " h1:") + len(" h1:")
	bad := []byte(record)
	if bad[i] == 'A' {
		bad[i] = 'B'
	} else {
		bad[i] = 'A'
	}
	gosum := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(gosum, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := runMirror(t.Context(), []string{"fetch", "--of", up.GOSUMDB(), "--data-dir", dir, gosum}, &stdout, &stderr, mapGoEnv(map[string]string{"GOPROXY": "off", "GONOSUMDB": "", "GOPRIVATE": ""}))
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 1 || !strings.Contains(stderr.String(), gosum+":1:") {
		t.Errorf("mirror fetch of a go.sum with a wrong hash = %v, stderr %q; want exit status 1 naming %s:1", err, stderr.String(), gosum)
	}
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, "sumdb.db"))
	if err != nil {
		t.Skipf("cannot open the data directory's store to check it: %v", err)
	}
	defer st.Close()
	if _, text, err := st.ReadMirrorRecord(t.Context(), "sum.mirrored.test", mod, "v1.0.0"); err == nil && string(text) != record {
		t.Errorf("cached record of %s = %q, want the database's %q", mod, text, record)
	}
}
