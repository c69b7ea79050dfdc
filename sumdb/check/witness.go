package check

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

// A WitnessReport is the outcome of checking the witnesses' cosignatures
// on the log's newest tree head, with Config.Witnesses.
type WitnessReport struct {
	// Policy describes the witness policy.
	Policy string `json:"policy"`
	// Head is the head checked, the log's /latest; nil if none could be
	// read.
	Head *Head `json:"head,omitempty"`
	// Signers are the witnesses whose cosignature on Head verified;
	// Missing the others, of which Invalid had a cosignature that does not
	// verify.
	Signers []string `json:"signers"`
	Missing []string `json:"missing,omitempty"`
	Invalid []string `json:"invalid,omitempty"`
	// Error, if not empty, says why no head cosigned by a quorum of the
	// witnesses could be had: no line was looked up.
	Error string `json:"error,omitempty"`
	// Status is the exit status Error calls for: 1 if the log served a head
	// without the quorum, or one that is not its own, 3 if it could not be
	// read; 0 without Error.
	Status int `json:"status"`
}

// witness reads the log's newest head, checks its cosignatures against p,
// proves it consistent with the newest head verified before (the state's),
// and makes it the head that lookups are proved against: from then on a
// lookup is accepted only for a record below its size, so that every
// record accepted is in a tree the witnesses cosigned (see ReadRemote).
// Lookups come with the log's newest heads, which the witnesses may not
// have cosigned yet; the client proves each consistent with this one, and
// a record the log added since is not yet witnessed.
func (o *clientOps) witness(p *witnessed.Policy) *WitnessReport {
	rep := &WitnessReport{Policy: p.String(), Signers: []string{}}
	fail := func(status int, format string, args ...any) *WitnessReport {
		rep.Status, rep.Error = status, fmt.Sprintf(format, args...)
		return rep
	}
	msg, err := o.remote.Get(o.ctx, "latest")
	if err != nil {
		return fail(3, "read the log's newest tree head: %v (try again later)", err)
	}
	tree, err := client.OpenTreeHead(msg, note.VerifierList(o.remote.Verifier))
	if err != nil {
		return fail(1, "the log's newest tree head does not verify with its key %s: %v: do not trust its answers, and tell its operator", o.remote.Key, err)
	}
	rep.Head = &Head{Size: tree.N, Hash: tree.Hash.String()}
	signers, err := p.Check(msg)
	rep.Signers = append(rep.Signers, signers...)
	var nerr *witnessed.NotWitnessedError
	if errors.As(err, &nerr) {
		rep.Missing, rep.Invalid = nerr.Missing, nerr.Invalid
		return fail(1, "the log's tree head of size %d: %v", tree.N, err)
	}
	if err != nil {
		return fail(1, "the log's tree head of size %d: %v", tree.N, err)
	}

	o.mu.Lock()
	latest := o.latest
	o.mu.Unlock()
	if len(latest) > 0 {
		old, err := client.OpenTreeHead(latest, note.VerifierList(o.remote.Verifier))
		if err != nil {
			return fail(3, "the newest verified tree head: %v", err) // newOps opened it: cannot happen
		}
		older, olderNote, newer, newerNote := old, latest, tree, msg
		if old.N > tree.N {
			older, olderNote, newer, newerNote = tree, msg, old, latest
		}
		if err := o.checkTrees(older, olderNote, newer, newerNote); err != nil {
			if errors.Is(err, errFork) {
				return fail(1, "the log's tree head of size %d cosigned by the witnesses is inconsistent with the newest one verified before, of size %d: the log forked (see the SECURITY ERROR)", tree.N, old.N)
			}
			if errors.Is(err, client.ErrUpstream) || errors.Is(err, client.ErrNotFound) || o.ctx.Err() != nil {
				return fail(3, "prove the log's tree head of size %d consistent with the newest one verified before, of size %d: %v (try again later)", tree.N, old.N, err)
			}
			return fail(1, "prove the log's tree head of size %d consistent with the newest one verified before, of size %d: %v: the log's tiles do not verify against its signed heads; do not trust its answers, and tell its operator", tree.N, old.N, err)
		}
		if old.N >= tree.N {
			// The state's head is as new: the client starts from it, and
			// it holds the witnessed tree.
			o.mu.Lock()
			o.witnessedN = tree.N
			o.mu.Unlock()
			return rep
		}
	}
	// The witnessed head becomes the newest verified head, kept with its
	// cosignatures in the state file.
	if err := o.WriteConfig(o.name+"/latest", latest, msg); err != nil {
		return fail(3, "keep the log's tree head of size %d: %v (try again)", tree.N, err)
	}
	o.mu.Lock()
	o.witnessedN = tree.N
	o.mu.Unlock()
	return rep
}

// errFork marks the proof that two signed heads of the log are
// inconsistent; the SECURITY ERROR is recorded.
var errFork = errors.New("the log's tree heads are inconsistent")

// checkTrees proves that the tree older (of the signed note olderNote) is a
// prefix of the tree newer, with the log's hash tiles authenticated by
// newer, as x/mod's sumdb.Client does before it trusts a newer head. A fork
// is recorded as the client records one, as a SECURITY ERROR naming both
// heads with the proof, and the error wraps errFork.
func (o *clientOps) checkTrees(older xtlog.Tree, olderNote []byte, newer xtlog.Tree, newerNote []byte) error {
	thr := xtlog.TileHashReader(newer, &tileRecorder{o: o, tiles: make(map[string][]byte)})
	h := newer.Hash
	if older.N != newer.N {
		// Two heads of one size need no tiles: their roots must be equal.
		var err error
		if h, err = xtlog.TreeHash(older.N, thr); err != nil {
			return fmt.Errorf("tree of size %d within tree of size %d: %w", older.N, newer.N, err)
		}
	}
	if h == older.Hash {
		return nil
	}
	indent := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\n\t")) }
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "SECURITY ERROR\ngo.sum database server misbehavior detected!\n\n")
	fmt.Fprintf(&buf, "old database:\n\t%s\n", indent(olderNote))
	fmt.Fprintf(&buf, "new database:\n\t%s\n", indent(newerNote))
	fmt.Fprintf(&buf, "proof of misbehavior:\n\t%v", h)
	// Of one size, the two roots are the proof; else the tree proof too.
	if older.N != newer.N {
		if p, err := xtlog.ProveTree(newer.N, older.N, thr); err == nil {
			for _, ph := range p {
				fmt.Fprintf(&buf, "\n\t%v", ph)
			}
		}
	}
	o.SecurityError(buf.String())
	return errFork
}

// errNotYetWitnessed marks a lookup whose record the log added after the
// newest head the witnesses cosigned.
var errNotYetWitnessed = errors.New("record newer than the newest tree head the witnesses cosigned")

// vetWitnessed refuses a lookup answer (data) whose record is not below
// the size of the witnessed head, if there is one. The record id is the
// one the client then proves, against a head it proves consistent with the
// witnessed one: a record below its size is in the witnessed tree.
func (o *clientOps) vetWitnessed(data []byte) error {
	o.mu.Lock()
	n := o.witnessedN
	o.mu.Unlock()
	if n < 0 {
		return nil
	}
	id, _, _, err := xtlog.ParseRecord(data)
	if err != nil {
		return nil // the client refuses it
	}
	if id >= n {
		return fmt.Errorf("%w: the log holds it as record %d, and the witnesses cosigned its tree up to size %d: try again once they have cosigned a newer head", errNotYetWitnessed, id, n)
	}
	return nil
}
