package tlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// ErrPushback is returned by Append when the sequencer's queue is full.
// The caller should answer "try again later" (503 with Retry-After).
var ErrPushback = errors.New("append queue is full")

// ErrWrongKey marks a stored head that the configured key did not sign.
var ErrWrongKey = errors.New("signed by another key")

// ErrClosed is returned by Append after the log was closed.
var ErrClosed = errors.New("log is closed")

// ErrFork marks a store whose tree does not contain the heads this log has
// served or committed: the database went back in time (a restored backup,
// a failover to a replica that lost commits), or holds another tree of the
// same size (such a replica extended by another process). The log refuses
// to serve or extend it.
var ErrFork = errors.New("the store's tree contradicts heads this server served")

// A BulkStore is a Store that loads a whole log faster into an empty store,
// for an import. A Log never uses these methods; it refuses to open a store
// in bulk-load mode.
type BulkStore interface {
	Store
	// BeginBulk puts an empty store into bulk-load mode: the store stops
	// maintaining its unique index of record keys, whose random inserts
	// cost more than all the rest of a load of millions of records. Append
	// then checks no record against the stored ones (the caller must never
	// append a path and version twice) and Lookup may be slow. BeginBulk
	// returns an error if the store holds records, unless it is in
	// bulk-load mode already (an import resumed).
	BeginBulk(ctx context.Context) error
	// EndBulk rebuilds the index of record keys and leaves bulk-load mode.
	// If two stored records have the same path and version, it returns a
	// *DuplicateError naming them and stays in bulk-load mode. It returns
	// nil at once for a store not in bulk-load mode.
	EndBulk(ctx context.Context) error
	// BulkLoading reports whether the store is in bulk-load mode.
	BulkLoading(ctx context.Context) (bool, error)
}

// DefaultMaxQueue is the default of Config.MaxQueue.
const DefaultMaxQueue = 16384

// Config configures a Log. The zero value of a field means its default; a
// knob that can be turned off is turned off by a negative value.
type Config struct {
	// Signer signs every new tree head. Required.
	Signer note.Signer
	// Verifier checks the stored head on Open and on every refresh. It must
	// verify Signer's signatures. Required.
	Verifier note.Verifier
	// MaxBatch caps the records committed in one transaction. Default 4096;
	// it cannot be off.
	MaxBatch int
	// MaxQueue caps the appends waiting for the sequencer; when it is full,
	// Append returns ErrPushback at once. Default DefaultMaxQueue; it
	// cannot be off.
	MaxQueue int
	// CommitTimeout bounds one batch commit, retries included. Default 30s;
	// it cannot be off.
	CommitTimeout time.Duration
	// RefreshInterval is how often an idle log rereads the stored head, to
	// serve heads that other processes sharing the store have committed.
	// Default 1s; negative turns the rereading off.
	RefreshInterval time.Duration
	// Logger receives the log's messages. Default: discard.
	Logger *slog.Logger
	// PublishedFile, if set, is a file outside the store where the log
	// records the newest head it has published: before any client can get
	// a head (answering the appends of a batch, or serving a head another
	// process committed), the log writes its signed note there, as the go
	// command keeps the newest head it has verified. On Open, a store whose
	// tree is smaller than that head (restored from an older backup) or does
	// not contain it (another log) is refused: serving it would show clients
	// a tree that contradicts one they may have seen.
	//
	// The file has two checksummed slots written in turn in place (see
	// published.go): a write is one pwrite and one fdatasync, at most one
	// per committed batch, not per record, in addition to the store's own.
	// The write is off the sequencer's path: a publisher goroutine records
	// the head of one batch while the sequencer commits the next, and
	// answers a batch's appends only once the file holds its head (or a
	// newer one: when several batches wait, it records the newest, once).
	// No head is served before the file holds it. Since the store commits
	// before the file is written, a crash between the two leaves the file
	// older than the store, which the check on Open accepts.
	PublishedFile string
	// OnCommit, if set, is called by the sequencer after each batch commits,
	// with its number of records and the duration of the store's Append.
	// It must return quickly. For metrics.
	OnCommit func(records int, duration time.Duration)
}

// A Log is an append-only Merkle tree log on a Store. Appends go through one
// sequencer goroutine that commits them in batches (group commit): it commits
// at once when idle and gathers new appends while a commit is in flight. Every
// batch commits its records, hash tiles and a newly signed head in one store
// transaction, fenced by a compare-and-swap on the head's size and root
// hash, so that several processes sharing a store can never fork the tree.
//
// A Log is safe for concurrent use.
type Log struct {
	store  Store
	cfg    Config
	logger *slog.Logger

	head  atomic.Pointer[Head] // newest head known to be committed; never shrinks; written under pubMu
	queue chan *request        // appends for the sequencer
	stop  context.CancelFunc
	done  chan struct{} // closed when the sequencer has stopped

	edge *Edge // owned by the sequencer; nil when it must be reloaded from the store

	// refusal is the outcome of the newest check of the store's head (see
	// observe): why the store does not hold this server's log, or nil.
	refusal    atomic.Pointer[refusal] // written under refusalMu
	refusalMu  sync.Mutex
	checks     atomic.Uint64 // numbers the checks of the store's head as they begin
	generation atomic.Uint64 // counts the refusals recorded; see Generation

	// lastCommit is the newest head the sequencer committed; never
	// shrinks. That head is served only once the publisher has recorded
	// it, so until then it is larger than the served head.
	lastCommit atomic.Pointer[Head]

	pubMu     sync.Mutex     // serializes publish
	published int64          // guarded by pubMu; size of the head in cfg.PublishedFile
	pubFile   *publishedFile // guarded by pubMu; nil without cfg.PublishedFile

	// committed carries the batches the sequencer committed to the
	// publisher goroutine, which records their heads in cfg.PublishedFile
	// and then answers their appends: the file's fsync for one batch
	// overlaps the store's commit of the next. The sequencer closes it
	// when it stops; the publisher closes pubDone when it has answered all.
	committed chan *committed
	pubDone   chan struct{}
}

// A committed batch waits for the publisher.
type committed struct {
	old     Head // the tree the batch extends, without a note
	head    Head
	records []Record
	waiters [][]*request // waiters[i] wait for records[i]
}

type request struct {
	rec  Record
	done chan result // buffered, written once
}

type result struct {
	rec  Record
	head Head
	err  error
}

// Open opens the log kept in s. It reads the stored head, checks its
// signature with cfg.Verifier, and proves that the stored tiles reproduce its
// root before it accepts any append; a store that fails these checks is
// refused. Close stops the sequencer; it does not close s.
func Open(ctx context.Context, s Store, cfg Config) (*Log, error) {
	if cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("open log: a signer and a verifier are required")
	}
	if cfg.Signer.Name() != cfg.Verifier.Name() || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() {
		return nil, fmt.Errorf("open log: signer key %s does not match verifier key %s", cfg.Signer.Name(), cfg.Verifier.Name())
	}
	if cfg.MaxBatch < 0 || cfg.MaxQueue < 0 || cfg.CommitTimeout < 0 {
		return nil, fmt.Errorf("open log: MaxBatch %d, MaxQueue %d, CommitTimeout %v: want none negative (0 for the default)", cfg.MaxBatch, cfg.MaxQueue, cfg.CommitTimeout)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.CommitTimeout == 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := &Log{store: s, cfg: cfg, logger: logger, queue: make(chan *request, cfg.MaxQueue), done: make(chan struct{})}
	l.head.Store(&Head{})
	if bs, ok := s.(BulkStore); ok {
		loading, err := bs.BulkLoading(ctx)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		if loading {
			return nil, errors.New("open log: the store holds an import that did not finish (its index of record keys is missing): run sumdb import again with the same file to finish it, or start again on an empty database")
		}
	}
	head, err := l.readHead(ctx)
	if err != nil {
		return nil, err
	}
	if l.edge, err = LoadEdge(ctx, s, head); err != nil {
		return nil, fmt.Errorf("check stored tree: %w: the database was changed outside sumdb or is damaged; restore it from a backup", err)
	}
	if cfg.PublishedFile != "" {
		pf, pub, err := openPublished(cfg.PublishedFile, cfg.Verifier)
		if err != nil {
			return nil, err
		}
		if err := checkPublished(ctx, s, head, pub, cfg.PublishedFile); err != nil {
			return nil, err
		}
		l.published, l.pubFile = pub.Size, pf
	}
	if err := l.publish(head); err != nil {
		l.pubFile.close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	l.stop = stop
	l.committed = make(chan *committed, 64)
	l.pubDone = make(chan struct{})
	go l.publisher()
	go l.run(runCtx)
	return l, nil
}

// Close stops the sequencer. A batch being committed is finished; appends
// still queued fail with ErrClosed.
func (l *Log) Close() {
	l.stop()
	<-l.done
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if err := l.pubFile.close(); err != nil {
		l.logger.Error("close published-head file", "err", err)
	}
}

// Head returns the newest signed head this process knows to be committed.
// Its Size is 0 (and Note nil) while the log is empty: an empty tree is never
// signed.
func (l *Log) Head() Head { return *l.head.Load() }

// QueueLen returns the number of appends waiting for the sequencer; Append
// returns ErrPushback when it reaches Config.MaxQueue. For metrics.
func (l *Log) QueueLen() int { return len(l.queue) }

// Ready reports whether the store answers and holds a head signed by the
// log's key, whose tree contains every head the log has served and
// committed: the log can serve and append. Otherwise the error wraps
// ErrUnavailable, ErrWrongKey or ErrFork, as the case may be.
func (l *Log) Ready(ctx context.Context) error {
	seq, before := l.checks.Add(1), l.known()
	h, err := l.readHead(ctx)
	if err == nil {
		err = l.extends(ctx, h, before)
	}
	l.observe(seq, err)
	return err
}

// Verifier returns the verifier of the log's heads.
func (l *Log) Verifier() note.Verifier { return l.cfg.Verifier }

// readHead reads the stored head and checks it is signed by our key.
func (l *Log) readHead(ctx context.Context) (Head, error) {
	h, err := l.store.ReadHead(ctx)
	if err != nil {
		return Head{}, fmt.Errorf("read head: %w", err)
	}
	if h.Size == 0 {
		return Head{}, nil
	}
	if err := l.checkHead(h); err != nil {
		return Head{}, err
	}
	return h, nil
}

// checkHead verifies that h's note is signed by the log's key and states h's
// size and hash.
func (l *Log) checkHead(h Head) error {
	n, err := note.Open(h.Note, note.VerifierList(l.cfg.Verifier))
	if err != nil {
		return fmt.Errorf("stored head of size %d is not signed by key %s: %w: %w", h.Size, l.cfg.Verifier.Name(), ErrWrongKey, err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return fmt.Errorf("stored head of size %d: %w: %w", h.Size, errBadHead, err)
	}
	if tree.N != h.Size || tree.Hash != h.Hash {
		return fmt.Errorf("stored head says size %d hash %v, its signed note says size %d hash %v: %w", h.Size, h.Hash, tree.N, tree.Hash, errBadHead)
	}
	return nil
}

// errBadHead marks a stored head whose signed note is not a tree head of
// its size and root: the store was changed outside sumdb.
var errBadHead = errors.New("the stored head is damaged")

// Refresh rereads the stored head and makes it the served head if it is
// newer. It is how a process learns of appends made by others sharing its
// store. A store that went back in time or holds another tree is refused
// with an error wrapping ErrFork, and one of another log or damaged with
// ErrWrongKey or another error; the log then answers no lookup and no tile
// until a refresh finds the store holding its log again.
func (l *Log) Refresh(ctx context.Context) (Head, error) {
	seq, before := l.checks.Add(1), l.known()
	h, err := l.readHead(ctx)
	if err == nil {
		err = l.adopt(ctx, h, before)
	}
	l.observe(seq, err)
	return l.Head(), err
}

// A refusal records that a check found that the store does not hold this
// server's log.
type refusal struct {
	err   error  // why
	after uint64 // the number of the newest check begun when it was recorded
}

// observe records err, the outcome of check seq of the store's head, if it
// says whether the store holds this server's log: nil, or an error of a
// store that holds another tree (ErrFork), another log (ErrWrongKey) or a
// damaged head. An error that says nothing of the kind (the store did not
// answer) changes nothing.
//
// A refusal is recorded whatever its check's number: it may have read the
// store after a check numbered later. A check clears it only if it began
// after the refusal was recorded, and so read the store after the read
// that found the fault: an older one, however late it answers, says
// nothing of the store since. A stale refusal can so hold until the next
// check (a second, with the default refresh), never a stale clear.
func (l *Log) observe(seq uint64, err error) {
	if err != nil && !errors.Is(err, ErrFork) && !errors.Is(err, ErrWrongKey) && !errors.Is(err, errBadHead) {
		return
	}
	l.refusalMu.Lock()
	defer l.refusalMu.Unlock()
	if err == nil {
		if cur := l.refusal.Load(); cur != nil && seq > cur.after {
			l.refusal.Store(nil)
		}
		return
	}
	l.generation.Add(1)
	l.refusal.Store(&refusal{err: err, after: l.checks.Load()})
}

// Generation returns a number that changes whenever the log finds that the
// store does not hold its log (another tree, another log, a damaged head).
// Records and tiles read from the store before such a finding may be of
// that other tree, even if the read found no fault itself: a cache of them
// must drop those read under an older generation.
func (l *Log) Generation() uint64 { return l.generation.Load() }

// Refusal returns why the newest check found that the store does not hold
// this server's log, or nil. Records and tiles read from such a store do
// not belong to the served head: a client given them with it would fail to
// verify them, so the log reads none, and a cache of them must serve none.
func (l *Log) Refusal() error {
	if r := l.refusal.Load(); r != nil {
		return r.err
	}
	return nil
}

// adopt makes h, a stored head that other processes may have appended,
// read after the log knew the heads before, the served head if it is larger
// than the current one, once its tree is proven to contain the heads this
// server has served and committed: a larger tree that does not is a fork
// (the database failed over to a replica that lost commits, and another
// process appended to it), which must be neither served nor recorded as
// published.
//
// A stored head of the served size with another root is such a fork too,
// and so is one smaller than a head of before: adopt refuses them the same
// way, so that a server whose database failed over says so at its next
// refresh rather than at its next append.
func (l *Log) adopt(ctx context.Context, h Head, before []Head) error {
	if err := behind(h, before); err != nil {
		return err
	}
	if !l.news(h) {
		return nil
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if !l.news(h) {
		return nil
	}
	if err := l.extends(ctx, h, before); err != nil {
		return err
	}
	return l.publishLocked(h)
}

// news reports whether the stored head h is news to the served head:
// larger, or of its size with another root. A smaller stored head may have
// been read before the served head was committed.
func (l *Log) news(h Head) bool {
	cur := l.Head()
	return h.Size > cur.Size || h.Size == cur.Size && h.Size > 0 && h.Hash != cur.Hash
}

// known returns the heads this server has served and committed: the
// served head, and the newest head the sequencer committed, which the
// publisher may not have served yet.
func (l *Log) known() []Head {
	list := []Head{l.Head()}
	if c := l.lastCommit.Load(); c != nil {
		list = append(list, *c)
	}
	return list
}

// extends returns an error wrapping ErrFork unless the stored tree of
// head h contains the heads this server has served and committed. before
// are those it knew before h was read: the store only grows, so none may
// be larger than h. Those it learned since, it proves up to h's size; a
// larger one was committed since h was read, on top of a stored tree that
// extends h's (this server's commits are fenced on the stored head, and
// the heads it adopts are read from the store), so it says nothing of h.
// Within an append, when the store's head is locked, before is what the
// log knows now.
func (l *Log) extends(ctx context.Context, h Head, before []Head) error {
	if err := behind(h, before); err != nil {
		return err
	}
	for _, k := range append(before, l.known()...) {
		if k.Size > h.Size {
			continue
		}
		if err := l.contains(ctx, h, k); err != nil {
			return err
		}
	}
	return nil
}

// contains returns an error unless the stored tree of head h contains the
// tree of head old, proven by the stored hash tiles that h's root
// authenticates. A head of a size h lacks is for notBehind to refuse.
func (l *Log) contains(ctx context.Context, h, old Head) error {
	switch {
	case old.Size == 0 || old.Size > h.Size:
		return nil
	case old.Size == h.Size:
		if old.Hash == h.Hash {
			return nil
		}
	default:
		hr := xtlog.TileHashReader(xtlog.Tree{N: h.Size, Hash: h.Hash}, &tileReader{ctx: ctx, s: l.store})
		root, err := xtlog.TreeHash(old.Size, hr)
		if err != nil {
			return fmt.Errorf("prove that the store's tree of size %d contains the head of size %d this server has committed or served: %w", h.Size, old.Size, err)
		}
		if root == old.Hash {
			return nil
		}
	}
	return fmt.Errorf("the store's tree of size %d does not contain the tree of size %d this server has committed or served: %w: "+
		"the database holds another tree (a failover to a replica that lost commits, then appends by another process); refusing to serve or extend it", h.Size, old.Size, ErrFork)
}

// publish makes h the served head if it is larger than the current one,
// after recording it in cfg.PublishedFile. Open uses it for the stored
// head, before anything is served; later heads go through adopt or
// publishCommitted, which prove them consistent with the served head.
func (l *Log) publish(h Head) error {
	if h.Size <= l.Head().Size {
		return nil
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	return l.publishLocked(h)
}

// publishLocked is publish with l.pubMu held.
func (l *Log) publishLocked(h Head) error {
	if h.Size <= l.Head().Size {
		return nil
	}
	if l.pubFile != nil && h.Size > l.published {
		if err := l.pubFile.write(h.Note); err != nil {
			return fmt.Errorf("record the published head of size %d: %w", h.Size, err)
		}
		l.published = h.Size
	}
	l.head.Store(&h)
	return nil
}

// covering returns a head that covers record id, rereading the store if the
// served head is older than the record (another process appended it).
func (l *Log) covering(ctx context.Context, id int64) (Head, error) {
	if h := l.Head(); h.Size > id {
		return h, nil
	}
	h, err := l.Refresh(ctx)
	if err != nil {
		return Head{}, err
	}
	if h.Size <= id {
		return Head{}, fmt.Errorf("record %d is stored but the stored head has size %d", id, h.Size)
	}
	return h, nil
}

// Lookup returns the record of path@version and a signed head that covers it,
// or an error wrapping ErrNotFound.
func (l *Log) Lookup(ctx context.Context, path, version string) (Record, Head, error) {
	if err := l.Refusal(); err != nil {
		return Record{}, Head{}, err
	}
	rec, err := l.store.Lookup(ctx, path, version)
	if err != nil {
		return Record{}, Head{}, err
	}
	h, err := l.covering(ctx, rec.ID)
	if err != nil {
		return Record{}, Head{}, err
	}
	return rec, h, nil
}

// Append adds the record text for path@version to the log and waits until a
// signed head covering it has committed. If path@version is already in the
// log, Append returns the logged record, whose text may differ from text.
// When the queue is full it returns ErrPushback without waiting. If ctx ends
// first, Append returns ctx's error; the record may still be committed.
func (l *Log) Append(ctx context.Context, path, version string, text []byte) (Record, Head, error) {
	req := &request{rec: Record{Path: path, Version: version, Text: text}, done: make(chan result, 1)}
	select {
	case <-l.done:
		return Record{}, Head{}, ErrClosed
	default:
	}
	select {
	case l.queue <- req:
	default:
		return Record{}, Head{}, ErrPushback
	}
	select {
	case r := <-req.done:
		return r.rec, r.head, r.err
	case <-l.done:
		// The sequencer stopped, and may have drained the queue before the
		// request got into it: nobody will answer after this.
		select {
		case r := <-req.done:
			return r.rec, r.head, r.err
		default:
			return Record{}, Head{}, ErrClosed
		}
	case <-ctx.Done():
		return Record{}, Head{}, ctx.Err()
	}
}

// TileReader returns a reader of the log's hash tiles, as ReadTile reads
// them under ctx, for x/mod's TileHashReader: the proofs a witness or a
// client asks of the log. It saves nothing: the log stores its tiles as it
// commits them.
func (l *Log) TileReader(ctx context.Context) xtlog.TileReader { return logTiles{ctx, l} }

// logTiles is the TileReader of a Log.
type logTiles struct {
	ctx context.Context
	l   *Log
}

func (r logTiles) Height() int { return TileHeight }

func (r logTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.l.ReadTile(r.ctx, t)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return data, nil
}

func (r logTiles) SaveTiles([]xtlog.Tile, [][]byte) {}

// ReadTile returns the content of tile t, a hash tile or (t.L == -1) a data
// tile, as the tile endpoints serve it. A tile the current tree does not
// reach yields an error wrapping ErrNotFound.
func (l *Log) ReadTile(ctx context.Context, t xtlog.Tile) ([]byte, error) {
	if err := l.Refusal(); err != nil {
		return nil, err
	}
	if t.H != TileHeight || t.W < 1 || t.W > TileWidth || t.N < 0 || t.L < -1 {
		return nil, fmt.Errorf("tile %+v: %w", t, ErrNotFound)
	}
	level := t.L
	if level < 0 {
		level = 0 // a data tile spans the same records as the level-0 hash tile
	}
	end := t.N*TileWidth + int64(t.W) // hashes needed at the tile's level
	if level >= 8 || t.N > (1<<62)/TileWidth {
		return nil, fmt.Errorf("tile %s: %w", t.Path(), ErrNotFound)
	}
	within := func(h Head) bool { return end <= h.Size>>(uint(level)*TileHeight) }
	if !within(l.Head()) {
		// A client may hold a newer head from another process sharing the store.
		if h, err := l.Refresh(ctx); err != nil || !within(h) {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("tile %s is beyond the tree of size %d: %w", t.Path(), h.Size, ErrNotFound)
		}
	}
	if t.L == -1 {
		recs, err := l.store.ReadRecords(ctx, t.N*TileWidth, t.W)
		if err != nil {
			return nil, fmt.Errorf("read data tile %s: %w", t.Path(), err)
		}
		if len(recs) != t.W {
			return nil, fmt.Errorf("read data tile %s: got %d records, want %d", t.Path(), len(recs), t.W)
		}
		var data []byte
		for _, r := range recs {
			data = append(data, r.Text...)
			data = append(data, '\n')
		}
		return data, nil
	}
	b, err := l.store.ReadTile(ctx, t.L, t.N)
	if err != nil {
		return nil, fmt.Errorf("read tile %s: %w", t.Path(), err)
	}
	if len(b) < t.W*xtlog.HashSize {
		return nil, fmt.Errorf("read tile %s: stored tile holds only %d hashes", t.Path(), len(b)/xtlog.HashSize)
	}
	return b[:t.W*xtlog.HashSize], nil
}

// proofTimeout bounds the proof, from stored tiles, that the served head
// contains the head of batches committed before it was served.
const proofTimeout = 30 * time.Second

// publisher records the heads of committed batches in cfg.PublishedFile,
// in order, and answers the batches' appends once the file holds their
// head. When several batches wait, it records the newest head only, once
// for all of them.
func (l *Log) publisher() {
	defer close(l.pubDone)
	for c := range l.committed {
		list := []*committed{c}
	more:
		for {
			select {
			case c, ok := <-l.committed:
				if !ok {
					break more
				}
				list = append(list, c)
			default:
				break more
			}
		}
		newest := list[len(list)-1].head
		seq := l.checks.Add(1)
		err := l.publishCommitted(list)
		if errors.Is(err, ErrFork) {
			l.observe(seq, err)
		}
		if err != nil {
			// The batches are stored, but no client may see their heads
			// before one is recorded: the lookups fail, and find the
			// records once a later batch or refresh records a head.
			l.logger.Error("publish head", "size", newest.Size, "err", err)
		}
		for _, c := range list {
			for i, r := range c.records {
				res := result{rec: r, head: c.head}
				if err != nil {
					res = result{err: err}
				}
				for _, req := range c.waiters[i] {
					req.done <- res
				}
			}
		}
	}
}

// publishCommitted makes the head of the newest of list, batches the
// sequencer committed in order, the served head, once it is proven
// consistent with the served head: a refresh may have served a head of
// another process while the batches were committed, and a failover may
// have put them on a tree that lacks it. Batches that extend the served
// head, one after another, need no proof: the sequencer committed each on
// the tree of the one before (the store's fence saw to it).
func (l *Log) publishCommitted(list []*committed) error {
	newest := list[len(list)-1].head
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if cur := l.Head(); !chained(list, cur) {
		ctx, cancel := context.WithTimeout(context.Background(), proofTimeout)
		defer cancel()
		var err error
		if newest.Size >= cur.Size {
			err = l.contains(ctx, newest, cur)
		} else {
			err = l.contains(ctx, cur, newest)
		}
		if err != nil {
			return err
		}
	}
	return l.publishLocked(newest)
}

// chained reports whether the tree of head cur is one that a batch of list
// extends, or a batch's head, in the run of batches that ends with the
// newest, each extending the head of the one before.
func chained(list []*committed, cur Head) bool {
	same := func(a, b Head) bool { return a.Size == b.Size && (a.Size == 0 || a.Hash == b.Hash) }
	for i := len(list) - 1; i >= 0; i-- {
		if same(list[i].head, cur) || same(list[i].old, cur) {
			return true
		}
		if i > 0 && !same(list[i-1].head, list[i].old) {
			return false
		}
	}
	return false
}

// run is the sequencer: it takes batches off the queue and commits them.
func (l *Log) run(ctx context.Context) {
	defer func() {
		close(l.committed)
		<-l.pubDone
		close(l.done)
	}()
	var tick <-chan time.Time
	if l.cfg.RefreshInterval > 0 {
		t := time.NewTicker(l.cfg.RefreshInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var batch []*request
		select {
		case <-ctx.Done():
			l.drain()
			return
		case <-tick:
			if _, err := l.Refresh(ctx); err != nil && ctx.Err() == nil {
				level := slog.LevelWarn
				if errors.Is(err, ErrFork) {
					level = slog.LevelError
				}
				l.logger.Log(ctx, level, "refresh head", "err", err)
			}
			continue
		case req := <-l.queue:
			batch = append(batch, req)
		}
	gather:
		for len(batch) < l.cfg.MaxBatch {
			select {
			case req := <-l.queue:
				batch = append(batch, req)
			default:
				break gather
			}
		}
		l.commit(ctx, batch)
	}
}

// drain fails every queued append after the sequencer stopped.
func (l *Log) drain() {
	for {
		select {
		case req := <-l.queue:
			req.done <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// commit appends one batch and answers its requests. A batch that has
// started is finished even if the log is closing: Close waits for it.
func (l *Log) commit(ctx context.Context, batch []*request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.CommitTimeout)
	defer cancel()

	// One record per path@version; later requests for the same key share it.
	waiters := make(map[string][]*request)
	var recs []Record
	for _, req := range batch {
		k := req.rec.Key()
		if waiters[k] == nil {
			recs = append(recs, req.rec)
		}
		waiters[k] = append(waiters[k], req)
	}
	answer := func(k string, r result) {
		for _, req := range waiters[k] {
			req.done <- r
		}
		delete(waiters, k)
	}
	var existing []string // keys found already logged
	defer func() {
		for _, k := range existing {
			rec, err := l.store.Lookup(ctx, waiters[k][0].rec.Path, waiters[k][0].rec.Version)
			var h Head
			if err == nil {
				h, err = l.covering(ctx, rec.ID)
			}
			answer(k, result{rec: rec, head: h, err: err})
		}
	}()

	for attempt := 0; len(recs) > 0; attempt++ {
		if ctx.Err() != nil {
			err := fmt.Errorf("append %d records: gave up after %d attempts: %w", len(recs), attempt, ctx.Err())
			for _, r := range recs {
				answer(r.Key(), result{err: err})
			}
			return
		}
		if err := l.Refusal(); err != nil {
			// The store holds another tree or another log: extend
			// nothing until a check finds it holding this one again.
			err = fmt.Errorf("append %d records: %w", len(recs), err)
			for _, r := range recs {
				answer(r.Key(), result{err: err})
			}
			return
		}
		var (
			b    *Batch
			next *Edge
			err  error
		)
		seq, start := l.checks.Add(1), time.Now()
		fast := l.edgeServes()
		if fast {
			// Most likely the stored head is still the edge's: commit the
			// batch computed from it with Append, whose check of the old
			// size and root can cost no round trip of its own (Postgres).
			// If another process appended meanwhile, the locked path
			// below follows it.
			if b, next, err = l.prepare(recs); err != nil {
				for _, r := range recs {
					answer(r.Key(), result{err: err})
				}
				return
			}
			err = l.store.Append(ctx, b)
		}
		if !fast || errors.Is(err, ErrConflict) {
			// Compute the batch against the head the store has locked: a
			// writer that waited for another one extends its head rather
			// than conflict with it.
			err = l.store.AppendLocked(ctx, func(h Head) (*Batch, error) {
				if err := l.follow(ctx, h); err != nil {
					return nil, err
				}
				var err error
				b, next, err = l.prepare(recs)
				return b, err
			})
		}
		var dup *DuplicateError
		switch {
		case err == nil:
			elapsed := time.Since(start)
			l.edge = next
			if c := l.lastCommit.Load(); c == nil || b.Head.Size > c.Size {
				h := b.Head
				l.lastCommit.Store(&h)
			}
			l.logger.DebugContext(ctx, "committed batch", "records", len(b.Records), "size", b.Head.Size, "duration", elapsed)
			if l.cfg.OnCommit != nil {
				l.cfg.OnCommit(len(b.Records), elapsed)
			}
			// The publisher records the head, then answers; the waiters
			// of records found already logged (existing) are answered by
			// the deferred lookups, with a head they publish themselves.
			c := &committed{old: Head{Size: b.OldSize, Hash: b.OldHash}, head: b.Head, records: b.Records, waiters: make([][]*request, len(b.Records))}
			for i, r := range b.Records {
				c.waiters[i] = waiters[r.Key()]
				delete(waiters, r.Key())
			}
			l.committed <- c
			return
		case errors.Is(err, ErrConflict):
			// The locked batch did not extend the stored head, which only
			// a writer outside the store's lock can cause: drop the edge,
			// so that the next attempt follows the stored head from its
			// tiles, and try again after a short random pause, so that two
			// such writers take turns rather than keep invalidating each
			// other.
			l.edge = nil
			pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
		case errors.As(err, &dup):
			drop := make(map[string]bool)
			for _, k := range dup.Keys {
				drop[k] = true
				existing = append(existing, k)
			}
			kept := recs[:0]
			for _, r := range recs {
				if !drop[r.Key()] {
					kept = append(kept, r)
				}
			}
			if len(kept) == len(recs) {
				err := fmt.Errorf("append: store reported duplicates not in the batch: %w", err)
				for _, r := range recs {
					answer(r.Key(), result{err: err})
				}
				return
			}
			recs = kept
		default:
			// The commit may or may not have happened: reload before the next batch.
			l.edge = nil
			l.observe(seq, err)
			l.logger.ErrorContext(ctx, "append batch", "records", len(recs), "err", err)
			for _, r := range recs {
				answer(r.Key(), result{err: fmt.Errorf("append: %w", err)})
			}
			return
		}
	}
}

// edgeServes reports whether the sequencer's edge holds every head the log
// has served, so that a batch computed from it may be committed on the
// fence of its size and root alone. A replica serves heads other processes
// committed, larger than its edge; the store of a database that failed over
// to a standby may hold the edge's tree exactly, without them: extending it
// would contradict them. Such a batch goes through the locked path, whose
// follow proves the locked head against the heads served.
func (l *Log) edgeServes() bool {
	if l.edge == nil {
		return false
	}
	served := l.Head()
	n := l.edge.Size()
	return n > served.Size || n == served.Size && (n == 0 || l.edge.Root() == served.Hash)
}

// follow makes the sequencer's edge the one of h, the head the store has
// locked for an append (Store.AppendLocked), reloading it if another
// process appended since.
func (l *Log) follow(ctx context.Context, h Head) error {
	if err := l.notBehind(h); err != nil {
		return err
	}
	if l.edge != nil && l.edge.Size() == h.Size && (h.Size == 0 || l.edge.Root() == h.Hash) && l.edgeServes() {
		return nil
	}
	if h.Size > 0 {
		if err := l.checkHead(h); err != nil {
			return err
		}
	}
	if e := l.catchUp(ctx, h); e != nil {
		// h's root is proven from the edge, which holds every head this
		// server committed, and served up to its size; a larger head
		// served since, of another process, is proven apart.
		if served := l.Head(); served.Size > l.edge.Size() {
			if err := l.contains(ctx, h, served); err != nil {
				return err
			}
		}
		l.edge = e
		return nil
	}
	l.edge = nil
	if err := l.extends(ctx, h, l.known()); err != nil {
		return err
	}
	e, err := LoadEdge(ctx, l.store, h)
	if err != nil {
		return err
	}
	l.edge = e
	return nil
}

// maxCatchUp is the largest number of records that another process may
// have appended for follow to catch up by reading them rather than reload
// the edge from the stored tiles.
const maxCatchUp = 4096

// catchUp returns the sequencer's edge extended by the records that other
// processes appended up to h, if they are few, or nil. Reading them is one
// query, and the edge it gives is proven by h's root; reloading the edge
// takes a tile read per level and the proofs of x/mod's TileHashReader.
func (l *Log) catchUp(ctx context.Context, h Head) *Edge {
	if l.edge == nil || h.Size <= l.edge.Size() || h.Size-l.edge.Size() > maxCatchUp {
		return nil
	}
	from, n := l.edge.Size(), int(h.Size-l.edge.Size())
	recs, err := l.store.ReadRecords(ctx, from, n)
	if err != nil || len(recs) != n {
		return nil
	}
	leaves := make([]xtlog.Hash, n)
	for i, r := range recs {
		leaves[i] = xtlog.RecordHash(r.Text)
	}
	e := l.edge.Clone()
	e.Append(leaves)
	if e.Root() != h.Hash {
		l.logger.WarnContext(ctx, "records appended by another process do not give its head's root: reloading the stored tiles", "from", from, "size", h.Size)
		return nil
	}
	return e
}

// notBehind returns an error if the stored head h is older than the head
// the log serves or the newest head its sequencer committed, which the
// publisher may not have served yet: extending h would fork the log and
// lose appends that are, or are about to be, acknowledged. The database
// lost commits (a failover to a replica that lagged, a restored backup).
func (l *Log) notBehind(h Head) error { return behind(h, l.known()) }

// behind returns an error wrapping ErrFork if the stored head h is smaller
// than one of the heads known.
func behind(h Head, known []Head) error {
	var size int64
	for _, k := range known {
		size = max(size, k.Size)
	}
	if h.Size < size {
		return fmt.Errorf("the store's head has size %d, older than the head of size %d this server has committed or served: %w: the database went back in time; refusing to append (restore a newer backup)", h.Size, size, ErrFork)
	}
	return nil
}

// prepare computes the batch appending recs to the sequencer's edge, and the
// edge after it, without changing the current edge.
func (l *Log) prepare(recs []Record) (*Batch, *Edge, error) {
	next := l.edge.Clone()
	old := next.Size()
	b := &Batch{OldSize: old, Records: make([]Record, len(recs))}
	if old > 0 {
		b.OldHash = l.edge.Root()
	}
	leaves := make([]xtlog.Hash, len(recs))
	for i, r := range recs {
		r.ID = old + int64(i)
		b.Records[i] = r
		leaves[i] = xtlog.RecordHash(r.Text)
	}
	b.Tiles = next.Append(leaves)
	tree := xtlog.Tree{N: next.Size(), Hash: next.Root()}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, l.cfg.Signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign tree head %d: %w", tree.N, err)
	}
	b.Head = Head{Size: tree.N, Hash: tree.Hash, Note: msg}
	return b, next, nil
}
