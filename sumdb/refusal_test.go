package sumdb

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// A lookupHookStore is a Switch whose Lookups of one module path run hooks,
// by their order: what the database and other goroutines do meanwhile.
type lookupHookStore struct {
	*storetest.Switch
	path  string
	mu    sync.Mutex
	calls int
	// before and after run around the read of call n (from 1), if set.
	before, after map[int]func()
}

func (s *lookupHookStore) Lookup(ctx context.Context, path, version string) (tlog.Record, error) {
	if path != s.path {
		return s.Switch.Lookup(ctx, path, version)
	}
	s.mu.Lock()
	s.calls++
	n := s.calls
	before, after := s.before[n], s.after[n]
	s.mu.Unlock()
	if before != nil {
		before()
	}
	rec, err := s.Switch.Lookup(ctx, path, version)
	if after != nil {
		after()
	}
	return rec, err
}

// TestJoinedFlightKeepsGeneration checks this: the record
// cache keeps the generation of the log before each read, so that nothing
// read from another tree before a refusal is served after it. A lookup
// that joins a flight keeps the generation of the moment it joins, but
// takes the flight's answer, read earlier. Request 1 starts the flight of
// b/m0, absent from the primary; request 2 misses it too; the database
// fails over to a standby that holds another tree with b/m0; the flight
// reads b/m0 there; a refresh finds the fork; request 2 then joins the
// flight, under the generation after the refusal; request 1 leaves, and
// request 2 caches the standby's record with that generation. The cache
// then serves that record while the fork is refused, and after the
// database is back, under heads that do not hold it.
func TestJoinedFlightKeepsGeneration(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			primary := b.open(t)
			hs := &lookupHookStore{Switch: storetest.NewSwitch(primary), path: "example.com/b/m0"}
			e := newEnv(t, b, envOptions{
				logCfg: tlog.Config{RefreshInterval: -1},
				wrap:   func(tlog.Store) tlog.Store { return hs },
			})
			_, standby := forkedStandby(t, e, b)

			const lookup = "/lookup/example.com/b/m0@v1.0.0"
			flightWaits, flightRead, flightGo := make(chan struct{}), make(chan struct{}), make(chan struct{})
			release := make(chan struct{})
			hs.before = map[int]func(){
				2: func() { close(flightWaits); <-flightGo }, // the flight's Lookup
			}
			hs.after = map[int]func(){
				2: func() { close(flightRead); <-release },
				3: func() { // request 2's Lookup, on the primary
					hs.Set(standby) // the failover
					close(flightGo)
					<-flightRead
					if _, err := e.log.Refresh(ctx); !errors.Is(err, tlog.ErrFork) {
						t.Errorf("Refresh on the standby = %v, want ErrFork", err)
					}
				},
			}
			// Request 1 leaves before the flight ends (an impatient
			// client), so that request 2 alone caches its answer.
			ctx1, cancel1 := context.WithCancel(ctx)
			done := make(chan int, 2)
			go func() { code, _, _, _ := e.try(ctx1, "GET", lookup); done <- code }()
			<-flightWaits
			go func() { code, _, _, _ := e.try(ctx, "GET", lookup); done <- code }()
			key := "example.com/b/m0@v1.0.0"
			waitFor(t, "request 2 to join the flight", func() bool { return e.flightWaiters(key) == 2 })
			cancel1()
			waitFor(t, "request 1 to leave", func() bool { return e.flightWaiters(key) == 1 })
			close(release)
			<-done
			<-done

			if code, _, body := e.get(lookup); code == 200 {
				t.Errorf("GET %s while the fork is refused = 200 %q: the standby's record, from the cache", lookup, body)
			}
			hs.Set(primary)
			if _, err := e.log.Refresh(ctx); err != nil {
				t.Fatalf("Refresh back on the primary = %v", err)
			}
			if code, _, body := e.get(lookup); code == 200 {
				t.Errorf("GET %s back on the primary = 200 %q: the served tree does not hold that record", lookup, body)
			}
		})
	}
}
