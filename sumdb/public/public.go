// Package public cross-checks the module versions that a checksum database
// logs with the public checksum database (the go command's built-in one, or any log named
// by a verifier key): a version whose path is not private is logged only if
// the public log holds the same two go.sum lines as the ones hashed from the
// upstream's files. An organization that points GOSUMDB at its own log thus
// keeps the public log's guarantee for public modules.
//
// A CrossCheck is the sumdb.Server's Fetcher for public paths. It fetches
// and hashes the version through the next Fetcher (the upstream proxy),
// then looks the version up in the public log and verifies the answer as
// the go command does, with the go command's own client (x/mod's
// sumdb.Client): the signed tree head, the record's inclusion proof, and the
// head's consistency with the newest public head verified before, which is
// kept in a StateStore shared by every replica of the server.
//
// Whenever the check cannot be made, the version is refused, never logged
// now and checked later: the log is append-only, so a record logged before
// its check could never be taken back if the check then failed, and every
// go command that trusts the log would accept it for good. A public log that
// cannot be reached (or answers late, or with a 5xx status) makes the lookup
// fail with fetch.ErrRetryLater, which the server answers 503 with
// Retry-After: the user retries in a moment, and no version escapes the
// check.
//
// The outcomes, each counted in sumdb_public_lookups_total{result}:
//
//   - ok: the lines are equal; Fetch returns the record text.
//   - mismatch: the upstream's hashes differ from the public log's; Fetch
//     returns an error wrapping fetch.ErrNotFound that names both, and logs
//     it at ERROR (also counted in sumdb_public_mismatches_total).
//   - missing: the public log does not hold the version; an error wrapping
//     fetch.ErrNotFound says to publish it there first, or to make the path
//     private.
//   - unavailable: the public log could not be reached, failed or timed
//     out; fetch.ErrRetryLater.
//   - invalid: its answer does not verify (a head not signed by its key, a
//     record or tile that does not hash to the signed head); logged at
//     ERROR, fetch.ErrRetryLater.
//   - fork: two of its signed heads are inconsistent; logged at ERROR with
//     both, the evidence kept in the StateStore, sumdb_public_fork set to 1,
//     and every public version refused with fetch.ErrRetryLater until an
//     operator clears the evidence (ClearFork).
//   - error: a failure of the StateStore.
//
// Private paths are never sent to the public log: Fetch refuses them
// before any request, and the client is given them as GONOSUMDB besides.
package public

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	xsumdb "golang.org/x/mod/sumdb"

	"github.com/sumdb/sumdb/internal/lru"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// A Fetcher gets the record text of a module version, its two go.sum lines,
// as sumdb.Fetcher does; fetch.Upstream is one.
type Fetcher interface {
	Fetch(ctx context.Context, path, version string) ([]byte, error)
}

// A StateStore keeps small named values shared by every replica of the
// server: the newest verified head of the public log, and the evidence of
// its fork. store.Postgres and store.SQLite are StateStores. Its methods
// must be safe for concurrent use, and a successful SwapState durable.
type StateStore interface {
	// ReadState returns the value of name, or nil and no error if it is
	// unset.
	ReadState(ctx context.Context, name string) ([]byte, error)
	// SwapState sets name to new if its value is old (nil old: unset; nil
	// new: unset it), atomically, else returns an error wrapping
	// tlog.ErrConflict.
	SwapState(ctx context.Context, name string, old, new []byte) error
}

// Defaults of the Config fields.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultCacheSize = 16 << 20
)

// forkRecheck is how long the fork evidence read from the StateStore is
// trusted before it is read again, so that a fork found by another replica,
// or an operator's ClearFork, is seen within that time.
const forkRecheck = 5 * time.Second

// maxEvidence bounds the fork evidence kept: the x/mod client's report is
// two signed heads and a proof of at most a few dozen hashes.
const maxEvidence = 64 << 10

// Config configures a CrossCheck. The zero value of a field means its
// default; Remote, Next and State are required.
type Config struct {
	// Remote is the public checksum database (client.Open resolves it).
	Remote *client.Remote
	// Next fetches the version from the upstream and hashes it
	// (fetch.Upstream).
	Next Fetcher
	// Private are GOPRIVATE-syntax patterns (comma-separated glob
	// prefixes): such paths are never sent to Remote, and Fetch refuses
	// them without giving them to Next either; the server routes them to
	// another Fetcher.
	Private string
	// State keeps the newest verified public head and the fork evidence.
	State StateStore
	// Logger gets the mismatches, forks and failures; default discard.
	Logger *slog.Logger
	// Registerer gets the metrics; default a new registry of their own.
	Registerer prometheus.Registerer
	// Timeout bounds one public lookup, proofs included; default
	// DefaultTimeout.
	Timeout time.Duration
	// CacheSize bounds the bytes of verified public tiles and records kept
	// in memory; default DefaultCacheSize.
	CacheSize int64
}

// A CrossCheck fetches module versions through the next Fetcher and returns
// their record text only if the public checksum database holds the same
// go.sum lines. It is safe for concurrent use.
type CrossCheck struct {
	remote     *client.Remote
	name       string // the public log's name, as in its key
	latestName string // the StateStore name of the newest verified head
	forkName   string // the StateStore name of the fork evidence
	next       Fetcher
	private    string
	state      StateStore
	logger     *slog.Logger
	timeout    time.Duration
	cacheSize  int64
	cache      atomic.Pointer[lru.Cache[string, []byte]] // verified tiles and records, by the x/mod client's file name; replaced on a fork
	metrics    metrics

	now     func() time.Time // the clock of the fork re-check; time.Now but in tests
	recheck time.Duration    // forkRecheck but in tests

	mu       sync.Mutex
	fork     string    // guarded by mu; the fork evidence last read or found, "" for none
	forkRead time.Time // guarded by mu; when fork was read from the store; zero for never
	unsaved  string    // guarded by mu; evidence found here that the store does not hold yet
}

// metrics are the Prometheus metrics of a CrossCheck.
type metrics struct {
	lookups    *prometheus.CounterVec
	mismatches prometheus.Counter
	fork       prometheus.Gauge
}

// Results of public lookups, the values of the "result" label of
// sumdb_public_lookups_total.
const (
	resultOK          = "ok"
	resultMismatch    = "mismatch"
	resultMissing     = "missing"
	resultUnavailable = "unavailable"
	resultInvalid     = "invalid"
	resultFork        = "fork"
	resultError       = "error"
)

// New returns a CrossCheck for cfg, or an error if cfg is invalid or its
// metrics cannot be registered.
func New(cfg Config) (*CrossCheck, error) {
	switch {
	case cfg.Remote == nil || cfg.Remote.Verifier == nil:
		return nil, errors.New("public cross-check: no public checksum database (Remote)")
	case cfg.Next == nil:
		return nil, errors.New("public cross-check: no upstream fetcher (Next)")
	case cfg.State == nil:
		return nil, errors.New("public cross-check: no state store (State)")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("public cross-check: negative timeout %v", cfg.Timeout)
	case cfg.CacheSize < 0:
		return nil, fmt.Errorf("public cross-check: negative cache size %d", cfg.CacheSize)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	name := cfg.Remote.Verifier.Name()
	c := &CrossCheck{
		remote:     cfg.Remote,
		name:       name,
		latestName: stateName(name, "latest"),
		forkName:   stateName(name, "fork"),
		next:       cfg.Next,
		private:    cfg.Private,
		state:      cfg.State,
		logger:     cfg.Logger,
		timeout:    cfg.Timeout,
		cacheSize:  cfg.CacheSize,
		now:        time.Now,
		recheck:    forkRecheck,
	}
	c.cache.Store(c.newCache())
	if err := c.metrics.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("public cross-check: %w", err)
	}
	return c, nil
}

// newCache returns an empty cache of verified tiles and records.
func (c *CrossCheck) newCache() *lru.Cache[string, []byte] {
	return lru.New[string](c.cacheSize, func(v []byte) int64 { return int64(len(v)) })
}

// stateName returns the StateStore name of the value what ("latest",
// "fork") of the public log named name.
func stateName(name, what string) string { return "public/" + name + "/" + what }

func (m *metrics) register(reg prometheus.Registerer) error {
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sumdb_public_lookups_total",
		Help: "Module versions looked up in the public checksum database, by result: ok, mismatch, missing, unavailable, invalid, fork, error.",
	}, []string{"result"})
	m.mismatches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sumdb_public_mismatches_total",
		Help: "Module versions refused because the upstream's hashes differ from the public checksum database's.",
	})
	m.fork = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sumdb_public_fork",
		Help: "1 while the public checksum database is held to have forked: every public module version is refused until an operator clears it.",
	})
	// Every result from the start, so that rates of rare results exist.
	for _, r := range []string{resultOK, resultMismatch, resultMissing, resultUnavailable, resultInvalid, resultFork, resultError} {
		m.lookups.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.lookups, m.mismatches, m.fork} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// Fetch fetches path@version through Next and returns its record text only
// if the public log holds the same two go.sum lines. Its errors wrap
// fetch.ErrNotFound for a private path, a version the public log does not
// hold and a mismatch; fetch.ErrRetryLater when the public log cannot be
// reached or verified, or forked; otherwise they are Next's, or the
// StateStore's. The messages of the first two kinds are for the go
// command's user, and name no secret.
func (c *CrossCheck) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	if fetch.IsPrivate(c.private, path) {
		return nil, errPrivate(path, version)
	}
	if err := c.refuseForked(ctx, path, version); err != nil {
		return nil, err
	}
	// An unknown version ends here, without a question to the public log.
	text, err := c.next.Fetch(ctx, path, version)
	if err != nil {
		return nil, err
	}
	mod := path + "@" + version
	zipLine, modLine, ok := splitRecord(path, version, text)
	if !ok {
		return nil, fmt.Errorf("%w: %s: the upstream's record is not the two go.sum lines of the version", fetch.ErrUpstream, mod)
	}
	pub, err := c.lookup(ctx, path, version)
	if err != nil {
		return nil, err
	}
	if len(pub.zip) == 1 && pub.zip[0] == zipLine && len(pub.mod) == 1 && pub.mod[0] == modLine {
		c.metrics.lookups.WithLabelValues(resultOK).Inc()
		return text, nil
	}
	c.metrics.lookups.WithLabelValues(resultMismatch).Inc()
	c.metrics.mismatches.Inc()
	var diffs []string
	if len(pub.zip) != 1 || pub.zip[0] != zipLine {
		diffs = append(diffs, fmt.Sprintf("zip: upstream %s but the public checksum database %s", hashOf(zipLine, path, version), hashesOf(pub.zip, path, version)))
	}
	if len(pub.mod) != 1 || pub.mod[0] != modLine {
		diffs = append(diffs, fmt.Sprintf("go.mod: upstream %s but the public checksum database %s", hashOf(modLine, path, version+"/go.mod"), hashesOf(pub.mod, path, version+"/go.mod")))
	}
	c.logger.ErrorContext(ctx, "module version refused: the upstream's hashes differ from the public checksum database's",
		"module", mod, "db", c.name, "upstream", string(text), "public", strings.Join(pub.zip, "\n")+"\n"+strings.Join(pub.mod, "\n"))
	return nil, fmt.Errorf("%w: %s: the upstream's files differ from those the public checksum database %s logged (%s): refused; the upstream serves altered files, or the version was republished", fetch.ErrNotFound, mod, c.name, strings.Join(diffs, "; "))
}

// errPrivate returns the error of a lookup of path@version, a private
// path, which is never cross-checked: the server routes private paths to
// another Fetcher. The path may be invalid: it is quoted.
func errPrivate(path, version string) error {
	return fmt.Errorf("%w: %s: the path is private (--private), and this fetcher serves public modules only", fetch.ErrNotFound, strconv.Quote(path+"@"+version))
}

// splitRecord returns the two go.sum lines of text, the record of
// path@version, without their newlines, or false if text is not two such
// lines.
func splitRecord(path, version string, text []byte) (zipLine, modLine string, ok bool) {
	l1, rest, ok1 := strings.Cut(string(text), "\n")
	l2, tail, ok2 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 || tail != "" ||
		!strings.HasPrefix(l1, path+" "+version+" ") || !strings.HasPrefix(l2, path+" "+version+"/go.mod ") {
		return "", "", false
	}
	return l1, l2, true
}

// hashOf returns the hash of a go.sum line of path@version (version may end
// in /go.mod), as a message may show it.
func hashOf(line, path, version string) string {
	return printable(strings.TrimPrefix(line, path+" "+version+" "))
}

// hashesOf returns the hashes of the public log's go.sum lines of
// path@version, as a message may show them.
func hashesOf(lines []string, path, version string) string {
	if len(lines) == 0 {
		return "has none"
	}
	hs := make([]string, len(lines))
	for i, l := range lines {
		hs[i] = hashOf(l, path, version)
	}
	return strings.Join(hs, " and ")
}

// printable returns s if it is short printable ASCII, as a hash is, else a
// quoted prefix: the public log's lines are signed by its key, not checked
// to be hashes.
func printable(s string) string {
	const maxLen = 100
	ok := len(s) <= maxLen && strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) < 0
	if ok {
		return s
	}
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return strconv.QuoteToASCII(s)
}

// errForked returns the error of a lookup of path@version refused because
// the public log forked.
func (c *CrossCheck) errForked(path, version string) error {
	return fmt.Errorf("%w: %s: the public checksum database %s showed a fork (two signed tree heads that contradict each other): no public module version is logged until an operator investigates and clears it", fetch.ErrRetryLater, path+"@"+version, c.name)
}

// refuseForked returns errForked if the public log is held to have forked.
func (c *CrossCheck) refuseForked(ctx context.Context, path, version string) error {
	evidence, err := c.forkEvidence(ctx, false)
	if err != nil {
		c.metrics.lookups.WithLabelValues(resultError).Inc()
		return fmt.Errorf("cross-check %s@%s: %w", path, version, err)
	}
	if evidence != "" {
		c.metrics.lookups.WithLabelValues(resultFork).Inc()
		return c.errForked(path, version)
	}
	return nil
}

// forkEvidence returns the evidence of the public log's fork, "" if none,
// as the StateStore held it at most c.recheck ago (fresh: now).
// Evidence found here that could not be stored is stored first.
func (c *CrossCheck) forkEvidence(ctx context.Context, fresh bool) (string, error) {
	c.mu.Lock()
	evidence, read, unsaved := c.fork, c.forkRead, c.unsaved
	c.mu.Unlock()
	if !fresh && !read.IsZero() && c.now().Sub(read) < c.recheck {
		return evidence, nil
	}
	if unsaved != "" {
		if err := c.saveFork(ctx, unsaved); err != nil {
			return unsaved, nil // refuse on, and try again next time
		}
	}
	v, err := c.state.ReadState(ctx, c.forkName)
	if err != nil {
		return "", fmt.Errorf("read the fork state of the public checksum database %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.fork, c.forkRead = string(v), c.now()
	if c.unsaved == unsaved {
		c.unsaved = ""
	}
	c.mu.Unlock()
	if len(v) > 0 {
		c.metrics.fork.Set(1)
	} else {
		c.metrics.fork.Set(0)
	}
	return string(v), nil
}

// foundFork holds the public log to have forked, as evidence shows: it logs
// the evidence, keeps it in memory and in the StateStore (unless the store
// holds earlier evidence already), and refuses every later lookup.
func (c *CrossCheck) foundFork(ctx context.Context, evidence string) {
	if len(evidence) > maxEvidence {
		evidence = evidence[:maxEvidence] + "\n[truncated]"
	}
	c.logger.ErrorContext(ctx, "the public checksum database forked: every public module version is refused until an operator investigates and clears the fork", "db", c.name, "evidence", evidence)
	c.metrics.fork.Set(1)
	// The client verified the tiles of the other branch against its own
	// signed head before it found the heads inconsistent, and cached them:
	// every later proof from the cache would fail on them.
	c.cache.Store(c.newCache())
	c.mu.Lock()
	c.fork, c.forkRead = evidence, c.now()
	c.mu.Unlock()
	// The lookup's context may have ended (a timeout): the evidence is
	// kept all the same.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	if err := c.saveFork(sctx, evidence); err != nil {
		c.logger.ErrorContext(ctx, "fork evidence not stored: this replica refuses public module versions, and stores it later", "db", c.name, "err", err)
		c.mu.Lock()
		c.unsaved = evidence
		c.mu.Unlock()
	}
}

// saveFork stores evidence unless the store holds evidence already.
func (c *CrossCheck) saveFork(ctx context.Context, evidence string) error {
	err := c.state.SwapState(ctx, c.forkName, nil, []byte(evidence))
	if errors.Is(err, tlog.ErrConflict) {
		return nil // earlier evidence, kept
	}
	return err
}

// Fork returns the evidence that the public log forked, as the StateStore
// holds it now: the inconsistent signed tree heads and the proof. It
// returns "" if there is none.
func (c *CrossCheck) Fork(ctx context.Context) (string, error) {
	return c.forkEvidence(ctx, true)
}

// ReadFork returns the evidence that the public checksum database named
// name (as in its key) forked, as st holds it, or "" if there is none: what
// Fork returns, for a command that shows it without reaching the database.
func ReadFork(ctx context.Context, st StateStore, name string) (string, error) {
	v, err := st.ReadState(ctx, stateName(name, "fork"))
	if err != nil {
		return "", fmt.Errorf("read fork evidence of %s: %w", name, err)
	}
	return string(v), nil
}

// ClearFork removes the evidence that the public checksum database named
// name (as in its key, such as "sum.example.com") forked from st, after an
// operator investigated it. Every replica sharing st logs public module
// versions again within seconds. The newest verified public head is kept:
// if the public log still contradicts it, the next lookup finds the fork
// again.
func ClearFork(ctx context.Context, st StateStore, name string) error {
	key := stateName(name, "fork")
	for range 10 {
		v, err := st.ReadState(ctx, key)
		if err != nil {
			return fmt.Errorf("clear fork of %s: %w", name, err)
		}
		if v == nil {
			return nil
		}
		err = st.SwapState(ctx, key, v, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, tlog.ErrConflict) {
			return fmt.Errorf("clear fork of %s: %w", name, err)
		}
	}
	return fmt.Errorf("clear fork of %s: the evidence kept changing under the swap: try again", name)
}

// A publicLines holds the go.sum lines that the public log holds for a
// module version: of its zip, and of its go.mod.
type publicLines struct {
	zip, mod []string
}

// lookup looks path@version up in the public log, verified as the go
// command verifies it, within c.timeout, and returns its go.sum lines. Its
// errors are those Fetch returns.
func (c *CrossCheck) lookup(ctx context.Context, path, version string) (publicLines, error) {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ops := &clientOps{c: c, ctx: lctx}
	type result struct {
		lines publicLines
		err   error
	}
	done := make(chan result, 1)
	go func() {
		// A client per lookup: x/mod's Client keeps every lookup and tile it
		// ever read, errors included, in memory; the cache that outlives it
		// is ops's, bounded, of verified data only. The newest verified head
		// is the StateStore's, which every client starts from.
		cl := xsumdb.NewClient(ops)
		cl.SetGONOSUMDB(c.private)
		var r result
		r.lines.zip, r.err = cl.Lookup(path, version)
		if r.err == nil {
			r.lines.mod, r.err = cl.Lookup(path, version+"/go.mod")
		}
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-lctx.Done():
		// The client's operations take no context: ops ends them with
		// lctx, and the goroutine soon after.
		r.err = lctx.Err()
	}
	if r.err == nil {
		return r.lines, nil
	}
	return publicLines{}, c.failure(ctx, lctx, ops, path, version, r.err)
}

// failure returns the error of a lookup of path@version that failed with
// err, with its result counted and logged. The x/mod client's errors carry
// the text, not the identity, of the errors it ran into: ops tells which.
func (c *CrossCheck) failure(ctx, lctx context.Context, ops *clientOps, path, version string, err error) error {
	mod := path + "@" + version
	count := func(result string) { c.metrics.lookups.WithLabelValues(result).Inc() }
	if errors.Is(err, xsumdb.ErrGONOSUMDB) {
		return errPrivate(path, version)
	}
	cause := ops.cause(err)
	switch {
	case cause.security != "":
		count(resultFork)
		c.foundFork(ctx, cause.security)
		return c.errForked(path, version)
	case ctx.Err() != nil:
		// The requester left; nobody reads the answer.
		return fmt.Errorf("cross-check %s with the public checksum database %s: %w", mod, c.name, context.Cause(ctx))
	case cause.state != nil:
		count(resultError)
		return fmt.Errorf("cross-check %s with the public checksum database %s: %w", mod, c.name, cause.state)
	case errors.Is(cause.remote, client.ErrTreeTooLarge):
		// Signed by the key, and impossible: evidence, not unavailability.
	case errors.Is(cause.remote, client.ErrNotFound) && cause.lookup:
		count(resultMissing)
		c.logger.InfoContext(ctx, "module version not in the public checksum database", "module", mod, "db", c.name, "err", cause.remote)
		return fmt.Errorf("%w: %s is not in the public checksum database %s: a public module version must be there first; if the path is private, add it to --private", fetch.ErrNotFound, mod, c.name)
	case errors.Is(cause.remote, client.ErrUpstream) || lctx.Err() != nil:
		count(resultUnavailable)
		reason := "it could not be reached or failed"
		if lctx.Err() != nil {
			reason = fmt.Sprintf("it did not answer within %v", c.timeout)
		}
		c.logger.WarnContext(ctx, "public checksum database unavailable: module version refused", "module", mod, "db", c.name, "err", errors.Join(err, cause.remote))
		return fmt.Errorf("%w: %s: the public checksum database %s must confirm a public module version before it is logged, and %s: retry later", fetch.ErrRetryLater, mod, c.name, reason)
	}
	count(resultInvalid)
	c.logger.ErrorContext(ctx, "the public checksum database's answer does not verify: module version refused", "module", mod, "db", c.name, "err", errors.Join(err, cause.remote))
	return fmt.Errorf("%w: %s: the answer of the public checksum database %s does not verify against its signed tree head (a head not signed by its key, or a record or tile altered): nothing is logged; retry later, and if this persists, check what serves the public checksum database", fetch.ErrRetryLater, mod, c.name)
}
