package client

import (
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

func TestCheckLookupHead(t *testing.T) {
	t.Parallel()
	key, other := sumdbtest.NewKey(t, "lookup.test"), sumdbtest.NewKey(t, "lookup.test")
	record, err := xtlog.FormatRecord(0, []byte("example.com/m v1.0.0 h1:x\n"))
	if err != nil {
		t.Fatal(err)
	}
	answer := func(k sumdbtest.Key, n int64) []byte {
		return append(append([]byte(nil), record...), k.SignTree(t, n, xtlog.Hash{})...)
	}
	for _, tt := range []struct {
		name     string
		data     []byte
		tooLarge bool
	}{
		{"small", answer(key, 1), false},
		{"largest", answer(key, MaxTreeSize), false},
		{"too large", answer(key, MaxTreeSize+1), true},
		{"too large, another key", answer(other, MaxTreeSize+1), false}, // the client refuses its signature
		{"not a record", []byte("garbage"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLookupHead(tt.data, note.VerifierList(key.Verifier))
			if got := errors.Is(err, ErrTreeTooLarge); got != tt.tooLarge || (err != nil) != tt.tooLarge {
				t.Errorf("CheckLookupHead(%s) = %v, want ErrTreeTooLarge: %v", tt.name, err, tt.tooLarge)
			}
		})
	}
}
