// Package audit clones a checksum database's log into a local store and
// verifies all of it: every signed tree head, the consistency of every head
// with every head seen before, every hash tile recomputed from the records,
// every record's form, and that no module version is logged twice.
//
// # What is verified
//
// Run fetches the log's signed head (/latest) and checks its signature with
// the log's key, and its size: a head of more records than any log holds
// (client.MaxTreeSize) is refused before any proof is computed on it. A head
// that is larger than the local clone is proven consistent with the newest
// head verified before (through a tree proof built from the server's hash
// tiles, authenticated by the new head), then the
// clone is extended up to it: data tiles and the hash tiles of level 0 are
// fetched in parallel; each record is hashed and checked to be two go.sum
// lines of one module version with h1 hashes; the leaf hashes are appended to
// a tlog.Edge (the writer's own code), and every hash tile the edge completes,
// at every level, must equal the tile the server serves, byte for byte,
// including the partial tiles at the head. The root of the recomputed tree
// must be the signed root. A head that is not larger than the clone must
// have the root the clone has at its size (xtlog.TreeHash over the local
// tiles): a different root at the size of an earlier verified head, or below
// it, is a fork, reported with both signed notes; a smaller consistent head
// is only stale (a warning). A head of size 0 must have the root of the empty
// tree.
//
// When a data tile's record disagrees with the level-0 hash tile, the
// auditor asks which one the signed head vouches for (x/mod's TileHashReader
// authenticates the served tiles against the signed root): either the data
// tile serves a record that is not in the signed tree, or the hash tile is not
// the signed tree's.
//
// # The state directory
//
// Config.Dir holds everything the auditor remembers between runs:
//
//	log.db     the clone: a store.SQLite with every record, every hash tile
//	           and a head, in the server's own schema; its unique index on
//	           path@version is what finds a module version logged twice
//	           (a new clone is written without it, in the store's bulk-load
//	           mode, and the index is built when the clone reaches the
//	           log's head: a module version logged twice in records far
//	           apart is found then)
//	log.vkey   the verifier key of the audited log; a directory audits one log
//	audit.key  the auditor's own signer key (mode 0600), made on first use
//	latest     the newest signed head of the log that was verified, as the
//	           go command keeps it in $GOPATH/pkg/sumdb/<name>/latest
//	cosigned   with a witness policy, which witnesses cosigned each signed
//	           head fetched: "<size> <root> <witness>,..." ("-" for none),
//	           a line per head or change of its cosigners
//
// The store wants a signed head with every append, but the clone is written
// in batches of 64 data tiles (16,384 records) while the log signs heads only
// where it pleases. So a batch that ends exactly at a signed head of the log
// carries that head's note; any other batch carries a checkpoint: the tree
// head of the records verified so far, signed with the auditor's own key. A
// checkpoint only says "these records were verified against the served hash
// tiles"; the records behind it are vouched for by the log once a later
// clone reaches a signed head, whose root covers them. Until then, every run
// proves the checkpoint against the newest signed head before it clones
// anything (a clone cut by Config.Limit, or a run cut short, may have stored
// it below the newest verified head): its root must be the one the server's
// hash tiles, authenticated by that head, give at its size, and a root that
// is not names the first record of the clone that is not the signed tree's.
// A clone is extended in passes of at most 16M records, each verified so
// against the signed head, so that a head of any size costs the memory of
// one pass. The store's head
// history thus interleaves both kinds; the signed heads of the log are told
// apart by their signature. Consistency is transitive, so "latest" is enough
// to check a new head against all heads seen before: each head was accepted
// only if it was consistent with the one before, and the clone reproduces the
// root of each head it reached.
//
// # Violations and resume
//
// The first violation stops the clone: the records before it stay in the
// store, and the violation is reported (and found again by the next run,
// which resumes at the same record). A record that is not well formed, or a
// module version already in the clone's index, is never written to the
// store. A module version logged twice within a new clone is written, and
// reported when the index is built; the clone then stays without the index,
// and every later run reports it again.
// Records are written only after they were checked against the served hash
// tiles, so an interrupted run resumes where it stopped.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

// A Fetcher gets the go.sum lines of a module version from a module proxy,
// as fetch.Upstream does: exactly two lines, the zip hash and the go.mod hash.
// Its errors wrap fetch.ErrNotFound when the version does not exist and
// fetch.ErrUpstream when the proxy failed.
type Fetcher interface {
	Fetch(ctx context.Context, path, version string) ([]byte, error)
}

// Config configures Run.
type Config struct {
	// Remote is the checksum database to audit. Required.
	Remote *client.Remote
	// Dir is the state directory (see the package doc), created if missing.
	// Required.
	Dir string
	// Follow makes Run keep polling the log's signed head every Interval,
	// and verify every new head, until ctx ends or a violation is found.
	Follow bool
	// Interval is the polling interval of Follow. Default 1m.
	Interval time.Duration
	// Rehash is the number of records, picked at random from the clone, to
	// download again from Upstream and compare with the log. 0 for none.
	Rehash int
	// Upstream is the module proxy of Rehash. Required if Rehash > 0.
	Upstream Fetcher
	// Limit stops the clone after the first Limit records of the log
	// (rounded up to a whole data tile of 256), 0 for the whole log. The
	// prefix is verified against the signed head all the same: its root is
	// compared with the one the server's hash tiles, authenticated by the
	// signed head, give for that size.
	Limit int64
	// Concurrency is the number of tile requests in flight. Default 8.
	Concurrency int
	// Progress receives a progress line while cloning: records done and
	// to do, records/s, estimated time left. On a terminal (an *os.File
	// that is a character device) the line is rewritten in place a few
	// times a second; otherwise a line is written every ProgressInterval.
	// Nil for none.
	Progress io.Writer
	// ProgressInterval is the time between two progress lines that are not
	// on a terminal. Default 10s.
	ProgressInterval time.Duration
	// Logger receives a line per signed head verified and per retried
	// request. Default: discard.
	Logger *slog.Logger
	// Witnesses, if not nil, is the witness policy that every signed head
	// fetched must meet: its witnesses' cosignatures on each head are
	// recorded (Report.Cosigned, and the cosigned file of Dir), and a head
	// without the quorum sets Report.Unwitnessed. Such a head is verified
	// all the same: it is the log's, whoever cosigned it.
	Witnesses *witnessed.Policy
}

// A Kind names a kind of violation.
type Kind string

// The kinds of violations.
const (
	// KindSignature: a head is not signed by the log's key, or its note
	// is not a tree head.
	KindSignature Kind = "signature"
	// KindSize: a signed head of more records than any log holds (more
	// than client.MaxTreeSize), refused before any proof is computed on it.
	KindSize Kind = "size"
	// KindFork: two signed heads that cannot both be true (the same size
	// with different roots, or a head inconsistent with an earlier one),
	// or a head of size 0 whose root is not the empty tree's.
	KindFork Kind = "fork"
	// KindRoot: the records and tiles the server serves do not give the
	// root of its signed head.
	KindRoot Kind = "root"
	// KindRecord: a data tile serves a record whose hash is not the signed
	// tree's leaf, or a record that differs from the one served before.
	KindRecord Kind = "record"
	// KindDataTile: a data tile that cannot be split into its records.
	KindDataTile Kind = "data-tile"
	// KindHashTile: a hash tile that differs from the one recomputed from
	// the records, or that does not verify against the signed head.
	KindHashTile Kind = "hash-tile"
	// KindMalformed: a logged record that is not two go.sum lines of one
	// valid module version with h1 hashes.
	KindMalformed Kind = "malformed"
	// KindDuplicate: a module version logged twice.
	KindDuplicate Kind = "duplicate"
	// KindRehash: a module version whose hashes, computed again from the
	// upstream, differ from the log's.
	KindRehash Kind = "rehash"
)

// A Violation is something a correct checksum database never does.
type Violation struct {
	Kind    Kind
	Message string
	// Records are the ids of the records involved, if any.
	Records []int64
	// Tile is the path of the tile involved, if any.
	Tile string
	// Heads are the signed notes involved, if any, older first.
	Heads [][]byte
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s", v.Kind, v.Message)
}

// A Head is a signed tree head of the log.
type Head struct {
	Size int64
	Hash xtlog.Hash
	Note []byte
}

// A Report says what Run verified and what it found.
type Report struct {
	// Name is the name of the log's key.
	Name string
	// Records is the number of records in the local clone, all verified.
	Records int64
	// NewRecords is the number of records this run added to the clone.
	NewRecords int64
	// Heads is the number of signed heads fetched and checked in this run.
	Heads int
	// Latest is the newest signed head of the log verified so far (in this
	// run or an earlier one); Size 0 if none.
	Latest Head
	// Rehashed is the number of records compared with the upstream.
	Rehashed int
	// Violations are the violations found, in the order found.
	Violations []Violation
	// Warnings are oddities that are no violation: a stale head, a module
	// the upstream no longer serves.
	Warnings []string
	// Cosigned lists, with Config.Witnesses, which witnesses cosigned the
	// signed heads fetched, one entry per head or change of its cosigners
	// (the newest 1000).
	Cosigned []Cosigned
	// Unwitnessed, if not empty, says why the last signed head fetched
	// lacks the cosignatures of a quorum of the witnesses: the audit
	// fails. With Follow, a later head that meets the policy clears it.
	Unwitnessed string
	// Elapsed is the duration of the run.
	Elapsed time.Duration
}

// OK reports whether the audit found no violation.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// WriteText writes the report for a person to read.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "audit of %s: %d records verified (%d new), %s checked", r.Name, r.Records, r.NewRecords, plural(r.Heads, "signed head"))
	if r.Rehashed > 0 {
		fmt.Fprintf(&b, ", %d records rehashed", r.Rehashed)
	}
	fmt.Fprintf(&b, ", in %v\n", r.Elapsed.Round(time.Millisecond))
	if r.Latest.Size > 0 {
		fmt.Fprintf(&b, "latest verified signed head: size %d, root %v\n", r.Latest.Size, r.Latest.Hash)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", s)
	}
	for _, c := range r.Cosigned {
		ws := strings.Join(c.Witnesses, ", ")
		if ws == "" {
			ws = "no witness"
		}
		fmt.Fprintf(&b, "signed head of size %d cosigned by %s", c.Size, ws)
		if len(c.Missing) > 0 {
			fmt.Fprintf(&b, "; missing %s", strings.Join(c.Missing, ", "))
		}
		b.WriteString("\n")
	}
	if r.Unwitnessed != "" {
		fmt.Fprintf(&b, "NOT WITNESSED: %s\n", r.Unwitnessed)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION %s: %s\n", v.Kind, v.Message)
		if len(v.Records) > 0 {
			ids := make([]string, len(v.Records))
			for i, id := range v.Records {
				ids[i] = fmt.Sprint(id)
			}
			fmt.Fprintf(&b, "\trecords: %s\n", strings.Join(ids, ", "))
		}
		if v.Tile != "" {
			fmt.Fprintf(&b, "\ttile: %s\n", v.Tile)
		}
		for _, h := range v.Heads {
			fmt.Fprintf(&b, "\tsigned head:\n")
			for _, line := range strings.SplitAfter(strings.TrimSuffix(string(h), "\n"), "\n") {
				fmt.Fprintf(&b, "\t\t%s", strings.TrimSuffix(line, "\n")+"\n")
			}
		}
	}
	if r.OK() {
		b.WriteString("no violations\n")
	} else {
		fmt.Fprintf(&b, "%s\n", plural(len(r.Violations), "violation"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural returns "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// Run audits cfg.Remote as the package doc describes and returns what it
// found. It returns an error when it could not complete the audit (the
// network, the server's errors, the state directory); the Report is then
// still non-nil and says what was verified before. Violations are not
// errors: they are in the Report.
//
// Unless cfg.Follow is set, Run verifies the current signed head and
// returns; with Follow, it returns when ctx ends or when it finds a
// violation. A failure to complete a poll while following is logged and the
// poll tried again at the next interval; when ctx ends, Run returns the
// error of the last poll that ended before, if it failed, and nil if it
// verified the signed head: a log that fails every poll (one that refuses
// the tiles of a consistency proof, say) is not reported as audited.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	a, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer a.close()
	rep := a.rep
	defer func() { rep.Elapsed = time.Since(start) }()

	err = a.poll(ctx)
	if err == nil && cfg.Rehash > 0 && rep.OK() {
		err = a.rehash(ctx, cfg.Rehash)
	}
	if !cfg.Follow || ctx.Err() != nil {
		return rep, err
	}
	if err != nil {
		a.logger.WarnContext(ctx, "audit: first poll", "err", err)
	}
	// failed is the error of the last poll that ended, nil if it
	// verified the signed head.
	failed := err
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for rep.OK() {
		select {
		case <-ctx.Done():
			return rep, lastPoll(failed)
		case <-t.C:
		}
		err := a.poll(ctx)
		if err != nil && ctx.Err() != nil {
			// Cut off: the poll before says how the log fared.
			return rep, lastPoll(failed)
		}
		if failed = err; err != nil {
			a.logger.WarnContext(ctx, "audit: poll the signed head", "err", err)
		}
	}
	return rep, nil
}

// lastPoll returns the error of Run following a log whose last poll failed
// with err, or nil.
func lastPoll(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("the last poll of the log failed: %w", err)
}

func (cfg *Config) check() error {
	if cfg.Remote == nil || cfg.Remote.Verifier == nil {
		return errors.New("audit: no checksum database to audit")
	}
	if cfg.Dir == "" {
		return errors.New("audit: no state directory: name one with --state")
	}
	if cfg.Interval < 0 || cfg.Rehash < 0 || cfg.Limit < 0 || cfg.Concurrency < 0 || cfg.ProgressInterval < 0 {
		return errors.New("audit: negative interval, rehash count, limit or concurrency")
	}
	if cfg.Rehash > 0 && cfg.Upstream == nil {
		return errors.New("audit: rehash needs an upstream module proxy")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// poll fetches the log's signed head and verifies it, and its witnesses'
// cosignatures with a witness policy.
func (a *auditor) poll(ctx context.Context) error {
	msg, err := a.remote.Get(ctx, "latest")
	if err != nil {
		return fmt.Errorf("fetch the signed head: %w", err)
	}
	found := a.violations()
	if err := a.verifyHead(ctx, msg); err != nil {
		return err
	}
	if a.cfg.Witnesses == nil || a.violations() > found {
		return nil
	}
	return a.checkCosigned(msg)
}

// openHead checks the signature of a head note from the server and parses it.
func (a *auditor) openHead(msg []byte) (signedHead, *Violation) {
	tree, err := client.OpenTreeHead(msg, note.VerifierList(a.remote.Verifier))
	switch {
	case errors.Is(err, client.ErrTreeTooLarge):
		return signedHead{}, &Violation{Kind: KindSize, Heads: [][]byte{msg}, Message: err.Error()}
	case errors.Is(err, client.ErrNotTreeHead):
		return signedHead{}, &Violation{Kind: KindSignature, Heads: [][]byte{msg},
			Message: fmt.Sprintf("the signed note is not a tree head: %v", err)}
	case err != nil:
		return signedHead{}, &Violation{Kind: KindSignature, Heads: [][]byte{msg},
			Message: fmt.Sprintf("the signed head is not signed by the log's key %s: %v", a.remote.Key, err)}
	}
	return signedHead{Tree: tree, Note: msg}, nil
}
