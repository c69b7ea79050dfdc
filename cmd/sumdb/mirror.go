package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/sumdb/check"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/sumdb/mirror"
)

// maxMirrors bounds --mirror: each is a database with its own cache.
const maxMirrors = 32

// checkMirrors checks the databases of --mirror without the network: each
// is a verifier key, with a URL or not, or the built-in database's name,
// and no two have the same name.
func (cfg *ServeConfig) checkMirrors(ctx context.Context, s *settings) error {
	if len(cfg.Mirrors) > maxMirrors {
		return s.invalid("mirror", "%d databases, want at most %d", len(cfg.Mirrors), maxMirrors)
	}
	seen := make(map[string]bool)
	for i, m := range cfg.Mirrors {
		m = strings.TrimSpace(m)
		cfg.Mirrors[i] = m
		r, err := client.Open(ctx, client.Config{GOSUMDB: m, GOPROXY: "off"})
		if err != nil {
			return s.invalid("mirror", "%v", err)
		}
		name := r.Verifier.Name()
		if seen[name] {
			return s.invalid("mirror", "%s is named twice", name)
		}
		seen[name] = true
	}
	return nil
}

// mirrorStore is the store of a server's mirrors.
type mirrorStore = mirror.Store

// openMirror returns the mirror of the database gosumdb ("<verifier key>
// [URL]", or the built-in database's name), kept in st. Without a URL,
// the database is looked for as the go command looks for it, through the
// proxies of goproxy, for at most findTimeout; a mirror must serve from
// its cache with no network at all, so if none answers it is reached at
// https://<name> when it is.
func openMirror(ctx context.Context, gosumdb, goproxy string, st mirrorStore, logger *slog.Logger, reg prometheus.Registerer) (*mirror.Mirror, error) {
	// One retry: a mirror whose upstream fails answers from its store,
	// rather than have the go command wait for backoffs.
	remote, err := client.Open(ctx, client.Config{GOSUMDB: gosumdb, GOPROXY: "off", Logger: logger, Retries: 1})
	if err != nil {
		return nil, err
	}
	if len(strings.Fields(gosumdb)) == 1 && goproxy != "" {
		fctx, cancel := context.WithTimeout(ctx, findTimeout)
		found, err := client.Open(fctx, client.Config{GOSUMDB: gosumdb, GOPROXY: goproxy, Logger: logger, Retries: 1})
		cancel()
		if err == nil {
			remote = found
		} else {
			logger.WarnContext(ctx, "no proxy answered for the mirrored checksum database: it is reached directly when it can be", "name", remote.Verifier.Name(), "url", remote.Base, "err", err)
		}
	}
	return mirror.New(mirror.Config{Remote: remote, Store: st, Logger: logger, Registerer: reg})
}

// findTimeout bounds the search for a proxy that serves a mirrored
// database, at start.
const findTimeout = 10 * time.Second

// withMirrorStatus returns a handler that answers /readyz as next does,
// followed by a line for each mirror: its tree size, how long ago its
// upstream's head was last verified, and a fork or the last failure.
// A mirror's trouble does not make the server unready: it serves its own
// log, and the mirror its verified cache.
func withMirrorStatus(next http.Handler, mirrors []*mirror.Mirror, now func() time.Time) http.Handler {
	if len(mirrors) == 0 {
		return next
	}
	return withReadyLines(next, func() []string {
		var lines []string
		for _, m := range mirrors {
			lines = append(lines, mirrorStatusLine(m.Name(), m.Status(), now()))
		}
		return lines
	})
}

// mirrorStatusLine describes the state of the mirror of name.
func mirrorStatusLine(name string, st mirror.Status, now time.Time) string {
	line := "mirror " + name + ": "
	switch {
	case st.Size == 0:
		line += "no verified head yet"
	case st.Verified.IsZero():
		line += fmt.Sprintf("tree size %d, not verified with the upstream since the start", st.Size)
	default:
		line += fmt.Sprintf("tree size %d, head verified %s ago", st.Size, now.Sub(st.Verified).Round(time.Second))
	}
	if st.Fork != "" {
		line += "; FORK: the upstream showed a tree head inconsistent with the verified one, refused (see the server's log)"
	} else if st.Err != nil {
		line += "; upstream failing: " + clip(st.Err.Error(), 200)
	}
	return line
}

// clip returns s shortened to at most n bytes, on one line.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

const mirrorFetchUsage = `Usage: sumdb mirror fetch --of DATABASE [flags] [FILE...]

Mirror fetch fills the mirror cache of the store (the one serve uses) with
the module versions of the given go.sum files (default: those of the
current module or workspace): for each, the record, verified by the
mirrored checksum database's signed tree head, and the tiles that prove it.
Run it on a machine that reaches the database; move the store to an
isolated network with sumdb export and sumdb import --mirror, where
sumdb serve --mirror answers the go command from the cache alone.

DATABASE is the mirrored database as serve's --mirror names it:
"<verifier key> [URL]", or the built-in database's name. The lines of
private modules (go env GONOSUMDB, or GOPRIVATE when it is empty) are
skipped, as the go command never asks a checksum database about them.

The store is chosen as serve chooses it: --database-url, else the embedded
store in --data-dir (SUMDB_DATA_DIR, SUMDB_DATABASE_URL).

Flags:
`

// runMirror runs "sumdb mirror".
func runMirror(ctx context.Context, args []string, stdout, stderr io.Writer, goEnv goEnvFunc) error {
	if len(args) == 0 || args[0] != "fetch" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, mirrorFetchUsage)
			return nil
		}
		return usageErrorf("mirror: want the subcommand fetch (run sumdb mirror fetch --help)")
	}
	fs := pflag.NewFlagSet("mirror fetch", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.String("of", "", "the mirrored checksum `database`, \"<verifier key> [URL]\" (required)")
	fs.String("data-dir", defaultDataDir, "`directory` of the embedded store")
	fs.String("database-url", "", "PostgreSQL `URL` (postgres://...) or keyword/value string; empty means the embedded store in the data directory")
	fs.String("upstream", "", "GOPROXY-style `list` through which to find a database given without its URL (default: go env GOPROXY)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, mirrorFetchUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("mirror fetch: %v (run sumdb mirror fetch --help)", err)
	}
	s, err := newSettings("mirror fetch", fs, envPrefix, []string{"data-dir", "database-url"})
	if err != nil {
		return err
	}
	var mc struct {
		Of          string `mapstructure:"of"`
		DataDir     string `mapstructure:"data-dir"`
		DatabaseURL string `mapstructure:"database-url"`
		Upstream    string `mapstructure:"upstream"`
	}
	if err := s.decode(&mc, nil); err != nil {
		return err
	}
	of := strings.TrimSpace(mc.Of)
	if of == "" {
		return usageErrorf("mirror fetch: --of is required: name the mirrored checksum database, \"<verifier key> [URL]\"")
	}
	if _, err := client.Open(ctx, client.Config{GOSUMDB: of, GOPROXY: "off"}); err != nil {
		return s.invalid("of", "%v", err)
	}
	sc := storeConfig{DataDir: mc.DataDir, DatabaseURL: mc.DatabaseURL}
	cfg, err := sc.check(s)
	if err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		if files, err = defaultSumFiles(ctx, goEnv); err != nil {
			return fmt.Errorf("mirror fetch: %s", strings.TrimPrefix(err.Error(), "check: "))
		}
	}
	goproxy := mc.Upstream
	if goproxy == "" && len(strings.Fields(of)) == 1 {
		if goproxy, err = fromGo(ctx, "mirror fetch", goEnv, "GOPROXY", "give --upstream, or the database's URL in --of"); err != nil {
			return err
		}
	}
	// The go command never asks a checksum database about the modules of
	// GONOSUMDB (GOPRIVATE when it is empty), nor may this.
	const privateWhy = "without it, private modules cannot be told from public ones, and must not be sent to the checksum database"
	private, err := fromGo(ctx, "mirror fetch", goEnv, "GONOSUMDB", privateWhy)
	if err != nil {
		return err
	}
	if private == "" {
		if private, err = fromGo(ctx, "mirror fetch", goEnv, "GOPRIVATE", privateWhy); err != nil {
			return err
		}
	}
	var entries []check.Entry
	skipped := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("mirror fetch: %w", err)
		}
		lines, malformed := check.ParseGoSum(f, data)
		if len(malformed) > 0 {
			return fmt.Errorf("mirror fetch: %s:%d: %s", f, malformed[0].Line, malformed[0].Message)
		}
		for _, l := range lines {
			if fetch.IsPrivate(private, l.Path) {
				skipped++
				continue
			}
			entries = append(entries, l)
		}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "mirror fetch: skipped %d lines of private modules (go env GONOSUMDB or GOPRIVATE: %s)\n", skipped, private)
	}

	st, _, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("mirror fetch: %w", err)
	}
	defer st.Close()
	ms, ok := st.(mirrorStore)
	if !ok {
		return fmt.Errorf("mirror fetch: the %s keeps no mirror cache", storeName(cfg))
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := openMirror(ctx, of, goproxy, ms, logger, prometheus.NewRegistry())
	if err != nil {
		return fmt.Errorf("mirror fetch: %w", err)
	}
	return warmMirror(ctx, m, entries, stdout, stderr)
}

// warmMirror looks up in m every module version of entries, checks each
// go.sum line against the verified record, and caches the tiles that prove
// them all in m's newest head. It reports progress on stderr, a summary on
// stdout, and fails if any version could not be cached or has a line the
// database does not hold.
func warmMirror(ctx context.Context, m *mirror.Mirror, entries []check.Entry, stdout, stderr io.Writer) error {
	type version struct{ path, version string }
	var order []version
	lines := make(map[version][]check.Entry)
	for _, e := range entries {
		v := version{e.Path, e.Version}
		if _, ok := lines[v]; !ok {
			order = append(order, v)
		}
		lines[v] = append(lines[v], e)
	}
	var ids []int64
	var failed int
	start := time.Now()
	last := start
	for i, v := range order {
		id, text, err := m.Lookup(ctx, v.path, v.version)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "mirror fetch: %s@%s: %v\n", v.path, v.version, err)
		} else {
			ids = append(ids, id)
			for _, e := range lines[v] {
				if !strings.Contains("\n"+string(text), "\n"+e.Module()+" "+e.Hash+"\n") {
					failed++
					fmt.Fprintf(stderr, "mirror fetch: %s:%d: %s %s is not the line the checksum database %s holds:\n%s", e.File, e.Line, e.Module(), e.Hash, m.Name(), text)
				}
			}
		}
		if now := time.Now(); now.Sub(last) >= 2*time.Second {
			fmt.Fprintf(stderr, "mirror fetch: %d of %d module versions\n", i+1, len(order))
			last = now
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := m.Prove(ctx, ids); err != nil {
		return fmt.Errorf("mirror fetch: cache the tiles that prove the records: %w", err)
	}
	st := m.Status()
	fmt.Fprintf(stdout, "mirror fetch: %d module versions of %s cached with their proofs in its tree of %d records (%v)\n", len(ids), m.Name(), st.Size, time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("mirror fetch: %d of %d module versions not cached or not as in go.sum", failed, len(order))}
	}
	return nil
}
