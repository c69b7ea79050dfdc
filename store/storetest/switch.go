package storetest

import (
	"context"
	"sync"

	"github.com/sumdb/sumdb/tlog"
)

// A Switch is a store whose database can be replaced while it is in use,
// as a failover replaces the database behind one address: every call goes
// to the store of the moment. Close does not close it.
type Switch struct {
	mu  sync.Mutex
	cur tlog.Store
}

var _ tlog.Store = (*Switch)(nil)

// NewSwitch returns a Switch on s.
func NewSwitch(s tlog.Store) *Switch { return &Switch{cur: s} }

// Set makes s the store that calls go to from now on.
func (s *Switch) Set(n tlog.Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = n
}

func (s *Switch) get() tlog.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *Switch) ReadHead(ctx context.Context) (tlog.Head, error) { return s.get().ReadHead(ctx) }
func (s *Switch) Append(ctx context.Context, b *tlog.Batch) error { return s.get().Append(ctx, b) }
func (s *Switch) AppendLocked(ctx context.Context, p func(tlog.Head) (*tlog.Batch, error)) error {
	return s.get().AppendLocked(ctx, p)
}
func (s *Switch) Lookup(ctx context.Context, p, v string) (tlog.Record, error) {
	return s.get().Lookup(ctx, p, v)
}
func (s *Switch) ReadRecords(ctx context.Context, start int64, n int) ([]tlog.Record, error) {
	return s.get().ReadRecords(ctx, start, n)
}
func (s *Switch) ReadTile(ctx context.Context, l int, i int64) ([]byte, error) {
	return s.get().ReadTile(ctx, l, i)
}
func (s *Switch) ReadHeads(ctx context.Context, lo, hi int64) ([]tlog.Head, error) {
	return s.get().ReadHeads(ctx, lo, hi)
}
func (s *Switch) Close() error { return nil }
