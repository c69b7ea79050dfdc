package sumdbtest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// SignTree returns the tree head of n records with root hash, signed with
// k, whether any tree has them or not: the head of a hostile log.
func (k Key) SignTree(t testing.TB, n int64, hash xtlog.Hash) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: n, Hash: hash}))}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// ClaimedHead returns the handler of a log that signs head and serves
// nothing that proves it: /latest answers head; a lookup answers record 0,
// the go.sum lines of SynthText for the module version asked, followed by
// head; anything else is not found.
func ClaimedHead(head []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/latest" {
			w.Write(head)
			return
		}
		esc, ok := strings.CutPrefix(p, "/lookup/")
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		escPath, escVersion, _ := strings.Cut(esc, "@")
		path, err1 := module.UnescapePath(escPath)
		version, err2 := module.UnescapeVersion(escVersion)
		if err1 != nil || err2 != nil {
			http.Error(w, "bad module version", http.StatusBadRequest)
			return
		}
		msg, err := xtlog.FormatRecord(0, SynthText(path, version))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(append(msg, head...))
	})
}

// Returns calls f with a context whose deadline is 10s away and returns
// what f returns. A call still running 20s after the start has ignored its
// deadline, spinning where no context reaches: the test fails then, instead
// of hanging until the test binary's timeout. (The goroutine running f is
// left behind.)
func Returns[T any](t testing.TB, f func(ctx context.Context) T) T {
	t.Helper()
	const deadline, hang = 10 * time.Second, 20 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	done := make(chan T, 1)
	go func() { done <- f(ctx) }()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	select {
	case v := <-done:
		return v
	case <-timer.C:
		t.Fatalf("still running %v after the start, %v after its context's deadline: it hangs", hang, hang-deadline)
		panic("unreachable")
	}
}
