package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store/storetest"
)

// TestMirrorSQLite and TestMirrorPostgres run sumdb as a mirror of another
// checksum database with the real go command, on each store: GOPROXY names
// the mirror, then a module proxy, and GOSUMDB the database's key without
// a URL, so that the go command verifies through the mirror's
// /sumdb/<name>/ path; the same modules verify from the mirror's cache
// once the database is down; a tampered answer is served to nobody; and a
// cache filled by sumdb mirror fetch, exported and imported into a new
// store, verifies them with the database unreachable.
func TestMirrorSQLite(t *testing.T) {
	t.Parallel()
	testMirror(t, func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} })
}

func TestMirrorPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the mirror test on PostgreSQL")
	}
	t.Parallel()
	testMirror(t, func(t *testing.T) []string {
		return []string{"--data-dir", t.TempDir(), "--database-url", storetest.PostgresURL(t)}
	})
}

// runTool runs the sumdb binary with args and env, and returns its output.
func runTool(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sumdbBinary(t), args...)
	cmd.Env = append(environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testMirror(t *testing.T, newStore func(t *testing.T) []string) {
	mods := []modproxy.Module{
		pkg("example.com/mirror/a", "v1.0.0", "module example.com/mirror/a\n"),
		pkg("example.com/mirror/b", "v1.0.0", "module example.com/mirror/b\n"),
		pkg("example.com/mirror/c", "v1.0.0", "module example.com/mirror/c\n"),
	}
	up := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.upstream.test", Modules: mods})
	// Records before and after the ones the go command asks for, so that
	// the proofs span several tiles.
	up.AppendSynthetic("example.com/filler/", 300)
	up.GoSum(mods...)
	up.AppendSynthetic("example.com/later/", 40)
	vkey := up.Key.VKey
	goproxy := func(mirrorURL string) string { return mirrorURL + "," + up.ProxyURL }

	srv, err := startSumdb(t, slices.Concat(newStore(t), []string{"--listen", "127.0.0.1:0", "--upstream", up.ProxyURL,
		"--private", "off", "--mirror", up.GOSUMDB(), "--log-level", "debug"})...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()

	// The go command verifies through the mirror.
	up.ResetRequests()
	user := newGoUser(t, goproxy(srv.url))
	mod := newMainModule(t, mods[0].Path, mods[1].Path)
	user.mustRun(mod, vkey, "get", mods[0].Path+"@v1.0.0", mods[1].Path+"@v1.0.0")
	sums := goSumLines(t, mod)
	for _, m := range mods[:2] {
		want := strings.Split(strings.TrimSuffix(up.Record(m.Path, m.Version), "\n"), "\n")
		for _, w := range want {
			if !slices.Contains(sums, w) {
				t.Errorf("go.sum lacks %q, the database's line", w)
			}
		}
	}
	if !slices.ContainsFunc(up.Requests(), func(p string) bool { return strings.HasPrefix(p, "/lookup/"+mods[0].Path) }) {
		t.Errorf("the database was never asked for %s: requests %q", mods[0].Path, up.Requests())
	}
	if code, body := srv.get("/sumdb/sum.upstream.test/supported"); code != 200 {
		t.Errorf("GET /sumdb/sum.upstream.test/supported = %d %q, want 200", code, body)
	}
	if code, _ := srv.get("/sumdb/sum.other.test/supported"); code != 404 {
		t.Errorf("GET /sumdb/sum.other.test/supported = %d, want 404 (not mirrored)", code)
	}
	if code, body := srv.get("/readyz"); code != 200 || !strings.Contains(string(body), "mirror sum.upstream.test: tree size") {
		t.Errorf("GET /readyz = %d %q, want 200 and the mirror's state", code, body)
	}

	t.Run("database down", func(t *testing.T) {
		up.SetStatus(http.StatusServiceUnavailable)
		defer up.SetStatus(0)
		fresh := newGoUser(t, goproxy(srv.url))
		mod := newMainModule(t, mods[0].Path, mods[1].Path)
		fresh.mustRun(mod, vkey, "get", mods[0].Path+"@v1.0.0", mods[1].Path+"@v1.0.0")
		// /latest is the newest verified head, though the database fails.
		if code, body := srv.get("/sumdb/sum.upstream.test/latest"); code != 200 || !strings.HasPrefix(string(body), "go.sum database tree\n") {
			t.Errorf("GET /sumdb/sum.upstream.test/latest with the database down = %d %q, want 200 and the verified head", code, body)
		}
		if code, body := srv.get("/readyz"); code != 200 || !strings.Contains(string(body), "upstream failing") {
			t.Errorf("GET /readyz with the database down = %d %q, want 200 naming the failing upstream", code, body)
		}
	})

	t.Run("tampered record", func(t *testing.T) {
		up.SetTamper(func(path string, body []byte) []byte {
			if strings.HasPrefix(path, "/lookup/"+mods[2].Path) {
				// Another hash of the same form, in the record.
				i := strings.Index(string(body), " h1:") + len(" h1:")
				if body[i] == 'A' {
					body[i] = 'B'
				} else {
					body[i] = 'A'
				}
			}
			return body
		})
		defer up.SetTamper(nil)
		fresh := newGoUser(t, goproxy(srv.url))
		mod := newMainModule(t, mods[2].Path)
		if out, err := fresh.run(mod, vkey, "get", mods[2].Path+"@v1.0.0"); err == nil {
			t.Errorf("go get through the mirror of a tampered record succeeded:\n%s", out)
		}
		if waitLog(srv, `level=ERROR.*`+mods[2].Path) == nil {
			t.Errorf("the mirror did not log the tampered record")
		}
	})

	t.Run("mirror fetch", func(t *testing.T) {
		sum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		// A private module's line is skipped, never sent to the database.
		withPrivate := filepath.Join(t.TempDir(), "go.sum")
		private := "corp.example.com/secret v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
		if err := os.WriteFile(withPrivate, append(sum, private...), 0o644); err != nil {
			t.Fatal(err)
		}
		up.ResetRequests()
		out, err := runTool(t, []string{"GONOSUMDB=corp.example.com"}, "mirror", "fetch", "--of", up.GOSUMDB(), "--data-dir", t.TempDir(), withPrivate)
		if err != nil || !strings.Contains(out, "skipped 1 lines of private modules") {
			t.Errorf("sumdb mirror fetch of a go.sum with a private line: %v, want it skipped:\n%s", err, out)
		}
		for _, p := range up.Requests() {
			if strings.Contains(p, "corp.example.com") {
				t.Errorf("the database was asked for %s", p)
			}
		}
		// A line the database does not hold fails the fetch, loudly.
		wrong := filepath.Join(t.TempDir(), "go.sum")
		bad := strings.Replace(string(sum), " h1:", " h1:A", 1)
		if err := os.WriteFile(wrong, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = runTool(t, nil, "mirror", "fetch", "--of", up.GOSUMDB(), "--data-dir", t.TempDir(), wrong)
		if err == nil || !strings.Contains(out, "is not the line the checksum database") {
			t.Errorf("sumdb mirror fetch of a go.sum line the database does not hold: %v, want a failure saying so:\n%s", err, out)
		}
	})

	t.Run("air-gapped", func(t *testing.T) {
		// The connected side: a store of the mirror's cache alone.
		connected := t.TempDir()
		if out, err := runTool(t, nil, "mirror", "fetch", "--of", up.GOSUMDB(), "--data-dir", connected, filepath.Join(mod, "go.sum")); err != nil {
			t.Fatalf("sumdb mirror fetch: %v\n%s", err, out)
		}
		file := filepath.Join(t.TempDir(), "mirror.sumdb")
		if out, err := runTool(t, nil, "export", "--data-dir", connected, "--out", file); err != nil {
			t.Fatalf("sumdb export: %v\n%s", err, out)
		}
		// The isolated side: a new store, and no route to the database.
		isolated := newStore(t)
		if out, err := runTool(t, nil, slices.Concat([]string{"import"}, isolated, []string{"--mirror", vkey, file})...); err != nil {
			t.Fatalf("sumdb import: %v\n%s", err, out)
		}
		gap, err := startSumdb(t, slices.Concat(isolated, []string{"--listen", "127.0.0.1:0", "--upstream", up.ProxyURL,
			"--private", "off", "--mirror", vkey + " http://127.0.0.1:1"})...)
		if err != nil {
			t.Fatal(err)
		}
		defer gap.stop()
		up.ResetRequests()
		fresh := newGoUser(t, goproxy(gap.url))
		mod := newMainModule(t, mods[0].Path, mods[1].Path)
		fresh.mustRun(mod, vkey, "get", mods[0].Path+"@v1.0.0", mods[1].Path+"@v1.0.0")
		if reqs := up.Requests(); len(reqs) > 0 {
			t.Errorf("the database was asked %q, though the mirror cannot reach it", reqs)
		}
	})
}

// TestMirrorPublic mirrors the checksum database of the go command's own
// settings (go env GOSUMDB), found through its GOPROXY, and has the go
// command verify a module through the mirror. It needs the network:
// set SUMDB_TEST_PUBLIC_MIRROR=1 to run it.
func TestMirrorPublic(t *testing.T) {
	if os.Getenv("SUMDB_TEST_PUBLIC_MIRROR") == "" {
		t.Skip("set SUMDB_TEST_PUBLIC_MIRROR=1 to mirror the public checksum database, over the network")
	}
	gosumdb, err := goEnv(t.Context(), "GOSUMDB")
	if err != nil {
		t.Fatal(err)
	}
	goproxy, err := goEnv(t.Context(), "GOPROXY")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startSumdbEnv(t, []string{envName("public-sumdb") + "=off"}, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--upstream", goproxy, "--private", "off", "--mirror", gosumdb)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	user := newGoUser(t, srv.url+","+goproxy)
	mod := newMainModule(t, "rsc.io/quote")
	user.mustRun(mod, gosumdb, "get", "rsc.io/quote@v1.5.2")
	if code, body := srv.get("/readyz"); code != 200 || !strings.Contains(string(body), "head verified") {
		t.Errorf("GET /readyz = %d %q, want the mirror's verified head", code, body)
	}
}
