package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// verifyHead verifies the signed head msg against everything seen before and
// extends the clone up to it. Violations go to the report; the error is for
// a verification that could not complete.
func (a *auditor) verifyHead(ctx context.Context, msg []byte) error {
	h, v := a.openHead(msg)
	a.mu.Lock()
	a.rep.Heads++
	a.mu.Unlock()
	if v != nil {
		a.violate(*v)
		return nil
	}
	if h.N == 0 {
		// Every log's tree of size 0 is the empty tree, as x/mod's client
		// has it before it trusts any head.
		if empty := emptyRoot(); h.Hash != empty {
			a.violate(Violation{Kind: KindFork, Heads: [][]byte{h.Note},
				Message: fmt.Sprintf("the signed head of size 0 has root %v, but the tree of size 0 is the empty tree, of root %v", h.Hash, empty)})
			return nil
		}
		if a.latest == nil {
			a.warn("the log signs an empty tree: nothing to audit")
			return nil
		}
		// After a larger head: a stale head, below.
	}
	a.logger.InfoContext(ctx, "audit: signed head", "size", h.N, "hash", h.Hash)

	// Against the newest signed head verified before: consistency is
	// transitive, so this checks h against every head seen before.
	if l := a.latest; l != nil {
		switch {
		case h.N == l.N:
			if h.Hash != l.Hash {
				a.fork(*l, h, fmt.Sprintf("two signed heads of size %d with different roots %v and %v", h.N, l.Hash, h.Hash))
				return nil
			}
			// The same head: extend the clone if it stopped short of it.
		case h.N < l.N:
			// The clone first, so that its root is l's below.
			if ok, err := a.checkClone(ctx, *l); !ok || err != nil {
				return err
			}
			var root xtlog.Hash
			if h.N <= a.head.Size {
				// The clone's tree, proven against l, or its prefix,
				// is l's tree.
				r, err := a.localRoot(ctx, h.N)
				if err != nil {
					return err
				}
				root = r
			} else {
				r, v, err := a.rootAt(ctx, *l, h.N)
				if err != nil || v != nil {
					return a.problem(v, err)
				}
				root = r
			}
			if root != h.Hash {
				a.fork(*l, h, fmt.Sprintf("the signed head of size %d has root %v, but the tree of the earlier signed head of size %d has root %v at that size", h.N, h.Hash, l.N, root))
				return nil
			}
			a.warn("stale signed head: size %d, older than the verified head of size %d (consistent with it)", h.N, l.N)
			return nil
		default:
			ok, v, err := a.consistent(ctx, h, l.Tree)
			if err != nil || v != nil {
				return a.problem(v, err)
			}
			if !ok {
				a.fork(*l, h, fmt.Sprintf("the signed head of size %d is not consistent with the earlier signed head of size %d: the tree of size %d is not a prefix of the new tree", h.N, l.N, l.N))
				return nil
			}
		}
	}

	// h is consistent with every head verified before: the clone against h.
	if ok, err := a.checkClone(ctx, h); !ok || err != nil {
		return err
	}

	target := h.N
	if lim := a.cfg.Limit; lim > 0 {
		lim = (lim + tlog.TileWidth - 1) / tlog.TileWidth * tlog.TileWidth
		target = max(a.head.Size, min(target, lim))
	}
	found := len(a.rep.Violations)
	if target > a.head.Size {
		if err := a.clone(ctx, h, target); err != nil {
			return err
		}
	}
	if err := a.endBulk(ctx); err != nil {
		return err
	}
	if len(a.rep.Violations) > found {
		return nil
	}
	if a.latest == nil || h.N > a.latest.N {
		if err := a.setLatest(h); err != nil {
			return err
		}
	}
	return a.adopt(ctx, h)
}

// checkClone proves the clone against ref, a signed head verified
// consistent with every head seen before, when nothing else vouches for it:
// when its head is a checkpoint of the auditor (records verified only
// against the hash tiles the server served with them, as an interrupted run
// or --limit leaves them), or when it is larger than the newest verified
// head. It reports whether the clone is ref's tree or a prefix of it (or
// holds ref's tree); a violation goes to the report.
//
// A clone of size m ≤ ref.N must have the root that the server's hash tiles,
// authenticated by ref, give at size m; a larger clone must hold ref's root
// at size ref.N, and the records past it are proven when a clone reaches a
// larger signed head. A checkpoint proven against ref at ref's size is
// replaced by ref, and one proven below is remembered for the rest of the
// run.
func (a *auditor) checkClone(ctx context.Context, ref signedHead) (bool, error) {
	m := a.head.Size
	if m == 0 || a.vouched == (xtlog.Tree{N: m, Hash: a.head.Hash}) {
		return true, nil
	}
	if a.latest != nil && m <= a.latest.N && !a.isCheckpoint(a.head) {
		// A signed head of the log that the clone reached.
		return true, nil
	}
	switch {
	case m > ref.N:
		if h, err := a.localRoot(ctx, ref.N); err != nil {
			return false, err
		} else if h != ref.Hash {
			a.violate(Violation{Kind: KindRoot, Heads: [][]byte{ref.Note},
				Message: fmt.Sprintf("the signed head of size %d has root %v, but the records [0, %d) the server served before give root %v", ref.N, ref.Hash, ref.N, h)})
			return false, nil
		}
		return true, nil
	case m == ref.N:
		if a.head.Hash != ref.Hash {
			a.violate(Violation{Kind: KindRoot, Heads: [][]byte{ref.Note},
				Message: fmt.Sprintf("the signed head of size %d has root %v, but the records [0, %d) the server served before give root %v", ref.N, ref.Hash, m, a.head.Hash)})
			return false, nil
		}
		if err := a.adopt(ctx, ref); err != nil {
			return false, err
		}
	default:
		root, v, err := a.rootAt(ctx, ref, m)
		if err != nil || v != nil {
			return false, a.problem(v, err)
		}
		if root != a.head.Hash {
			a.violate(a.cloneMismatch(ctx, ref, root))
			return false, nil
		}
	}
	a.vouched = xtlog.Tree{N: m, Hash: a.head.Hash}
	return true, nil
}

// cloneMismatch is the violation of a clone whose root at its size m is not
// root, the one the tree of the signed head ref has at that size. It names
// the first record of the clone that is not ref's, if it can find it.
func (a *auditor) cloneMismatch(ctx context.Context, ref signedHead, root xtlog.Hash) Violation {
	m := a.head.Size
	v := Violation{Kind: KindRoot, Heads: [][]byte{ref.Note},
		Message: fmt.Sprintf("the records [0, %d) the server served before give root %v, but the server's hash tiles, authenticated by the signed head of size %d, give %v at that size", m, a.head.Hash, ref.N, root)}
	id, leaf, err := a.firstDiff(ctx, ref)
	if err != nil {
		a.logger.WarnContext(ctx, "audit: find the first record of the clone not in the signed tree", "err", err)
	}
	if id < 0 {
		return v
	}
	v.Records = []int64{id}
	text := []byte("?")
	if recs, err := a.st.ReadRecords(ctx, id, 1); err == nil && len(recs) == 1 {
		text = recs[0].Text
	}
	v.Message += fmt.Sprintf(": record %d of the clone (%q) hashes to %v, but the signed tree has leaf %v", id, clip(text), xtlog.RecordHash(text), leaf)
	return v
}

// firstDiff returns the first record of the clone whose leaf hash is not
// the one of the tree of ref, and ref's leaf, or -1 if there is none. It
// walks down from the largest subtrees of the clone's records, comparing
// the clone's hashes with the server's, authenticated by ref.
func (a *auditor) firstDiff(ctx context.Context, ref signedHead) (int64, xtlog.Hash, error) {
	m := a.head.Size
	local := xtlog.TileHashReader(xtlog.Tree{N: m, Hash: a.head.Hash}, &storeTiles{ctx: ctx, st: a.st})
	remote := xtlog.TileHashReader(ref.Tree, NewTileReader(ctx, a.remote, 0))
	// first returns the first of the stored hashes idx that differ, or -1,
	// and ref's hash.
	first := func(idx ...int64) (int, xtlog.Hash, error) {
		l, err := local.ReadHashes(idx)
		if err != nil {
			return 0, xtlog.Hash{}, err
		}
		r, err := remote.ReadHashes(idx)
		if err != nil {
			return 0, xtlog.Hash{}, err
		}
		for i := range idx {
			if l[i] != r[i] {
				return i, r[i], nil
			}
		}
		return -1, xtlog.Hash{}, nil
	}
	// The complete subtrees [start, start+2^level) that make up [0, m),
	// largest first.
	var levels []int
	var starts, idx []int64
	for level, start := 62, int64(0); level >= 0; level-- {
		if m&(1<<level) != 0 {
			levels, starts = append(levels, level), append(starts, start)
			idx = append(idx, xtlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	i, _, err := first(idx...)
	if err != nil || i < 0 {
		return -1, xtlog.Hash{}, err
	}
	level, start := levels[i], starts[i]
	for level > 0 {
		level--
		j, _, err := first(xtlog.StoredHashIndex(level, start>>level))
		if err != nil {
			return -1, xtlog.Hash{}, err
		}
		if j < 0 {
			// The left half is ref's: the right one is not.
			start += 1 << level
		}
	}
	j, leaf, err := first(xtlog.StoredHashIndex(0, start))
	if err != nil || j < 0 {
		return -1, xtlog.Hash{}, err
	}
	return start, leaf, nil
}

// fork reports a fork between the earlier head l and the new head h.
func (a *auditor) fork(l, h signedHead, msg string) {
	a.violate(Violation{Kind: KindFork, Heads: [][]byte{l.Note, h.Note}, Message: msg})
}

// problem reports v, if any, and returns err.
func (a *auditor) problem(v *Violation, err error) error {
	if v != nil {
		a.violate(*v)
	}
	return err
}

// consistent reports whether the tree old is a prefix of the tree of h,
// with a tree proof built from the server's hash tiles, which are
// authenticated by h. A violation means the server's tiles are not those of
// its own signed head.
func (a *auditor) consistent(ctx context.Context, h signedHead, old xtlog.Tree) (bool, *Violation, error) {
	tr := NewTileReader(ctx, a.remote, -1)
	p, err := xtlog.ProveTree(h.N, old.N, xtlog.TileHashReader(h.Tree, tr))
	if err != nil {
		v, err := a.tileTrouble(h, err)
		return false, v, err
	}
	return xtlog.CheckTree(p, h.N, h.Hash, old.N, old.Hash) == nil, nil, nil
}

// rootAt returns the root of the first n records of the tree of h, computed
// from the server's hash tiles, which are authenticated by h.
func (a *auditor) rootAt(ctx context.Context, h signedHead, n int64) (xtlog.Hash, *Violation, error) {
	tr := NewTileReader(ctx, a.remote, -1)
	root, err := xtlog.TreeHash(n, xtlog.TileHashReader(h.Tree, tr))
	if err != nil {
		v, err := a.tileTrouble(h, err)
		return xtlog.Hash{}, v, err
	}
	return root, nil, nil
}

// leafAt returns the leaf hash of record id in the tree of h, read from the
// server's hash tiles, which are authenticated by h.
func (a *auditor) leafAt(ctx context.Context, h signedHead, id int64) (xtlog.Hash, *Violation, error) {
	tr := NewTileReader(ctx, a.remote, -1)
	hs, err := xtlog.TileHashReader(h.Tree, tr).ReadHashes([]int64{xtlog.StoredHashIndex(0, id)})
	if err != nil {
		v, err := a.tileTrouble(h, err)
		return xtlog.Hash{}, v, err
	}
	return hs[0], nil, nil
}

// tileTrouble sorts an error of x/mod's TileHashReader into a failure to
// fetch (an error) and hash tiles that do not verify against the signed
// head h (a violation).
func (a *auditor) tileTrouble(h signedHead, err error) (*Violation, error) {
	var ferr *fetchError
	if errors.As(err, &ferr) {
		return nil, ferr.err
	}
	return &Violation{Kind: KindHashTile, Heads: [][]byte{h.Note},
		Message: fmt.Sprintf("the server's hash tiles do not verify against its signed head of size %d: %v", h.N, err)}, nil
}

// A fetchError is a tile that could not be fetched: not the server's
// misbehavior, as far as anyone can tell.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// IsFetchError reports whether err, from an x/mod TileHashReader over a
// TileReader, is a tile that could not be fetched (the network, the
// server's errors), rather than tiles that do not verify against the
// signed head: the first may succeed later, the second is the log's
// misbehavior.
func IsFetchError(err error) bool {
	var ferr *fetchError
	return errors.As(err, &ferr)
}

// A TileReader serves x/mod's TileHashReader, which authenticates every
// tile against a signed head, from the hash tiles of a checksum database.
// Its methods may be called concurrently.
type TileReader struct {
	ctx    context.Context
	remote *client.Remote
	level  int // the lowest level of the tiles kept in cache

	mu    sync.Mutex
	cache map[string][]byte // guarded by mu; tiles fetched, by path, if not nil
}

// NewTileReader returns a TileReader of remote's hash tiles, whose requests
// end with ctx (x/mod's interface takes no context). If cacheLevel ≥ 0,
// the tiles of that level and above are kept in memory once fetched: the
// upper levels of a log are few, the tiles of level 0 as many as its data
// tiles. The tiles kept are those TileHashReader asked for; it verifies
// them on every read.
func NewTileReader(ctx context.Context, remote *client.Remote, cacheLevel int) *TileReader {
	r := &TileReader{ctx: ctx, remote: remote, level: cacheLevel}
	if cacheLevel >= 0 {
		r.cache = make(map[string][]byte)
	}
	return r
}

// Height returns the height of the log's tiles.
func (r *TileReader) Height() int { return tlog.TileHeight }

// ReadTiles fetches tiles from the database, or takes them from the cache.
// A tile that cannot be fetched is an error for which IsFetchError is true;
// a tile of the wrong length, one TileHashReader reports as the server's.
func (r *TileReader) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		if b, ok := r.cached(t); ok {
			data[i] = b
			continue
		}
		b, err := r.remote.Get(r.ctx, t.Path())
		if err != nil {
			return nil, &fetchError{fmt.Errorf("fetch %s: %w", t.Path(), err)}
		}
		if len(b) != t.W*xtlog.HashSize {
			// The server's misbehavior: TileHashReader reports it.
			return nil, fmt.Errorf("tile %s has %d bytes, want %d", t.Path(), len(b), t.W*xtlog.HashSize)
		}
		data[i] = b
		if r.cache != nil && t.L >= r.level {
			r.mu.Lock()
			r.cache[t.Path()] = b
			r.mu.Unlock()
		}
	}
	return data, nil
}

// cached returns tile t from the cache.
func (r *TileReader) cached(t xtlog.Tile) ([]byte, bool) {
	if r.cache == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.cache[t.Path()]
	return b, ok
}

// SaveTiles does nothing: the cache keeps the tiles as they are fetched.
func (r *TileReader) SaveTiles([]xtlog.Tile, [][]byte) {}
