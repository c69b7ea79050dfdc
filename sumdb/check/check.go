// Package check verifies go.sum and go.work.sum files against a checksum
// database: every line's hash must be the one the log holds for that module
// version, in a record proved to be in a signed tree head, and every tree
// head seen must be consistent with the newest one seen before, in this run
// or (through a state file) in an earlier one. It is the library behind
// "sumdb check"; it reads no flags and no environment.
//
// The verification is x/mod's sumdb.Client, the go command's own: Run gives
// it a Remote to read from, the log's key, and the state file to keep the
// newest verified head in.
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/internal/modver"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

// Config configures Run.
type Config struct {
	// Remote is the checksum database. Required.
	Remote *client.Remote
	// State is the file that keeps the newest tree head verified, a signed
	// note, across runs: every head the log serves must be consistent with
	// it, and it is replaced by newer heads as they are verified. It is
	// created if it does not exist. "" keeps the head in memory only, so
	// that heads are checked against each other within one run.
	State string
	// NoSumDB and Private are the go command's GONOSUMDB and GOPRIVATE:
	// comma-separated module path prefix patterns (module.MatchPrefixPatterns)
	// of private modules, whose lines are skipped and never sent to the log.
	// As for the go command, Private applies only when NoSumDB is empty.
	NoSumDB, Private string
	// Concurrency bounds the module versions looked up at once. Default 8.
	Concurrency int
	// Progress, if not nil, receives a progress line, rewritten in place
	// with carriage returns, while a run lasts more than about a second:
	// give a terminal.
	Progress io.Writer
	// Logger receives debug messages of the client. Default: discard.
	Logger *slog.Logger
	// Witnesses, if not nil, is the witness policy: the log's newest head
	// (/latest) must be cosigned by a quorum of these witnesses, and it is
	// the head lookups are proved against, so that no line is verified by a
	// record outside a tree the witnesses cosigned (see the Report's
	// Witnesses).
	Witnesses *witnessed.Policy
}

// A File is a go.sum or go.work.sum file to check.
type File struct {
	Name string // as it is to be reported
	Data []byte
}

// defaultConcurrency is the default of Config.Concurrency.
const defaultConcurrency = 8

// A task is the lookup of one module version and the lines it decides.
type task struct {
	path, version string
	zip, mod      []int // indexes of the zip and go.mod lines in the results
}

// Run checks every line of files against the log and returns the report.
// Lines of private modules are skipped before anything is sent.
//
// The error is non-nil only if nothing could be checked: an invalid
// Config, or a state file that cannot be read or belongs to another log.
// Everything that goes wrong with a line, including a failed request, is a
// Result of the report; if ctx ends, the lines not yet checked are
// Unchecked. A state file that cannot be written, or read again, once the
// run began is the report's StateError: a local failure, which never
// counts against the log. Neither do tiles of the state file that do not
// prove its own signed head: they are not used, and the report's
// StateWarning says so.
func Run(ctx context.Context, cfg Config, files []File) (*Report, error) {
	if cfg.Remote == nil {
		return nil, errors.New("check: no checksum database given")
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("check: concurrency %d, want at least 1", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	private, privateVar := cfg.NoSumDB, "GONOSUMDB"
	if private == "" {
		private, privateVar = cfg.Private, "GOPRIVATE"
	}

	ops, startHead, err := newOps(ctx, cfg.Remote, cfg.State, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	client := xsumdb.NewClient(ops)
	if private != "" {
		// Run never looks up a private module; the client refuses to as well.
		client.SetGONOSUMDB(private)
	}

	rep := &Report{Database: ops.name, URL: cfg.Remote.Base, StartHead: startHead}
	if cfg.Witnesses != nil {
		rep.Witnesses = ops.witness(cfg.Witnesses)
	}
	var (
		results []Result
		tasks   []*task
		byMod   = make(map[module.Version]*task)
		// The lines of each module version and kind of hash, by Module().
		same = make(map[string][]int)
	)
	for _, f := range files {
		rep.Files = append(rep.Files, f.Name)
		lines, malformed := ParseGoSum(f.Name, f.Data)
		results = append(results, malformed...)
		for _, l := range lines {
			i := len(results)
			results = append(results, Result{Entry: l})
			res := &results[i]
			switch {
			case l.Hash == emptyGoModHash:
				res.Kind, res.Message = Skipped, "hash of an empty go.mod, which old go commands wrote by mistake; the go command ignores this line"
				continue
			case module.MatchPrefixPatterns(private, l.Path):
				res.Kind, res.Message = Skipped, fmt.Sprintf("private module (%s=%s)", privateVar, private)
				same[l.Module()] = append(same[l.Module()], i)
				continue
			}
			if err := modver.Check(l.Path, l.Version); err != nil {
				res.Kind, res.Message = Malformed, strings.TrimPrefix(err.Error(), modver.ErrInvalid.Error()+": ")
				continue
			}
			same[l.Module()] = append(same[l.Module()], i)
			mv := module.Version{Path: l.Path, Version: l.Version}
			t := byMod[mv]
			if t == nil {
				t = &task{path: l.Path, version: l.Version}
				byMod[mv] = t
				tasks = append(tasks, t)
			}
			if l.GoMod {
				t.mod = append(t.mod, i)
			} else {
				t.zip = append(t.zip, i)
			}
		}
	}

	if w := rep.Witnesses; w != nil && w.Error != "" {
		// No head the lines could be trusted against.
		for _, t := range tasks {
			t.fail(results, Unchecked, "not checked: no tree head of the log cosigned by a quorum of the witnesses")
		}
		tasks = nil
	}
	var done atomic.Int64
	stopProgress := startProgress(cfg.Progress, &done, len(tasks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	for _, t := range tasks {
		g.Go(func() error {
			defer done.Add(1)
			if gctx.Err() != nil {
				t.fail(results, Unchecked, "not checked: "+context.Cause(gctx).Error())
				return nil
			}
			t.check(client, ops, results)
			return nil
		})
	}
	g.Wait()
	stopProgress()
	ops.rewriteState()
	markConflicts(results, same)

	sortResults(results, rep.Files)
	rep.Results = results
	rep.Head = ops.head()
	rep.StateError = ops.stateFailure()
	rep.StateWarning = ops.stateWarning()
	ops.mu.Lock()
	rep.SecurityErrors = append([]string(nil), ops.security...)
	ops.mu.Unlock()
	return rep, nil
}

// markConflicts gives the kind Conflict to the lines of a module version
// and kind of hash (same, by Module()) that another line gives another
// hash, where the log could not tell which line is right: it does not have
// the module version, or was not asked about a private module. The go
// command accepts one hash per module version and kind, so one of the lines
// is wrong, whatever the log holds; such a file most often comes from a
// merge that kept both sides. Where the log answered, its answer decides:
// the line it holds is verified and the other one is a mismatch.
func markConflicts(results []Result, same map[string][]int) {
	for _, idx := range same {
		for _, i := range idx {
			res := &results[i]
			var why string
			switch res.Kind {
			case Unknown:
				why = "the log, which does not have this module version, cannot tell which is right"
			case Skipped:
				why = "the log is not asked about a " + res.Message
			default:
				continue
			}
			for _, j := range idx {
				if other := results[j]; other.Hash != res.Hash {
					res.Kind, res.Message = Conflict, fmt.Sprintf("%s:%d has %s for it too, and %s; the go command accepts one hash for it: keep the right line, or remove both and run go mod tidy", other.File, other.Line, other.Hash, why)
					break
				}
			}
		}
	}
}

// check looks up t's module version and decides its lines.
func (t *task) check(client *xsumdb.Client, ops *clientOps, results []Result) {
	escPath, err1 := module.EscapePath(t.path)
	escVersion, err2 := module.EscapeVersion(t.version)
	if err := errors.Join(err1, err2); err != nil {
		t.fail(results, Malformed, err.Error()) // modver.Check let it through: cannot happen
		return
	}
	remotePath := "/lookup/" + escPath + "@" + escVersion
	decide := func(idx []int, version string) bool {
		if len(idx) == 0 {
			return true
		}
		lines, err := client.Lookup(t.path, version)
		if err != nil {
			kind, msg := ops.failure(err, t.path+"@"+version, remotePath)
			for _, i := range idx {
				results[i].Kind, results[i].Message = kind, msg
			}
			return false
		}
		for _, i := range idx {
			decideLine(&results[i], lines)
		}
		return true
	}
	if decide(t.zip, t.version) {
		decide(t.mod, t.version+"/go.mod")
	} else {
		// Both lines come from one record: the go.mod line fails alike.
		for _, i := range t.mod {
			results[i].Kind, results[i].Message = results[t.zip[0]].Kind, results[t.zip[0]].Message
		}
	}
}

// fail gives every line of t the same outcome.
func (t *task) fail(results []Result, kind Kind, msg string) {
	for _, i := range append(t.zip[:len(t.zip):len(t.zip)], t.mod...) {
		results[i].Kind, results[i].Message = kind, msg
	}
}

// decideLine compares a go.sum line with the lines the log holds for its
// module version, as the go command does (cmd/go/internal/modfetch,
// checkSumDB): the first line of the record for the same module version
// decides. A record with no such line is a mismatch too, where the go
// command lets it pass.
func decideLine(res *Result, logLines []string) {
	want := res.text()
	prefix := res.Module() + " "
	for _, l := range logLines {
		if l == want {
			res.Kind = OK
			res.LogHash = res.Hash
			return
		}
		if h, ok := strings.CutPrefix(l, prefix); ok {
			res.Kind, res.LogHash = Mismatch, h
			res.Message = fmt.Sprintf("go.sum has %s, log has %s", res.Hash, h)
			return
		}
	}
	res.Kind, res.Message = Mismatch, fmt.Sprintf("go.sum has %s, the log's record has no such line", res.Hash)
}

// startProgress writes "checked N/M module versions" to w every so often
// while the run lasts, beginning after a second so that short runs print
// nothing, and returns the function that stops it and clears the line.
func startProgress(w io.Writer, done *atomic.Int64, total int) (stop func()) {
	if w == nil || total == 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		const first, every = time.Second, 250 * time.Millisecond
		timer := time.NewTimer(first)
		defer timer.Stop()
		width := 0
		for {
			select {
			case <-quit:
				if width > 0 {
					fmt.Fprintf(w, "\r%*s\r", width, "")
				}
				return
			case <-timer.C:
				line := fmt.Sprintf("sumdb check: %d/%d module versions checked", done.Load(), total)
				width = max(width, len(line))
				fmt.Fprintf(w, "\r%-*s", width, line)
				timer.Reset(every)
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
