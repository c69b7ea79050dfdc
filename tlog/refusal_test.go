package tlog_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// A hookStore runs a function once, armed, when the sequencer calls Append
// or AppendLocked, before the call reaches the store (arm), or after an
// Append committed and before the sequencer learns of it (armAfter): what
// other goroutines and the database do while a batch is on its way.
type hookStore struct {
	*storetest.Switch
	mu    sync.Mutex
	hook  func()
	after func()
}

func (s *hookStore) arm(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

func (s *hookStore) armAfter(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = f
}

// take returns *f and clears it.
func (s *hookStore) take(f *func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := *f
	*f = nil
	return g
}

func (s *hookStore) fire() {
	if f := s.take(&s.hook); f != nil {
		f()
	}
}

func (s *hookStore) Append(ctx context.Context, b *tlog.Batch) error {
	s.fire()
	err := s.Switch.Append(ctx, b)
	if f := s.take(&s.after); err == nil && f != nil {
		f()
	}
	return err
}

func (s *hookStore) AppendLocked(ctx context.Context, p func(tlog.Head) (*tlog.Batch, error)) error {
	s.fire()
	return s.Switch.AppendLocked(ctx, p)
}

// replicas opens replica A, through a hookStore on primary, a new store of
// open, with records 0 to 9, and replica B on primary itself.
func replicas(t *testing.T, open func(*testing.T) tlog.Store, k keys) (a, b *tlog.Log, hs *hookStore, primary tlog.Store) {
	t.Helper()
	primary = open(t)
	hs = &hookStore{Switch: storetest.NewSwitch(primary)}
	cfg := tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1}
	a, err := tlog.Open(context.Background(), hs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	appendInOrder(t, a, 0, 10)
	if b, err = tlog.Open(context.Background(), primary, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return a, b, hs, primary
}

// TestRefreshDuringFastAppend checks this: replica A's sequencer
// takes its fast path (its edge, of size 10, holds the served head). While
// the batch is on its way, a refresh of A (a lookup's) adopts and serves
// B's head of size 11 from the primary; then the database fails over to a
// standby that holds A's 10 records only, and A's batch lands there. The
// head A serves must never be replaced by one whose tree lacks B's head of
// size 11 that it served: no append may be acknowledged on the standby.
func TestRefreshDuringFastAppend(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			a, b, hs, _ := replicas(t, be.open, k)
			standby := be.open(t)
			fork(t, standby, k, 10, 0)
			appendInOrder(t, b, 100, 101)

			var served tlog.Head
			hs.arm(func() {
				if _, err := a.Refresh(ctx); err != nil {
					t.Errorf("A's Refresh on the primary = %v", err)
				}
				served = a.Head()
				hs.Set(standby) // the failover loses B's commit
			})
			for i := range 3 {
				p, v, text := gosum(2000 + i)
				rec, h, err := a.Append(ctx, p, v, text)
				if served.Size != 11 {
					t.Fatalf("A served head %d before the failover, want B's 11", served.Size)
				}
				if err == nil {
					t.Errorf("append %d: A acknowledged record %d under head %d after a failover to a database that lacks the head of size %d it served", i, rec.ID, h.Size, served.Size)
				}
			}
			if h := a.Head(); h.Size != served.Size || h.Hash != served.Hash {
				t.Errorf("A serves head %d %v, which contradicts the head %d %v it served before", h.Size, h.Hash, served.Size, served.Hash)
			}
		})
	}
}

// TestPublisherProvesCommittedHead is TestRefreshDuringFastAppend
// with a batch of two records, more than the one record of B's that the
// standby lacks: the standby holds A's 11 records, B appends a twelfth on
// the primary, which A serves, and A's batch lands on the standby. The
// publisher serves the batch's head, of size 13, at once, without proving
// that its tree contains B's head of size 12 that A served while the batch
// was on its way.
func TestPublisherProvesCommittedHead(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			publisherServesUnprovenHead(t, be.open)
		})
	}
}

func publisherServesUnprovenHead(t *testing.T, open func(*testing.T) tlog.Store) {
	ctx := context.Background()
	k := newKeys(t)
	a, b, hs, _ := replicas(t, open, k)
	standby := open(t)
	fork(t, standby, k, 11, 0) // A's records 0 to 10

	var served tlog.Head
	entered := make(chan struct{})
	hs.arm(func() { // A's batch of record 10: hold it until two appends wait
		close(entered)
		for a.QueueLen() < 2 {
			runtime.Gosched()
		}
		hs.arm(func() { // A's batch of those two
			p, v, text := gosum(100)
			if _, _, err := b.Append(ctx, p, v, text); err != nil {
				t.Errorf("B's append = %v", err)
			}
			if _, err := a.Refresh(ctx); err != nil {
				t.Errorf("A's Refresh on the primary = %v", err)
			}
			served = a.Head()
			hs.Set(standby) // the failover loses B's commit
		})
	})
	go func() {
		p, v, text := gosum(10)
		if _, _, err := a.Append(ctx, p, v, text); err != nil {
			t.Errorf("A's append of record 10 = %v", err)
		}
	}()
	<-entered
	type result struct {
		rec tlog.Record
		h   tlog.Head
		err error
	}
	results := make(chan result, 2)
	for i := range 2 {
		go func() {
			p, v, text := gosum(2000 + i)
			rec, h, err := a.Append(ctx, p, v, text)
			results <- result{rec, h, err}
		}()
	}
	for range 2 {
		r := <-results
		if served.Size != 12 {
			t.Fatalf("A served head %d before the failover, want B's 12", served.Size)
		}
		if r.err == nil {
			t.Errorf("A acknowledged record %d under head %d after a failover to a database that lacks the head of size %d it served", r.rec.ID, r.h.Size, served.Size)
		}
	}
	if h := a.Head(); h.Size != served.Size || h.Hash != served.Hash {
		t.Errorf("A serves head %d %v, which contradicts the head %d %v it served before", h.Size, h.Hash, served.Size, served.Hash)
	}
}

// TestLaterReadRefusalKept checks this: a refresh is numbered, then
// waits for a connection; a readiness check, numbered after it, reads the
// healthy database and passes; the database fails over to a forked one,
// and the waiting refresh reads it and finds the fork. The fork was found
// by the newest read of the store, but the log drops it for the older
// number, and answers lookups from the forked database.
func TestLaterReadRefusalKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, s, forked := openHeld(t, true)

	close(s.armed)
	refreshed := make(chan error, 1)
	go func() { _, err := a.Refresh(ctx); refreshed <- err }()
	<-s.held
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Ready on the healthy database = %v", err)
	}
	s.Set(forked)
	close(s.release)
	if err := <-refreshed; !errors.Is(err, tlog.ErrFork) {
		t.Fatalf("Refresh that read the forked database = %v, want ErrFork", err)
	}
	p, v, _ := gosum(1000) // a record of the forked tree alone
	if rec, h, err := a.Lookup(ctx, p, v); !errors.Is(err, tlog.ErrFork) {
		t.Errorf("Lookup after the newest read of the store found the fork = record %d under head %d, %v; want ErrFork", rec.ID, h.Size, err)
	}
}
