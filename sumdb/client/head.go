package client

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// MaxTreeSize is the largest tree, in records, of a signed tree head that
// OpenTreeHead accepts: 2^40, about 1.1 trillion.
//
// x/mod's tree arithmetic, which the clients run on every head (the go
// command's sumdb.Client, tlog.TileHashReader, TreeHash, ProveTree), ends
// below 2^63: the stored hash index of record n is 2n minus the bits set
// in n, which overflows int64 just past n = 2^62, and tlog's maxpow2 never
// returns for more than 2^62, so that the first proof on a head of 2^62
// records or more spins forever where no context reaches (the go command's
// own client hangs on it too). A bound at 2^62 would keep the arithmetic
// safe; 2^40 is also far beyond any honest log, and keeps whatever a
// client multiplies or sums with a size (tile counts, progress estimates)
// far from overflow. The Go checksum database holds tens of millions of
// records; a log of 2^40 keeps 64 TiB of hashes alone and, at a million new
// module versions a day, would take three thousand years to grow. A head
// above the bound is evidence that the log is hostile or broken, never a
// large log.
const MaxTreeSize = 1 << 40

// ErrTreeTooLarge marks a signed tree head of more than MaxTreeSize
// records. The head is signed by the log's key: it is evidence against the
// log, not a failure to reach it.
var ErrTreeTooLarge = errors.New("tree head of more records than any log holds")

// A treeSizeError is a signed tree head of N > MaxTreeSize records.
type treeSizeError struct{ N int64 }

func (e *treeSizeError) Error() string {
	return fmt.Sprintf("the log signed a tree head of %d records, more than any log holds (at most 2^40 = %d): it is hostile or broken", e.N, int64(MaxTreeSize))
}

func (e *treeSizeError) Is(target error) bool { return target == ErrTreeTooLarge }

// ErrNotTreeHead marks a note signed by the log's key whose text is not a
// tree head.
var ErrNotTreeHead = errors.New("signed note is not a tree head")

// OpenTreeHead verifies that msg is a tree head signed by one of the keys
// of verifiers and returns its tree. Every client in this module reads
// the log's heads through it, before any proof is computed on them.
//
// A note that no key of verifiers signed gets note.Open's error (such as a
// *note.UnverifiedNoteError or a *note.InvalidSignatureError); a signed
// note that is not a tree head, an error wrapping ErrNotTreeHead; a tree
// head of more than MaxTreeSize records, one wrapping ErrTreeTooLarge.
func OpenTreeHead(msg []byte, verifiers note.Verifiers) (xtlog.Tree, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return xtlog.Tree{}, err
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return xtlog.Tree{}, fmt.Errorf("%w: %v", ErrNotTreeHead, err)
	}
	if tree.N > MaxTreeSize {
		return xtlog.Tree{}, &treeSizeError{tree.N}
	}
	return tree, nil
}
