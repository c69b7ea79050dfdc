// Package witness gets the signed heads of a log cosigned by witnesses.
//
// After each new head, a Cosigner submits it to every configured witness
// with the add-checkpoint call of c2sp.org/tlog-witness, with a consistency
// proof from the size that witness last cosigned; it verifies the
// cosignatures the witnesses answer (cosignature/v1 of
// c2sp.org/tlog-cosignature) and keeps them in a store shared by the
// replicas of the server. Latest returns the note that /latest serves: a
// head with its cosignatures appended as note signature lines
// (c2sp.org/signed-note), which clients that know no witness key ignore,
// as golang.org/x/mod/sumdb/note.Open does.
//
// A witness that is down, slow, refuses a head or answers garbage never
// stops the log: the failure is logged, counted in a metric and shown by
// Status, and the next head is submitted as usual.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/tlog"
)

// Bounds of a submission.
const (
	// DefaultTimeout bounds one submission to a witness, a resubmission
	// after a 409 included.
	DefaultTimeout = 10 * time.Second
	// maxBody bounds the answer of a witness: a few cosignature lines.
	maxBody = 64 << 10
	// maxSignatures is the most signature lines a note may hold for
	// golang.org/x/mod/sumdb/note.Open (and so for the go command).
	maxSignatures = 100
	// pollInterval is how often Run looks for a head it was not told of,
	// such as one another replica committed.
	pollInterval = time.Second
	// minRetry and maxRetry bound the wait before a failed witness is
	// tried again with the newest head, doubling after each failure.
	minRetry = time.Second
	maxRetry = time.Minute
)

// A Witness is a witness to submit heads to.
type Witness struct {
	// VKey is the witness's verifier key, <name>+<hash>+<key>: a
	// cosignature/v1 key (algorithm 0x04) or the Ed25519 key (0x01) it
	// cosigns with.
	VKey string
	// URL is the witness's submission prefix: heads are posted to
	// URL/add-checkpoint.
	URL string
}

// A CosignatureStore keeps verified cosignatures, shared by the replicas of
// a server. Both stores of package store implement it. Its methods are
// safe for concurrent use.
type CosignatureStore interface {
	// PutCosignature stores line, the note signature line of the witness
	// key named witness on the head of size. Storing the same line again is
	// a no-op; another line for the same size and witness is an error
	// wrapping tlog.ErrConflict, and the first stays.
	PutCosignature(ctx context.Context, size int64, witness string, line []byte) error
	// ReadCosignatures returns the stored lines of the head of size, by
	// witness key name.
	ReadCosignatures(ctx context.Context, size int64) (map[string][]byte, error)
	// ReadState and SwapState keep the newest head that reached the
	// quorum, so that a restarted server, or another replica, serves it:
	// ReadState returns nil, nil for a name never set; SwapState sets name
	// to new if it holds old (nil: unset), else it returns an error
	// wrapping tlog.ErrConflict.
	ReadState(ctx context.Context, name string) ([]byte, error)
	SwapState(ctx context.Context, name string, old, new []byte) error
}

// quorumState is the state that keeps the signed note of the newest head
// that reached the quorum.
const quorumState = "witness/quorum-head"

// Config configures a Cosigner.
type Config struct {
	// Witnesses are the witnesses to submit heads to, each under a key
	// name of its own. At least one is required.
	Witnesses []Witness
	// Log is the log whose heads are submitted, and whose tiles prove
	// them consistent. Required.
	Log *tlog.Log
	// Store keeps the cosignatures. Required.
	Store CosignatureStore
	// Quorum is the number of cosignatures a head needs for Latest to
	// prefer it to an older head that has them: 0 to len(Witnesses).
	Quorum int
	// Logger receives a line per failed submission. Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none kept.
	Registerer prometheus.Registerer
	// Client sends the submissions. Default: a new http.Client.
	Client *http.Client
	// Timeout bounds one submission to a witness. Default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock of Status. Default time.Now.
	Now func() time.Time
}

// A Cosigner submits a log's heads to witnesses and keeps their
// cosignatures. Its methods are safe for concurrent use.
type Cosigner struct {
	log       *tlog.Log
	store     CosignatureStore
	quorum    int
	logger    *slog.Logger
	client    *guard.Client
	timeout   time.Duration
	now       func() time.Time
	witnesses []*witness
	notify    chan struct{} // buffered 1: a head was committed
	results   *prometheus.CounterVec
	sizes     *prometheus.GaugeVec

	mu      sync.Mutex
	quorate *cosigned // guarded by mu; the newest head seen with Quorum cosignatures, or nil
}

// cosigned is a head and its verified cosignature lines, by witness name.
type cosigned struct {
	head  tlog.Head
	lines map[string][]byte
}

// A witness is the state of one configured witness.
type witness struct {
	name     string
	url      string // of add-checkpoint
	shown    string // url without user info, for logs and Status
	verifier note.Verifier
	kick     chan struct{} // buffered 1: a newer head may be there to submit

	mu       sync.Mutex
	size     int64     // guarded by mu; the size the witness holds, as far as known (0 at first)
	cosigned int64     // guarded by mu; the newest size it cosigned for this process
	at       time.Time // guarded by mu; when it last cosigned
	err      error     // guarded by mu; the last submission's failure, nil after a success
}

// A WitnessStatus is the state of one witness, for /readyz.
type WitnessStatus struct {
	Name     string    // the witness key's name
	URL      string    // its submission prefix, without user info
	Size     int64     // the newest tree size it cosigned for this process, 0 for none yet
	Cosigned time.Time // when it did
	Err      error     // the last submission's failure, nil if it succeeded
}

// New returns a Cosigner for cfg. It checks every witness key and URL.
func New(cfg Config) (*Cosigner, error) {
	if cfg.Log == nil {
		return nil, errors.New("new cosigner: a log is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("new cosigner: a cosignature store is required")
	}
	if err := Check(cfg.Witnesses, cfg.Quorum); err != nil {
		return nil, fmt.Errorf("new cosigner: %w", err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("new cosigner: timeout %v, want a positive duration (0 for the default)", cfg.Timeout)
	}
	c := &Cosigner{
		log:     cfg.Log,
		store:   cfg.Store,
		quorum:  cfg.Quorum,
		logger:  cfg.Logger,
		timeout: cfg.Timeout,
		now:     cfg.Now,
		notify:  make(chan struct{}, 1),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{}
	}
	c.client = guard.NewClient(hc)
	for _, w := range cfg.Witnesses {
		v, u, _ := w.check()
		c.witnesses = append(c.witnesses, &witness{
			name:     v.Name(),
			url:      strings.TrimSuffix(w.URL, "/") + "/add-checkpoint",
			shown:    guard.Redacted(u),
			verifier: v,
			kick:     make(chan struct{}, 1),
		})
	}
	c.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sumdb_witness_submissions_total",
		Help: "Submissions of signed heads to witnesses, by witness key name and result: ok, error (unreachable, slow, 5xx), refused (4xx), fork (the witness found the head inconsistent with one it cosigned), invalid (an answer without a valid cosignature).",
	}, []string{"witness", "result"})
	c.sizes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sumdb_witness_cosigned_size",
		Help: "The tree size of the newest head each witness cosigned, by witness key name.",
	}, []string{"witness"})
	if cfg.Registerer != nil {
		for _, col := range []prometheus.Collector{c.results, c.sizes} {
			if err := cfg.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("new cosigner: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Check returns an error unless ws are witnesses a Cosigner can submit
// to with quorum: at least one, each with a valid key of a name of its own
// and an http or https URL, and a quorum from 0 to len(ws).
func Check(ws []Witness, quorum int) error {
	if len(ws) == 0 {
		return errors.New("at least one witness is required")
	}
	if quorum < 0 || quorum > len(ws) {
		return fmt.Errorf("quorum %d, want 0 to the %d witnesses", quorum, len(ws))
	}
	names := make(map[string]bool)
	for _, w := range ws {
		v, _, err := w.check()
		if err != nil {
			return err
		}
		if names[v.Name()] {
			return fmt.Errorf("two witnesses have keys named %s: each needs a name of its own", v.Name())
		}
		names[v.Name()] = true
	}
	return nil
}

// check returns the verifier of w's key and its URL, or an error.
func (w Witness) check() (note.Verifier, *url.URL, error) {
	v, err := fnote.NewVerifierForCosignatureV1(w.VKey)
	if err != nil {
		return nil, nil, fmt.Errorf("witness key %q: %w: want <name>+<hash>+<base64 key> of an Ed25519 or cosignature/v1 key", w.VKey, err)
	}
	// Ed25519 (0x01) or cosignature/v1 (0x04) only: the cosignature of
	// another algorithm (ML-DSA's are kilobytes) could never be stored.
	if alg, ok := keyAlgorithm(w.VKey); !ok || alg != 0x01 && alg != 0x04 {
		return nil, nil, fmt.Errorf("witness %s: key %q is not an Ed25519 or cosignature/v1 key", v.Name(), w.VKey)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, nil, fmt.Errorf("witness %s: URL %q: want http:// or https://host[/path], the prefix of its add-checkpoint endpoint", v.Name(), guard.RedactURL(w.URL))
	}
	return v, u, nil
}

// Notify tells c that the log committed a new head. It never blocks.
func (c *Cosigner) Notify() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Run submits the log's new heads to the witnesses until ctx ends. Each
// witness has a goroutine of its own, which submits the newest head when
// it is free: a witness busy with one head gets only the newest of those
// committed meanwhile, so a busy log does not flood witnesses.
func (c *Cosigner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range c.witnesses {
		wg.Go(func() { c.serve(ctx, w) })
	}
	defer wg.Wait()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last int64
	for {
		if h := c.log.Head(); h.Size > last {
			last = h.Size
			for _, w := range c.witnesses {
				select {
				case w.kick <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.notify:
		case <-tick.C:
		}
	}
}

// serve submits heads to w until ctx ends: the newest head when kicked,
// and again after a failure, waiting longer after each.
func (c *Cosigner) serve(ctx context.Context, w *witness) {
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	wait := minRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-retry.C:
		}
		h := c.log.Head()
		w.mu.Lock()
		done := h.Size == 0 || h.Size <= w.cosigned
		w.mu.Unlock()
		if done {
			continue
		}
		if err := c.submit(ctx, w, h); err != nil {
			if ctx.Err() != nil {
				return
			}
			retry.Reset(wait)
			wait = min(2*wait, maxRetry)
			continue
		}
		retry.Stop()
		wait = minRetry
	}
}

// A failure is a failed submission, with its result label.
type failure struct {
	result string // of sumdb_witness_submissions_total
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// submit submits h to w, stores the cosignature and records the outcome.
func (c *Cosigner) submit(ctx context.Context, w *witness, h tlog.Head) error {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	line, err := c.cosign(sctx, w, h)
	if err == nil {
		if perr := c.store.PutCosignature(sctx, h.Size, w.name, line); perr != nil && !errors.Is(perr, tlog.ErrConflict) {
			// ErrConflict: another replica stored the witness's
			// cosignature of another moment first, which serves as well.
			err = &failure{"error", fmt.Errorf("store the cosignature: %w", perr)}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	result := "ok"
	var f *failure
	if errors.As(err, &f) {
		result = f.result
	} else if err != nil {
		result = "error"
	}
	c.results.WithLabelValues(w.name, result).Inc()
	w.mu.Lock()
	w.err = err
	if err == nil {
		w.size, w.cosigned, w.at = h.Size, h.Size, c.now()
	}
	w.mu.Unlock()
	if err != nil {
		level := slog.LevelWarn
		msg := "witness submission failed; the log goes on, and the witness gets the newest head when it is back"
		if result == "fork" {
			level = slog.LevelError
			msg = "FORK: a witness claims the head is inconsistent with a head of this log's key it cosigned before: another server may be signing a different tree with this key, or the witness is broken; compare with the other witnesses"
		}
		c.logger.Log(ctx, level, msg, "witness", w.name, "url", w.shown, "size", h.Size, "err", err)
		return err
	}
	c.sizes.WithLabelValues(w.name).Set(float64(h.Size))
	c.noteQuorum(ctx, h)
	return nil
}

// cosign posts h to w from the size w holds, once more from the size a 409
// answer names, and returns w's verified cosignature line.
func (c *Cosigner) cosign(ctx context.Context, w *witness, h tlog.Head) ([]byte, error) {
	w.mu.Lock()
	old := w.size
	w.mu.Unlock()
	if old > h.Size {
		// The witness holds a newer head, from another replica: start over
		// from 0, and the 409 names its size again.
		old = 0
	}
	for attempt := 0; ; attempt++ {
		body, conflict, err := c.post(ctx, w, h, old)
		if err != nil {
			return nil, err
		}
		if conflict < 0 {
			return c.verify(w, h, body)
		}
		w.mu.Lock()
		w.size = conflict
		w.mu.Unlock()
		switch {
		case conflict > h.Size:
			return nil, &failure{"refused", fmt.Errorf("%s holds tree size %d, newer than the head of size %d: a newer head of the log reaches it later", w.shown, conflict, h.Size)}
		case conflict == old && old == 0:
			// There is one tree of size 0: no fork, a witness that
			// answers nonsense.
			return nil, &failure{"invalid", fmt.Errorf("%s answered 409 naming tree size 0 to a submission from tree size 0", w.shown)}
		case conflict == old:
			// It holds the size it was sent as old, so the old tree
			// differs: c2sp.org/tlog-witness answers 409 to a head of
			// the size it holds with another root hash.
			return nil, &failure{"fork", fmt.Errorf("%s answered 409 to a submission from the tree size %d it holds: it holds a head of that size with another root hash", w.shown, conflict)}
		case attempt > 0:
			return nil, &failure{"error", fmt.Errorf("%s moved from tree size %d to %d during the submission; it gets the next head", w.shown, old, conflict)}
		}
		old = conflict
	}
}

// post submits h to w with a proof from old. It returns the body of a 200
// answer, or the size a 409 answer names (-1 for none).
func (c *Cosigner) post(ctx context.Context, w *witness, h tlog.Head, old int64) ([]byte, int64, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", old)
	if old > 0 && old < h.Size {
		proof, err := xtlog.ProveTree(h.Size, old, xtlog.TileHashReader(xtlog.Tree{N: h.Size, Hash: h.Hash}, c.log.TileReader(ctx)))
		if err != nil {
			return nil, -1, &failure{"error", fmt.Errorf("prove tree size %d consistent with %d: %w", h.Size, old, err)}
		}
		for _, p := range proof {
			body.WriteString(base64.StdEncoding.EncodeToString(p[:]))
			body.WriteString("\n")
		}
	}
	body.WriteString("\n")
	body.Write(h.Note)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, &body)
	if err != nil {
		return nil, -1, &failure{"error", fmt.Errorf("post to %s: %w", w.shown, err)}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, -1, &failure{"error", fmt.Errorf("post to %s: %w", w.shown, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, -1, &failure{"error", fmt.Errorf("read the answer of %s: %w", w.shown, err)}
	}
	if len(b) > maxBody {
		return nil, -1, &failure{"invalid", fmt.Errorf("the answer of %s is over %d bytes, want a few cosignature lines", w.shown, maxBody)}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return b, -1, nil
	case resp.StatusCode == http.StatusConflict:
		// c2sp.org/tlog-witness: the witness holds another size, which
		// the body names.
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/x.tlog.size") {
			return nil, -1, &failure{"refused", fmt.Errorf("%s answered 409 with Content-Type %q, want text/x.tlog.size: %s", w.shown, ct, shown(b))}
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(string(b), "\n"), 10, 64)
		if err != nil || n < 0 {
			return nil, -1, &failure{"invalid", fmt.Errorf("%s answered 409 with %s, want a tree size", w.shown, shown(b))}
		}
		return nil, n, nil
	case resp.StatusCode == http.StatusUnprocessableEntity:
		// The proof did not verify: the tree the witness holds at old is
		// not this log's.
		return nil, -1, &failure{"fork", fmt.Errorf("%s refused the consistency proof from tree size %d (422): %s", w.shown, old, shown(b))}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, -1, &failure{"refused", fmt.Errorf("%s refused the head (%s): %s; check that it knows the log's origin and key", w.shown, resp.Status, shown(b))}
	default:
		return nil, -1, &failure{"error", fmt.Errorf("%s answered %s: %s", w.shown, resp.Status, shown(b))}
	}
}

// verify returns the line of body, a witness's answer, that is a valid
// cosignature of h by w's key. Lines of other keys are ignored.
func (c *Cosigner) verify(w *witness, h tlog.Head, body []byte) ([]byte, error) {
	text := noteText(h.Note)
	for line := range bytes.Lines(body) {
		if v := validLine(text, line, w.verifier); v != nil {
			return v, nil
		}
	}
	return nil, &failure{"invalid", fmt.Errorf("%s answered 200 without a valid cosignature of its key %s on the head of size %d: %s", w.shown, w.name, h.Size, shown(body))}
}

// validLine returns line, ending in a newline, if it is a signature line of
// v's key that verifies on text, the signed text of a note; else nil.
func validLine(text, line []byte, v note.Verifier) []byte {
	if !bytes.HasSuffix(line, []byte("\n")) {
		line = append(bytes.Clone(line), '\n')
	}
	if !bytes.HasPrefix(line, []byte("— "+v.Name()+" ")) || bytes.Count(line, []byte("\n")) != 1 {
		return nil
	}
	msg := append(append(bytes.Clone(text), '\n'), line...)
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil || len(n.Sigs) != 1 {
		return nil
	}
	return line
}

// noteText returns the signed text of a note, up to the blank line before
// its signatures.
func noteText(msg []byte) []byte {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return msg
	}
	return msg[:i+1]
}

// shown returns the start of a witness's answer b, for an error message.
func shown(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strconv.Quote(s)
}

// noteQuorum records h as the newest head with a quorum of cosignatures if
// it has them in the store.
func (c *Cosigner) noteQuorum(ctx context.Context, h tlog.Head) {
	if c.quorum == 0 {
		return
	}
	lines, err := c.cosignatures(ctx, h)
	if err != nil || len(lines) < c.quorum {
		return
	}
	c.setQuorate(ctx, h, lines)
}

// setQuorate records h, with lines, as the newest head that reached the
// quorum if it is newer than the one recorded, in memory and in the store.
func (c *Cosigner) setQuorate(ctx context.Context, h tlog.Head, lines map[string][]byte) {
	c.mu.Lock()
	newer := c.quorate == nil || h.Size > c.quorate.head.Size
	if newer {
		c.quorate = &cosigned{head: h, lines: lines}
	}
	c.mu.Unlock()
	if !newer {
		return
	}
	for range 5 {
		old, err := c.store.ReadState(ctx, quorumState)
		if err != nil {
			c.logger.WarnContext(ctx, "read the head that reached the quorum", "err", err)
			return
		}
		if old != nil {
			if t, err := c.headOf(old); err == nil && t.Size >= h.Size {
				return
			}
		}
		err = c.store.SwapState(ctx, quorumState, old, h.Note)
		if err == nil || !errors.Is(err, tlog.ErrConflict) {
			if err != nil {
				c.logger.WarnContext(ctx, "store the head that reached the quorum", "size", h.Size, "err", err)
			}
			return
		}
	}
}

// headOf returns the head of the signed note msg if the log's key signed
// it.
func (c *Cosigner) headOf(msg []byte) (tlog.Head, error) {
	n, err := note.Open(msg, note.VerifierList(c.log.Verifier()))
	if err != nil {
		return tlog.Head{}, err
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return tlog.Head{}, err
	}
	return tlog.Head{Size: tree.N, Hash: tree.Hash, Note: msg}, nil
}

// storedQuorate returns the head that reached the quorum as the store keeps
// it (another replica's, or this one's before a restart), with its stored
// cosignatures, if they still make the quorum.
func (c *Cosigner) storedQuorate(ctx context.Context) *cosigned {
	msg, err := c.store.ReadState(ctx, quorumState)
	if err != nil || msg == nil {
		return nil
	}
	h, err := c.headOf(msg)
	if err != nil || h.Size > c.log.Head().Size {
		return nil
	}
	lines, err := c.cosignatures(ctx, h)
	if err != nil || len(lines) < c.quorum {
		return nil
	}
	return &cosigned{head: h, lines: lines}
}

// cosignatures returns the stored cosignatures of h that verify with the
// keys of c's witnesses, by witness name. Lines of other keys, which
// replicas configured otherwise may have stored, are left out.
func (c *Cosigner) cosignatures(ctx context.Context, h tlog.Head) (map[string][]byte, error) {
	stored, err := c.store.ReadCosignatures(ctx, h.Size)
	if err != nil {
		return nil, err
	}
	text := noteText(h.Note)
	lines := make(map[string][]byte)
	for _, w := range c.witnesses {
		if line := stored[w.name]; line != nil && validLine(text, line, w.verifier) != nil {
			lines[w.name] = line
		}
	}
	return lines, nil
}

// Latest returns the note that /latest serves: a signed head of the log
// with the stored cosignatures of the configured witnesses appended as
// signature lines, sorted by witness name, at most as many as keep the
// note's signatures within the 100 that note.Open accepts.
//
// With Quorum 0, the head is the log's newest. With Quorum N, it is the
// newest head with at least N cosignatures (the newest head this process,
// or another replica sharing the store, saw reach them, kept in the store
// so that a restart keeps serving it), so that a client whose policy needs N cosignatures can
// use /latest; until a head has reached the quorum, it is the newest head,
// with the cosignatures it has. Lookups and tiles still answer from the
// newest head at once: a client that needs cosignatures checks them on
// /latest, and a client that does not is not held back by witnesses.
//
// A store that cannot be read leaves the cosignatures of the newest head
// out (the error is logged): the head itself is still served, as without
// witnesses. Latest returns nil for an empty log.
func (c *Cosigner) Latest(ctx context.Context) ([]byte, error) {
	h := c.log.Head()
	if h.Size == 0 {
		return nil, nil
	}
	lines, err := c.cosignatures(ctx, h)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.logger.WarnContext(ctx, "read the cosignatures of the newest head; serving it without them", "size", h.Size, "err", err)
	}
	if c.quorum > 0 && len(lines) < c.quorum {
		c.mu.Lock()
		q := c.quorate
		c.mu.Unlock()
		// Another replica, or this one before a restart, may have seen a
		// newer head reach the quorum.
		if sq := c.storedQuorate(ctx); sq != nil && (q == nil || sq.head.Size > q.head.Size) {
			c.mu.Lock()
			if c.quorate == nil || sq.head.Size > c.quorate.head.Size {
				c.quorate = sq
			}
			q = c.quorate
			c.mu.Unlock()
		}
		if q != nil && q.head.Size <= h.Size {
			return withLines(q.head.Note, q.lines), nil
		}
	} else if c.quorum > 0 {
		c.setQuorate(ctx, h, lines)
	}
	return withLines(h.Note, lines), nil
}

// withLines returns the note msg with lines appended, in the order of
// their witness names, up to maxSignatures signatures in all.
func withLines(msg []byte, lines map[string][]byte) []byte {
	// After the text, a blank line and one line per signature.
	room := maxSignatures - (bytes.Count(msg[len(noteText(msg)):], []byte("\n")) - 1)
	out := bytes.Clone(msg)
	for _, name := range slices.Sorted(maps.Keys(lines)) {
		if room <= 0 {
			break
		}
		out = append(out, lines[name]...)
		room--
	}
	return out
}

// Status returns the state of each witness, in the configured order.
func (c *Cosigner) Status() []WitnessStatus {
	list := make([]WitnessStatus, len(c.witnesses))
	for i, w := range c.witnesses {
		w.mu.Lock()
		list[i] = WitnessStatus{Name: w.name, URL: w.shown, Size: w.cosigned, Cosigned: w.at, Err: w.err}
		w.mu.Unlock()
	}
	return list
}

// keyAlgorithm returns the algorithm byte of the note verifier key vkey,
// <name>+<hash>+<base64 of the algorithm byte and the key>.
func keyAlgorithm(vkey string) (byte, bool) {
	// A name has no '+', a hash is hex; the key's base64 may hold '+'.
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return 0, false
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) == 0 {
		return 0, false
	}
	return key[0], true
}
