// Package loadgen drives a running checksum database with a mix of requests
// and measures its throughput and latency. The kinds of requests are
//
//   - hits: lookups of module versions already in the log, taken from its
//     data tiles (or, in an empty log, looked up once before the run);
//   - misses: lookups of module versions new to the log, which the server
//     fetches from its upstream and appends before answering; the upstream
//     must be a Proxy, which generates such modules without end;
//   - tiles: reads of hash tiles and data tiles of the tree as it was when
//     the run began, at every level.
//
// Run either keeps a number of requests in flight (flat out), or sends them
// on a fixed schedule whatever the latency (open loop). On a schedule, a
// request's latency is measured from the time it was due, not from the time
// it was sent: a server that stalls also delays the requests queued behind
// the stall, and that wait is part of what their users see (the
// "coordinated omission" of closed-loop load generators). A request due
// before the end that found no free slot until after it is not sent, but
// counts late, its latency the wait it had: a lower bound.
//
// Every request goes to the target given: redirects are not followed and the
// proxy environment variables are ignored. A run ends by itself after its
// duration (or number of requests); requests in flight then are bounded by a
// timeout.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// Limits and defaults of a Config.
const (
	MaxDuration        = 24 * time.Hour
	MaxConcurrency     = 10000
	MaxRate            = 1e6 // requests per second
	DefaultConcurrency = 64
	DefaultTimeout     = 30 * time.Second
	DefaultWarmup      = 32
	maxWarmup          = 10000
)

// Tile geometry of every checksum database (the go command's fixed height).
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
)

// maxBody bounds any answer read: a data tile is 256 records, about 50 KiB.
const maxBody = 4 << 20

// hitSampleTiles is the number of data tiles read to learn the module
// versions to hit: at most 1,024 versions, spread over the log.
const hitSampleTiles = 4

// A Config configures a Run. The zero value of a field means its default.
type Config struct {
	// Target is the base URL of the checksum database (http or https, with a
	// host); latest, lookup/... and tile/... are resolved under it.
	// Required.
	Target string

	// Verifier, if set, verifies the signed tree head of /latest and of
	// every lookup answer. Without it, tree heads are only parsed.
	Verifier note.Verifier

	// Duration is how long requests are sent. Required, at most MaxDuration.
	Duration time.Duration

	// MaxRequests, if positive, ends the run after that many requests.
	MaxRequests int64

	// Rate, if positive, sends Rate requests per second on a fixed schedule
	// (open loop); 0 keeps Concurrency requests in flight (flat out).
	Rate float64

	// Concurrency is the most requests in flight; default DefaultConcurrency.
	// On a schedule, a request due while all are busy waits for one, and the
	// wait counts in its latency; one due before the end that still waits
	// at the end is not sent, but counts late (see Result.Late).
	Concurrency int

	// Mix weighs the kinds of requests; default DefaultMix.
	Mix Mix

	// Proxy serves the modules that misses look up, and that an empty log
	// is warmed up with; the server under test must use it as its upstream.
	// Required when the mix has misses or the log is empty.
	Proxy *Proxy

	// Warmup is the number of module versions looked up before the run when
	// the log has none to hit; default DefaultWarmup.
	Warmup int

	// Timeout bounds each request; default DefaultTimeout.
	Timeout time.Duration

	// Client makes the requests. Default, for an http:// target: a
	// Client, which leaves the server more of a shared machine's CPU than
	// net/http's would; for https://, a net/http client for Concurrency
	// connections. Either follows no redirect and uses no proxy.
	Client *http.Client

	// Logger receives a line for each phase of the run. Default: discard.
	Logger *slog.Logger
}

// A Kind is a kind of request.
type Kind int

// Kinds of requests.
const (
	Hit Kind = iota
	Miss
	Tile
	numKinds
)

var kindNames = [numKinds]string{"hit", "miss", "tile"}

// maxWeight bounds the weight of a kind in a Mix.
const maxWeight = 1000000

func (k Kind) String() string { return kindNames[k] }

// A Mix weighs the kinds of requests: each request is a hit with
// probability Hit/(Hit+Miss+Tile), and so on.
type Mix struct {
	Hit, Miss, Tile int
}

// DefaultMix is mostly hits, as a checksum database sees: the go command
// looks each module version up once per machine, and most were asked before.
var DefaultMix = Mix{Hit: 80, Miss: 5, Tile: 15}

func (m Mix) weight(k Kind) int { return [numKinds]int{m.Hit, m.Miss, m.Tile}[k] }

func (m Mix) total() int { return m.Hit + m.Miss + m.Tile }

// pick returns the kind of weighted rank x in [0, m.total()).
func (m Mix) pick(x int) Kind {
	rest := x
	for k := range numKinds {
		if rest < m.weight(k) {
			return k
		}
		rest -= m.weight(k)
	}
	panic(fmt.Sprintf("loadgen: rank %d out of mix %v", x, m))
}

// String formats m as ParseMix reads it, such as "hit=80,miss=5,tile=15",
// leaving out the kinds of weight 0.
func (m Mix) String() string {
	var fields []string
	for k := range numKinds {
		if w := m.weight(k); w != 0 {
			fields = append(fields, fmt.Sprintf("%s=%d", k, w))
		}
	}
	return strings.Join(fields, ",")
}

// ParseMix parses a mix such as "hit=80,miss=5,tile=15". A kind left out
// has weight 0; the weights need not add up to 100.
func ParseMix(s string) (Mix, error) {
	var w [numKinds]int
	var seen [numKinds]bool
	for _, field := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(field), "=")
		k := Kind(-1)
		for i, n := range kindNames {
			if strings.TrimSpace(name) == n {
				k = Kind(i)
			}
		}
		if !ok || k < 0 {
			return Mix{}, fmt.Errorf("parse mix %q: %q is not hit=N, miss=N or tile=N", s, field)
		}
		if seen[k] {
			return Mix{}, fmt.Errorf("parse mix %q: %s given twice", s, k)
		}
		seen[k] = true
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 || n > maxWeight {
			return Mix{}, fmt.Errorf("parse mix %q: weight of %s is %q, want a whole number from 0 to %d", s, k, val, maxWeight)
		}
		w[k] = n
	}
	m := Mix{Hit: w[Hit], Miss: w[Miss], Tile: w[Tile]}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("parse mix %q: every weight is 0 (want such as hit=80,miss=5,tile=15)", s)
	}
	return m, nil
}

// CheckTarget checks the base URL of a checksum database: http or https,
// with a host, and no query, fragment or user information.
func CheckTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("target %q is not a URL (want such as http://127.0.0.1:8080)", target)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("target %q is not an http or https URL (want such as http://127.0.0.1:8080)", target)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("target %q has no host (want such as http://127.0.0.1:8080)", target)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("target %q has user information, a query or a fragment (want the base URL of the checksum database, such as http://127.0.0.1:8080)", target)
	}
	return nil
}

// checkConfig checks cfg and fills in its defaults.
func checkConfig(cfg Config) (Config, error) {
	if err := CheckTarget(cfg.Target); err != nil {
		return cfg, err
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration {
		return cfg, fmt.Errorf("duration %v: want a positive duration up to %v", cfg.Duration, MaxDuration)
	}
	if cfg.MaxRequests < 0 {
		return cfg, fmt.Errorf("max requests %d: want 0 (no limit) or more", cfg.MaxRequests)
	}
	if cfg.Rate < 0 || cfg.Rate > MaxRate || math.IsNaN(cfg.Rate) {
		return cfg, fmt.Errorf("rate %v: want 0 (flat out) or a rate up to %g requests per second", cfg.Rate, float64(MaxRate))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 0 || cfg.Concurrency > MaxConcurrency {
		return cfg, fmt.Errorf("concurrency %d: want 1 to %d", cfg.Concurrency, MaxConcurrency)
	}
	if cfg.Mix == (Mix{}) {
		cfg.Mix = DefaultMix
	}
	for k := range numKinds {
		if w := cfg.Mix.weight(k); w < 0 || w > maxWeight {
			return cfg, fmt.Errorf("mix %v: weight of %s is %d, want 0 to %d", cfg.Mix, k, w, maxWeight)
		}
	}
	if cfg.Mix.Miss > 0 && cfg.Proxy == nil {
		return cfg, fmt.Errorf("mix %v has misses: %w to serve their modules", cfg.Mix, errNoProxy)
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = DefaultWarmup
	}
	if cfg.Warmup < 0 || cfg.Warmup > maxWarmup {
		return cfg, fmt.Errorf("warm-up %d: want 1 to %d", cfg.Warmup, maxWarmup)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return cfg, fmt.Errorf("timeout %v: want a positive duration", cfg.Timeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// newClient returns a client that keeps n connections to one host open,
// follows no redirect and ignores the proxy environment, so that every
// request goes to the target and nowhere else.
func newClient(n int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			IdleConnTimeout:     time.Minute,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// A runner is the state of one Run.
type runner struct {
	cfg    Config
	base   string       // cfg.Target without a trailing slash
	client *http.Client // nil when fast is set
	fast   *Client      // the default client of an http:// target
	tag    string       // names this run's generated modules

	// Set before the workers start, then read only.
	hits []string // lookup paths of module versions in the log
	size int64    // tree size tiles are read from

	next   atomic.Int64 // next request number to claim
	misses atomic.Int64 // next miss module number

	stats [numKinds]kindStats
}

// kindStats are the outcomes of one kind of request.
type kindStats struct {
	hist Histogram    // latencies of every request, failed and late ones included
	late atomic.Int64 // requests due but not sent (counted in hist)

	mu       sync.Mutex
	errors   map[string]int64 // guarded by mu; by cause
	firstErr string           // guarded by mu
}

// A worker is one sender of requests; its fields are its own.
type worker struct {
	// The last tree head verified and its size: lookup answers mostly
	// repeat the same head, which need not be verified again.
	note []byte
	size int64
	buf  []byte // the body of the last answer
}

// Run runs a load against cfg.Target and returns its measurements. It
// returns an error, without measurements, if cfg is invalid or if the
// server fails the preparation: reading /latest, the data tiles that give
// the versions to hit, or the first lookups through the Proxy.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	r := &runner{
		cfg:    cfg,
		base:   strings.TrimSuffix(cfg.Target, "/"),
		client: cfg.Client,
		tag:    fmt.Sprintf("%08x", rand.Uint32()),
	}
	if r.client == nil && strings.HasPrefix(cfg.Target, "http:") {
		if r.fast, err = NewClient(cfg.Target, cfg.Concurrency); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer r.fast.CloseIdleConnections()
	} else if r.client == nil {
		r.client = newClient(cfg.Concurrency)
		defer r.client.CloseIdleConnections()
	}
	for k := range numKinds {
		r.stats[k].errors = make(map[string]int64)
	}
	res := &Result{
		Target:      cfg.Target,
		Rate:        cfg.Rate,
		Concurrency: cfg.Concurrency,
		Mix:         cfg.Mix,
		Duration:    cfg.Duration,
	}
	if err := r.prepare(ctx, res); err != nil {
		return nil, fmt.Errorf("load %s: %w", cfg.Target, err)
	}

	cfg.Logger.InfoContext(ctx, "load running", "target", cfg.Target, "duration", cfg.Duration, "rate", cfg.Rate, "concurrency", cfg.Concurrency, "mix", cfg.Mix.String())
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			w := &worker{}
			if cfg.Rate > 0 {
				r.paced(ctx, w, start, deadline)
			} else {
				r.flatOut(ctx, w, deadline)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Interrupted = ctx.Err() != nil
	r.summarize(res)

	if !res.Interrupted {
		// The tree after the run: how much the misses grew it.
		if size, err := r.latest(ctx); err != nil {
			cfg.Logger.WarnContext(ctx, "read the tree head after the run", "err", err)
		} else {
			res.SizeAfter = size
		}
	}
	return res, nil
}

// flatOut sends requests one after the other until the deadline.
func (r *runner) flatOut(ctx context.Context, w *worker, deadline time.Time) {
	for {
		i := r.next.Add(1) - 1
		if r.cfg.MaxRequests > 0 && i >= r.cfg.MaxRequests || ctx.Err() != nil || !time.Now().Before(deadline) {
			return
		}
		start := time.Now()
		r.send(ctx, w, start)
	}
}

// paced sends the requests it claims when they are due, until the deadline.
// Request i is due at start + i/rate.
func (r *runner) paced(ctx context.Context, w *worker, start, deadline time.Time) {
	due := r.cfg.Duration.Seconds() * r.cfg.Rate // requests due before the deadline
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		i := r.next.Add(1) - 1
		if r.cfg.MaxRequests > 0 && i >= r.cfg.MaxRequests || float64(i) >= due {
			return
		}
		at := start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if !time.Now().Before(deadline) {
			// Behind schedule at the end: request i found no free slot
			// before the end, and this one is the first free since. It is
			// not sent, but counts late, with the wait it had: a lower
			// bound of its latency. So does each request still due, as the
			// loop claims them. (A request waited for is sent even if the
			// timer fired a little after the end.)
			if ctx.Err() != nil {
				return
			}
			r.late(at)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.send(ctx, w, at)
	}
}

// late records a request due at the given time but not sent, of a kind
// picked by the mix, with its wait until now as its latency.
func (r *runner) late(due time.Time) {
	k := r.cfg.Mix.pick(rand.IntN(r.cfg.Mix.total()))
	s := &r.stats[k]
	s.hist.Record(time.Since(due))
	s.late.Add(1)
}

// send sends one request of a kind picked by the mix, and records its
// latency from since.
func (r *runner) send(ctx context.Context, w *worker, since time.Time) {
	k := r.cfg.Mix.pick(rand.IntN(r.cfg.Mix.total()))
	var cause string
	var err error
	switch k {
	case Hit:
		cause, err = r.hit(ctx, w)
	case Miss:
		cause, err = r.miss(ctx, w)
	case Tile:
		cause, err = r.tile(ctx, w)
	}
	elapsed := time.Since(since)
	if err != nil && ctx.Err() != nil {
		return // interrupted: no measurement
	}
	s := &r.stats[k]
	s.hist.Record(elapsed)
	if err != nil {
		s.mu.Lock()
		s.errors[cause]++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
		s.mu.Unlock()
	}
}

// Causes of failed requests other than an HTTP status.
const (
	causeInvalid = "invalid" // a 200 whose body is wrong
	causeTimeout = "timeout"
	causeNetwork = "network"
)

// hit looks up a module version known to be in the log.
func (r *runner) hit(ctx context.Context, w *worker) (cause string, err error) {
	p := r.hits[rand.IntN(len(r.hits))]
	body, cause, err := r.get(ctx, w, p)
	if err != nil {
		return cause, err
	}
	if err := r.checkLookup(w, p, body); err != nil {
		return causeInvalid, err
	}
	return "", nil
}

// miss looks up a module version new to the log.
func (r *runner) miss(ctx context.Context, w *worker) (cause string, err error) {
	p := lookupPath(moduleName(r.tag, 'm', r.misses.Add(1)-1), moduleVersion)
	body, cause, err := r.get(ctx, w, p)
	if err != nil {
		return cause, err
	}
	if err := r.checkLookup(w, p, body); err != nil {
		return causeInvalid, err
	}
	return "", nil
}

// tile reads a random tile of the tree of size r.size, at a random level:
// data tiles count as one more level.
func (r *runner) tile(ctx context.Context, w *worker) (cause string, err error) {
	levels := 1 // data tiles
	for n := r.size; n > 0; n >>= tileHeight {
		levels++
	}
	t := xtlog.Tile{H: tileHeight, L: rand.IntN(levels) - 1}
	n := r.size >> (tileHeight * max(t.L, 0)) // hashes at the tile's level
	j := rand.Int64N(n)
	t.N = j / tileWidth
	t.W = tileWidth
	if t.N == n/tileWidth {
		t.W = int(n % tileWidth)
	}
	body, cause, err := r.get(ctx, w, t.Path())
	if err != nil {
		return cause, err
	}
	if t.L >= 0 && len(body) != t.W*32 {
		return causeInvalid, fmt.Errorf("read %s: %d bytes, want %d", t.Path(), len(body), t.W*32)
	}
	// A data tile is each record's text followed by a blank line, as in
	// golang.org/x/mod/sumdb.
	if n := bytes.Count(body, []byte("\n\n")); t.L < 0 && n != t.W {
		return causeInvalid, fmt.Errorf("read %s: %d records, want %d", t.Path(), n, t.W)
	}
	return "", nil
}

// lookupPath returns the path of the lookup of path@version.
func lookupPath(path, version string) string {
	ep, err := module.EscapePath(path)
	if err != nil {
		panic(fmt.Sprintf("loadgen: escape %s: %v", path, err)) // paths are checked before
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		panic(fmt.Sprintf("loadgen: escape %s: %v", version, err))
	}
	return "lookup/" + ep + "@" + ev
}

// get fetches r.base/p, into the buffer of w if not nil. A failure returns
// its cause: the HTTP status, or causeTimeout or causeNetwork.
func (r *runner) get(ctx context.Context, w *worker, p string) (body []byte, cause string, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var status int
	if r.fast != nil {
		var buf []byte
		if w != nil {
			buf = w.buf
		}
		status, body, err = r.fast.Get(ctx, p, buf, maxBody)
		if w != nil && body != nil {
			w.buf = body
		}
		if errors.Is(err, errTooLong) {
			return nil, causeInvalid, fmt.Errorf("get /%s: %w", p, err)
		}
	} else {
		status, body, err = r.getHTTP(ctx, p)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, causeTimeout, fmt.Errorf("get /%s: no answer within %v", p, r.cfg.Timeout)
		}
		return nil, causeNetwork, fmt.Errorf("get /%s: %w", p, err)
	}
	if status != http.StatusOK {
		return nil, strconv.Itoa(status), fmt.Errorf("get /%s: %d %s: %s", p, status, http.StatusText(status), firstLine(body))
	}
	if len(body) > maxBody {
		return nil, causeInvalid, fmt.Errorf("get /%s: body longer than %d bytes", p, maxBody)
	}
	return body, "", nil
}

// getHTTP fetches r.base/p with r.client.
func (r *runner) getHTTP(ctx context.Context, p string) (status int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/"+p, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, body, nil
}

// firstLine returns the first line of an error body, shortened.
func firstLine(body []byte) string {
	line, _, _ := bytes.Cut(body, []byte("\n"))
	const maxLen = 200
	if len(line) > maxLen {
		line = append(line[:maxLen:maxLen], "..."...)
	}
	return strings.ToValidUTF8(string(line), "?")
}

// checkLookup checks the answer of the lookup at path p: a record of the
// module version asked for, and a tree head that covers it.
func (r *runner) checkLookup(w *worker, p string, body []byte) error {
	id, text, head, err := xtlog.ParseRecord(body)
	if err != nil {
		return fmt.Errorf("get /%s: parse record: %w", p, err)
	}
	path, version, err := parseLookupPath(p)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(text, []byte(path+" "+version+" h1:")) {
		return fmt.Errorf("get /%s: record %d is not of %s@%s", p, id, path, version)
	}
	if !bytes.Equal(head, w.note) {
		tree, err := r.openTree(head)
		if err != nil {
			return fmt.Errorf("get /%s: %w", p, err)
		}
		w.note, w.size = bytes.Clone(head), tree.N
	}
	if id >= w.size {
		return fmt.Errorf("get /%s: record %d is not covered by the tree head of size %d", p, id, w.size)
	}
	return nil
}

// parseLookupPath returns the module version of a lookup path.
func parseLookupPath(p string) (path, version string, err error) {
	esc := strings.TrimPrefix(p, "lookup/")
	i := strings.LastIndex(esc, "@")
	if i < 0 {
		return "", "", fmt.Errorf("lookup path %q has no @", p)
	}
	if path, err = module.UnescapePath(esc[:i]); err != nil {
		return "", "", err
	}
	if version, err = module.UnescapeVersion(esc[i+1:]); err != nil {
		return "", "", err
	}
	return path, version, nil
}

// openTree parses a signed tree head, and verifies it if the run has a
// verifier.
func (r *runner) openTree(msg []byte) (xtlog.Tree, error) {
	var text string
	if r.cfg.Verifier != nil {
		n, err := note.Open(msg, note.VerifierList(r.cfg.Verifier))
		if err != nil {
			return xtlog.Tree{}, fmt.Errorf("verify tree head: %w", err)
		}
		text = n.Text
	} else {
		// Known to no verifier, a well-formed note is "unverified".
		_, err := note.Open(msg, note.VerifierList())
		var uerr *note.UnverifiedNoteError
		if !errors.As(err, &uerr) {
			return xtlog.Tree{}, fmt.Errorf("parse tree head: %w", err)
		}
		text = uerr.Note.Text
	}
	tree, err := xtlog.ParseTree([]byte(text))
	if err != nil {
		return xtlog.Tree{}, fmt.Errorf("parse tree head: %w", err)
	}
	return tree, nil
}

// latest returns the size of the tree at /latest: 0 if the log is empty.
func (r *runner) latest(ctx context.Context) (int64, error) {
	body, cause, err := r.get(ctx, nil, "latest")
	if cause == strconv.Itoa(http.StatusNotFound) {
		return 0, nil // no head signed yet
	}
	if err != nil {
		return 0, err
	}
	tree, err := r.openTree(body)
	if err != nil {
		return 0, fmt.Errorf("get /latest: %w", err)
	}
	return tree.N, nil
}

// prepare learns the tree, and the module versions to hit, before the run.
func (r *runner) prepare(ctx context.Context, res *Result) error {
	size, err := r.latest(ctx)
	if err != nil {
		return err
	}
	if r.cfg.Mix.Hit > 0 && size > 0 {
		if err := r.sampleHits(ctx, size); err != nil {
			return err
		}
	}
	// One lookup through the Proxy, before any miss, checks that the
	// server fetches from it: the most likely mistake.
	needWarmup := r.cfg.Mix.Hit > 0 && len(r.hits) == 0 || r.cfg.Mix.Tile > 0 && size == 0
	if r.cfg.Mix.Miss > 0 || needWarmup {
		n := 1
		if needWarmup {
			n = r.cfg.Warmup
		}
		if err := r.warmUp(ctx, n); err != nil {
			return err
		}
		res.Warmup = n
		if size, err = r.latest(ctx); err != nil {
			return err
		}
	}
	if size == 0 {
		return errors.New("the log is empty: nothing to read (add misses to the mix, or let the warm-up fill it)")
	}
	r.size = size
	res.SizeBefore = size
	return nil
}

// sampleHits reads data tiles spread over the tree of the given size, and
// keeps the module versions they hold as the versions to hit.
func (r *runner) sampleHits(ctx context.Context, size int64) error {
	tiles := (size + tileWidth - 1) / tileWidth
	var last int64 = -1
	for i := range int64(hitSampleTiles) {
		k := i * (tiles - 1) / (hitSampleTiles - 1)
		if k == last {
			continue
		}
		last = k
		t := xtlog.Tile{H: tileHeight, L: -1, N: k, W: tileWidth}
		if k == size/tileWidth {
			t.W = int(size % tileWidth)
		}
		body, _, err := r.get(ctx, nil, t.Path())
		if err != nil {
			return fmt.Errorf("read the versions to hit: %w", err)
		}
		for line := range strings.Lines(string(body)) {
			f := strings.Fields(line)
			if len(f) != 3 || strings.HasSuffix(f[1], "/go.mod") || module.Check(f[0], f[1]) != nil {
				continue
			}
			r.hits = append(r.hits, lookupPath(f[0], f[1]))
		}
	}
	if len(r.hits) == 0 {
		return fmt.Errorf("read the versions to hit: no module version in the data tiles of a tree of %d records", size)
	}
	r.cfg.Logger.InfoContext(ctx, "read the versions to hit", "versions", len(r.hits), "tree", size)
	return nil
}

// warmUp looks up n new module versions through the Proxy, and keeps them as
// versions to hit.
func (r *runner) warmUp(ctx context.Context, n int) error {
	if r.cfg.Proxy == nil {
		return fmt.Errorf("the log is empty and there is %w to fill it with modules", errNoProxy)
	}
	r.cfg.Logger.InfoContext(ctx, "warming up", "lookups", n, "proxy", r.cfg.Proxy.URL())
	before := r.cfg.Proxy.Requests()
	paths := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, min(8, r.cfg.Concurrency))
	var wg sync.WaitGroup
	for i := range n {
		paths[i] = lookupPath(moduleName(r.tag, 'w', int64(i)), moduleVersion)
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			body, _, err := r.get(ctx, nil, paths[i])
			if err == nil {
				err = r.checkLookup(&worker{}, paths[i], body)
			}
			errs[i] = err
		})
		if i == 0 {
			// The first alone: if the server does not fetch from the
			// Proxy, say so once.
			wg.Wait()
			if errs[0] != nil {
				if r.cfg.Proxy.Requests() == before {
					return fmt.Errorf("%w; the load proxy at %s received no request: start the server under test with --upstream %s", errs[0], r.cfg.Proxy.URL(), r.cfg.Proxy.URL())
				}
				return fmt.Errorf("warm up: %w", errs[0])
			}
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if r.cfg.Mix.Hit > 0 && len(r.hits) == 0 {
		r.hits = paths
	}
	return nil
}

// summarize fills in res's measurements.
func (r *runner) summarize(res *Result) {
	var all Histogram
	res.Total.Errors = make(map[string]int64)
	for k := range numKinds {
		s := &r.stats[k]
		all.Merge(&s.hist)
		late := s.late.Load()
		st := Stats{Requests: s.hist.Count() - late, Late: late, Errors: s.errors, FirstError: s.firstErr, Latency: s.hist.Latency()}
		res.Late += late
		res.Total.Late += late
		for cause, n := range s.errors {
			res.Total.Errors[cause] += n
		}
		if res.Total.FirstError == "" {
			res.Total.FirstError = s.firstErr
		}
		res.Kinds[k] = st
	}
	res.Total.Requests = all.Count() - res.Total.Late
	res.Total.Latency = all.Latency()
}
