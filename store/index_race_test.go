package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

// TestNewestRecordsCountRace tests that a prefix search answers as of one
// state of the index: records indexed between the count of a prefix's
// matches and the read of them must not drop others from the answer. The
// read is held between the two by a lock on head_times, which only the
// read takes, while a record is indexed under the prefix.
func TestNewestRecordsCountRace(t *testing.T) {
	t.Parallel()
	p := openPostgres(t)
	ctx := t.Context()
	for start := 0; start < MaxPrefixMatches; start += MaxIndexBatch {
		var recs []tlog.Record
		for i := start; i < min(MaxPrefixMatches, start+MaxIndexBatch); i++ {
			recs = append(recs, tlog.Record{ID: int64(i), Path: "example.com/z/m", Version: fmt.Sprintf("v1.0.%d", i)})
		}
		if err := p.IndexRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE head_times IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		list []tlog.IndexEntry
		err  error
	}
	done := make(chan result, 1)
	go func() {
		list, err := p.NewestRecords(ctx, "example.com/", false, 2)
		done <- result{list, err}
	}()
	// Wait for the read to wait for the lock: the count is done.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("NewestRecords never waited for the lock on head_times")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO record_index (id, path, version) VALUES ($1, 'example.com/a/m', 'v1.0.0')`, MaxPrefixMatches); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	var ids []int64
	for _, e := range r.list {
		ids = append(ids, e.ID)
	}
	before := []int64{MaxPrefixMatches - 1, MaxPrefixMatches - 2}
	after := []int64{MaxPrefixMatches, MaxPrefixMatches - 1}
	if !errors.Is(r.err, tlog.ErrTooBroad) && !(r.err == nil && (slices.Equal(ids, before) || slices.Equal(ids, after))) {
		t.Errorf("NewestRecords(example.com/, false, 2) with a record indexed after the count = %v, %v, want %v (before), ErrTooBroad (after), or %v", ids, r.err, before, after)
	}
}
