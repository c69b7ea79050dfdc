// Package cosigntest makes witness keys and cosignatures for tests: a
// witness's cosignature/v1 signer (c2sp.org/tlog-cosignature) and the
// signature lines it appends to a log's signed tree head.
package cosigntest

import (
	"crypto/rand"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// A Witness is a test witness's key pair.
type Witness struct {
	Signer note.Signer // makes cosignature/v1 signatures
	VKey   string      // the verifier key, "<name>+<hash>+<key>", of type cosignature/v1
}

// New returns a new witness named name.
func New(t testing.TB, name string) Witness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = fnote.VKeyToCosignatureV1(vkey); err != nil {
		t.Fatal(err)
	}
	return Witness{Signer: s, VKey: vkey}
}

// Cosign returns msg, a note signed by the log whose verifier is v, with
// the cosignatures of ws appended.
func Cosign(t testing.TB, msg []byte, v note.Verifier, ws ...Witness) []byte {
	t.Helper()
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("open signed note %q: %v", msg, err)
	}
	var signers []note.Signer
	for _, w := range ws {
		signers = append(signers, w.Signer)
	}
	out, err := note.Sign(n, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
