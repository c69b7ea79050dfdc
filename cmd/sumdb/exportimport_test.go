package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
	"github.com/sumdb/sumdb/tlog/export"
)

// newEmbeddedLog makes a data directory with a key file and an embedded
// store holding a log of n records, as serve leaves it, and returns the
// directory and the key.
func newEmbeddedLog(t *testing.T, n int) (string, *key) {
	t.Helper()
	dir := t.TempDir()
	k, skey, err := generateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKeyFile(filepath.Join(dir, defaultKeyFileName), skey, durable.SyncDir); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenSQLite(t.Context(), filepath.Join(dir, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := tlog.Open(t.Context(), s, tlog.Config{Signer: k.Signer, Verifier: k.Verifier, RefreshInterval: -1,
		PublishedFile: filepath.Join(dir, "published-head")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				path, version := fmt.Sprintf("example.com/m%d", i/4), fmt.Sprintf("v1.0.%d", i%4)
				h := xtlog.RecordHash([]byte(path + version))
				text := fmt.Appendf(nil, "%s %s h1:%x=\n%s %s/go.mod h1:%x=\n", path, version, h[:8], path, version, h[8:16])
				if _, _, err := l.Append(context.Background(), path, version, text); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return dir, k
}

// sumdbRun runs the sumdb command line args in the process and returns
// its exit status and stderr.
func sumdbRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := report(run(t.Context(), args, &stdout, &stderr), &stderr)
	if stdout.Len() > 0 {
		t.Errorf("sumdb %s printed on stdout: %s", strings.Join(args, " "), stdout.String())
	}
	return code, stderr.String()
}

func sumdbRunOK(t *testing.T, args ...string) string {
	t.Helper()
	code, stderr := sumdbRun(t, args...)
	if code != 0 {
		t.Fatalf("sumdb %s: exit status %d, stderr:\n%s", strings.Join(args, " "), code, stderr)
	}
	return stderr
}

// TestExportImportPostgres moves an embedded log to PostgreSQL, serves it
// there with the same key, and moves it back: every export of it is the
// same file, byte for byte.
func TestExportImportPostgres(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	old, k := newEmbeddedLog(t, 700)
	file := filepath.Join(t.TempDir(), "log.export")
	stderr := sumdbRunOK(t, "export", "--data-dir", old, "--out", file)
	if !strings.Contains(stderr, "700 records") {
		t.Errorf("export said %q, want the number of records", stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sumdb export 2\nkey " + k.VKey + "\nrecords 700\n\n"; !bytes.HasPrefix(data, []byte(want)) {
		t.Errorf("export file begins with %q, want %q", data[:min(len(data), 200)], want)
	}

	// Into PostgreSQL, with a new data directory for the new server.
	dir := t.TempDir()
	stderr = sumdbRunOK(t, "import", "--data-dir", dir, "--database-url", url, file)
	if !strings.Contains(stderr, "imported 700 records") || !strings.Contains(stderr, "copy the old server's signer key file") {
		t.Errorf("import said %q, want the records imported and to copy the key file", stderr)
	}
	oldPub, err := tlog.ReadPublished(filepath.Join(old, "published-head"), k.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	oldHead := oldPub.Note
	if got, err := tlog.ReadPublished(filepath.Join(dir, "published-head"), k.Verifier); err != nil || !bytes.Equal(got.Note, oldHead) {
		t.Errorf("import wrote published-head %q, %v; want the old server's %q", got.Note, err, oldHead)
	}
	// The same file again: nothing to do, and no harm.
	if stderr := sumdbRunOK(t, "import", "--data-dir", dir, "--database-url", url, file); !strings.Contains(stderr, "imported 0 records") {
		t.Errorf("import of the same file again said %q, want 0 records imported", stderr)
	}

	// The new server, with the old key file, serves the same head.
	keyFile := filepath.Join(old, defaultKeyFileName)
	srv, err := startSumdb(t, "--listen", "127.0.0.1:0", "--data-dir", dir, "--database-url", url, "--key-file", keyFile, "--upstream", "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if srv.vkey != k.VKey {
		t.Errorf("the new server's key is %s, want the old one's %s", srv.vkey, k.VKey)
	}
	code, latest := srv.get("/latest")
	if code != http.StatusOK || !bytes.Equal(latest, oldHead) {
		t.Errorf("GET /latest = %d %q, want the old server's head %q", code, latest, oldHead)
	}
	text, err := srv.lookup("example.com/m17", "v1.0.2")
	if err != nil || !bytes.Contains(text, []byte("example.com/m17 v1.0.2 h1:")) {
		t.Errorf("lookup of an imported record = %q, %v", text, err)
	}
	srv.stop()

	// And back into an embedded store: the same file.
	again := filepath.Join(t.TempDir(), "again.export")
	sumdbRunOK(t, "export", "--database-url", url, "--key-file", keyFile, "--out", again)
	back := t.TempDir()
	sumdbRunOK(t, "import", "--data-dir", back, again)
	final := filepath.Join(t.TempDir(), "final.export")
	sumdbRunOK(t, "export", "--data-dir", back, "--vkey", k.VKey, "--out", final)
	for _, f := range []string{again, final} {
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s differs from the first export (%d bytes, want %d)", filepath.Base(f), len(got), len(data))
		}
	}
}

// TestImportRefuses checks the imports that must fail, with a message
// saying why, and the export flags that are usage errors.
func TestImportRefuses(t *testing.T) {
	t.Parallel()
	old, _ := newEmbeddedLog(t, 300)
	file := filepath.Join(t.TempDir(), "log.export")
	sumdbRunOK(t, "export", "--data-dir", old, "--out", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newEmbeddedLog(t, 10)
	write := func(name string, b []byte) string {
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	flipped := bytes.Clone(data)
	at := bytes.Index(flipped, []byte("example.com/m40 v1.0.1 h1:")) + len("example.com/m40 v1.0.1 h1:")
	flipped[at] ^= 1

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"NonEmptyOtherLog", []string{"import", "--data-dir", other, file}, 1, "not of the expected key"},
		{"NonEmptyOtherLogOtherKey", []string{"import", "--data-dir", other, "--key-file", filepath.Join(old, defaultKeyFileName), file}, 1, "the store holds another log"},
		{"Flipped", []string{"import", "--data-dir", t.TempDir(), write("flipped", flipped)}, 1, "a record before it was altered"},
		{"Truncated", []string{"import", "--data-dir", t.TempDir(), write("truncated", data[:len(data)/2])}, 1, "truncated"},
		{"WrongKeyFile", []string{"import", "--data-dir", t.TempDir(), "--key-file", filepath.Join(other, defaultKeyFileName), file}, 1, "not of the expected key"},
		{"Missing", []string{"import", "--data-dir", t.TempDir(), filepath.Join(t.TempDir(), "nothing")}, 1, "no such file"},
		{"NoFile", []string{"import"}, 2, "want one export FILE"},
		{"NoOut", []string{"export", "--data-dir", old}, 2, "--out is required"},
		{"NoStore", []string{"export", "--data-dir", t.TempDir(), "--vkey", "x", "--out", "-"}, 1, "set --data-dir"},
		{"BadURL", []string{"import", "--database-url", "mysql://x", file}, 2, "invalid --database-url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := sumdbRun(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("sumdb %s: exit status %d, stderr %q; want %d and one line containing %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.want)
			}
		})
	}
	// The refused imports left the other log as it was.
	if code, stderr := sumdbRun(t, "export", "--data-dir", other, "--out", filepath.Join(t.TempDir(), "x")); code != 0 || !strings.Contains(stderr, "10 records") {
		t.Errorf("export of the other log after refused imports: %d %q", code, stderr)
	}
}

// TestExportImportStdio pipes an export to an import through stdout and
// stdin, as with a compressor in between. It replaces os.Stdin, so it
// does not run in parallel.
func TestExportImportStdio(t *testing.T) {
	old, _ := newEmbeddedLog(t, 100)
	var out, stderr bytes.Buffer
	if err := run(t.Context(), []string{"export", "--data-dir", old, "--out", "-"}, &out, &stderr); err != nil {
		t.Fatalf("export --out -: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(w, &out)
		w.Close()
	}()
	stdin := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = stdin }()
	if stderr := sumdbRunOK(t, "import", "--data-dir", t.TempDir(), "-"); !strings.Contains(stderr, "imported 100 records") {
		t.Errorf("import - said %q", stderr)
	}
}

// TestExportImportMirror checks export and import of a server that only
// mirrors: a data directory without a key file, whose store holds the
// cache of a mirrored database and no log of its own.
func TestExportImportMirror(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	up := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.example.org"})
	up.AppendSynthetic("m", 30)
	head, err := up.Store.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tile, err := up.Store.ReadTile(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := t.TempDir()
	s, err := store.OpenSQLite(ctx, filepath.Join(old, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	db := up.Key.Verifier.Name()
	if err := s.PutMirrorTile(ctx, db, 0, 0, tile); err != nil {
		t.Fatal(err)
	}
	if err := s.SwapState(ctx, export.MirrorHeadState(db), nil, head.Note); err != nil {
		t.Fatal(err)
	}
	s.Close()

	file := filepath.Join(t.TempDir(), "mirror.export")
	out := sumdbRunOK(t, "export", "--data-dir", old, "--out", file)
	if want := "exported the cache of the mirror of " + db + ": 1 tiles and 0 records, up to its head of size 30"; !strings.Contains(out, want) {
		t.Errorf("sumdb export: output %q, want it to contain %q", out, want)
	}
	fresh := t.TempDir()
	code, out := sumdbRun(t, "import", "--data-dir", fresh, file)
	if code == 0 || !strings.Contains(out, db) || !strings.Contains(out, "--mirror") {
		t.Errorf("sumdb import without --mirror = exit %d, %q, want an error naming %s and --mirror", code, out, db)
	}
	code, out = sumdbRun(t, "import", "--data-dir", fresh, "--mirror", "not-a-key", file)
	if code == 0 || !strings.Contains(out, "verifier key") {
		t.Errorf("sumdb import --mirror not-a-key = exit %d, %q, want an error about the key", code, out)
	}
	out = sumdbRunOK(t, "import", "--data-dir", fresh, "--mirror", up.Key.VKey+" https://sum.example.org", file)
	if want := "imported the cache of the mirror of " + db + ": 1 tiles"; !strings.Contains(out, want) {
		t.Errorf("sumdb import: output %q, want it to contain %q", out, want)
	}
	s, err = store.OpenSQLite(ctx, filepath.Join(fresh, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.ReadMirrorTile(ctx, db, 0, 0); err != nil || !bytes.Equal(got, tile) {
		t.Errorf("ReadMirrorTile(%s, 0, 0) after import = %d bytes, %v, want the exported tile", db, len(got), err)
	}
	if got, err := s.ReadState(ctx, export.MirrorHeadState(db)); err != nil || !bytes.Equal(got, head.Note) {
		t.Errorf("mirror head after import = %q, %v, want %q", got, err, head.Note)
	}
	// The help of both commands tells of mirrors.
	for _, cmd := range []string{"export", "import"} {
		var stdout, stderr bytes.Buffer
		if err := run(ctx, []string{cmd, "--help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "--mirror") {
			t.Errorf("sumdb %s --help = %v, and its help does not tell of mirrors", cmd, err)
		}
	}
}
