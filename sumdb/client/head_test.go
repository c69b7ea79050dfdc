package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

func TestOpenTreeHead(t *testing.T) {
	t.Parallel()
	key := func(name string) (note.Signer, note.Verifier) {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		return s, v
	}
	signer, verifier := key("log.test")
	other, _ := key("log.test")
	sign := func(s note.Signer, text string) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	root := xtlog.RecordHash([]byte("root\n"))
	tree := func(n int64) string { return string(xtlog.FormatTree(xtlog.Tree{N: n, Hash: root})) }
	for _, tt := range []struct {
		name string
		msg  []byte
		n    int64 // the size returned, or named by the error
		want error // errors.Is, if an error
	}{
		{"empty tree", sign(signer, tree(0)), 0, nil},
		{"largest", sign(signer, tree(MaxTreeSize)), MaxTreeSize, nil},
		{"one more", sign(signer, tree(MaxTreeSize+1)), MaxTreeSize + 1, ErrTreeTooLarge},
		{"2^62", sign(signer, tree(1<<62)), 1 << 62, ErrTreeTooLarge},
		{"2^63-1", sign(signer, tree(1<<63-1)), 1<<63 - 1, ErrTreeTooLarge},
		{"not a tree", sign(signer, "go.sum database tree\nlarge\n"+root.String()+"\n"), 0, ErrNotTreeHead},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OpenTreeHead(tt.msg, note.VerifierList(verifier))
			if tt.want == nil {
				if err != nil || got.N != tt.n || got.Hash != root {
					t.Errorf("OpenTreeHead = %v, %v; want size %d, root %v", got, err, tt.n, root)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("OpenTreeHead = %v, %v; want an error wrapping %q", got, err, tt.want)
			}
			if size := fmt.Sprintf("tree head of %d records", tt.n); tt.want == ErrTreeTooLarge && !strings.Contains(fmt.Sprint(err), size) {
				t.Errorf("OpenTreeHead error %q does not say %q", err, size)
			}
		})
	}
	// Signed by another key of the same name: not the log's head, whatever
	// size it says.
	_, err := OpenTreeHead(sign(other, tree(1<<62)), note.VerifierList(verifier))
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) || errors.Is(err, ErrTreeTooLarge) {
		t.Errorf("OpenTreeHead of a head signed by another key = %v, want a *note.UnverifiedNoteError", err)
	}
}
