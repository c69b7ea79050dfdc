package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/tlog/export"
)

const exportUsage = `Usage: sumdb export --out FILE [flags]

Export writes the whole log of a store (every record in order and every
signed tree head of its history) to FILE, one portable file that
"sumdb import" rebuilds into another store, embedded or PostgreSQL, with the
same ids, tiles and signed heads. "--out -" writes to stdout.

The store is chosen as serve chooses it: --database-url, else the embedded
store in --data-dir. The log's verifier key, written into the file, comes
from the signer key file (--key-file, default <data-dir>/signer.key) or from
--vkey. Export checks every head against the records as it writes them, and
refuses to write a file of a damaged store. A log may be exported while a
server serves it: the file ends at the head the log had when export began.

The file also holds the cache of the checksum databases the server mirrors
(serve --mirror): for each, its newest verified head and the tiles and
records it holds up to that head, so that a server on an isolated network
answers for them after "sumdb import --mirror <vkey>". A server that only
mirrors has an empty log: its file holds the mirrors' caches alone, and
needs no key.

--data-dir, --database-url and --key-file can also be set as
SUMDB_DATA_DIR, SUMDB_DATABASE_URL and SUMDB_KEY_FILE.

Flags:
`

// storeEnvKeys are the settings of export and import that may also come
// from SUMDB_* variables, as for serve.
var storeEnvKeys = []string{"data-dir", "database-url", "key-file"}

// addStoreFlags adds the flags that choose a store and its key, as serve's do.
func addStoreFlags(fs *pflag.FlagSet) {
	fs.String("data-dir", defaultDataDir, "`directory` of the embedded store, of the default key file and of published-head")
	fs.String("database-url", "", "PostgreSQL `URL` (postgres://...) or keyword/value string; empty means the embedded store in the data directory")
	fs.String("key-file", "", "signer key `file` (default <data-dir>/"+defaultKeyFileName+")")
}

// A storeConfig chooses a store and its key, as serve's settings do: the
// settings export and import share. Viper decodes the settings into the
// fields tagged with their keys.
type storeConfig struct {
	DataDir     string `mapstructure:"data-dir"`
	DatabaseURL string `mapstructure:"database-url"`
	KeyFile     string `mapstructure:"key-file"` // never empty once checked
}

// newStoreSettings returns the settings of export or import: their flags,
// and serve's variables of the storeEnvKeys.
func newStoreSettings(cmd string, fs *pflag.FlagSet) (*settings, error) {
	return newSettings(cmd, fs, envPrefix, storeEnvKeys)
}

// check checks the store settings, and returns them as a ServeConfig, as
// serve's openStore takes them.
func (c *storeConfig) check(s *settings) (*ServeConfig, error) {
	if c.DataDir == "" {
		return nil, s.invalid("data-dir", "empty (name a directory)")
	}
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		return nil, s.invalid("database-url", "%v", err)
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, defaultKeyFileName)
	}
	return &ServeConfig{DataDir: c.DataDir, DatabaseURL: c.DatabaseURL, KeyFile: c.KeyFile}, nil
}

// An exportConfig is the configuration of "sumdb export".
type exportConfig struct {
	Out         string `mapstructure:"out"`
	VKey        string `mapstructure:"vkey"`
	storeConfig `mapstructure:",squash"`
}

// storeName names the store of cfg for messages, without a password.
func storeName(cfg *ServeConfig) string {
	if cfg.DatabaseURL != "" {
		if strings.Contains(cfg.DatabaseURL, "://") {
			return "PostgreSQL database " + guard.RedactURL(cfg.DatabaseURL)
		}
		return "PostgreSQL database"
	}
	return "embedded store " + cfg.SQLitePath()
}

// runExport runs "sumdb export".
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("export", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.String("out", "", "write the export to this `file` (required; - for stdout)")
	addStoreFlags(fs)
	fs.String("vkey", "", "the log's verifier `key`, instead of reading the signer key file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, exportUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("export: %v (run sumdb export --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("export: unexpected argument %q (run sumdb export --help)", fs.Arg(0))
	}
	s, err := newStoreSettings("export", fs)
	if err != nil {
		return err
	}
	var ec exportConfig
	if err := s.decode(&ec, nil); err != nil {
		return err
	}
	if ec.Out == "" {
		return usageErrorf("export: --out is required: name the file to write (- for stdout)")
	}
	cfg, err := ec.storeConfig.check(s)
	if err != nil {
		return err
	}
	out, key := ec.Out, ec.VKey
	if key == "" {
		switch k, err := readKeyFile(cfg.KeyFile); {
		case err == nil:
			key = k.VKey
		case !errors.Is(err, errNoKeyFile):
			return fmt.Errorf("export: %w (export needs the log's key: give --key-file, or its verifier key with --vkey)", err)
		}
		// Without a key file, only a store with an empty log exports:
		// export.WriteFile says so otherwise.
	}
	if cfg.DatabaseURL == "" {
		// Never create an empty store where the user meant an existing one.
		if _, err := os.Stat(cfg.SQLitePath()); err != nil {
			return fmt.Errorf("export: %w: set --data-dir to the directory of the store, or --database-url", err)
		}
	}
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer st.Close()

	start := time.Now()
	p := newProgress("export", stderr, start)
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		// A new file renamed into place: a failed export leaves no file
		// that looks like one.
		f, err = os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer func() {
			f.Close()
			os.Remove(f.Name())
		}()
		w = f
	}
	res, err := export.WriteFile(ctx, st, w, key, p.report)
	p.done()
	if err != nil {
		if key == "" {
			return fmt.Errorf("%w (give --key-file, or the log's verifier key with --vkey)", err)
		}
		return err
	}
	head := res.Head
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := os.Rename(f.Name(), out); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := durable.SyncDir(filepath.Dir(out)); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	dest := out
	if dest == "-" {
		dest = "stdout"
	}
	if head.Size > 0 {
		fmt.Fprintf(stderr, "sumdb: exported the log of %s from the %s: %d records, up to its head of size %d, to %s in %v\n",
			key, storeName(cfg), head.Size, head.Size, dest, time.Since(start).Round(time.Millisecond))
	}
	for _, m := range res.Mirrors {
		if m.NoHead {
			fmt.Fprintf(stderr, "sumdb: left out the cache of the mirror of %s: it has no verified head\n", m.DB)
			continue
		}
		fmt.Fprintf(stderr, "sumdb: exported the cache of the mirror of %s: %d tiles and %d records, up to its head of size %d, to %s\n",
			m.DB, m.Tiles, m.Records, m.Size, dest)
	}
	return nil
}

// A progress prints the progress of a long run on one line of stderr:
// records done, rate and time left. On a terminal, the line is rewritten
// in place every second; elsewhere, a line is printed every 10 seconds.
type progress struct {
	what     string
	w        io.Writer
	start    time.Time
	terminal bool

	mu      sync.Mutex // guards the fields below
	last    time.Time  // of the last line printed
	printed bool       // a line was printed
	ndone   int64
	total   int64
	from    int64 // records done when the rate was first measured
}

func newProgress(what string, w io.Writer, start time.Time) *progress {
	return &progress{what: what, w: w, start: start, terminal: isTerminal(w), last: start, from: -1}
}

// report is an export.Progress.
func (p *progress) report(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.from < 0 {
		p.from = done // records skipped before the rate counts (an extension)
	}
	p.ndone, p.total = done, total
	every := 10 * time.Second
	if p.terminal {
		every = time.Second
	}
	if now := time.Now(); now.Sub(p.last) >= every {
		p.last = now
		p.print(now)
	}
}

// print prints the progress line; p.mu is held.
func (p *progress) print(now time.Time) {
	elapsed := now.Sub(p.start)
	rate := float64(p.ndone-max(p.from, 0)) / elapsed.Seconds()
	line := fmt.Sprintf("%s: %d of %d records (%.1f%%), %.0f records/s", p.what, p.ndone, p.total, 100*float64(p.ndone)/float64(max(p.total, 1)), rate)
	if rate > 0 && p.ndone < p.total {
		left := time.Duration(float64(p.total-p.ndone) / rate * float64(time.Second))
		line += fmt.Sprintf(", %v left", left.Round(time.Second))
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.printed = true
}

// done ends the progress line on a terminal.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.printed {
		fmt.Fprintln(p.w)
	}
}
