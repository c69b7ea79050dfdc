// Package ratelimit limits the rate of an operation per client: each client
// has a token bucket, and the clients remembered are bounded.
package ratelimit

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxRateClients caps the clients whose buckets the rate limiter remembers,
// so that requests from many addresses cannot grow it without bound. A
// bucket costs about 250 bytes.
const maxRateClients = 1 << 16

// A Limiter gives each client a token bucket: an operation takes a token,
// and a client without one is refused until its bucket refills. It is safe
// for concurrent use.
type Limiter struct {
	limit      rate.Limit
	burst      int
	maxClients int
	// idle is how long an unused bucket takes to fill up from empty: after
	// that it is the same as a new bucket, and forgetting it changes nothing.
	idle time.Duration

	mu      sync.Mutex
	clients map[string]*list.Element // guarded by mu; of *bucket, by client key
	// order holds the buckets least recently used first, so that the idle
	// ones, and the one to forget when full, are found at its front
	// without a scan. Guarded by mu.
	order list.List
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	last time.Time // last token request
}

// New returns a limiter granting each client perSecond operations a second
// on average, and burst at once.
func New(perSecond float64, burst int) *Limiter {
	// A bucket too slow to fill up in a time.Duration is never idle: the
	// conversion would overflow to a negative idle, which every bucket is.
	idle := time.Duration(math.MaxInt64)
	if d := float64(burst) / perSecond * float64(time.Second); d < math.MaxInt64 {
		idle = time.Duration(d)
	}
	return &Limiter{
		limit:      rate.Limit(perSecond),
		burst:      burst,
		maxClients: maxRateClients,
		idle:       idle,
		clients:    make(map[string]*list.Element),
	}
}

// Allow takes a token from client's bucket at time now. If there is none,
// it returns false and how long until there is.
func (rl *Limiter) Allow(client string, now time.Time) (bool, time.Duration) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	e := rl.clients[client]
	if e == nil {
		rl.makeRoom(now)
		e = rl.order.PushBack(&bucket{key: client, lim: rate.NewLimiter(rl.limit, rl.burst)})
		rl.clients[client] = e
	} else {
		rl.order.MoveToBack(e)
	}
	b := e.Value.(*bucket)
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(rl.limit) * float64(time.Second)))
}

// makeRoom forgets the buckets that are full again, and then, if the
// limiter is still full, the least recently used one. Both are at the front
// of rl.order, so the cost is constant for each bucket ever added. rl.mu is
// held.
func (rl *Limiter) makeRoom(now time.Time) {
	for e := rl.order.Front(); e != nil && now.Sub(e.Value.(*bucket).last) >= rl.idle; e = rl.order.Front() {
		rl.forget(e)
	}
	if len(rl.clients) >= rl.maxClients {
		// Only a client with many addresses gets here, and it gains nothing
		// it could not have with more of them: the bucket forgotten is the
		// one that has waited longest to refill, and its client, if it comes
		// back, only gets the full bucket it would have had from a new
		// address.
		rl.forget(rl.order.Front())
	}
}

// forget removes the bucket of e. rl.mu is held.
func (rl *Limiter) forget(e *list.Element) {
	delete(rl.clients, rl.order.Remove(e).(*bucket).key)
}

// Len returns the number of buckets remembered.
func (rl *Limiter) Len() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.clients)
}

// Wait returns how long client must wait for a token at time now: 0 if its
// bucket has one. Unlike Allow, it takes none and remembers no new client,
// so that a caller can refuse a client that has run out before doing the
// work whose failure would cost it a token.
func (rl *Limiter) Wait(client string, now time.Time) time.Duration {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	e := rl.clients[client]
	if e == nil {
		return 0
	}
	b := e.Value.(*bucket)
	missing := 1 - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing / float64(rl.limit) * float64(time.Second)))
}
