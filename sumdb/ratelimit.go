package sumdb

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxRateClients caps the clients whose buckets the rate limiter remembers,
// so that requests from many addresses cannot grow it without bound. A
// bucket costs about 150 bytes.
const maxRateClients = 1 << 16

// A rateLimiter gives each client a token bucket of upstream fetches: a
// lookup that needs a fetch takes a token, and a client without one is
// refused until its bucket refills. It is safe for concurrent use.
type rateLimiter struct {
	limit      rate.Limit
	burst      int
	maxClients int
	// idle is how long an unused bucket takes to fill up from empty: after
	// that it is the same as a new bucket, and forgetting it changes nothing.
	idle time.Duration

	mu        sync.Mutex
	clients   map[string]*bucket // guarded by mu; by client key
	lastSweep time.Time          // guarded by mu
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last token request
}

// newRateLimiter returns a limiter granting each client perSecond fetches a
// second on average, and burst at once.
func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{
		limit:      rate.Limit(perSecond),
		burst:      burst,
		maxClients: maxRateClients,
		idle:       time.Duration(float64(burst) / perSecond * float64(time.Second)),
		clients:    make(map[string]*bucket),
	}
}

// allow takes a token from client's bucket at time now. If there is none,
// it returns false and how long until there is.
func (rl *rateLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b := rl.clients[client]
	if b == nil {
		rl.makeRoom(now)
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.clients[client] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(rl.limit) * float64(time.Second)))
}

// makeRoom forgets the buckets that are full again, at most once a minute
// or when the limiter is full, and then, if it is still full, one bucket at
// random. rl.mu is held.
func (rl *rateLimiter) makeRoom(now time.Time) {
	full := len(rl.clients) >= rl.maxClients
	if full || now.Sub(rl.lastSweep) >= max(rl.idle, time.Minute) {
		rl.lastSweep = now
		for k, b := range rl.clients {
			if now.Sub(b.last) >= rl.idle {
				delete(rl.clients, k)
			}
		}
	}
	if len(rl.clients) >= rl.maxClients {
		// Only a client with many addresses gets here, and it gains nothing
		// it could not have with more of them.
		for k := range rl.clients {
			delete(rl.clients, k)
			break
		}
	}
}

// len returns the number of buckets remembered.
func (rl *rateLimiter) len() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.clients)
}

// A rateLimitError refuses a lookup whose client has no fetch left.
type rateLimitError struct {
	retryAfter time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("too many new module versions requested from your address: retry in %d seconds", retrySeconds(e.retryAfter))
}

// retrySeconds returns d in whole seconds for Retry-After, rounded up, at
// least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientKey returns the key of r's client for rate limiting: its IP
// address, or for IPv6 its /64 network, which a single subscriber usually
// holds whole. The address is the connection's peer, or with trustProxy the
// last address of the X-Forwarded-For header, the one the proxy in front of
// the server appended (the earlier ones are whatever the client claimed).
func clientKey(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if key, ok := addrKey(strings.TrimSpace(last)); ok {
				return key
			}
		}
	}
	if key, ok := addrKey(r.RemoteAddr); ok {
		return key
	}
	// Not an address (a handler called without a network connection):
	// one bucket for all such requests, with a key of bounded size.
	return "?" + clip(r.RemoteAddr, 64)
}

// addrKey returns the rate limiting key of an IP address, which may have a
// port.
func addrKey(s string) (string, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String(), true
	}
	return netip.PrefixFrom(a, 64).Masked().String(), true
}
