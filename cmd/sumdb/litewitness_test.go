package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	fnote "github.com/transparency-dev/formats/note"

	"github.com/sumdb/sumdb/internal/witnesstest"
)

// TestLiteWitnesses runs a log with two real witnesses (litewitness, from
// filippo.io/torchwood) on loopback: both cosign every new head, and sumdb
// check with the witnesses' keys trusts the log's heads only with enough of
// them; one witness stopped, the log goes on and the check names the
// missing witness; restarted, it catches up. A second server under the
// same key and name with another tree is refused by a witness, and says so
// loudly. The real go command verifies modules throughout.
func TestLiteWitnesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the test with real witnesses")
	}
	t.Parallel()
	px := newProxies(t)
	var mods []string
	for _, m := range []string{"a", "b", "c", "d", "e", "f"} {
		path := "example.com/witnessed/" + m
		px.add(t, pkg(path, "v1.0.0", "module "+path+"\n"))
		mods = append(mods, path)
	}
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--upstream", px.upstreamURL, "--name", "sum.witnessed.test", "--private", "off"}
	// A first start makes the key, which the witnesses must know.
	first, err := startSumdb(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()
	const origin = "go.sum database tree"
	w1 := witnesstest.Start(t, "w1.witness.test", origin, first.vkey)
	w2 := witnesstest.Start(t, "w2.witness.test", origin, first.vkey)
	logV, err := note.NewVerifier(first.vkey)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := fnote.NewVerifierForCosignatureV1(w1.VKey)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := fnote.NewVerifierForCosignatureV1(w2.VKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startSumdb(t, append(args, "--witness", w1.VKey+" "+w1.URL, "--witness", w2.VKey+" "+w2.URL)...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()

	// cosigners waits until /latest is the newest head, cosigned by the
	// witnesses want, and returns their names.
	cosigned := func(want ...string) {
		t.Helper()
		size := srv.latest().N
		deadline := time.Now().Add(90 * time.Second)
		for {
			_, latest := srv.get("/latest")
			n, err := note.Open(latest, note.VerifierList(logV, v1, v2))
			var names []string
			if err == nil {
				for _, s := range n.Sigs[1:] {
					names = append(names, s.Name)
				}
			}
			if err == nil && srv.openTree(latest).N >= size && strings.Join(names, ",") == strings.Join(want, ",") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/latest = %q after 90s (%v), want the head of size %d cosigned by %q", latest, err, size, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	user := newGoUser(t, px.goProxyURL)
	mod := newMainModule(t, mods[0], mods[1], mods[2])
	gosum := filepath.Join(mod, "go.sum")
	check := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		a := append([]string{"check", "--sumdb", srv.gosumdb, "--state="}, extra...)
		cmd := exec.CommandContext(ctx, sumdbBinary(t), append(a, gosum)...)
		cmd.Env = environ()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	user.mustRun(mod, srv.gosumdb, "get", mods[0]+"@v1.0.0")
	cosigned(w1.Name, w2.Name)
	if out, err := check("--witness", w1.VKey, "--witness", w2.VKey, "--quorum", "2"); err != nil {
		t.Errorf("sumdb check --quorum 2 with both witnesses cosigning: %v\n%s", err, out)
	}

	t.Run("one witness stopped", func(t *testing.T) {
		w2.Stop()
		user.mustRun(mod, srv.gosumdb, "get", mods[1]+"@v1.0.0") // the log goes on
		cosigned(w1.Name)
		out, err := check("--witness", w1.VKey, "--witness", w2.VKey, "--quorum", "2")
		if err == nil || !strings.Contains(out, w2.Name) {
			t.Errorf("sumdb check --quorum 2 with %s stopped: %v, want a failure naming it:\n%s", w2.Name, err, out)
		}
		if out, err := check("--witness", w1.VKey, "--witness", w2.VKey, "--quorum", "1"); err != nil {
			t.Errorf("sumdb check --quorum 1 with %s stopped: %v\n%s", w2.Name, err, out)
		}
		if waitLog(srv, `level=(WARN|ERROR).*`+w2.Name) == nil {
			t.Errorf("the server did not log the stopped witness")
		}

		w2.Restart()
		user.mustRun(mod, srv.gosumdb, "get", mods[2]+"@v1.0.0")
		cosigned(w1.Name, w2.Name) // caught up
		if out, err := check("--witness", w1.VKey, "--witness", w2.VKey, "--quorum", "2"); err != nil {
			t.Errorf("sumdb check --quorum 2 once %s is back: %v\n%s", w2.Name, err, out)
		}
	})

	t.Run("fork", func(t *testing.T) {
		// Another server, under the same key and name, with another tree,
		// larger than the one the witness saw.
		forkDir := t.TempDir()
		key, err := os.ReadFile(filepath.Join(dir, defaultKeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(forkDir, defaultKeyFileName), key, 0o600); err != nil {
			t.Fatal(err)
		}
		fork, err := startSumdb(t, "--data-dir", forkDir, "--listen", "127.0.0.1:0", "--upstream", px.upstreamURL, "--private", "off",
			"--witness", w1.VKey+" "+w1.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer fork.stop()
		other := newGoUser(t, px.goProxyURL)
		omod := newMainModule(t, mods[3], mods[4], mods[5])
		other.mustRun(omod, fork.gosumdb, "get", mods[3]+"@v1.0.0", mods[4]+"@v1.0.0", mods[5]+"@v1.0.0")
		if m := waitLog(fork, `level=ERROR.*FORK.*`); m == nil {
			t.Errorf("the forked server did not report the witness's refusal loudly")
		}
		// The witness still cosigns the honest log.
		user.mustRun(mod, srv.gosumdb, "mod", "tidy")
		cosigned(w1.Name, w2.Name)
	})
}
