// Package watch follows a checksum database for the owners of modules: it
// reports every new version of a watched module, or every one its owners
// did not release, and every one logged with other hashes than those they
// released.
//
// # What is verified
//
// Each poll fetches the log's signed head (/latest) and checks its
// signature with the log's key, then proves it consistent with the newest
// head verified before (kept in the state directory), with a tree proof
// built from the server's hash tiles that x/mod's TileHashReader
// authenticates against the new head, as "sumdb audit" does. The new
// records are read from the data tiles, and each record's hash
// (tlog.RecordHash) must be the leaf of the verified head's tree that the
// hash tiles, authenticated by that head, give: a record the server serves
// that is not in the signed tree is refused, never scanned, and the watch
// stops with an error wrapping ErrRefused. So every version reported is
// one the log signed, and no version the log signed is left out: a log
// that hides a version from the watch must fork, and show the go command a
// tree that is not the one the watch verified.
//
// # What is scanned
//
// Every line of every record is read as the go command reads a record:
// x/mod's sumdb.Client.Lookup of path@version keeps each line that starts
// with "<path> <version> " or "<path> <version>/go.mod ", wherever it sits
// in the record, and the go command accepts a hash among them. So each
// line "<path> <version>[/go.mod] <hash>" of a watched module path is a
// version the log serves, and an alert (KindNew, KindUnauthorized, or
// KindMismatch when any hash of a kind is not the authorized one), though
// the record is not in the form "sumdb audit" requires: an extra line, one
// line only, or lines inside another module's record. A record that is
// not well formed and names a watched module path in no such line is an
// alert of KindMalformed.
//
// # The state directory
//
// Config.Dir holds the state file, watch.json: the log's key, the newest
// verified signed head and the hash tiles of its right edge, the number of
// records scanned, the patterns they were scanned for, and the alerts
// delivered (the newest 10,000). Records are scanned in batches of up to
// 16,384; the state is written, crash-safe, after the alerts of a batch are
// delivered to every sink. A run stopped anywhere, or a sink that fails,
// leaves the state at the last batch delivered: its alerts are delivered
// again by the next run (at least once, never missed), and those of
// batches delivered before are not.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/sumdb/audit"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// ErrRefused marks an error meaning the checksum database served something
// that does not verify: a head not signed by its key, a head inconsistent
// with one verified before, hash tiles that do not verify against its
// signed head, or a record that is not in its signed tree. It is evidence
// against the log (or something between it and the watch), not a failure
// to reach it; the state is left as it was.
var ErrRefused = errors.New("the checksum database served data that does not verify")

// ErrDeliver marks an error meaning alerts could not be delivered to a
// sink: they are delivered again by the next poll or run.
var ErrDeliver = errors.New("alerts not delivered")

// FromHead is the Config.From of a watch that starts at the log's size at
// its first poll, scanning only the versions logged from then on.
const FromHead = -1

// batchTiles is the number of data tiles of a batch: the state is written
// after each batch's alerts are delivered. A variable for the tests.
var batchTiles int64 = 64

// Config configures Run.
type Config struct {
	// Remote is the checksum database to watch. Required.
	Remote *client.Remote
	// Dir is the state directory, created if missing. Required.
	Dir string
	// Modules are the module paths and prefixes to watch. Required.
	Modules []Pattern
	// Authorized are the versions the owners released; nil to report
	// every new version of the watched modules (KindNew).
	Authorized *Authorized
	// From is the id of the first record to scan when the state has
	// scanned none, or FromHead. Restart makes it apply to a state that
	// has: the scan starts again there, and the alerts delivered before
	// are not delivered again.
	From    int64
	Restart bool
	// Once makes Run poll once and return; otherwise it polls every
	// Interval (default 1m) until ctx ends or the log serves data that
	// does not verify.
	Once     bool
	Interval time.Duration
	// Sinks receive the alerts, in order. At least one is required.
	Sinks []Sink
	// Concurrency is the number of data tiles fetched at once. Default 8.
	Concurrency int
	// Logger receives a line per head verified and per failed poll.
	// Default: discard.
	Logger *slog.Logger
}

// A Result says what Run did.
type Result struct {
	// Alerts is the number of alerts delivered by this run.
	Alerts int
	// Undelivered is the number of alerts found whose delivery failed
	// (they are delivered again by the next run).
	Undelivered int
	// Head is the size of the newest signed head verified.
	Head int64
	// Scanned is the number of records scanned, from record 0.
	Scanned int64
}

// A watcher is the state of one Run.
type watcher struct {
	cfg    Config
	remote *client.Remote
	name   string
	logger *slog.Logger
	st     *state
	head   *signedHead
	tiles  *audit.TileReader // the log's hash tiles, upper levels cached
	done   map[reported]bool // the alerts of st.Reported
	res    *Result
}

// Run watches cfg.Remote as the package doc says. The Result is never nil.
// The error wraps ErrRefused when the log served data that does not
// verify, ErrDeliver when alerts could not be delivered; any other error is
// a failure to reach the log or to keep the state. With Once unset, a
// failure to reach the log or to deliver is logged and the poll tried
// again at the next interval; Run returns when ctx ends (with the error of
// the last poll, if it failed) or at ErrRefused.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	res := &Result{}
	if err := cfg.check(); err != nil {
		return res, err
	}
	w, err := open(cfg, res)
	if err != nil {
		return res, err
	}
	err = w.poll(ctx)
	if cfg.Once || errors.Is(err, ErrRefused) || ctx.Err() != nil {
		return res, err
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		if err != nil {
			w.logger.WarnContext(ctx, "watch: poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return res, err
		case <-t.C:
		}
		perr := w.poll(ctx)
		if perr != nil && ctx.Err() != nil {
			return res, err
		}
		if err = perr; errors.Is(err, ErrRefused) {
			return res, err
		}
	}
}

func (cfg *Config) check() error {
	switch {
	case cfg.Remote == nil || cfg.Remote.Verifier == nil:
		return errors.New("watch: no checksum database to watch")
	case cfg.Dir == "":
		return errors.New("watch: no state directory: name one with --state")
	case len(cfg.Modules) == 0:
		return errors.New("watch: no module to watch: name one with --module")
	case len(cfg.Sinks) == 0:
		return errors.New("watch: no sink for the alerts")
	case cfg.From < FromHead:
		return fmt.Errorf("watch: first record %d: want a record id, or FromHead", cfg.From)
	case cfg.Interval < 0 || cfg.Concurrency < 0:
		return errors.New("watch: negative interval or concurrency")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// open reads the state directory.
func open(cfg Config, res *Result) (*watcher, error) {
	if err := durable.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("watch: create state directory %s: %w", cfg.Dir, err)
	}
	st, err := readState(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if st.Key == "" {
		st.Key = cfg.Remote.Key
	}
	if st.Key != cfg.Remote.Key {
		return nil, fmt.Errorf("watch: state directory %s watches the log with key %s, not %s: give each log its own state directory", cfg.Dir, st.Key, cfg.Remote.Key)
	}
	w := &watcher{cfg: cfg, remote: cfg.Remote, name: cfg.Remote.Verifier.Name(), logger: cfg.Logger, st: st, res: res, done: make(map[reported]bool)}
	if w.head, err = st.head(cfg.Remote); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	for _, r := range st.Reported {
		w.done[r] = true
	}
	modules := make([]string, len(cfg.Modules))
	for i, p := range cfg.Modules {
		modules[i] = p.String()
	}
	if w.head != nil && (st.Scanned > w.head.N || st.Scanned < 0) {
		return nil, fmt.Errorf("watch: the state has scanned %d records of a log of %d: the state file is damaged; remove it to start afresh", st.Scanned, w.head.N)
	}
	if st.Modules != nil && cfg.From != FromHead && !cfg.Restart {
		for _, m := range modules {
			if !slices.Contains(st.Modules, m) && st.Scanned > 0 {
				cfg.Logger.Warn("watch: a module not watched before: the records scanned before were not scanned for it; start again with --from 0 --restart to scan them", "module", m, "scanned", st.Scanned)
			}
		}
	}
	if cfg.Restart && cfg.From != FromHead {
		st.Scanned = cfg.From
		if w.head != nil {
			st.Scanned = min(cfg.From, w.head.N)
		}
	}
	st.Modules = modules
	if w.head != nil {
		res.Head = w.head.N
	}
	res.Scanned = st.Scanned
	return w, nil
}

// poll verifies the log's signed head and scans the new records.
func (w *watcher) poll(ctx context.Context) error {
	w.tiles = audit.NewTileReader(ctx, w.remote, 1)
	msg, err := w.remote.Get(ctx, "latest")
	if err != nil {
		return fmt.Errorf("watch: fetch the signed head: %w", err)
	}
	h, err := w.verifyHead(ctx, msg)
	if err != nil {
		return err
	}
	if w.head == nil || h.N > w.head.N {
		if w.head == nil && w.st.Scanned == 0 {
			if w.cfg.From == FromHead {
				w.st.Scanned = h.N
			} else {
				w.st.Scanned = min(w.cfg.From, h.N)
			}
		}
		w.st.Head, w.st.Tiles = string(h.Note), h.Tiles
		if err := w.st.write(w.cfg.Dir); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		w.head = h
		w.res.Head, w.res.Scanned = h.N, w.st.Scanned
		w.logger.InfoContext(ctx, "watch: signed head verified", "size", h.N, "hash", h.Hash)
	}
	return w.scan(ctx)
}

// verifyHead verifies the signed head msg against the newest head verified
// before, and returns the newer of the two.
func (w *watcher) verifyHead(ctx context.Context, msg []byte) (*signedHead, error) {
	tree, err := client.OpenTreeHead(msg, note.VerifierList(w.remote.Verifier))
	if err != nil {
		return nil, fmt.Errorf("watch: %w: the signed head is not a tree head signed by the log's key %s: %v", ErrRefused, w.remote.Key, err)
	}
	h := &signedHead{Tree: tree, Note: msg}
	old := w.head
	switch {
	case old == nil:
		// Trusted on first use, as the go command trusts the first head.
	case tree.N == old.N:
		if tree.Hash != old.Hash {
			return nil, fmt.Errorf("watch: %w: a fork: two signed heads of size %d with different roots %v (verified before) and %v", ErrRefused, tree.N, old.Hash, tree.Hash)
		}
		return old, nil
	case tree.N < old.N:
		// A stale head: it must be in the tree of the newer one.
		r := &keptTiles{kept: old.Tiles, next: w.tiles}
		p, err := xtlog.ProveTree(old.N, tree.N, xtlog.TileHashReader(old.Tree, r))
		if err != nil {
			return nil, w.tileTrouble(err, old.N)
		}
		if xtlog.CheckTree(p, old.N, old.Hash, tree.N, tree.Hash) != nil {
			return nil, fmt.Errorf("watch: %w: a fork: the signed head of size %d is not in the tree of the signed head of size %d verified before", ErrRefused, tree.N, old.N)
		}
		w.logger.WarnContext(ctx, "watch: stale signed head, consistent with the newer one verified before", "size", tree.N, "verified", old.N)
		return old, nil
	default:
		p, err := xtlog.ProveTree(tree.N, old.N, xtlog.TileHashReader(tree, w.tiles))
		if err != nil {
			return nil, w.tileTrouble(err, tree.N)
		}
		if xtlog.CheckTree(p, tree.N, tree.Hash, old.N, old.Hash) != nil {
			return nil, fmt.Errorf("watch: %w: a fork: the signed head of size %d is not consistent with the signed head of size %d verified before", ErrRefused, tree.N, old.N)
		}
	}
	// The tiles that prove the new head, kept in the state.
	r := &keptTiles{next: w.tiles}
	root, err := xtlog.TreeHash(tree.N, xtlog.TileHashReader(tree, r))
	if err != nil {
		return nil, w.tileTrouble(err, tree.N)
	}
	if root != tree.Hash {
		return nil, fmt.Errorf("watch: %w: the hash tiles give root %v, but the signed head of size %d has %v", ErrRefused, root, tree.N, tree.Hash)
	}
	h.Tiles = r.read
	return h, nil
}

// tileTrouble sorts an error of TileHashReader over the log's tiles into a
// failure to fetch and tiles that do not verify against the head of size n.
func (w *watcher) tileTrouble(err error, n int64) error {
	if audit.IsFetchError(err) {
		return fmt.Errorf("watch: %w", err)
	}
	return fmt.Errorf("watch: %w: the server's hash tiles do not verify against its signed head of size %d: %v", ErrRefused, n, err)
}

// scan scans the records from the state's Scanned to the verified head, in
// batches, delivering each batch's alerts before the state moves past it.
func (w *watcher) scan(ctx context.Context) error {
	h := w.head
	thr := xtlog.TileHashReader(h.Tree, w.tiles)
	for w.st.Scanned < h.N {
		from := w.st.Scanned
		first := from / tlog.TileWidth
		last := min((h.N-1)/tlog.TileWidth, first+batchTiles-1)
		tiles := make([][][]byte, last-first+1)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(w.cfg.Concurrency)
		for k := first; k <= last; k++ {
			g.Go(func() error {
				texts, err := w.dataTile(gctx, thr, k)
				tiles[k-first] = texts
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		end := min(h.N, (last+1)*tlog.TileWidth)
		var alerts []Alert
		var keys []reported
		for i, texts := range tiles {
			base := (first + int64(i)) * tlog.TileWidth
			for j, text := range texts {
				id := base + int64(j)
				if id < from {
					continue
				}
				for _, a := range w.alerts(id, text) {
					key := reported{Record: id, Kind: a.Kind, Module: a.Module, Version: a.Version}
					// An entry of an older state file names no module: it
					// covers every alert of its record and kind.
					if w.done[key] || w.done[reported{Record: id, Kind: a.Kind}] {
						continue
					}
					alerts = append(alerts, a)
					keys = append(keys, key)
				}
			}
		}
		if len(alerts) > 0 {
			for _, s := range w.cfg.Sinks {
				if err := s.Deliver(ctx, alerts); err != nil {
					w.res.Undelivered += len(alerts)
					return fmt.Errorf("watch: %w: %v", ErrDeliver, err)
				}
			}
			w.res.Alerts += len(alerts)
		}
		w.st.Scanned = end
		w.st.Reported = append(w.st.Reported, keys...)
		if err := w.st.write(w.cfg.Dir); err != nil {
			// Delivered, but they will be again.
			return fmt.Errorf("watch: %w", err)
		}
		for _, k := range keys {
			w.done[k] = true
		}
		w.res.Scanned = end
	}
	return nil
}

// dataTile fetches data tile k of the tree of the verified head and
// returns its records, each verified to be the leaf of the tree that thr,
// the hash tiles authenticated by the head, gives.
func (w *watcher) dataTile(ctx context.Context, thr xtlog.HashReader, k int64) ([][]byte, error) {
	n := w.head.N
	width := int(min(tlog.TileWidth, n-k*tlog.TileWidth))
	t := xtlog.Tile{H: tlog.TileHeight, L: -1, N: k, W: width}
	data, err := w.remote.Get(ctx, t.Path())
	if err != nil {
		return nil, fmt.Errorf("watch: fetch %s: %w", t.Path(), err)
	}
	texts, err := audit.SplitDataTile(data, width)
	if err != nil {
		return nil, fmt.Errorf("watch: %w: data tile %s cannot be split into its %d records: %v", ErrRefused, t.Path(), width, err)
	}
	idx := make([]int64, width)
	for i := range idx {
		idx[i] = xtlog.StoredHashIndex(0, k*tlog.TileWidth+int64(i))
	}
	leaves, err := thr.ReadHashes(idx)
	if err != nil {
		return nil, w.tileTrouble(err, n)
	}
	for i, text := range texts {
		if xtlog.RecordHash(text) != leaves[i] {
			id := k*tlog.TileWidth + int64(i)
			return nil, fmt.Errorf("watch: %w: data tile %s serves a record %d that is not in the signed tree of size %d (its hash is %v, the tree's leaf %v)", ErrRefused, t.Path(), id, n, xtlog.RecordHash(text), leaves[i])
		}
	}
	return texts, nil
}
