// Package fakewitness runs a witness of c2sp.org/tlog-witness in-process
// on loopback, for the tests of a log that submits its heads to witnesses:
// it checks the log's signature and the consistency proof from the size it
// holds, answers 409 with that size to another old size, and cosigns with
// cosignature/v1 (c2sp.org/tlog-cosignature). Faults can be switched on.
package fakewitness

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// A Witness is a witness on loopback for one log.
type Witness struct {
	URL  string
	VKey string // its cosignature/v1 verifier key
	Name string

	log    note.Verifier
	signer note.Signer
	Server *httptest.Server // close its listener to take the witness down

	mu       sync.Mutex
	size     int64         // guarded by mu; the size it cosigned last
	hash     xtlog.Hash    // guarded by mu; the root hash at size
	mode     string        // guarded by mu; "" to work, or a fault: "403", "500", "garbage", "slow", "hold"
	release  chan struct{} // guarded by mu; closed to let the held calls go on
	held     int           // guarded by mu; calls that reached "hold"
	requests []Request     // guarded by mu; the add-checkpoint calls it answered
}

// A Request is one add-checkpoint call as a Witness answered it.
type Request struct {
	Old, Size int64 // the old size and the checkpoint's size
	Proof     int   // hashes in the consistency proof
	Status    int   // the answer's HTTP status
}

// New starts a witness named name for the log of verifier logV, stopped
// when the test ends.
func New(t testing.TB, name string, logV note.Verifier) *Witness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	f := &Witness{VKey: cvkey, Name: name, log: logV, signer: signer, release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	t.Cleanup(func() { f.SetMode("") })
	f.URL = f.Server.URL
	return f
}

// SetMode sets the fault the witness shows: "403", "500", "garbage" (200
// with no valid cosignature), "slow" (5s, or until the request ends),
// "hold" (calls wait for the next SetMode); "" makes it work again.
func (f *Witness) SetMode(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == "hold" && mode != "hold" {
		close(f.release)
		f.release = make(chan struct{})
	}
	f.mode = mode
}

// State returns the size the witness holds and its calls so far.
func (f *Witness) State() (int64, []Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size, append([]Request(nil), f.requests...)
}

func (f *Witness) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	f.mu.Lock()
	mode, release := f.mode, f.release
	f.mu.Unlock()
	switch mode {
	case "403":
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	case "500":
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case "garbage":
		io.WriteString(w, "— "+f.Name+" bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==\n<html>\n")
		return
	case "slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
		return
	case "hold":
		f.mu.Lock()
		f.held++
		f.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	status, answer := f.addCheckpoint(body)
	if status == http.StatusConflict {
		w.Header().Set("Content-Type", "text/x.tlog.size")
	}
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

// addCheckpoint answers an add-checkpoint body as c2sp.org/tlog-witness
// says: old size, proof lines, a blank line, the signed checkpoint.
func (f *Witness) addCheckpoint(body []byte) (int, string) {
	br := bufio.NewReader(bytes.NewReader(body))
	first, err := br.ReadString('\n')
	oldText, ok := strings.CutPrefix(first, "old ")
	if err != nil || !ok {
		return http.StatusBadRequest, "no old line"
	}
	old, err := strconv.ParseInt(strings.TrimSuffix(oldText, "\n"), 10, 64)
	if err != nil || old < 0 {
		return http.StatusBadRequest, "bad old size"
	}
	var proof xtlog.TreeProof
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return http.StatusBadRequest, "no blank line"
		}
		if line == "\n" {
			break
		}
		h, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line, "\n"))
		if err != nil || len(h) != xtlog.HashSize {
			return http.StatusBadRequest, "bad proof line"
		}
		proof = append(proof, xtlog.Hash(h))
	}
	rest, _ := io.ReadAll(br)
	n, err := note.Open(rest, note.VerifierList(f.log))
	if err != nil {
		return http.StatusForbidden, "checkpoint not signed by the log"
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return http.StatusBadRequest, "bad checkpoint"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	status := f.check(old, tree, proof)
	f.requests = append(f.requests, Request{Old: old, Size: tree.N, Proof: len(proof), Status: status})
	switch status {
	case http.StatusOK:
	case http.StatusConflict:
		return status, fmt.Sprintf("%d\n", f.size)
	default:
		return status, "refused"
	}
	f.size, f.hash = tree.N, tree.Hash
	signed, err := note.Sign(&note.Note{Text: n.Text}, f.signer)
	if err != nil {
		return http.StatusInternalServerError, "sign"
	}
	return http.StatusOK, string(signed[len(n.Text)+1:])
}

// check returns the status of a submission of tree with a proof from old;
// f.mu is held.
func (f *Witness) check(old int64, tree xtlog.Tree, proof xtlog.TreeProof) int {
	switch {
	case old > tree.N:
		return http.StatusBadRequest
	case old != f.size:
		return http.StatusConflict
	case old == tree.N:
		if len(proof) != 0 {
			return http.StatusBadRequest
		}
		if old > 0 && tree.Hash != f.hash {
			return http.StatusConflict
		}
	case old == 0:
		if len(proof) != 0 {
			return http.StatusUnprocessableEntity
		}
	default:
		if err := xtlog.CheckTree(proof, tree.N, tree.Hash, old, f.hash); err != nil {
			return http.StatusUnprocessableEntity
		}
	}
	return http.StatusOK
}

// Held returns the calls that reached mode "hold" so far.
func (f *Witness) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}
