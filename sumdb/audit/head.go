package audit

import (
	"context"
	"errors"
	"fmt"

	xtlog "golang.org/x/mod/sumdb/tlog"

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
		a.warn("the log signs an empty tree: nothing to audit")
		return nil
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
			var root xtlog.Hash
			if h.N <= a.head.Size {
				// The clone's tree at l.N, or its prefix, is l's tree.
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

	// Against the clone, which may hold records past the latest verified
	// head (checkpoints of an interrupted run): they were served by the
	// same server, which must not change them.
	if m := a.head.Size; m > 0 && (a.latest == nil || m > a.latest.N) {
		if h.N <= m {
			root, err := a.localRoot(ctx, h.N)
			if err != nil {
				return err
			}
			if root != h.Hash {
				a.violate(Violation{Kind: KindRoot, Heads: [][]byte{h.Note},
					Message: fmt.Sprintf("the signed head of size %d has root %v, but the records [0, %d) the server served before give root %v", h.N, h.Hash, h.N, root)})
				return nil
			}
		} else {
			ok, v, err := a.consistent(ctx, h, xtlog.Tree{N: m, Hash: a.head.Hash})
			if err != nil || v != nil {
				return a.problem(v, err)
			}
			if !ok {
				a.violate(Violation{Kind: KindRoot, Heads: [][]byte{h.Note},
					Message: fmt.Sprintf("the signed head of size %d is not consistent with the records [0, %d) the server served before (root %v)", h.N, m, a.head.Hash)})
				return nil
			}
		}
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
	tr := &remoteTiles{ctx: ctx, a: a}
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
	tr := &remoteTiles{ctx: ctx, a: a}
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
	tr := &remoteTiles{ctx: ctx, a: a}
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

// A remoteTiles serves x/mod's TileHashReader from the server.
type remoteTiles struct {
	ctx context.Context
	a   *auditor
}

func (r *remoteTiles) Height() int { return tlog.TileHeight }

func (r *remoteTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.a.remote.Get(r.ctx, t.Path())
		if err != nil {
			return nil, &fetchError{fmt.Errorf("fetch %s: %w", t.Path(), err)}
		}
		if len(b) != t.W*xtlog.HashSize {
			// The server's misbehavior: TileHashReader reports it.
			return nil, fmt.Errorf("tile %s has %d bytes, want %d", t.Path(), len(b), t.W*xtlog.HashSize)
		}
		data[i] = b
	}
	return data, nil
}

func (r *remoteTiles) SaveTiles([]xtlog.Tile, [][]byte) {}
