// Package index keeps the index of a log's records by module path, which
// the explorer searches, and the time each of the log's heads was first
// seen, which tells when a record was logged.
//
// An Indexer reads the log's records from its store, after they are
// committed, and writes the index to the same store (migration
// 0006_record_index.sql): the log's append path is unchanged. Every
// replica of a log that shares a store runs an indexer; they write the
// same rows, and the first write of a row wins.
//
// The time of a record is the time the first head that contains it was
// first seen by an indexer, which polls the log's head (and is woken by
// Notify, which a log's tlog.Config.OnCommit may call): within a poll
// interval of the commit. The head an indexer finds when it starts may
// have been committed long before, so its time is recorded as unknown,
// as are the records of a log that existed before its index.
package index

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

// A Store holds a log's records and the index of them by path. The
// stores of package store are Stores.
type Store interface {
	// IndexedUpTo returns 1 + the highest indexed record id, 0 if none:
	// every record below is indexed.
	IndexedUpTo(ctx context.Context) (int64, error)
	// IndexRecords indexes recs, at most BatchSize records of consecutive
	// ids from at most IndexedUpTo, all or none; indexing a record again
	// with the same path and version is a no-op.
	IndexRecords(ctx context.Context, recs []tlog.Record) error
	// PutHeadTime records t as the time the head of tree size was first
	// seen, unless a time is recorded already; the zero Time records that
	// it is unknown.
	PutHeadTime(ctx context.Context, size int64, t time.Time) error
	// ReadRecords returns the log's records [start, start+n).
	ReadRecords(ctx context.Context, start int64, n int) ([]tlog.Record, error)
}

// BatchSize is the most records an Indexer reads and indexes at once.
const BatchSize = 1000

// Timing of an Indexer.
const (
	// pollInterval is how often an Indexer looks for a new head.
	pollInterval = 200 * time.Millisecond
	// progressInterval is how often an Indexer that catches up logs its
	// progress.
	progressInterval = 5 * time.Second
	// minRetry and maxRetry bound the wait after a failure of the store.
	minRetry = time.Second
	maxRetry = time.Minute
)

// An Indexer keeps the index of a log's records by path and the times of
// its heads up to date. Run runs it; its methods are safe to call from
// several goroutines.
type Indexer struct {
	log    *tlog.Log
	st     Store
	logger *slog.Logger
	notify chan struct{}
	// indexed is 1 + the highest record id the indexer knows indexed.
	indexed atomic.Int64

	// Timing, which tests shorten.
	poll, progress, minRetry, maxRetry time.Duration
	now                                func() time.Time
}

// New returns an Indexer of log, whose records are in st, logging to
// logger (slog.Default() if nil). Run runs it.
func New(log *tlog.Log, st Store, logger *slog.Logger) *Indexer {
	if log == nil || st == nil {
		panic("index.New: nil log or store")
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Indexer{
		log:      log,
		st:       st,
		logger:   logger,
		notify:   make(chan struct{}, 1),
		poll:     pollInterval,
		progress: progressInterval,
		minRetry: minRetry,
		maxRetry: maxRetry,
		now:      time.Now,
	}
}

// Notify tells ix that the log committed a new head, so that it looks at
// once rather than at its next poll. It never blocks.
func (ix *Indexer) Notify() {
	select {
	case ix.notify <- struct{}{}:
	default:
	}
}

// Indexed returns the number of records ix knows to be indexed (the
// records [0, Indexed()) are), 0 before Run has read it from the store.
func (ix *Indexer) Indexed() int64 { return ix.indexed.Load() }

// Run indexes the log's records until ctx ends: from where the index
// ends, in batches of up to BatchSize, to the log's head, and then the
// records of each new head, recording the time each new head is first
// seen. A failure of the store is logged and retried, waiting longer after
// each (up to a minute).
func (ix *Indexer) Run(ctx context.Context) {
	wait := ix.minRetry
	var seen int64 = -1 // the largest head size whose time is recorded; -1 before the start
	for {
		err := ix.run(ctx, &seen)
		if ctx.Err() != nil {
			return
		}
		ix.logger.WarnContext(ctx, "index the log's records: retrying", "err", err, "indexed", ix.indexed.Load(), "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, ix.maxRetry)
	}
}

// run indexes until ctx ends or the store fails. *seen is the largest head
// size whose time ix recorded, -1 if none: the head found at the start is
// recorded as of an unknown time.
func (ix *Indexer) run(ctx context.Context, seen *int64) error {
	upTo, err := ix.st.IndexedUpTo(ctx)
	if err != nil {
		return err
	}
	ix.indexed.Store(upTo)
	tick := time.NewTicker(ix.poll)
	defer tick.Stop()
	// A catch-up began at started (zero if none), and its progress was
	// last logged at logged, if reported.
	var started, logged time.Time
	reported := false
	for {
		h := ix.log.Head()
		if h.Size > *seen && h.Size > 0 {
			t := ix.now()
			if *seen < 0 {
				t = time.Time{} // committed at some time before the start
			}
			if err := ix.st.PutHeadTime(ctx, h.Size, t); err != nil {
				return err
			}
		}
		*seen = max(*seen, h.Size)
		if upTo < h.Size {
			n := int(min(h.Size-upTo, BatchSize))
			recs, err := ix.st.ReadRecords(ctx, upTo, n)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("read records from %d: the store has none, but the log's head has size %d", upTo, h.Size)
			}
			if err := ix.st.IndexRecords(ctx, recs); err != nil {
				return err
			}
			upTo += int64(len(recs))
			ix.indexed.Store(upTo)
			now := time.Now()
			if upTo < h.Size {
				if started.IsZero() {
					started, logged = now, now
				}
				if now.Sub(logged) >= ix.progress {
					ix.logger.InfoContext(ctx, "indexing the log's records", "indexed", upTo, "size", h.Size)
					logged, reported = now, true
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				continue
			}
			if reported {
				ix.logger.InfoContext(ctx, "indexed the log's records", "indexed", upTo, "duration", now.Sub(started))
			}
			started, reported = time.Time{}, false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ix.notify:
		case <-tick.C:
		}
	}
}
