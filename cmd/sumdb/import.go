package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
	"github.com/sumdb/sumdb/tlog/export"
)

const importUsage = `Usage: sumdb import [flags] FILE

Import rebuilds the log of an export file (written by "sumdb export") in a
store, embedded or PostgreSQL, with the same ids, tiles and signed tree
heads, so that a server on it serves clients exactly what the old one did.
FILE "-" reads stdin.

The store is chosen as serve chooses it: --database-url, else the embedded
store in --data-dir. It must be empty, or hold a prefix of the file's log
(an earlier export of the same log, imported before): then only the records
it lacks are stored. Any other store is refused. Every head of the file is
checked against its records and its signature against the file's key
before the records it covers are stored; a damaged file is refused, and
the store keeps the records up to a head before the damage. An import cut
short is finished by importing the file again.

If the key file (--key-file, default <data-dir>/signer.key) exists, it
must be the key of the file's log. The signer key is not in the export
file: copy the old server's key file there before starting serve. Import
records the imported head in <data-dir>/published-head, as serve would,
and so refuses a data directory that a running serve uses.

A file may also hold the cache of the checksum databases its server
mirrored (serve --mirror): give the verifier key of each with --mirror
"<vkey>" (the value serve takes; a URL after the key is ignored). A file
with the cache of a database whose key is not given is refused. Each
database's head is checked against its key, every tile against that head,
every record against the tiles, before any of it is stored; what the file
cannot prove (a tile cached at an older head) is left out, and a head that
contradicts the one the store holds refuses the import.

--data-dir, --database-url and --key-file can also be set as
SUMDB_DATA_DIR, SUMDB_DATABASE_URL and SUMDB_KEY_FILE.

Flags:
`

// An importConfig is the configuration of "sumdb import".
type importConfig struct {
	BatchRecords int      `mapstructure:"batch-records"`
	Mirror       []string `mapstructure:"mirror"`
	storeConfig  `mapstructure:",squash"`
}

// runImport runs "sumdb import".
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("import", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	addStoreFlags(fs)
	fs.Int("batch-records", export.DefaultBatchRecords, "least `number` of records committed in one transaction")
	fs.StringArray("mirror", nil, "verifier `key` of a mirrored checksum database whose cache the file holds (repeat for each)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, importUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("import: %v (run sumdb import --help)", err)
	}
	if fs.NArg() != 1 {
		return usageErrorf("import: want one export FILE (- for stdin) (run sumdb import --help)")
	}
	s, err := newStoreSettings("import", fs)
	if err != nil {
		return err
	}
	var ic importConfig
	rules := []rule{{"batch-records", "want a number of at least 1", &ic.BatchRecords, func() bool { return ic.BatchRecords >= 1 }}}
	if err := s.decode(&ic, rules); err != nil {
		return err
	}
	if err := s.check(rules); err != nil {
		return err
	}
	cfg, err := ic.storeConfig.check(s)
	if err != nil {
		return err
	}
	mirrorKeys, err := parseMirrorKeys(ctx, ic.Mirror)
	if err != nil {
		return err
	}
	var key *key
	switch k, err := readKeyFile(cfg.KeyFile); {
	case err == nil:
		key = k
	case !errors.Is(err, errNoKeyFile):
		return fmt.Errorf("import: %w", err)
	}

	var r io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	// Import records the imported head in published-head, as serve does:
	// not while a serve keeps that file.
	lock, err := holdDataDir(cfg)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer lock.Close()
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer st.Close()

	start := time.Now()
	p := newProgress("import", stderr, start)
	icfg := export.ImportConfig{BatchRecords: ic.BatchRecords, Progress: p.report, MirrorKeys: mirrorKeys}
	if key != nil {
		icfg.Key = key.VKey
	}
	res, err := export.Import(ctx, st, r, icfg)
	p.done()
	if err != nil {
		return err
	}
	for _, m := range res.Mirrors {
		fmt.Fprintf(stderr, "sumdb: imported the cache of the mirror of %s: %d tiles and %d records, up to its head of size %d", m.DB, m.Tiles, m.Records, m.Size)
		if m.Unproved > 0 {
			fmt.Fprintf(stderr, "; %d tiles and records left out, which the file could not prove against that head", m.Unproved)
		}
		fmt.Fprintln(stderr)
	}
	if res.Head.Size == 0 {
		// The file's log is empty (a server that only mirrors): the
		// store's log, if any, is as it was.
		return nil
	}
	v, err := note.NewVerifier(res.Key)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	published := filepath.Join(cfg.DataDir, "published-head")
	if _, err := tlog.RecordPublished(ctx, st, v, published); err != nil {
		return fmt.Errorf("import: the log is imported, but %w", err)
	}
	elapsed := time.Since(start)
	rate := ""
	if res.Imported > 0 {
		rate = fmt.Sprintf(" (%.0f records/s)", float64(res.Imported)/elapsed.Seconds())
	}
	fmt.Fprintf(stderr, "sumdb: imported %d records and %d signed heads into the %s in %v%s; %d records were there already; the log of %s has %d records\n",
		res.Imported, res.Heads, storeName(cfg), elapsed.Round(time.Millisecond), rate, res.Skipped, res.Key, res.Head.Size)
	if key == nil {
		fmt.Fprintf(stderr, "sumdb: before starting serve, copy the old server's signer key file to %s (mode 0600), or give its place with --key-file: the key is not in the export\n", cfg.KeyFile)
	}
	return nil
}

// parseMirrorKeys returns the database name -> verifier key map of the
// values of --mirror, "<vkey> [URL]" each as serve's --mirror, or the
// built-in database's name, whose key is known.
func parseMirrorKeys(ctx context.Context, values []string) (map[string]string, error) {
	keys := make(map[string]string, len(values))
	for _, value := range values {
		// No proxy to ask: only the key is needed, and no network.
		r, err := client.Open(ctx, client.Config{GOSUMDB: value, GOPROXY: "off"})
		if err != nil {
			return nil, usageErrorf("import: --mirror: %v (run sumdb import --help)", err)
		}
		name := r.Verifier.Name()
		if old, ok := keys[name]; ok && old != r.Key {
			return nil, usageErrorf("import: --mirror gives two keys for %s", name)
		}
		keys[name] = r.Key
	}
	return keys, nil
}
