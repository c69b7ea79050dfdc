// Package mirror serves other checksum databases as a verifying, caching
// mirror, under a module proxy's /sumdb/<name>/ path, as the go command
// reaches a checksum database through its GOPROXY (see "Proxying a checksum
// database" in the sumdb design).
//
// Nothing is stored or served before it is verified: every signed tree
// head against the database's key and, by a consistency proof, against the
// newest head the mirror verified before; every hash tile against a
// verified head; every record by an inclusion proof in the newest verified
// head; every data tile record by record. Tiles and records never change,
// so they are kept in the Store and served from it when the upstream
// database fails or cannot be reached, with the newest verified head,
// which the go command accepts: it is consistent with every head it saw.
//
// A head that contradicts the verified one is a fork: it is refused,
// logged at ERROR with both heads and reported by Status and a metric, and
// the mirror keeps serving the tree it verified.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/singleflight"

	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// A Store keeps a mirror's verified data; *store.SQLite and *store.Postgres
// implement it. Its methods are safe for concurrent use, by several
// processes sharing one database too.
type Store interface {
	// ReadState returns the value of state name, or nil, nil if unset.
	ReadState(ctx context.Context, name string) ([]byte, error)
	// SwapState sets state name from old to new (nil: unset), atomically;
	// if name does not hold old, the error wraps tlog.ErrConflict.
	SwapState(ctx context.Context, name string, old, new []byte) error
	// ReadMirrorTile returns the stored content of tile index of level
	// (-1 for a data tile) of database db, or an error wrapping
	// tlog.ErrNotFound.
	ReadMirrorTile(ctx context.Context, db string, level int, index int64) ([]byte, error)
	// PutMirrorTile stores the content of a tile, keeping the widest
	// content stored; content that is not a prefix of the stored one, nor
	// the stored one of it, is refused with an error wrapping
	// tlog.ErrConflict.
	PutMirrorTile(ctx context.Context, db string, level int, index int64, data []byte) error
	// ReadMirrorRecord returns the stored record of path@version of
	// database db, or an error wrapping tlog.ErrNotFound.
	ReadMirrorRecord(ctx context.Context, db, path, version string) (id int64, text []byte, err error)
	// PutMirrorRecord stores the record of path@version of database db.
	PutMirrorRecord(ctx context.Context, db, path, version string, id int64, text []byte) error
}

// Defaults of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxFetches = 16
)

// A Config configures New. The zero value of a field means its default.
type Config struct {
	// Remote is the mirrored database (client.Open resolves
	// "<vkey> [url]"). Required.
	Remote *client.Remote
	// Store keeps the verified data. Required.
	Store Store
	// Logger receives the refusals of upstream data, at ERROR. Default:
	// discard.
	Logger *slog.Logger
	// Registerer receives the mirror's metrics, labelled {db="<name>"}.
	// Default: metrics kept nowhere.
	Registerer prometheus.Registerer
	// Timeout bounds each upstream request, retries included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxFetches bounds the upstream requests in progress at once.
	// Default DefaultMaxFetches.
	MaxFetches int
	// Now is the clock of Status and the head age metric. Default
	// time.Now.
	Now func() time.Time
}

// ErrRefused marks upstream data that failed verification: a head not
// signed by the database's key, a fork, a tile or record that does not hash
// to a verified head. Nothing of it was stored or served.
var ErrRefused = errors.New("upstream data refused")

// ErrFork marks a head of the upstream that contradicts the verified one.
// Errors that wrap it wrap ErrRefused too.
var ErrFork = errors.New("the upstream database forked")

// ErrUnavailable marks a failure to reach the upstream database or the
// store, or to do so in time: the request may succeed later.
var ErrUnavailable = errors.New("unavailable")

// minLatestInterval spaces the upstream /latest requests of one mirror.
const minLatestInterval = time.Second

// maxSwapTries bounds the attempts to store a new head while other
// replicas sharing the store store theirs.
const maxSwapTries = 8

// A Mirror serves one checksum database, verified and cached. It is safe
// for concurrent use.
type Mirror struct {
	remote    *client.Remote
	store     Store
	logger    *slog.Logger
	name      string
	verifiers note.Verifiers
	timeout   time.Duration
	slots     chan struct{} // one token per upstream request in progress
	now       func() time.Time
	metrics   *metrics

	gets    singleflight.Group // upstream requests, by path
	lookups singleflight.Group // lookups that missed the store, by path@version
	latests singleflight.Group // refreshes of the head from the upstream
	tiles   singleflight.Group // tiles that missed the store, by path

	accepting sync.Mutex // held while a new head is checked and stored

	mu         sync.Mutex
	head       verifiedHead // guarded by mu; the newest verified head this process knows
	verified   time.Time    // guarded by mu; when an upstream head was last verified
	fork       string       // guarded by mu; "" or the fork found
	lastErr    error        // guarded by mu; the last upstream failure, nil after a success
	lastLatest time.Time    // guarded by mu; when the upstream's /latest was last asked
}

// A verifiedHead is a signed tree head verified against the database's key
// and found consistent with every other head the mirror verified.
type verifiedHead struct {
	note []byte // nil: no head
	tree xtlog.Tree
}

// A Status is a mirror's state, for readiness checks.
type Status struct {
	Size     int64     // records in the newest verified head
	Verified time.Time // when this process last verified a head of the upstream; zero if never
	Fork     string    // the fork of the upstream found, or ""
	Err      error     // the last failure to reach the upstream, nil after a success
}

// New returns the mirror of cfg.Remote. It reads the newest verified head
// and any fork found before from the store, and fails if the stored head
// is not signed by the database's key.
func New(cfg Config) (*Mirror, error) {
	if cfg.Remote == nil || cfg.Store == nil {
		return nil, errors.New("mirror: a Remote and a Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Timeout < 0 || cfg.MaxFetches < 0 {
		return nil, fmt.Errorf("mirror: negative Timeout (%v) or MaxFetches (%d): give a positive value, or 0 for the default", cfg.Timeout, cfg.MaxFetches)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxFetches == 0 {
		cfg.MaxFetches = DefaultMaxFetches
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Mirror{
		remote:    cfg.Remote,
		store:     cfg.Store,
		logger:    cfg.Logger,
		name:      cfg.Remote.Verifier.Name(),
		verifiers: note.VerifierList(cfg.Remote.Verifier),
		timeout:   cfg.Timeout,
		slots:     make(chan struct{}, cfg.MaxFetches),
		now:       cfg.Now,
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	stored, err := m.readStored(ctx)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", m.name, err)
	}
	m.head = stored
	fork, err := m.store.ReadState(ctx, m.forkState())
	if err != nil {
		return nil, fmt.Errorf("mirror %s: read %s: %w", m.name, m.forkState(), err)
	}
	if fork != nil {
		tree, err := client.OpenTreeHead(fork, m.verifiers)
		if err != nil {
			return nil, fmt.Errorf("mirror %s: the fork recorded in %s is not a head of %s: %w", m.name, m.forkState(), m.name, err)
		}
		m.fork = describeFork(stored.tree, tree)
	}
	if m.metrics, err = newMetrics(cfg.Registerer, m); err != nil {
		return nil, fmt.Errorf("mirror %s: %w", m.name, err)
	}
	if fork != nil {
		m.metrics.fork.Set(1)
	}
	return m, nil
}

// Name returns the name of the mirrored database's key: the <name> of its
// /sumdb/<name>/ path.
func (m *Mirror) Name() string { return m.name }

// Status returns the mirror's state.
func (m *Mirror) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{Size: m.head.tree.N, Verified: m.verified, Fork: m.fork, Err: m.lastErr}
}

func (m *Mirror) latestState() string { return "mirror/" + m.name + "/latest" }
func (m *Mirror) forkState() string   { return "mirror/" + m.name + "/fork" }

// newest returns the newest verified head this process knows.
func (m *Mirror) newest() verifiedHead {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head
}

// adopt makes h the newest verified head if it is newer than the one
// known.
func (m *Mirror) adopt(h verifiedHead) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.note != nil && (m.head.note == nil || h.tree.N > m.head.tree.N) {
		m.head = h
	}
}

// reload adopts the head stored by another process sharing the store, if
// newer, and returns the newest verified head.
func (m *Mirror) reload(ctx context.Context) (verifiedHead, error) {
	stored, err := m.readStored(ctx)
	if err != nil {
		return m.newest(), err
	}
	m.adopt(stored)
	return m.newest(), nil
}

// readStored reads the newest verified head from the store and checks its
// signature: a head under another key means the store was filled for
// another database of the same name.
func (m *Mirror) readStored(ctx context.Context) (verifiedHead, error) {
	msg, err := m.store.ReadState(ctx, m.latestState())
	if err != nil {
		return verifiedHead{}, fmt.Errorf("%w: read %s: %w", ErrUnavailable, m.latestState(), err)
	}
	if msg == nil {
		return verifiedHead{}, nil
	}
	tree, err := client.OpenTreeHead(msg, m.verifiers)
	if err != nil {
		return verifiedHead{}, fmt.Errorf("the stored head %s is not a head of %s (was the key changed?): %w", m.latestState(), m.remote.Key, err)
	}
	return verifiedHead{note: msg, tree: tree}, nil
}

// upstreamOK records a successful verification of an upstream head.
func (m *Mirror) upstreamOK() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.verified = m.now()
	m.lastErr = nil
}

// upstreamFailed records a failure to reach the upstream.
func (m *Mirror) upstreamFailed(err error) {
	m.metrics.upstreamErrors.WithLabelValues(reasonUnavailable).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err
}

// refuse logs and counts a refusal of upstream data, read from the
// upstream's path, and returns its error.
func (m *Mirror) refuse(ctx context.Context, reason, path string, err error) error {
	m.logger.ErrorContext(ctx, "upstream checksum database data refused", "db", m.name, "path", path, "reason", reason, "err", err)
	m.metrics.upstreamErrors.WithLabelValues(reason).Inc()
	err = fmt.Errorf("%w: %s: %w", ErrRefused, path, err)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err
	return err
}

// Reasons of refusals and upstream errors, the values of the reason label.
const (
	reasonUnavailable = "unavailable"  // not reached, 5xx, timeout
	reasonSignature   = "signature"    // a head not signed by the key
	reasonFork        = "fork"         // a head contradicting the verified one
	reasonTile        = "tile"         // a hash tile not hashing to its head
	reasonRecord      = "record"       // a record not hashing to its head, or malformed
	reasonMissing     = "missing_tile" // a tile of its own head the upstream does not serve
)

var reasons = []string{reasonUnavailable, reasonSignature, reasonFork, reasonTile, reasonRecord, reasonMissing}

// get fetches path from the upstream: one request for all concurrent
// callers, within a fetch slot and the timeout. Its errors wrap
// client.ErrNotFound (with the upstream's reason) or ErrUnavailable.
func (m *Mirror) get(ctx context.Context, path string) ([]byte, error) {
	return shared(ctx, &m.gets, path, m.timeout, func(ctx context.Context) ([]byte, error) {
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: GET %s: %d upstream requests in progress: %w", ErrUnavailable, path, cap(m.slots), ctx.Err())
		}
		defer func() { <-m.slots }()
		body, err := m.remote.Get(ctx, path)
		switch {
		case err == nil:
			return body, nil
		case errors.Is(err, client.ErrNotFound):
			return nil, err
		default:
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			m.upstreamFailed(err)
			return nil, err
		}
	})
}

// shared returns what f returns, calling it once for all the concurrent
// callers of the same key of g. f's context outlives any one caller (an
// impatient client must not fail the others) and ends after d.
func shared[T any](ctx context.Context, g *singleflight.Group, key string, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
		defer cancel()
		return f(fctx)
	})
	select {
	case r := <-ch:
		return r.Val.(T), r.Err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: %s: %w", ErrUnavailable, key, ctx.Err())
	}
}

// accept verifies msg, a head read from the upstream's path, and stores it
// if it is newer than the stored one. It returns the newest verified head.
func (m *Mirror) accept(ctx context.Context, path string, msg []byte) (verifiedHead, error) {
	tree, err := client.OpenTreeHead(msg, m.verifiers)
	if err != nil {
		return verifiedHead{}, m.refuse(ctx, reasonSignature, path, fmt.Errorf("not a tree head signed by %s: %w", m.remote.Key, err))
	}
	m.accepting.Lock()
	defer m.accepting.Unlock()
	for range maxSwapTries {
		var pending *tileReader // tiles of the new tree, stored once it is
		stored, err := m.readStored(ctx)
		if err != nil {
			return verifiedHead{}, err
		}
		m.adopt(stored)
		switch {
		case stored.note == nil:
			// The first head: nothing to be consistent with.
		case tree.N == stored.tree.N:
			if tree.Hash != stored.tree.Hash {
				return verifiedHead{}, m.forked(ctx, path, stored, msg, tree)
			}
			m.upstreamOK()
			return stored, nil
		case tree.N < stored.tree.N:
			// An older head (a lagging replica of the upstream): it must be
			// a prefix of the verified tree, whose tiles can be stored.
			r := m.tileReader(ctx, false)
			if err := m.prove(stored.tree, tree, r); err != nil {
				return verifiedHead{}, m.proofError(ctx, path, stored, msg, tree, err)
			}
			m.upstreamOK()
			return stored, nil
		default:
			// The tiles of the newer tree are kept back until the new head
			// is proved to extend the verified one: a fork's tiles hash
			// to its own head.
			pending = m.tileReader(ctx, true)
			if err := m.prove(tree, stored.tree, pending); err != nil {
				return verifiedHead{}, m.proofError(ctx, path, stored, msg, tree, err)
			}
		}
		err = m.store.SwapState(ctx, m.latestState(), stored.note, msg)
		if errors.Is(err, tlog.ErrConflict) {
			continue // another replica stored a head: check against it
		}
		if err != nil {
			return verifiedHead{}, fmt.Errorf("%w: store the head of %s: %w", ErrUnavailable, m.name, err)
		}
		if pending != nil {
			pending.flush()
		}
		h := verifiedHead{note: msg, tree: tree}
		m.adopt(h)
		m.upstreamOK()
		return h, nil
	}
	return verifiedHead{}, fmt.Errorf("%w: store the head of %s: the stored head kept changing; retry", ErrUnavailable, m.name)
}

// prove proves that the tree older is a prefix of newer, reading the hashes
// of newer through r.
func (m *Mirror) prove(newer, older xtlog.Tree, r *tileReader) error {
	if older.N == 0 {
		return nil
	}
	hr := xtlog.TileHashReader(newer, r)
	proof, err := xtlog.ProveTree(newer.N, older.N, hr)
	if err != nil {
		return err
	}
	if err := xtlog.CheckTree(proof, newer.N, newer.Hash, older.N, older.Hash); err != nil {
		return fmt.Errorf("%w: %w", errInconsistent, err)
	}
	return nil
}

// errInconsistent marks a consistency proof that failed on verified
// hashes: two signed heads that are not one tree.
var errInconsistent = errors.New("the trees are inconsistent")

// proofError returns the error of a consistency proof between the stored
// head and msg, read from path: a fork, a refusal of the tiles, or a
// failure to reach the upstream or the store.
func (m *Mirror) proofError(ctx context.Context, path string, stored verifiedHead, msg []byte, tree xtlog.Tree, err error) error {
	switch {
	case errors.Is(err, errInconsistent):
		return m.forked(ctx, path, stored, msg, tree)
	case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRefused):
		return err
	case errors.Is(err, client.ErrNotFound):
		return m.refuse(ctx, reasonMissing, path, fmt.Errorf("cannot prove the head of %d records consistent with the verified head of %d: the upstream does not serve the tiles of its tree: %w", tree.N, stored.tree.N, err))
	default:
		return m.refuse(ctx, reasonTile, path, fmt.Errorf("cannot prove the head of %d records consistent with the verified head of %d: %w", tree.N, stored.tree.N, err))
	}
}

// forked records that msg, the head of tree read from the upstream's path,
// contradicts the verified head stored, and returns the refusal.
func (m *Mirror) forked(ctx context.Context, path string, stored verifiedHead, msg []byte, tree xtlog.Tree) error {
	desc := describeFork(stored.tree, tree)
	m.logger.ErrorContext(ctx, "upstream checksum database forked: its head contradicts the verified one; serving the verified tree only",
		"db", m.name, "path", path, "verified", string(stored.note), "upstream", string(msg))
	m.metrics.upstreamErrors.WithLabelValues(reasonFork).Inc()
	m.metrics.fork.Set(1)
	// The first fork found is kept as evidence; a conflict means another
	// replica recorded one.
	if err := m.store.SwapState(ctx, m.forkState(), nil, msg); err != nil && !errors.Is(err, tlog.ErrConflict) {
		m.logger.ErrorContext(ctx, "cannot record the fork", "db", m.name, "err", err)
	}
	err := fmt.Errorf("%w: %w: %s: %s", ErrRefused, ErrFork, path, desc)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fork == "" {
		m.fork = desc
	}
	m.lastErr = err
	return err
}

// describeFork says how the upstream's tree contradicts the verified one.
func describeFork(verified, upstream xtlog.Tree) string {
	return fmt.Sprintf("the upstream signed a tree of %d records with root %v, which contradicts the verified tree of %d records with root %v", upstream.N, upstream.Hash, verified.N, verified.Hash)
}

// refresh asks the upstream for its newest head, at most once per
// minLatestInterval, and verifies it. It returns the newest verified head
// and whether the upstream was asked, or an error if it was asked and its
// answer was refused or not had.
func (m *Mirror) refresh(ctx context.Context) (verifiedHead, bool, error) {
	asked, err := shared(ctx, &m.latests, "latest", 2*m.timeout, func(ctx context.Context) (bool, error) {
		m.mu.Lock()
		// Spaced with or without a verified head: an upstream that fails
		// is asked no more often than one that answers.
		recent := !m.lastLatest.IsZero() && m.now().Sub(m.lastLatest) < minLatestInterval
		if !recent {
			m.lastLatest = m.now()
		}
		m.mu.Unlock()
		if recent {
			return false, nil
		}
		msg, err := m.get(ctx, "latest")
		if err == nil {
			_, err = m.accept(ctx, "latest", msg)
		}
		return true, err
	})
	return m.newest(), asked, err
}

// Lookup returns the record of path@version: from the store, or else
// fetched from the upstream and stored once verified by an inclusion proof
// in the newest verified head, whose tiles it stores. An error wraps
// client.ErrNotFound if the upstream does not know the version, ErrRefused
// if its answer failed verification, ErrUnavailable if it could not be
// had.
func (m *Mirror) Lookup(ctx context.Context, path, version string) (id int64, text []byte, err error) {
	escPath, err := module.EscapePath(path)
	if err != nil {
		return 0, nil, fmt.Errorf("lookup %s@%s: %w", path, version, err)
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return 0, nil, fmt.Errorf("lookup %s@%s: %w", path, version, err)
	}
	if _, _, err := sumdb.ParseLookup(escPath + "@" + escVersion); err != nil {
		return 0, nil, fmt.Errorf("lookup %s@%s: %w", path, version, err)
	}
	id, text, _, _, err = m.lookup(ctx, path, version, escPath+"@"+escVersion)
	return id, text, err
}

// lookup returns the record of path@version, whose escaped form is esc, a
// verified head that covers it, and where it came from (sourceStore or
// sourceUpstream).
func (m *Mirror) lookup(ctx context.Context, path, version, esc string) (int64, []byte, verifiedHead, string, error) {
	id, text, err := m.store.ReadMirrorRecord(ctx, m.name, path, version)
	switch {
	case err == nil:
		h := m.newest()
		if id >= h.tree.N {
			// Stored under a head that another replica verified.
			if h, err = m.reload(ctx); err != nil {
				return 0, nil, verifiedHead{}, "", err
			}
		}
		if id < h.tree.N {
			return id, text, h, sourceStore, nil
		}
		return 0, nil, verifiedHead{}, "", fmt.Errorf("lookup %s: stored record %d is beyond the stored head of %d records", esc, id, h.tree.N)
	case !errors.Is(err, tlog.ErrNotFound):
		return 0, nil, verifiedHead{}, "", fmt.Errorf("%w: lookup %s in the store: %w", ErrUnavailable, esc, err)
	}
	type result struct {
		id   int64
		text []byte
		head verifiedHead
	}
	r, err := shared(ctx, &m.lookups, esc, 4*m.timeout, func(ctx context.Context) (result, error) {
		// A flight that just ended, or another replica, may have stored it.
		if id, text, err := m.store.ReadMirrorRecord(ctx, m.name, path, version); err == nil {
			if h, err := m.reload(ctx); err == nil && id < h.tree.N {
				return result{id, text, h}, nil
			}
		}
		id, text, head, err := m.fetchRecord(ctx, path, version, esc)
		return result{id, text, head}, err
	})
	return r.id, r.text, r.head, sourceUpstream, err
}

// fetchRecord fetches the record of path@version from the upstream,
// verifies it and stores it.
func (m *Mirror) fetchRecord(ctx context.Context, path, version, esc string) (int64, []byte, verifiedHead, error) {
	upath := "lookup/" + esc
	body, err := m.get(ctx, upath)
	if err != nil {
		return 0, nil, verifiedHead{}, err
	}
	id, text, msg, err := xtlog.ParseRecord(body)
	if err != nil {
		return 0, nil, verifiedHead{}, m.refuse(ctx, reasonRecord, upath, fmt.Errorf("malformed lookup answer: %w", err))
	}
	if err := sumdb.CheckRecordText(path, version, text); err != nil {
		return 0, nil, verifiedHead{}, m.refuse(ctx, reasonRecord, upath, fmt.Errorf("record %d is not the go.sum lines of %s@%s: %w", id, path, version, err))
	}
	if _, err := m.accept(ctx, upath, msg); err != nil {
		return 0, nil, verifiedHead{}, err
	}
	// Proved in the newest verified head, not only the answer's: the go
	// command is answered with the newest, and the tiles of this proof
	// are the ones it asks for.
	head := m.newest()
	if id < 0 || id >= head.tree.N {
		return 0, nil, verifiedHead{}, m.refuse(ctx, reasonRecord, upath, fmt.Errorf("record id %d is not in its head of %d records", id, head.tree.N))
	}
	hashes, err := xtlog.TileHashReader(head.tree, m.tileReader(ctx, false)).ReadHashes([]int64{xtlog.StoredHashIndex(0, id)})
	if err != nil {
		return 0, nil, verifiedHead{}, m.tileError(ctx, upath, head, err)
	}
	if xtlog.RecordHash(text) != hashes[0] {
		return 0, nil, verifiedHead{}, m.refuse(ctx, reasonRecord, upath, fmt.Errorf("record %d of %s@%s is not the record %d of the verified tree of %d records", id, path, version, id, head.tree.N))
	}
	if err := m.store.PutMirrorRecord(ctx, m.name, path, version, id, text); err != nil {
		return 0, nil, verifiedHead{}, fmt.Errorf("%w: store record %d (%s@%s): %w", ErrUnavailable, id, path, version, err)
	}
	return id, text, head, nil
}

// tileError returns the error of reading verified hashes of head's tree
// for the request of path.
func (m *Mirror) tileError(ctx context.Context, path string, head verifiedHead, err error) error {
	switch {
	case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRefused):
		return err
	case errors.Is(err, client.ErrNotFound):
		return m.refuse(ctx, reasonMissing, path, fmt.Errorf("the upstream does not serve the tiles of its tree of %d records: %w", head.tree.N, err))
	default:
		return m.refuse(ctx, reasonTile, path, fmt.Errorf("tiles do not hash to the verified tree of %d records: %w", head.tree.N, err))
	}
}

// Prove stores the hash tiles that prove each record id in the newest
// verified head, so that the go command can verify those records with
// no upstream to reach: warm a cache with Lookup, then Prove.
func (m *Mirror) Prove(ctx context.Context, ids []int64) error {
	head, err := m.reload(ctx)
	if err != nil {
		return err
	}
	indexes := make([]int64, len(ids))
	for i, id := range ids {
		if id < 0 || id >= head.tree.N {
			return fmt.Errorf("prove record %d: not in the verified tree of %d records", id, head.tree.N)
		}
		indexes[i] = xtlog.StoredHashIndex(0, id)
	}
	if len(indexes) == 0 {
		return nil
	}
	if _, err := xtlog.TileHashReader(head.tree, m.tileReader(ctx, false)).ReadHashes(indexes); err != nil {
		return m.tileError(ctx, "tile/8/...", head, err)
	}
	return nil
}
