package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// batchTiles is the number of data tiles the clone writes in one store
// append: large enough that the per-transaction cost (a WAL sync) is small
// per record, small enough that little work is lost when a run is stopped.
const batchTiles = 64

// passRecords is the most records one pass of the clone verifies, a
// multiple of the tile width; passes end at its multiples. The tiles of a
// pass, and the map of those to compare, are listed before the pass starts:
// a signed head of any size, honest or not, costs the memory of one pass
// (16M records, 65,536 data tiles). A pass that ends short of the signed
// head is verified as a clone cut by Config.Limit is, against the root that
// the server's hash tiles, authenticated by the head, give at its end.
// A variable for the tests.
var passRecords int64 = 1 << 24

// errStopped ends a clone that found a violation.
var errStopped = errors.New("clone stopped at a violation")

type tileKey struct {
	level int
	index int64
}

// A job is a fetch: a data tile together with the level-0 hash tile of the
// same records (data.L == -1), or a hash tile of a higher level.
type job struct {
	data   xtlog.Tile // the data tile, if this is a data job
	hash   xtlog.Tile // the hash tile
	isData bool
	check  bool // fetch and compare the level-0 hash tile of a data job
}

// A result is a job done.
type result struct {
	job    job
	recs   []record   // the data tile's records, parsed and hashed
	hashes []byte     // the hash tile
	bad    *Violation // a data tile that cannot be split into records
	err    error      // a failure to fetch
}

// A pendingBatch is the batch of records the sequencer gathers for one store
// append.
type pendingBatch struct {
	b         *tlog.Batch
	tiles     map[tileKey][]byte // newest content of each changed tile
	keys      map[string]logged  // path@version → its record, of the batch's records
	dataTiles int
}

// A logged is a record of a pending batch.
type logged struct {
	id   int64
	text []byte
}

// newPendingBatch returns an empty batch that extends the tree of e.
func newPendingBatch(e *tlog.Edge) *pendingBatch {
	b := &tlog.Batch{OldSize: e.Size()}
	if b.OldSize > 0 {
		b.OldHash = e.Root()
	}
	return &pendingBatch{
		b:     b,
		tiles: make(map[tileKey][]byte),
		keys:  make(map[string]logged),
	}
}

// clone extends the clone up to target records (≤ h.N), verifying as the
// package doc says, in passes of at most passRecords records. Violations go
// to the report and stop the clone.
func (a *auditor) clone(ctx context.Context, h signedHead, target int64) error {
	if a.head.Size == 0 {
		if err := a.st.BeginBulk(ctx); err != nil {
			return fmt.Errorf("prepare the clone: %w", err)
		}
	}
	m := startMeter(a.cfg.Progress, a.cfg.ProgressInterval, a.head.Size, target)
	defer m.finish()
	found := a.violations()
	for a.head.Size < target {
		end := min(target, (a.head.Size/passRecords+1)*passRecords)
		if err := a.clonePass(ctx, h, end, m); err != nil {
			return err
		}
		if a.violations() > found || a.head.Size < end {
			// Stopped at a violation.
			return nil
		}
	}
	return nil
}

// clonePass extends the clone up to target records (≤ h.N), as clone.
func (a *auditor) clonePass(ctx context.Context, h signedHead, target int64, m *meter) error {
	from := a.head.Size
	c := &cloner{a: a, h: h, from: from, target: target, edge: a.edge.Clone(), verify: make(map[tileKey]int), served: make(map[tileKey][]byte), meter: m}
	var uppers []xtlog.Tile
	for _, t := range xtlog.NewTiles(tlog.TileHeight, from, target) {
		if t.W < tlog.TileWidth && target != h.N {
			// A partial tile of a prefix of the tree is in no tree the
			// server signed: the root check below covers it.
			continue
		}
		c.verify[tileKey{t.L, t.N}] = t.W
		if t.L > 0 {
			uppers = append(uppers, t)
		}
	}
	first, last := from/tlog.TileWidth, (target-1)/tlog.TileWidth
	// An upper tile is fetched before the first data tile under it, so that
	// it is at hand when the edge completes it.
	start := func(t xtlog.Tile) int64 { return max(first, t.N<<(uint(t.L)*tlog.TileHeight)) }
	slices.SortStableFunc(uppers, func(x, y xtlog.Tile) int { return int(start(x) - start(y)) })

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conc := a.cfg.Concurrency
	pending := make(chan chan result, 4*conc)
	work := make(chan func(), conc)
	var fetchers sync.WaitGroup
	fetchers.Go(func() {
		defer close(pending)
		defer close(work)
		emit := func(j job) bool {
			out := make(chan result, 1)
			select {
			case pending <- out:
			case <-fctx.Done():
				return false
			}
			select {
			case work <- func() { out <- a.fetch(fctx, j) }:
				return true
			case <-fctx.Done():
				return false
			}
		}
		u := 0
		for k := first; k <= last; k++ {
			for ; u < len(uppers) && start(uppers[u]) <= k; u++ {
				if !emit(job{hash: uppers[u]}) {
					return
				}
			}
			w := int(min(tlog.TileWidth, target-k*tlog.TileWidth))
			t0 := xtlog.Tile{H: tlog.TileHeight, L: 0, N: k, W: w}
			_, check := c.verify[tileKey{0, k}]
			d := t0
			d.L = -1
			if !emit(job{data: d, hash: t0, isData: true, check: check}) {
				return
			}
		}
	})
	for range conc {
		fetchers.Go(func() {
			for f := range work {
				f()
			}
		})
	}

	batches := make(chan *tlog.Batch, 1)
	werr := make(chan error, 1)
	// Records verified are written even if ctx ends: a stopped run loses
	// no work.
	go func() { werr <- a.write(context.WithoutCancel(ctx), batches, cancel) }()

	serr := c.run(fctx, pending, batches)
	cancel() // the fetches; not the writer, which finishes the batches sent
	close(batches)
	wErr := <-werr
	fetchers.Wait()
	m.set(a.rep.Records)

	if err := a.reload(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	switch {
	case wErr != nil && !errors.Is(wErr, errStopped):
		return wErr
	case errors.Is(wErr, errStopped):
		return nil
	case errors.Is(serr, errStopped):
		return nil
	case serr != nil && ctx.Err() != nil:
		return ctx.Err()
	}
	return serr
}

// fetch does job j.
func (a *auditor) fetch(ctx context.Context, j job) result {
	r := result{job: j}
	if !j.isData {
		r.hashes, r.err = a.remote.Get(ctx, j.hash.Path())
		if r.err != nil {
			r.err = fmt.Errorf("fetch %s: %w", j.hash.Path(), r.err)
		}
		return r
	}
	data, err := a.remote.Get(ctx, j.data.Path())
	if err != nil {
		r.err = fmt.Errorf("fetch %s: %w%s", j.data.Path(), err, a.dataTileHint())
		return r
	}
	if j.check {
		r.hashes, r.err = a.remote.Get(ctx, j.hash.Path())
		if r.err != nil {
			r.err = fmt.Errorf("fetch %s: %w", j.hash.Path(), r.err)
			return r
		}
	}
	texts, err := SplitDataTile(data, j.data.W)
	if err != nil {
		base := j.data.N * tlog.TileWidth
		r.bad = &Violation{Kind: KindDataTile, Tile: j.data.Path(),
			Message: fmt.Sprintf("data tile %s of records [%d, %d) cannot be split into its records: %v", j.data.Path(), base, base+int64(j.data.W), err)}
		return r
	}
	r.recs = make([]record, len(texts))
	for i, text := range texts {
		r.recs[i] = parseRecord(text)
	}
	return r
}

// dataTileHint explains a data tile that cannot be fetched through a module
// proxy: proxies serve the go command's requests (lookups and hash tiles),
// and need not serve the records. It returns "" for a log reached at its
// own URL.
func (a *auditor) dataTileHint() string {
	if !strings.HasSuffix(a.remote.Base, "/sumdb/"+a.remote.Verifier.Name()) {
		return ""
	}
	return fmt.Sprintf(" (the log is reached through a module proxy, which may serve only what the go command asks for, not the data tiles: give the log's own URL with --sumdb \"%s <URL>\")", a.remote.Key)
}

// A cloner is the sequencer of one clone: it takes the fetched tiles in
// order, verifies them and gathers the batches for the writer. It runs in
// Run's goroutine and owns all its fields.
type cloner struct {
	a      *auditor
	h      signedHead
	from   int64
	target int64
	edge   *tlog.Edge
	verify map[tileKey]int    // tiles to compare with the server's, by width
	served map[tileKey][]byte // upper hash tiles fetched, not yet compared
	batch  *pendingBatch
	meter  *meter
}

// run verifies the fetched tiles in order and sends batches to the writer.
func (c *cloner) run(ctx context.Context, pending <-chan chan result, batches chan<- *tlog.Batch) error {
	c.batch = newPendingBatch(c.edge)
	for out := range pending {
		var r result
		select {
		case r = <-out:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			// The batch verified so far is kept.
			if err := c.flush(ctx, batches, nil); err != nil {
				return err
			}
			return r.err
		}
		if !r.job.isData {
			c.served[tileKey{r.job.hash.L, r.job.hash.N}] = r.hashes
			continue
		}
		stop, err := c.dataTile(ctx, r)
		if err != nil {
			return err
		}
		if stop {
			if err := c.flush(ctx, batches, nil); err != nil {
				return err
			}
			return errStopped
		}
		if c.batch.dataTiles >= batchTiles {
			if err := c.flush(ctx, batches, nil); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The root of the records must be the signed one.
	want, what := c.h.Hash, fmt.Sprintf("the signed head of size %d says %v", c.h.N, c.h.Hash)
	if c.target != c.h.N {
		root, v, err := c.a.rootAt(ctx, c.h, c.target)
		if err != nil || v != nil {
			if ferr := c.flush(ctx, batches, nil); ferr != nil {
				return ferr
			}
			if v != nil {
				c.a.violate(*v)
				return errStopped
			}
			return err
		}
		want, what = root, fmt.Sprintf("the server's hash tiles, authenticated by the signed head of size %d, give %v", c.h.N, root)
	}
	if got := c.edge.Root(); got != want {
		c.a.violate(Violation{Kind: KindRoot, Heads: [][]byte{c.h.Note},
			Message: fmt.Sprintf("the records [0, %d) give root %v, but %s", c.target, got, what)})
		return errStopped
	}
	var head *tlog.Head
	if c.target == c.h.N {
		head = &tlog.Head{Size: c.h.N, Hash: c.h.Hash, Note: c.h.Note}
	} else {
		// The checkpoint at c.target has the root of the signed tree
		// at that size: checkClone need not prove it again.
		c.a.vouched = xtlog.Tree{N: c.target, Hash: want}
	}
	return c.flush(ctx, batches, head)
}

// dataTile verifies one data tile and adds its records to the batch. It
// reports whether the clone must stop at a violation; the records before the
// violation are in the batch.
func (c *cloner) dataTile(ctx context.Context, r result) (stop bool, err error) {
	a := c.a
	if r.bad != nil {
		a.violate(*r.bad)
		return true, nil
	}
	t := r.job.data
	base := t.N * tlog.TileWidth
	recs := r.recs
	skip := 0
	if base < c.from {
		// The clone holds the start of this tile: the server must serve
		// the same records as before.
		skip = int(c.from - base)
		local, err := a.st.ReadRecords(ctx, base, skip)
		if err != nil {
			return false, fmt.Errorf("read the clone's records [%d, %d): %w", base, c.from, err)
		}
		if len(local) != skip {
			return false, fmt.Errorf("read the clone's records [%d, %d): got %d", base, c.from, len(local))
		}
		for i := range skip {
			if !bytes.Equal(local[i].Text, recs[i].text) {
				id := base + int64(i)
				a.violate(Violation{Kind: KindRecord, Records: []int64{id}, Tile: t.Path(),
					Message: fmt.Sprintf("record %d served in data tile %s differs from the record served before: %q, was %q", id, t.Path(), clip(recs[i].text), clip(local[i].Text))})
				return true, nil
			}
		}
	}

	// The records against the level-0 hash tile.
	if r.job.check {
		t0 := r.job.hash
		if len(r.hashes) != t.W*xtlog.HashSize {
			a.violate(Violation{Kind: KindHashTile, Tile: t0.Path(),
				Message: fmt.Sprintf("hash tile %s has %d bytes, want %d", t0.Path(), len(r.hashes), t.W*xtlog.HashSize)})
			return true, nil
		}
		var bad []int64
		for i := range recs {
			if !bytes.Equal(r.hashes[i*xtlog.HashSize:(i+1)*xtlog.HashSize], recs[i].leaf[:]) {
				bad = append(bad, base+int64(i))
			}
		}
		if len(bad) > 0 {
			return true, c.mismatch(ctx, r, bad)
		}
	}

	// Each new record well formed and new.
	stopAt := -1
	for i := skip; i < len(recs); i++ {
		rec := &recs[i]
		id := base + int64(i)
		if rec.bad != nil {
			a.violate(Violation{Kind: KindMalformed, Records: []int64{id}, Tile: t.Path(),
				Message: fmt.Sprintf("record %d is not well formed: %v: %q", id, rec.bad, clip(rec.text))})
			stopAt = i
			break
		}
		if prev, ok := c.batch.keys[rec.key()]; ok {
			a.violate(duplicate(prev.id, prev.text, id, rec.text, rec.key()))
			stopAt = i
			break
		}
		c.batch.keys[rec.key()] = logged{id, rec.text}
	}
	if stopAt >= 0 {
		c.add(recs[skip:stopAt], base+int64(skip), false)
		return true, nil
	}

	// The hash tiles of higher levels the records complete.
	next := c.edge.Clone()
	tiles := next.Append(leaves(recs[skip:]))
	for _, tl := range tiles {
		k := tileKey{tl.Level, tl.Index}
		w, ok := c.verify[k]
		if tl.Level == 0 || !ok || len(tl.Hashes) != w*xtlog.HashSize {
			continue
		}
		served, ok := c.served[k]
		if !ok {
			return false, fmt.Errorf("hash tile %d/%d completed before it was fetched", tl.Level, tl.Index)
		}
		delete(c.served, k)
		path := xtlog.Tile{H: tlog.TileHeight, L: tl.Level, N: tl.Index, W: w}.Path()
		if !bytes.Equal(served, tl.Hashes) {
			a.violate(tileMismatch(path, tl, served))
			return true, nil
		}
	}
	c.edge = next
	c.add(recs[skip:], base+int64(skip), true)
	for _, tl := range tiles {
		c.batch.tiles[tileKey{tl.Level, tl.Index}] = tl.Hashes
	}
	c.batch.dataTiles++
	c.meter.set(c.edge.Size())
	return false, nil
}

// add adds recs, of ids from start, to the batch. If the edge does not
// hold them yet (appended is false), it appends them.
func (c *cloner) add(recs []record, start int64, appended bool) {
	if len(recs) == 0 {
		return
	}
	if !appended {
		for _, tl := range c.edge.Append(leaves(recs)) {
			c.batch.tiles[tileKey{tl.Level, tl.Index}] = tl.Hashes
		}
	}
	for i := range recs {
		c.batch.b.Records = append(c.batch.b.Records, tlog.Record{
			ID:      start + int64(i),
			Path:    recs[i].path,
			Version: recs[i].version,
			Text:    recs[i].text,
		})
	}
}

// flush sends the batch to the writer with head, or a checkpoint if head is
// nil, and starts a new batch.
func (c *cloner) flush(ctx context.Context, batches chan<- *tlog.Batch, head *tlog.Head) error {
	pb := c.batch
	c.batch = newPendingBatch(c.edge)
	if len(pb.b.Records) == 0 {
		return nil
	}
	if head == nil {
		h, err := c.a.checkpoint(c.edge)
		if err != nil {
			return err
		}
		head = &h
	}
	pb.b.Head = *head
	for k, hashes := range pb.tiles {
		pb.b.Tiles = append(pb.b.Tiles, tlog.Tile{Level: k.level, Index: k.index, Hashes: hashes})
	}
	select {
	case batches <- pb.b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mismatch reports records of data tile r whose hashes are not those of the
// level-0 hash tile: it asks the tiles authenticated by the signed head which
// of the two is the signed tree's.
func (c *cloner) mismatch(ctx context.Context, r result, bad []int64) error {
	a := c.a
	id := bad[0]
	i := int(id - r.job.data.N*tlog.TileWidth)
	rec := &r.recs[i]
	var servedLeaf xtlog.Hash
	copy(servedLeaf[:], r.hashes[i*xtlog.HashSize:])
	d, t0 := r.job.data.Path(), r.job.hash.Path()
	what := fmt.Sprintf("%d records", len(bad))
	if len(bad) == 1 {
		what = "1 record"
	}
	leaf, v, err := a.leafAt(ctx, c.h, id)
	if err != nil {
		return err
	}
	switch {
	case v != nil:
		a.violate(Violation{Kind: KindHashTile, Records: bad, Tile: t0, Heads: v.Heads,
			Message: fmt.Sprintf("hash tile %s disagrees with data tile %s on %s (record %d hashes to %v, the hash tile says %v), and the hash tiles do not verify against the signed head of size %d", t0, d, what, id, rec.leaf, servedLeaf, c.h.N)})
	case leaf == servedLeaf && leaf != rec.leaf:
		a.violate(Violation{Kind: KindRecord, Records: bad, Tile: d, Heads: [][]byte{c.h.Note},
			Message: fmt.Sprintf("data tile %s serves %s not in the signed tree: record %d (%q) hashes to %v, but the signed head of size %d has leaf %v", d, what, id, clip(rec.text), rec.leaf, c.h.N, leaf)})
	default:
		a.violate(Violation{Kind: KindHashTile, Records: bad, Tile: t0, Heads: [][]byte{c.h.Note},
			Message: fmt.Sprintf("hash tile %s disagrees with data tile %s on %s: record %d hashes to %v, the hash tile says %v, and the signed tree of size %d has %v (the server serves different tiles at one path)", t0, d, what, id, rec.leaf, servedLeaf, c.h.N, leaf)})
	}
	return nil
}

// tileMismatch is the violation of a served hash tile of level ≥ 1 that
// differs from the one computed from the records.
func tileMismatch(path string, computed tlog.Tile, served []byte) Violation {
	if len(served) != len(computed.Hashes) {
		return Violation{Kind: KindHashTile, Tile: path,
			Message: fmt.Sprintf("hash tile %s has %d bytes, want %d", path, len(served), len(computed.Hashes))}
	}
	j := 0
	for j*xtlog.HashSize < len(served) && bytes.Equal(served[j*xtlog.HashSize:(j+1)*xtlog.HashSize], computed.Hashes[j*xtlog.HashSize:(j+1)*xtlog.HashSize]) {
		j++
	}
	// Hash j of the tile covers these records.
	span := int64(1) << (uint(computed.Level) * tlog.TileHeight)
	lo := (computed.Index*tlog.TileWidth + int64(j)) * span
	return Violation{Kind: KindHashTile, Tile: path,
		Message: fmt.Sprintf("hash tile %s differs from the one computed from the records at hash %d (of records [%d, %d))", path, j, lo, lo+span)}
}

// duplicate is the violation of a module version logged twice.
func duplicate(id1 int64, text1 []byte, id2 int64, text2 []byte, key string) Violation {
	same := "with the same hashes"
	if !bytes.Equal(text1, text2) {
		same = "with different hashes"
	}
	return Violation{Kind: KindDuplicate, Records: []int64{id1, id2},
		Message: fmt.Sprintf("%s is logged twice, %s: record %d has %s, record %d has %s", key, same, id1, firstHash(text1), id2, firstHash(text2))}
}

// leaves returns the leaf hashes of recs.
func leaves(recs []record) []xtlog.Hash {
	hs := make([]xtlog.Hash, len(recs))
	for i := range recs {
		hs[i] = recs[i].leaf
	}
	return hs
}

// write appends the batches to the clone, in order. When the store finds a
// module version already in the clone, it reports the duplicate, keeps the
// records before it, and stops the clone (calling stop). It drains batches
// until it is closed.
func (a *auditor) write(ctx context.Context, batches <-chan *tlog.Batch, stop func()) error {
	var failed error
	for b := range batches {
		if failed != nil {
			continue
		}
		err := a.st.Append(ctx, b)
		var dup *tlog.DuplicateError
		switch {
		case err == nil:
			a.written(b)
			continue
		case errors.As(err, &dup):
			failed = a.duplicates(ctx, b, dup)
		default:
			failed = fmt.Errorf("write records [%d, %d) to the clone: %w", b.OldSize, b.Head.Size, err)
		}
		stop()
	}
	return failed
}

// written accounts for a batch committed to the clone.
func (a *auditor) written(b *tlog.Batch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rep.NewRecords += int64(len(b.Records))
	a.rep.Records = b.Head.Size
}

// duplicates reports the first record of b that the store already holds,
// and writes the records before it.
func (a *auditor) duplicates(ctx context.Context, b *tlog.Batch, dup *tlog.DuplicateError) error {
	keys := make(map[string]bool, len(dup.Keys))
	for _, k := range dup.Keys {
		keys[k] = true
	}
	for i, r := range b.Records {
		if !keys[r.Key()] {
			continue
		}
		prev, err := a.st.Lookup(ctx, r.Path, r.Version)
		if err != nil {
			return fmt.Errorf("find the earlier record of %s: %w", r.Key(), err)
		}
		a.violate(duplicate(prev.ID, prev.Text, r.ID, r.Text, r.Key()))
		if i == 0 {
			return errStopped
		}
		head, err := a.st.ReadHead(ctx)
		if err != nil {
			return fmt.Errorf("read the clone's head: %w", err)
		}
		e, err := tlog.LoadEdge(ctx, a.st, head)
		if err != nil {
			return fmt.Errorf("load the clone: %w", err)
		}
		recs := b.Records[:i]
		hs := make([]xtlog.Hash, len(recs))
		for j := range recs {
			hs[j] = xtlog.RecordHash(recs[j].Text)
		}
		kept := &tlog.Batch{OldSize: b.OldSize, OldHash: b.OldHash, Records: recs, Tiles: e.Append(hs)}
		if kept.Head, err = a.checkpoint(e); err != nil {
			return err
		}
		if err := a.st.Append(ctx, kept); err != nil {
			return fmt.Errorf("write records [%d, %d) to the clone: %w", kept.OldSize, kept.Head.Size, err)
		}
		a.written(kept)
		return errStopped
	}
	return fmt.Errorf("write records [%d, %d) to the clone: the store reports duplicates the batch does not hold: %w", b.OldSize, b.Head.Size, dup)
}

// endBulk builds the index of module versions of a clone in the store's
// bulk-load mode, if it is in that mode.
//
// A new clone is written in that mode (clone puts an empty store in it):
// without the index, records are appended to a table in the order of the
// log, which is cheap, while inserting into an index of random keys is not,
// and one sort at the end builds the index faster than millions of inserts.
// A clone cut off (by the network, or by the user) stays in the mode for
// the next run to go on with. A module version logged twice keeps the index
// from being built: each is reported, and the clone stays in the mode, so
// that every later run finds them again.
func (a *auditor) endBulk(ctx context.Context) error {
	bulk, err := a.st.BulkLoading(ctx)
	if err != nil {
		return fmt.Errorf("read the clone's mode: %w", err)
	}
	if !bulk {
		return nil
	}
	if w := a.cfg.Progress; w != nil {
		fmt.Fprintf(w, "indexing the module versions of %d records\n", a.head.Size)
	}
	err = a.st.EndBulk(ctx)
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) {
		if err != nil {
			return fmt.Errorf("index the clone: %w", err)
		}
		return nil
	}
	groups, err := a.st.DuplicateRecords(ctx, 100)
	if err != nil {
		return fmt.Errorf("index the clone: %w", err)
	}
	for _, g := range groups {
		for _, r := range g[1:] {
			if r.Key() != g[0].Key() {
				return fmt.Errorf("index the clone: records %d (%s) and %d (%s) have the same key: a SHA-256 prefix collision", g[0].ID, g[0].Key(), r.ID, r.Key())
			}
			a.violate(duplicate(g[0].ID, g[0].Text, r.ID, r.Text, r.Key()))
		}
	}
	return nil
}
