package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/sumdb/fetch"
)

// rehash downloads n records picked at random from the clone again from the
// upstream and compares the hashes with the log's.
func (a *auditor) rehash(ctx context.Context, n int) error {
	size := a.head.Size
	if size == 0 {
		a.warn("nothing to rehash: the clone is empty")
		return nil
	}
	var g errgroup.Group
	g.SetLimit(a.cfg.Concurrency)
	for _, id := range sample(size, n) {
		g.Go(func() error { return a.rehashOne(ctx, id) })
	}
	return g.Wait()
}

// rehashOne compares record id with the upstream's go.sum lines.
func (a *auditor) rehashOne(ctx context.Context, id int64) error {
	recs, err := a.st.ReadRecords(ctx, id, 1)
	if err != nil || len(recs) != 1 {
		return fmt.Errorf("rehash: read record %d of the clone: %v", id, err)
	}
	rec := recs[0]
	text, err := a.cfg.Upstream.Fetch(ctx, rec.Path, rec.Version)
	switch {
	case errors.Is(err, fetch.ErrNotFound) || errors.Is(err, fetch.ErrInvalid):
		a.warn("rehash: record %d (%s): the upstream does not serve it: %v", id, rec.Key(), err)
		return nil
	case err != nil:
		return fmt.Errorf("rehash record %d (%s): %w", id, rec.Key(), err)
	}
	a.mu.Lock()
	a.rep.Rehashed++
	a.mu.Unlock()
	if bytes.Equal(text, rec.Text) {
		return nil
	}
	a.violate(Violation{Kind: KindRehash, Records: []int64{id},
		Message: fmt.Sprintf("record %d: %s: the log has %s, the upstream's module gives %s", id, rec.Key(), lines(rec.Text), lines(text))})
	return nil
}

// lines formats go.sum lines on one line, for a message.
func lines(text []byte) string {
	return fmt.Sprintf("%q", bytes.TrimSuffix(text, []byte("\n")))
}

// sample returns n distinct ids from [0, size) in increasing order, or all
// of them if n ≥ size.
func sample(size int64, n int) []int64 {
	if int64(n) >= size {
		ids := make([]int64, size)
		for i := range ids {
			ids[i] = int64(i)
		}
		return ids
	}
	seen := make(map[int64]bool, n)
	ids := make([]int64, 0, n)
	for len(ids) < n {
		id := rand.Int64N(size)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
