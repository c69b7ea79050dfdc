package tlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// TestFailoverBelowAdoptedHead checks this: replica A serves, through a refresh,
// the head of size 16 that replica B appended on top of A's 10 records. The
// database fails over to a standby that lost B's commits: it holds exactly
// A's tree of size 10, which is still A's sequencer edge. A must not extend
// it: every head it would sign contradicts the head of size 16 it served.
func TestFailoverBelowAdoptedHead(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			a, b, sw, _ := replicas(t, be.open, k)
			standby := be.open(t)
			if h := fork(t, standby, k, 10, 0); h.Hash != a.Head().Hash {
				t.Fatalf("standby head %d %v, want A's %d %v", h.Size, h.Hash, a.Head().Size, a.Head().Hash)
			}
			appendInOrder(t, b, 100, 106)
			if h, err := a.Refresh(ctx); err != nil || h.Size != 16 {
				t.Fatalf("A's Refresh = head %d, %v; want B's head 16", h.Size, err)
			}
			served := a.Head()

			sw.Set(standby) // the failover loses B's commits
			for i := range 8 {
				p, v, text := gosum(2000 + i)
				if rec, h, err := a.Append(ctx, p, v, text); err == nil {
					t.Errorf("A acknowledged record %d under head %d after a failover to a database that lacks the head of size %d it served", rec.ID, h.Size, served.Size)
				}
			}
			if h := a.Head(); h.Size != served.Size || h.Hash != served.Hash {
				t.Errorf("A serves head %d %v, which contradicts the head %d %v it served before", h.Size, h.Hash, served.Size, served.Hash)
			}
			if h, err := standby.ReadHead(ctx); err != nil || h.Size != 10 {
				t.Errorf("standby head after A's appends = %d, %v; want 10: A extended a tree that lacks the head of size %d it served", h.Size, err, served.Size)
			}
		})
	}
}

// A gateStore holds the first ReadTile after arm until release, as a slow
// database does.
type gateStore struct {
	tlog.Store
	armed   chan struct{} // closed by arm; nil: pass
	held    chan struct{} // closed when a ReadTile is held
	release chan struct{}
}

func newGateStore(s tlog.Store) *gateStore {
	return &gateStore{Store: s, armed: make(chan struct{}), held: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateStore) ReadTile(ctx context.Context, l int, i int64) ([]byte, error) {
	select {
	case <-g.armed:
		select {
		case <-g.held:
		default:
			close(g.held)
			<-g.release
		}
	default:
	}
	return g.Store.ReadTile(ctx, l, i)
}

// TestRefreshRacingCommitIsNoFork checks this: on healthy replicas sharing one
// database, a refresh of A reads B's head while another refresh of A holds
// the publisher's lock (its proof reads tiles); A's sequencer then commits
// on top of B's head. The waiting refresh must not take B's head, older
// than A's newest commit but read before it, for a database that went back
// in time: nothing forked.
func TestRefreshRacingCommitIsNoFork(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			refreshRaceWithCommit(t, be.open(t))
		})
	}
}

func refreshRaceWithCommit(t *testing.T, shared tlog.Store) {
	ctx := context.Background()
	k := newKeys(t)
	gs := newGateStore(shared)
	commits := make(chan int64, 16)
	a, err := tlog.Open(ctx, gs, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1,
		OnCommit: func(int, time.Duration) { commits <- 0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	appendInOrder(t, a, 0, 1)
	<-commits
	b, err := tlog.Open(ctx, shared, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	appendInOrder(t, b, 1, 2)

	// Refresh 1 adopts B's head of size 2; its proof is slow.
	close(gs.armed)
	r1 := make(chan error, 1)
	go func() { _, err := a.Refresh(ctx); r1 <- err }()
	<-gs.held

	// Refresh 2 reads B's next head, of size 3, and waits for refresh 1.
	appendInOrder(t, b, 2, 3)
	r2 := make(chan error, 1)
	go func() { _, err := a.Refresh(ctx); r2 <- err }()
	time.Sleep(100 * time.Millisecond)

	// A appends on top of B's head of size 3, and commits size 4.
	appended := make(chan error, 1)
	go func() {
		p, v, text := gosum(3)
		_, _, err := a.Append(ctx, p, v, text)
		appended <- err
	}()
	<-commits
	close(gs.release)

	if err := <-r1; err != nil {
		t.Errorf("refresh 1 = %v", err)
	}
	if err := <-r2; err != nil {
		t.Errorf("refresh 2, which read a head before A's sequencer committed a larger one = %v, want nil: nothing forked", err)
	}
	if err := <-appended; err != nil {
		t.Errorf("A's append = %v", err)
	}
	p, v, _ := gosum(0)
	if _, _, err := a.Lookup(ctx, p, v); err != nil {
		t.Errorf("A's Lookup after the refreshes = %v, want the record: nothing forked", err)
	}
}

// A heldHeadStore holds one ReadHead, once armed: before it reads the
// head, as a query waiting for a free connection of the pool does, or
// after it has read it and before it returns it, as a slow network does.
type heldHeadStore struct {
	*storetest.Switch
	before  bool
	armed   chan struct{}
	held    chan struct{}
	release chan struct{}
}

func (s *heldHeadStore) ReadHead(ctx context.Context) (tlog.Head, error) {
	if s.before {
		s.hold()
		return s.Switch.ReadHead(ctx)
	}
	h, err := s.Switch.ReadHead(ctx)
	s.hold()
	return h, err
}

// hold holds the first call once s is armed, until s is released.
func (s *heldHeadStore) hold() {
	select {
	case <-s.armed:
		select {
		case <-s.held:
		default:
			close(s.held)
			<-s.release
		}
	default:
	}
}

// openHeld opens a log of 10 records on a heldHeadStore that holds its
// reads before or after it reads the head, and returns it with a store
// that forks from it after 8 records, to fail over to.
func openHeld(t *testing.T, before bool) (*tlog.Log, *heldHeadStore, *store.SQLite) {
	t.Helper()
	k := newKeys(t)
	s := &heldHeadStore{Switch: storetest.NewSwitch(openSQLiteIn(t)), before: before,
		armed: make(chan struct{}), held: make(chan struct{}), release: make(chan struct{})}
	a, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	appendInOrder(t, a, 0, 10)
	return a, s, forkedStore(t, k, 8, 2)
}

// TestStaleCheckKeepsRefusal checks this: a readiness check reads the head before
// a failover and answers after a refresh found the fork. Its outcome, about
// the database as it was, must not clear the fork the refresh found: the
// log would answer lookups from the forked database again.
func TestStaleCheckKeepsRefusal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, s, forked := openHeld(t, false)

	close(s.armed)
	ready := make(chan error, 1)
	go func() { ready <- a.Ready(ctx) }()
	<-s.held
	s.Set(forked)
	if _, err := a.Refresh(ctx); !errors.Is(err, tlog.ErrFork) {
		t.Fatalf("Refresh on the forked store = %v, want ErrFork", err)
	}
	close(s.release)
	<-ready
	p, v, _ := gosum(1000) // a record of the forked tree alone
	if rec, h, err := a.Lookup(ctx, p, v); !errors.Is(err, tlog.ErrFork) {
		t.Errorf("Lookup after the refresh found the fork = record %d under head %d, %v; want ErrFork", rec.ID, h.Size, err)
	}
}

// TestOtherLogRefused checks this: the database is replaced under a
// running server by the database of another log (another key), as a
// failover of a database URL to the wrong cluster would. The refresh
// refuses its head, but the log must then not answer lookups from it either:
// its records are not in the served tree.
func TestOtherLogRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	sw := storetest.NewSwitch(openSQLiteIn(t))
	a, err := tlog.Open(ctx, sw, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	appendInOrder(t, a, 0, 10)
	other := openSQLiteIn(t)
	fork(t, other, newKeys(t), 0, 12) // records 1000 to 1011, under another key
	sw.Set(other)
	if _, err := a.Refresh(ctx); !errors.Is(err, tlog.ErrWrongKey) {
		t.Fatalf("Refresh on another log's database = %v, want ErrWrongKey", err)
	}
	p, v, _ := gosum(1000)
	if rec, h, err := a.Lookup(ctx, p, v); err == nil {
		t.Errorf("Lookup on another log's database = record %d under head %d: a record the served tree does not hold", rec.ID, h.Size)
	}
}
