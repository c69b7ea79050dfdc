package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// Files of the state directory.
const (
	dbFile     = "log.db"
	vkeyFile   = "log.vkey"
	keyFile    = "audit.key"
	latestFile = "latest"
)

// checkpointName is the key name of the auditor's checkpoint signatures.
// It names nobody's log: the .localhost domain is reserved (RFC 6761).
const checkpointName = "audit.sumdb.localhost"

// A signedHead is a verified tree head of the log and its note.
type signedHead struct {
	xtlog.Tree
	Note []byte
}

// An auditor is the state of one Run. All its fields are owned by Run's
// goroutine, except rep, which the clone's writer and the rehash workers
// also update, under mu.
type auditor struct {
	cfg    Config
	remote *client.Remote
	logger *slog.Logger
	dir    string
	st     *store.SQLite

	signer    note.Signer    // the auditor's checkpoint key
	verifier  note.Verifier  // its verifier
	verifiers note.Verifiers // the log's key and the auditor's

	head   tlog.Head   // the clone's stored head
	edge   *tlog.Edge  // the right edge of the clone, of size head.Size
	latest *signedHead // the newest verified signed head of the log, or nil
	// vouched is the clone's tree when this run proved it is a signed
	// head's tree or a prefix of it (see checkClone).
	vouched xtlog.Tree

	mu  sync.Mutex
	rep *Report // guarded by mu while the writer or the rehash workers run
}

// open opens or creates the state directory of cfg and loads the clone.
func open(ctx context.Context, cfg Config) (*auditor, error) {
	dir := cfg.Dir
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w: %s", dir, err, fixStateDir)
	}
	a := &auditor{
		cfg:    cfg,
		remote: cfg.Remote,
		logger: cfg.Logger,
		dir:    dir,
		rep:    &Report{Name: cfg.Remote.Verifier.Name()},
	}
	if err := a.checkLogKey(); err != nil {
		return nil, err
	}
	if err := a.loadSigner(); err != nil {
		return nil, err
	}
	a.verifiers = note.VerifierList(a.remote.Verifier, a.verifier)
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, dbFile))
	if err != nil {
		return nil, fmt.Errorf("open the clone: %w", err)
	}
	a.st = st
	if err := a.reload(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := a.loadLatest(); err != nil {
		st.Close()
		return nil, err
	}
	a.rep.Records = a.head.Size
	return a, nil
}

func (a *auditor) close() {
	if err := a.st.Close(); err != nil {
		a.logger.Error("audit: close the clone", "err", err)
	}
}

// checkLogKey makes sure the state directory audits the remote's log.
func (a *auditor) checkLogKey() error {
	file := filepath.Join(a.dir, vkeyFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return writeFileAtomic(file, []byte(a.remote.Key+"\n"), 0o644)
	}
	if err != nil {
		return fmt.Errorf("read the log's key: %w", err)
	}
	if have := strings.TrimSpace(string(data)); have != a.remote.Key {
		return fmt.Errorf("state directory %s holds the audit of the log with key %s, not %s: use another state directory", a.dir, have, a.remote.Key)
	}
	return nil
}

// loadSigner reads the auditor's checkpoint key, making it on first use.
// The file holds the signer key and, on a second line, its verifier key.
func (a *auditor) loadSigner() error {
	file := filepath.Join(a.dir, keyFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		skey, vkey, gerr := note.GenerateKey(rand.Reader, checkpointName)
		if gerr != nil {
			return fmt.Errorf("make the auditor's key: %w", gerr)
		}
		data = []byte(skey + "\n" + vkey + "\n")
		if err := writeFileAtomic(file, data, 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("read the auditor's key: %w", err)
	}
	lines := strings.Fields(string(data))
	if len(lines) != 2 {
		return fmt.Errorf("read the auditor's key %s: want a signer key and a verifier key, one a line: the state directory is damaged", file)
	}
	s, err := note.NewSigner(lines[0])
	if err != nil {
		return fmt.Errorf("read the auditor's key %s: %w", file, err)
	}
	v, err := note.NewVerifier(lines[1])
	if err != nil || v.Name() != s.Name() || v.KeyHash() != s.KeyHash() {
		return fmt.Errorf("read the auditor's key %s: the verifier key is not the signer's: the state directory is damaged", file)
	}
	a.signer, a.verifier = s, v
	return nil
}

// reload reads the clone's head, checks that it is signed by the log or by
// the auditor, and loads the clone's right edge, proving the stored tiles
// against the head.
func (a *auditor) reload(ctx context.Context) error {
	h, err := a.st.ReadHead(ctx)
	if err != nil {
		return fmt.Errorf("read the clone's head: %w", err)
	}
	if h.Size > 0 {
		tree, err := client.OpenTreeHead(h.Note, a.verifiers)
		switch {
		case errors.Is(err, client.ErrNotTreeHead) || errors.Is(err, client.ErrTreeTooLarge):
			return fmt.Errorf("the clone's head of size %d does not match its note (%v): the state directory is damaged, start over in a new one", h.Size, err)
		case err != nil:
			return fmt.Errorf("the clone's head of size %d is signed neither by the log nor by this auditor (%v): the state directory is damaged, start over in a new one", h.Size, err)
		case tree.N != h.Size || tree.Hash != h.Hash:
			return fmt.Errorf("the clone's head of size %d does not match its note: the state directory is damaged, start over in a new one", h.Size)
		}
	}
	e, err := tlog.LoadEdge(ctx, a.st, h)
	if err != nil {
		return fmt.Errorf("load the clone: %w", err)
	}
	a.head, a.edge = h, e
	return nil
}

// loadLatest reads the newest verified signed head of the log.
func (a *auditor) loadLatest() error {
	file := filepath.Join(a.dir, latestFile)
	msg, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the latest verified head: %w", err)
	}
	h, v := a.openHead(msg)
	if v != nil {
		return fmt.Errorf("%s: %s: the state directory is damaged, start over in a new one", file, v.Message)
	}
	a.latest = &h
	a.rep.Latest = Head{Size: h.N, Hash: h.Hash, Note: h.Note}
	return nil
}

// setLatest makes h the newest verified signed head.
func (a *auditor) setLatest(h signedHead) error {
	if err := writeFileAtomic(filepath.Join(a.dir, latestFile), h.Note, 0o644); err != nil {
		return err
	}
	a.latest = &h
	a.mu.Lock()
	a.rep.Latest = Head{Size: h.N, Hash: h.Hash, Note: h.Note}
	a.mu.Unlock()
	return nil
}

// isCheckpoint reports whether a stored head's note is the auditor's own.
func (a *auditor) isCheckpoint(h tlog.Head) bool {
	_, err := note.Open(h.Note, note.VerifierList(a.verifier))
	return err == nil
}

// checkpoint returns a head for the tree of e signed with the auditor's key.
func (a *auditor) checkpoint(e *tlog.Edge) (tlog.Head, error) {
	tree := xtlog.Tree{N: e.Size(), Hash: e.Root()}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, a.signer)
	if err != nil {
		return tlog.Head{}, fmt.Errorf("sign checkpoint %d: %w", tree.N, err)
	}
	return tlog.Head{Size: tree.N, Hash: tree.Hash, Note: msg}, nil
}

// adopt stores h, a signed head of the log at exactly the clone's size, as
// the clone's head in place of a checkpoint.
func (a *auditor) adopt(ctx context.Context, h signedHead) error {
	if a.head.Size != h.N || bytes.Equal(a.head.Note, h.Note) || !a.isCheckpoint(a.head) {
		return nil
	}
	b := &tlog.Batch{OldSize: h.N, OldHash: a.head.Hash, Head: tlog.Head{Size: h.N, Hash: h.Hash, Note: h.Note}}
	if err := a.st.Append(ctx, b); err != nil {
		return fmt.Errorf("store the signed head of size %d: %w", h.N, err)
	}
	a.head = b.Head
	return nil
}

// violate adds v to the report.
func (a *auditor) violate(v Violation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rep.Violations = append(a.rep.Violations, v)
	a.logger.Error("audit: violation", "kind", v.Kind, "msg", v.Message)
}

// violations returns the number of violations found so far.
func (a *auditor) violations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.rep.Violations)
}

// warn adds a warning to the report.
func (a *auditor) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rep.Warnings = append(a.rep.Warnings, msg)
	a.logger.Warn("audit: " + msg)
}

// localRoot returns the root of the clone's first n records, n ≤ its size.
func (a *auditor) localRoot(ctx context.Context, n int64) (xtlog.Hash, error) {
	if n == 0 {
		return emptyRoot(), nil
	}
	if n == a.head.Size {
		return a.head.Hash, nil
	}
	thr := xtlog.TileHashReader(xtlog.Tree{N: a.head.Size, Hash: a.head.Hash}, &storeTiles{ctx: ctx, st: a.st})
	h, err := xtlog.TreeHash(n, thr)
	if err != nil {
		return xtlog.Hash{}, fmt.Errorf("root of the clone's first %d records: %w", n, err)
	}
	return h, nil
}

// emptyRoot returns the root of the empty tree.
func emptyRoot() xtlog.Hash {
	h, _ := xtlog.TreeHash(0, nil) // never fails: it reads no hash
	return h
}

// A storeTiles serves x/mod's TileHashReader from the clone. A stored tile
// may be wider than the one asked for: the request is its prefix.
type storeTiles struct {
	ctx context.Context
	st  tlog.Store
}

func (r *storeTiles) Height() int { return tlog.TileHeight }

func (r *storeTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.st.ReadTile(r.ctx, t.L, t.N)
		if err != nil {
			return nil, err
		}
		if len(b) < t.W*xtlog.HashSize {
			return nil, fmt.Errorf("read tile %s: the clone holds %d hashes", t.Path(), len(b)/xtlog.HashSize)
		}
		data[i] = b[:t.W*xtlog.HashSize]
	}
	return data, nil
}

func (r *storeTiles) SaveTiles([]xtlog.Tile, [][]byte) {}

// fixStateDir says what to do about a state directory that cannot be
// written: a local problem, never the log's.
const fixStateDir = "the state directory must be a writable directory: fix it, or audit into another state directory"

// writeFileAtomic writes data to file as durable.WriteFile does, so that a
// crash leaves the old content or the new, never a mix.
func writeFileAtomic(file string, data []byte, perm os.FileMode) error {
	if err := durable.WriteFile(file, data, perm); err != nil {
		return fmt.Errorf("%w: %s", err, fixStateDir)
	}
	return nil
}
