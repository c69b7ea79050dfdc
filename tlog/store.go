// Package tlog is the log engine of sumdb: an append-only Merkle tree of go.sum
// records, stored as hash tiles in the layout of golang.org/x/mod/sumdb/tlog,
// with a group-commit sequencer that signs a new tree head for every batch.
//
// The package does the tree and tile math and decides what to write; it never
// speaks SQL or HTTP. Storage is behind the Store interface declared here.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	xtlog "golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of every hash tile (the go command only uses 8).
const TileHeight = 8

// TileWidth is the number of hashes in a full tile.
const TileWidth = 1 << TileHeight

// A Record is one entry of the log: a module version and its two go.sum lines.
type Record struct {
	ID      int64  // position in the log, from 0
	Path    string // module path, unescaped
	Version string // module version, canonical
	Text    []byte // "<path> <version> h1:...\n<path> <version>/go.mod h1:...\n"
}

// Key returns "path@version", the record's unique key.
func (r Record) Key() string { return r.Path + "@" + r.Version }

// A Head is a signed tree head.
type Head struct {
	Size int64      // number of records in the tree
	Hash xtlog.Hash // root hash of the tree of Size records
	Note []byte     // the note.Sign'd text of xtlog.FormatTree(Size, Hash)
}

// A Tile is the content of one hash tile, as stored.
//
// Level L holds the hashes at tree level L*TileHeight; tile Index covers the
// hashes [Index*TileWidth, Index*TileWidth+W) of that level, where
// W = len(Hashes)/32. A tile grows until it holds TileWidth hashes; a request
// for a partial tile of width W is a prefix of the stored tile.
type Tile struct {
	Level  int
	Index  int64
	Hashes []byte
}

// A Batch is everything one append commits, atomically.
type Batch struct {
	// OldSize and OldHash are the size and root hash of the tree the batch
	// was computed against (OldHash is ignored when OldSize is 0: there is
	// one empty tree). The store must commit the batch only if its current
	// head has exactly this size and this root hash: a fence on the size alone would let a writer
	// extend another tree of the same size (a database that failed over to
	// a replica that lost commits, then grew back to that size through
	// another writer), and the new head would contradict heads served
	// before.
	OldSize int64
	OldHash xtlog.Hash
	// Records are the new records, with IDs OldSize, OldSize+1, ... in order.
	Records []Record
	// Tiles are the hash tiles that changed, each with its whole new content.
	Tiles []Tile
	// Head is the new signed head, of size OldSize+len(Records).
	Head Head
	// History holds signed heads of prefixes of the batch, of sizes
	// strictly between OldSize and Head.Size, in increasing size, to add
	// to the head history with Head. The sequencer signs one head per
	// batch and leaves it empty; an import, which copies the history of
	// another copy of the log, commits many of its heads in one batch.
	// The store does not recompute their hashes: the caller has checked
	// each against the tree of its prefix.
	History []Head
}

// ErrConflict is returned by Store.Append when the stored head is not the
// batch's OldSize and OldHash: another writer appended first, or the store
// holds another tree of that size.
var ErrConflict = errors.New("tree head changed under the append")

// ErrNotFound is returned by Store reads for a record or tile that is not stored.
var ErrNotFound = errors.New("not found")

// ErrUnavailable marks an error of a store that cannot be reached (database
// down, connection refused or lost, timeout): the operation may succeed if
// retried later. Callers answer "try again later" (503), never "not found".
var ErrUnavailable = errors.New("store unavailable")

// A DuplicateError is returned by Store.Append when some of the batch's
// records already exist (by path and version). Nothing is written.
type DuplicateError struct {
	Keys []string // "path@version" of each record that already exists
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("records already in the log: %s", strings.Join(e.Keys, ", "))
}

// A Store keeps the log durably. Implementations are safe for concurrent use
// by several goroutines and several processes sharing one database.
type Store interface {
	// ReadHead returns the newest committed head, or a zero Head (Size 0,
	// no Note) if nothing was ever appended.
	ReadHead(ctx context.Context) (Head, error)

	// Append commits b in one transaction: the records, the tiles (inserted or
	// replaced by their new, longer content, of which the stored content must
	// be a prefix), b.Head as the current head, and b.History and b.Head into
	// the head history. It commits only if the current head's size and root
	// hash are b.OldSize and b.OldHash, else it returns ErrConflict (checked
	// first); if any record's path and version already exist it returns a
	// *DuplicateError. With either of those nothing is written. When Append returns nil the batch is durable.
	// Any other error leaves the outcome unknown (the connection may have
	// dropped after the commit was sent): the caller must reread the head.
	//
	// The caller guarantees a well-formed batch: no two records with the same
	// path and version, each Text starting with "<path> <version> ", a
	// non-empty Head.Note, History sizes increasing strictly between OldSize
	// and Head.Size. Stores may refuse a batch that is not.
	//
	// A batch may be large (an import commits tens of thousands of records
	// at once); stores use their bulk-load path for those.
	Append(ctx context.Context, b *Batch) error

	// AppendLocked locks the stored head (excluding every other append, of
	// this process or another sharing the database), calls prepare with
	// it, and commits the batch prepare returns as Append does, with the
	// same errors. Writers that compute their batch under the lock never
	// conflict: each waits for the lock, then extends the head it finds.
	// prepare may read the store: what it reads cannot change while the
	// lock is held. AppendLocked calls prepare at most once; if prepare
	// returns an error, AppendLocked returns it and writes nothing.
	AppendLocked(ctx context.Context, prepare func(Head) (*Batch, error)) error

	// Lookup returns the record for path@version, or ErrNotFound.
	Lookup(ctx context.Context, path, version string) (Record, error)

	// ReadRecords returns the records with IDs [start, start+n), in order.
	// It returns fewer if the log ends before start+n.
	ReadRecords(ctx context.Context, start int64, n int) ([]Record, error)

	// ReadTile returns the stored content of the hash tile (level, index),
	// or ErrNotFound.
	ReadTile(ctx context.Context, level int, index int64) ([]byte, error)

	// ReadHeads returns the signed heads in the history with sizes in
	// [lo, hi], in increasing size.
	ReadHeads(ctx context.Context, lo, hi int64) ([]Head, error)

	// Close releases the store's resources.
	Close() error
}
