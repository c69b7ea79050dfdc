package witnesstest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// origin is the first line of every checksum database's signed tree head.
const origin = "go.sum database tree"

// TestWitness runs a litewitness for a checksum database's log and speaks
// c2sp.org/tlog-witness to it by hand: it cosigns the first head, then a
// newer one with a consistency proof, answers 409 with its size to a
// request from the wrong old size and 403 to a head signed by another
// key, and keeps its state across a restart.
func TestWitness(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	db.AppendSynthetic("first", 5)
	w := Start(t, "witness.test/one", origin, db.Key.VKey)
	if !strings.HasPrefix(w.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %q, want http://127.0.0.1:<port>", w.URL)
	}
	if w.Name != "witness.test/one" {
		t.Errorf("Name = %q, want witness.test/one", w.Name)
	}

	head1 := db.Latest()
	tree1 := parseTree(t, head1)
	if first, _, _ := strings.Cut(string(head1), "\n"); first != origin {
		t.Fatalf("first line of the signed tree head = %q, want %q", first, origin)
	}
	cosign(t, w, 0, nil, head1)

	db.AppendSynthetic("second", 7)
	head2 := db.Latest()
	tree2 := parseTree(t, head2)
	if tree2.N <= tree1.N {
		t.Fatalf("tree size after appending = %d, want more than %d", tree2.N, tree1.N)
	}
	cosign(t, w, tree1.N, prove(t, db, tree2, tree1.N), head2)

	other := sumdbtest.NewKey(t, sumdbtest.KeyName)
	forged, err := note.Sign(&note.Note{Text: string(noteText(t, head2))}, other.Signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		oldSize int64
		head    []byte
		status  int
		body    string // the whole body of a 409, else a part
	}{
		{"old size 0 after a cosigned head", 0, head2, http.StatusConflict, fmt.Sprintf("%d\n", tree2.N)},
		{"old size of an older head", tree1.N, head2, http.StatusConflict, fmt.Sprintf("%d\n", tree2.N)},
		{"signed by another key", tree2.N, forged, http.StatusForbidden, "invalid signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := addCheckpoint(t, w, tt.oldSize, nil, tt.head)
			if status != tt.status {
				t.Fatalf("add-checkpoint(old %d) = %d %q, want %d", tt.oldSize, status, body, tt.status)
			}
			if tt.status == http.StatusConflict {
				if body != tt.body || ctype != "text/x.tlog.size" {
					t.Errorf("add-checkpoint(old %d) = 409 %q (%s), want 409 %q (text/x.tlog.size)", tt.oldSize, body, ctype, tt.body)
				}
			} else if !strings.Contains(body, tt.body) {
				t.Errorf("add-checkpoint(old %d) = %d %q, want it to say %q", tt.oldSize, status, body, tt.body)
			}
		})
	}

	w.Stop()
	if _, err := http.Get(w.URL + "/"); err == nil {
		t.Errorf("GET %s/ after Stop succeeded, want an error", w.URL)
	}
	w.Stop() // a second Stop does nothing

	w.Restart()
	if status, _, body := addCheckpoint(t, w, 0, nil, head2); status != http.StatusConflict || body != fmt.Sprintf("%d\n", tree2.N) {
		t.Errorf("after Restart, add-checkpoint(old 0) = %d %q, want 409 %q", status, body, fmt.Sprintf("%d\n", tree2.N))
	}
	db.AppendSynthetic("third", 3)
	head3 := db.Latest()
	tree3 := parseTree(t, head3)
	cosign(t, w, tree2.N, prove(t, db, tree3, tree2.N), head3)
}

// cosign submits head to w from oldSize with proof, and checks that the
// answer is w's valid cosignature/v1 signature of it.
func cosign(t *testing.T, w *Witness, oldSize int64, proof xtlog.TreeProof, head []byte) {
	t.Helper()
	status, _, body := addCheckpoint(t, w, oldSize, proof, head)
	if status != http.StatusOK {
		t.Fatalf("add-checkpoint(old %d, %d hashes) = %d %q, want 200", oldSize, len(proof), status, body)
	}
	if !strings.HasPrefix(body, "— "+w.Name+" ") || strings.Count(body, "\n") != 1 {
		t.Fatalf("add-checkpoint(old %d) = %q, want one signature line of %s", oldSize, body, w.Name)
	}
	v, err := fnote.NewVerifierForCosignatureV1(w.VKey)
	if err != nil {
		t.Fatalf("NewVerifierForCosignatureV1(%q): %v", w.VKey, err)
	}
	// The cosignature is a signature line of the head's own note.
	n, err := note.Open(append(bytes.Clone(head), body...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("opening the head with the witness's cosignature %q: %v", body, err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != w.Name || n.Sigs[0].Hash != v.KeyHash() {
		t.Errorf("verified signatures = %+v, want one by %s", n.Sigs, w.Name)
	}
	if _, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err != nil {
		t.Errorf("CoSigV1Timestamp(cosignature): %v", err)
	}
}

// addCheckpoint POSTs an add-checkpoint request to w and returns the
// answer's status, content type and body.
func addCheckpoint(t *testing.T, w *Witness, oldSize int64, proof xtlog.TreeProof, head []byte) (int, string, string) {
	t.Helper()
	var req bytes.Buffer
	fmt.Fprintf(&req, "old %d\n", oldSize)
	for _, h := range proof {
		fmt.Fprintf(&req, "%s\n", h)
	}
	req.WriteString("\n")
	req.Write(head)
	resp, err := http.Post(w.URL+"/add-checkpoint", "text/plain", &req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// noteText returns the text of a signed note: all before its signatures.
func noteText(t *testing.T, signed []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("signed note %q has no signatures", signed)
	}
	return signed[:i+1]
}

// parseTree returns the tree of a signed tree head.
func parseTree(t *testing.T, head []byte) xtlog.Tree {
	t.Helper()
	tree, err := xtlog.ParseTree(noteText(t, head))
	if err != nil {
		t.Fatalf("ParseTree(%q): %v", head, err)
	}
	return tree
}

// prove returns the proof that the tree of size n is a prefix of tree,
// from the log's tiles.
func prove(t *testing.T, db *sumdbtest.DB, tree xtlog.Tree, n int64) xtlog.TreeProof {
	t.Helper()
	hr := xtlog.TileHashReader(tree, db.Log.TileReader(t.Context()))
	p, err := xtlog.ProveTree(tree.N, n, hr)
	if err != nil {
		t.Fatalf("ProveTree(%d, %d): %v", tree.N, n, err)
	}
	return p
}
