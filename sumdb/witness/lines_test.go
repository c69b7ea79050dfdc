package witness

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestWithLinesBound checks that at most 100 signatures end up in a note,
// which golang.org/x/mod/sumdb/note.Open (and so the go command) accepts
// with the log's key, ignoring the lines of keys it does not know.
func TestWithLinesBound(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	msg, err := note.Sign(&note.Note{Text: "go.sum database tree\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 99, 100, 150} {
		lines := make(map[string][]byte)
		for i := range n {
			lines[fmt.Sprintf("w%03d", i)] = fmt.Appendf(nil, "— w%03d AAAAAAAAAAAAAAAAAAAAAA==\n", i)
		}
		got := withLines(msg, lines)
		sigs := bytes.Count(got, []byte("\n— "))
		if want := min(n+1, 100); sigs != want {
			t.Errorf("withLines(%d lines) has %d signatures, want %d", n, sigs, want)
		}
		if _, err := note.Open(got, note.VerifierList(verifier)); err != nil {
			t.Errorf("note.Open(withLines(%d lines)) = %v, want the log's head accepted", n, err)
		}
		if n > 0 && !bytes.Contains(got, lines["w000"]) {
			t.Errorf("withLines(%d lines) left out w000, want the lines in name order", n)
		}
	}
}
