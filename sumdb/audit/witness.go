package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/sumdb/client"
)

// cosignedFile is the file of the state directory that records which
// witnesses cosigned the signed heads verified, with Config.Witnesses: one
// line per head, or per change of its cosigners, "<size> <root> <witness>,..."
// ("-" for none), appended.
const cosignedFile = "cosigned"

// maxCosigned bounds the entries of Report.Cosigned: a long --follow keeps
// the newest; the state directory's cosigned file keeps them all.
const maxCosigned = 1000

// A Cosigned says which witnesses cosigned a signed head of the log.
type Cosigned struct {
	Size int64
	Hash xtlog.Hash
	// Witnesses are those whose cosignature verified, Missing the others
	// of the policy.
	Witnesses, Missing []string
}

// checkCosigned checks the witnesses' cosignatures on msg, a signed head
// just verified, against the policy, and records them when the head or its
// cosigners changed since the last record. A head without the quorum sets
// Report.Unwitnessed until a later head meets the policy; the error is
// for a record that could not be written.
func (a *auditor) checkCosigned(msg []byte) error {
	tree, err := client.OpenTreeHead(msg, note.VerifierList(a.remote.Verifier))
	if err != nil {
		return nil // verifyHead reported it
	}
	signers, err := a.cfg.Witnesses.Check(msg)
	c := Cosigned{Size: tree.N, Hash: tree.Hash, Witnesses: signers}
	for _, w := range a.cfg.Witnesses.Witnesses() {
		if !slices.Contains(signers, w) {
			c.Missing = append(c.Missing, w)
		}
	}
	unwitnessed := ""
	if err != nil {
		unwitnessed = fmt.Sprintf("the signed head of size %d: %v", tree.N, err)
		a.logger.Warn("audit: signed head without the witnesses' quorum", "size", tree.N, "err", err)
	}
	a.mu.Lock()
	a.rep.Unwitnessed = unwitnessed
	var last *Cosigned
	if n := len(a.rep.Cosigned); n > 0 {
		last = &a.rep.Cosigned[n-1]
	}
	same := last != nil && last.Size == c.Size && last.Hash == c.Hash && slices.Equal(last.Witnesses, c.Witnesses)
	if !same {
		a.rep.Cosigned = append(a.rep.Cosigned, c)
		if len(a.rep.Cosigned) > maxCosigned {
			a.rep.Cosigned = slices.Delete(a.rep.Cosigned, 0, len(a.rep.Cosigned)-maxCosigned)
		}
	}
	a.mu.Unlock()
	if same {
		return nil
	}
	a.logger.Info("audit: witnesses", "size", c.Size, "cosigned", strings.Join(c.Witnesses, ","), "missing", strings.Join(c.Missing, ","))
	return a.recordCosigned(c)
}

// recordCosigned appends c to the state directory's cosigned file.
func (a *auditor) recordCosigned(c Cosigned) error {
	ws := strings.Join(c.Witnesses, ",")
	if ws == "" {
		ws = "-"
	}
	file := filepath.Join(a.dir, cosignedFile)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record the witnesses of the signed head of size %d: %w: %s", c.Size, err, fixStateDir)
	}
	_, err = fmt.Fprintf(f, "%d %v %s\n", c.Size, c.Hash, ws)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the witnesses of the signed head of size %d: %w: %s", c.Size, err, fixStateDir)
	}
	return nil
}
