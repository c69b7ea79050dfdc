package tlog

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// TestPublishedFileAfterFailedWrite checks that a write that fails (an I/O
// error, here a closed file) does not leave the next write to the other
// slot, which may hold the only whole copy of the newest head: the next
// write replaces the file, both slots whole.
func TestPublishedFileAfterFailedWrite(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "published.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(n int64) []byte {
		msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: n, Hash: xtlog.Hash{byte(n)}}))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}

	file := filepath.Join(t.TempDir(), "published-head")
	p, _, err := openPublished(file, verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for n := int64(1); n <= 2; n++ {
		if err := p.write(sign(n)); err != nil {
			t.Fatalf("write head %d: %v", n, err)
		}
	}
	p.f.Close()
	if err := p.write(sign(3)); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	last := sign(4)
	if err := p.write(last); err != nil {
		t.Fatalf("write after a failed write: %v", err)
	}
	h, _, err := readPublished(file, verifier)
	if err != nil || h.Size != 4 {
		t.Fatalf("published head = %d, %v; want 4", h.Size, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, msg, ok := decodeSlot(data[i*pubSlotSize : (i+1)*pubSlotSize]); !ok || string(msg) != string(last) {
			t.Errorf("slot %d is not a whole copy of head 4", i)
		}
	}
}
