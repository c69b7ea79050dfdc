package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/tlog"
)

// DefaultBatchRecords is the default of ImportConfig.BatchRecords.
const DefaultBatchRecords = 50_000

// maxPending bounds the records an import holds in memory before it has
// the head that covers them: a sumdb log signs a head for each batch of at
// most a few thousand records.
const maxPending = 1 << 20

// Bounds on the bytes an import holds, whatever the size of the records (up
// to 64 KiB each): maxPendingBytes, of the records before the head that
// covers them, as maxPending bounds their number; maxBatchBytes, of a
// batch's records and heads, which then ends at the next head even if it
// holds fewer than ImportConfig.BatchRecords records. Variables for the
// tests.
var (
	maxPendingBytes = 64 << 20
	maxBatchBytes   = 64 << 20
)

// An ImportConfig configures Import.
type ImportConfig struct {
	// Key, if set, is the verifier key the file must have: the key of the
	// server that will serve the imported log.
	Key string
	// BatchRecords is the least number of records committed in one
	// transaction, which ends at the first head of the file after them.
	// Zero means DefaultBatchRecords; negative is an error.
	BatchRecords int
	// Progress, if set, is told of the records done.
	Progress Progress
	// MirrorKeys holds the verifier key of each mirrored checksum
	// database whose cache the file may hold, by the database's name (the
	// key's name). A file with the cache of a database not named here is
	// refused: nothing of it could be verified.
	MirrorKeys map[string]string
}

// A Result tells what Import did.
type Result struct {
	Key      string    // the file's verifier key
	Head     tlog.Head // the last head of the file, now the store's head
	Skipped  int64     // records that the store held already
	Imported int64     // records stored
	Heads    int64     // heads stored in the history
	Bulk     bool      // the store was loaded in bulk-load mode (tlog.BulkStore)
	// Mirrors tells what was stored of the caches of mirrored databases.
	Mirrors []MirrorSummary
}

// Import reads an export file from r and stores its log in s, which must
// be empty or hold a prefix of the file's log: a tree of a size at which
// the file has a head with the same root, signed by the same key. It then
// stores the records and heads that s lacks, with the same ids, tiles and
// signed notes as the log the file was written from.
//
// Import checks the root of every head of the file against the tree of its
// records, and its signature with the file's key, before it commits the
// records the head covers; a batch of records is committed with the heads
// among them, in one transaction that ends at a head. If the file is
// damaged, Import returns an error naming what is wrong, and the store
// holds the log up to a head before it: an import of the repaired file, or
// of another export of the same log, resumes there.
//
// Into an empty tlog.BulkStore, Import loads in bulk-load mode, and leaves
// it at the end; a store left in bulk-load mode by an import that did not
// finish is refused by tlog.Open until an import finishes it.
func Import(ctx context.Context, s tlog.Store, r io.Reader, cfg ImportConfig) (*Result, error) {
	if cfg.BatchRecords < 0 {
		return nil, fmt.Errorf("import: BatchRecords %d: want at least 1 (0 for the default)", cfg.BatchRecords)
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	if cfg.Progress == nil {
		cfg.Progress = func(int64, int64) {}
	}
	mirrorKeys, err := checkMirrorKeys(cfg.MirrorKeys)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	hdr, err := readHeader(br)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	res := &Result{Key: hdr.Key}
	_, canStore := s.(MirrorStore)
	mp := &mirrorParser{keys: mirrorKeys, canStore: canStore}
	if hdr.Records == 0 {
		// A server that only mirrors: nothing of the log to import, nor
		// to check against the store's.
		if _, err := parse(ctx, br, hdr, tlog.Head{}, nil, cfg, nil, mp); err != nil {
			return res, err
		}
		res.Mirrors, err = importMirrors(ctx, mp.sections, mirrorKeys, s)
		return res, err
	}
	v, err := note.NewVerifier(hdr.Key)
	if err != nil {
		return nil, fmt.Errorf("import: the file's key %q: %w", hdr.Key, err)
	}
	if cfg.Key != "" && cfg.Key != hdr.Key {
		return nil, fmt.Errorf("import: the file holds the log of key %s, not of the expected key %s: import the export of this server's log, or give this log's key file", hdr.Key, cfg.Key)
	}

	stored, err := s.ReadHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("import: read the store's head: %w", err)
	}
	if stored.Size > 0 {
		if _, err := verifyHead(stored.Note, v); err != nil {
			return nil, fmt.Errorf("import: the store holds another log, whose head of size %d does not verify with the file's key %s: import into an empty database", stored.Size, v.Name())
		}
		if stored.Size > hdr.Records {
			return nil, fmt.Errorf("import: the store holds %d records, more than the file's %d: the file does not extend it; import into an empty database", stored.Size, hdr.Records)
		}
	}
	bs, _ := s.(tlog.BulkStore)
	if bs != nil {
		loading, err := bs.BulkLoading(ctx)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if stored.Size == 0 && !loading {
			if err := bs.BeginBulk(ctx); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			loading = true
		}
		res.Bulk = loading
	}

	g, gctx := errgroup.WithContext(ctx)
	parsed := make(chan *tlog.Batch, 1)
	verified := make(chan *tlog.Batch, 1)
	var last tlog.Head // set by the parser before it closes parsed
	g.Go(func() error {
		defer close(parsed)
		var err error
		last, err = parse(gctx, br, hdr, stored, v, cfg, parsed, mp)
		return err
	})
	g.Go(func() error {
		defer close(verified)
		for b := range parsed {
			if err := verifyHeads(append(slices.Clip(b.History), b.Head), v); err != nil {
				return fmt.Errorf("import: %w: the file is damaged or forged", err)
			}
			select {
			case verified <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for b := range verified {
			if err := s.Append(gctx, b); err != nil {
				var dup *tlog.DuplicateError
				if errors.As(err, &dup) {
					return fmt.Errorf("import: records [%d, %d): %w: the file holds a module version the store holds already, under another id: the store does not hold a prefix of this log", b.OldSize, b.Head.Size, err)
				}
				return fmt.Errorf("import: commit records [%d, %d): %w", b.OldSize, b.Head.Size, err)
			}
			res.Imported += int64(len(b.Records))
			res.Heads += int64(len(b.History)) + 1
			cfg.Progress(b.Head.Size, hdr.Records)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Head = last
	res.Skipped = stored.Size
	if res.Bulk {
		if err := bs.EndBulk(ctx); err != nil {
			var dup *tlog.DuplicateError
			if errors.As(err, &dup) {
				return res, fmt.Errorf("import: %w: the file's log holds a module version twice, which no sumdb log does; the store stays unusable: drop it", err)
			}
			return res, fmt.Errorf("import: %w (run the import again to finish it)", err)
		}
	}
	res.Mirrors, err = importMirrors(ctx, mp.sections, mirrorKeys, s)
	return res, err
}

// verifyHeads checks the signatures of heads with v, on all CPUs: a head
// per record costs tens of microseconds each. Its error names a head that
// does not verify.
func verifyHeads(heads []tlog.Head, v note.Verifier) error {
	workers := min(runtime.GOMAXPROCS(0), (len(heads)+63)/64)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(heads); i += workers {
				if _, err := verifyHead(heads[i].Note, v); err != nil {
					errs[w] = fmt.Errorf("the head of size %d does not verify with key %s: %w", heads[i].Size, v.Name(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parse reads the frames after the header, checks every head's root, and
// sends the batches to store, each ending at a head; it gives the mirror
// sections to mp. It returns the last head of the file.
func parse(ctx context.Context, r *bufio.Reader, hdr Header, stored tlog.Head, v note.Verifier, cfg ImportConfig, batches chan<- *tlog.Batch, mp *mirrorParser) (tlog.Head, error) {
	fr := &frameReader{r: r, version: hdr.Version}
	edge := tlog.NewEdge()
	var (
		count   int64        // records read
		nheads  int64        // heads read
		last    tlog.Head    // the last head read
		leaves  []xtlog.Hash // of the records after the last head
		b       = &tlog.Batch{OldSize: stored.Size, OldHash: stored.Hash}
		full    []tlog.Tile // tiles of b that became full
		history []tlog.Head // heads of b, the last one included
		prefix  = stored.Size == 0
		pending int  // bytes of the records after the last head
		size    int  // bytes of the records and heads of b
		logDone bool // the log's frames are over
	)
	fail := func(format string, args ...any) (tlog.Head, error) {
		return tlog.Head{}, fmt.Errorf("import: "+format, args...)
	}
	// endLog checks the log's frames once they are over, and sends the
	// last batch.
	endLog := func() error {
		if count != hdr.Records || last.Size != count {
			_, err := fail("the file ends after %d records, with a last head of size %d, but its header says %d records: the file is damaged", count, last.Size, hdr.Records)
			return err
		}
		if count == 0 {
			return nil // a file of only mirror sections
		}
		if !prefix {
			_, err := fail("the file has no head of size %d, the size of the store's tree: the file does not extend the store's log exactly", stored.Size)
			return err
		}
		if len(history) > 0 {
			b.Tiles = append(full, edge.PartialTiles(b.OldSize)...)
			b.History, b.Head = history[:len(history)-1], history[len(history)-1]
			select {
			case batches <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := verifyHead(last.Note, v); err != nil {
			_, err := fail("the last head, of size %d, does not verify with the file's key %s: %w", last.Size, v.Name(), err)
			return err
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return tlog.Head{}, err
		}
		tag, payload, err := fr.next()
		if err != nil {
			return fail("after record %d and the head of size %d: %w", count, last.Size, err)
		}
		switch tag {
		case tagRecord:
			if count >= hdr.Records {
				return fail("record %d: the file's header says it holds %d records: the file is damaged", count, hdr.Records)
			}
			path, version, err := parseRecord(payload)
			if err != nil {
				return fail("record %d: %w: the file is damaged", count, err)
			}
			if len(leaves) >= maxPending || pending+len(payload) > maxPendingBytes {
				return fail("records [%d, %d) have no signed head: a sumdb log signs a head for every few thousand records; the file is damaged", count-int64(len(leaves)), count+1)
			}
			leaves = append(leaves, xtlog.RecordHash(payload))
			pending += len(payload)
			if count >= stored.Size {
				b.Records = append(b.Records, tlog.Record{ID: count, Path: path, Version: version, Text: bytes.Clone(payload)})
				size += len(payload)
			}
			count++
			if count <= stored.Size && count%(1<<16) == 0 {
				cfg.Progress(count, hdr.Records) // checking the prefix the store holds
			}

		case tagHead:
			tree, err := parseHead(payload)
			if err != nil {
				return fail("the head after record %d: %w: the file is damaged", count-1, err)
			}
			if tree.N != count || tree.N <= last.Size {
				return fail("the head of size %d comes after %d records (the previous head has size %d): the file is damaged", tree.N, count, last.Size)
			}
			tiles := edge.AppendFull(leaves)
			leaves, pending = leaves[:0], 0
			if root := edge.Root(); root != tree.Hash {
				return fail("the head of size %d has root %v, but the file's records give %v: a record before it was altered; the file is damaged", tree.N, tree.Hash, root)
			}
			h := tlog.Head{Size: tree.N, Hash: tree.Hash, Note: bytes.Clone(payload)}
			nheads++
			last = h
			switch {
			case h.Size < stored.Size:
				continue
			case h.Size == stored.Size:
				if h.Hash != stored.Hash {
					return fail("the store's tree of size %d has root %v, but the file's has %v: the store holds another log; import into an empty database", stored.Size, stored.Hash, h.Hash)
				}
				prefix = true
				continue
			case !prefix:
				return fail("the file has no head of size %d, the size of the store's tree: the file does not extend the store's log exactly", stored.Size)
			}
			full = append(full, tiles...)
			history = append(history, h)
			size += len(h.Note)
			if len(b.Records) < cfg.BatchRecords && size < maxBatchBytes {
				continue
			}
			b.Tiles = append(full, edge.PartialTiles(b.OldSize)...)
			b.History, b.Head = history[:len(history)-1], history[len(history)-1]
			select {
			case batches <- b:
			case <-ctx.Done():
				return tlog.Head{}, ctx.Err()
			}
			b, full, history, size = &tlog.Batch{OldSize: h.Size, OldHash: h.Hash}, nil, nil, 0

		case tagMirrorHead, tagMirrorTile, tagMirrorRecord:
			if !logDone {
				if err := endLog(); err != nil {
					return tlog.Head{}, err
				}
				logDone = true
			}
			if err := mp.frame(tag, payload); err != nil {
				return fail("%w", err)
			}

		case tagEnd:
			if !logDone {
				if err := endLog(); err != nil {
					return tlog.Head{}, err
				}
			}
			ends := make([]uint64, 0, 5)
			for rest := payload; len(rest) > 0 && len(ends) < 5; {
				n, k := binary.Uvarint(rest)
				if k <= 0 {
					break
				}
				ends, rest = append(ends, n), rest[k:]
			}
			want := []uint64{uint64(count), uint64(nheads)}
			if hdr.Version >= 2 {
				want = append(want, uint64(mp.counts.heads), uint64(mp.counts.tiles), uint64(mp.counts.records))
			}
			if !slices.Equal(ends, want) || encodedLen(want) != len(payload) {
				return fail("the end frame does not match the %d records and %d heads read: the file is damaged", count, nheads)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return fail("data after the end frame: the file is damaged")
			}
			return last, nil
		}
	}
}

// encodedLen returns the bytes of list as unsigned varints.
func encodedLen(list []uint64) int {
	n := 0
	for _, x := range list {
		n += len(binary.AppendUvarint(nil, x))
	}
	return n
}
