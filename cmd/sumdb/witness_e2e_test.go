package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/fakewitness"
)

// TestEndToEndWitness checks that a server with a witness gets each new
// head cosigned, serves the cosignature on /latest and /readyz, and that
// the real go command verifies modules through it as before.
func TestEndToEndWitness(t *testing.T) {
	t.Parallel()
	px := newProxies(t)
	px.add(t, pkg("example.com/a", "v1.0.0", "module example.com/a\n"), pkg("example.com/b", "v1.0.0", "module example.com/b\n"))
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--upstream", px.upstreamURL, "--name", "sum.example.com"}

	// A first start makes the key, which the witness needs to know.
	first, err := startSumdb(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()
	logV, err := note.NewVerifier(first.vkey)
	if err != nil {
		t.Fatal(err)
	}
	w := fakewitness.New(t, "witness.example.com", logV)
	wv, err := fnote.NewVerifierForCosignatureV1(w.VKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startSumdb(t, append(args, "--witness", w.VKey+" "+w.URL, "--witness-quorum", "1")...)
	if err != nil {
		t.Fatal(err)
	}

	user := newGoUser(t, px.goProxyURL)
	mod := newMainModule(t, "example.com/a", "example.com/b")
	for _, m := range []string{"example.com/a@v1.0.0", "example.com/b@v1.0.0"} {
		user.mustRun(mod, srv.gosumdb, "get", m)
		size := srv.latest().N // the go command's own check of /latest with the log's key
		var latest []byte
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, latest = srv.get("/latest")
			n, err := note.Open(latest, note.VerifierList(logV, wv))
			if err == nil && len(n.Sigs) == 2 && n.Sigs[1].Name == w.Name && srv.openTree(latest).N >= size {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/latest = %q after 30s (%v), want the head of size %d cosigned by %s", latest, err, size, w.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The go command's own verification: the log's key alone.
		if _, err := note.Open(latest, note.VerifierList(logV)); err != nil {
			t.Errorf("note.Open(/latest, log key) = %v, want the cosigned head accepted as the go command does", err)
		}
	}
	user.mustRun(mod, srv.gosumdb, "mod", "tidy")
	user.mustRun(mod, srv.gosumdb, "mod", "verify")
	code, body := srv.get("/readyz")
	if want := fmt.Sprintf("witness %s: cosigned tree size %d", w.Name, srv.latest().N); code != http.StatusOK || !strings.Contains(string(body), want) {
		t.Errorf("GET /readyz = %d %q, want 200 with %q", code, body, want)
	}
	if _, reqs := w.State(); len(reqs) == 0 || reqs[len(reqs)-1].Status != http.StatusOK {
		t.Errorf("witness calls %+v, want the last cosigned", reqs)
	}
}
