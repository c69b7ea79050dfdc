package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/sumdbtest"
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

// TestServePublicFork starts serve on a store that holds the evidence of a
// fork of the public checksum database: the evidence is logged and the
// gauge set at start, every new public module version is refused, and
// once public-fork --clear has run, the version is logged.
func TestServePublicFork(t *testing.T) {
	pub := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.public.test"})
	m := pkg("example.com/pubfork/a", "v1.0.0", "module example.com/pubfork/a\n")
	pub.Add(m)
	pub.GoSum(m)
	dir := t.TempDir()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, defaultDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	const evidence = "two heads that contradict each other"
	if err := st.SwapState(t.Context(), "public/sum.public.test/fork", nil, []byte(evidence)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	srv, err := startSumdbEnv(t, []string{envName("public-sumdb") + "=" + pub.GOSUMDB()},
		"--data-dir", dir, "--listen", "127.0.0.1:0", "--upstream", pub.ProxyURL, "--private", "off")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	if waitLog(srv, `level=ERROR msg="the public checksum database showed a fork.*`+evidence) == nil {
		t.Errorf("serve did not log the fork kept in the store at start")
	}
	if code, body := srv.get("/metrics"); code != 200 || !strings.Contains(string(body), "\nsumdb_public_fork 1\n") {
		t.Errorf("GET /metrics: %d, want sumdb_public_fork 1:\n%s", code, body)
	}
	lookup := "/lookup/" + m.Path + "@" + m.Version
	if code, body := srv.get(lookup); code != 503 || !strings.Contains(string(body), "showed a fork") {
		t.Errorf("GET %s with a fork kept: %d %q, want 503 naming the fork", lookup, code, body)
	}

	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"public-fork", "--clear", "--data-dir", dir, "--public-sumdb", pub.Key.VKey}, &stdout, &stderr); err != nil {
		t.Fatalf("public-fork --clear while serve runs: %v\n%s", err, stderr.String())
	}
	// Every replica sees the cleared state within seconds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := srv.get(lookup)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s 15s after public-fork --clear: %d %q, want 200", lookup, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
