package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/public"
)

const publicForkUsage = `Usage: sumdb public-fork [--clear] [flags]

When the public checksum database that serve cross-checks public modules
with (--public-sumdb) shows a tree head inconsistent with one it showed
before, serve keeps the evidence, both heads, in its store, and refuses
every new public module version until an operator has looked into it.

Public-fork prints that evidence and exits with status 1, or says there is
none and exits with status 0. With --clear it forgets the evidence, so that
serve, and every replica sharing the store, cross-checks again. The newest
public head serve verified is kept: if the public log still shows the fork,
serve refuses again.

The store is chosen as serve chooses it: --database-url, else the embedded
store in --data-dir. --data-dir, --database-url and --public-sumdb can also
be set as SUMDB_DATA_DIR, SUMDB_DATABASE_URL and SUMDB_PUBLIC_SUMDB.

Flags:
`

// publicForkEnvKeys are the settings of public-fork that may also come
// from serve's SUMDB_* variables: they name the same store and database.
var publicForkEnvKeys = []string{"data-dir", "database-url", "public-sumdb"}

// A publicForkConfig is the configuration of "sumdb public-fork".
type publicForkConfig struct {
	DataDir     string `mapstructure:"data-dir"`
	DatabaseURL string `mapstructure:"database-url"`
	PublicSumDB string `mapstructure:"public-sumdb"`
	Clear       bool   `mapstructure:"clear"`
}

// runPublicFork runs "sumdb public-fork".
func runPublicFork(ctx context.Context, args []string, stdout, stderr io.Writer, goEnv goEnvFunc) error {
	fs := pflag.NewFlagSet("public-fork", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Bool("clear", false, "forget the evidence of the fork: serve cross-checks public module versions again")
	fs.String("data-dir", defaultDataDir, "`directory` of the embedded store")
	fs.String("database-url", "", "PostgreSQL `URL` (postgres://...) or keyword/value string; empty means the embedded store in the data directory")
	fs.String("public-sumdb", "", "the public checksum `database`, as serve's --public-sumdb (default: go env GOSUMDB)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, publicForkUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("public-fork: %v (run sumdb public-fork --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("public-fork: unexpected argument %q (run sumdb public-fork --help)", fs.Arg(0))
	}
	s, err := newSettings("public-fork", fs, envPrefix, publicForkEnvKeys)
	if err != nil {
		return err
	}
	var pc publicForkConfig
	if err := s.decode(&pc, nil); err != nil {
		return err
	}
	sc := storeConfig{DataDir: pc.DataDir, DatabaseURL: pc.DatabaseURL}
	cfg, err := sc.check(s)
	if err != nil {
		return err
	}
	gosumdb := strings.TrimSpace(pc.PublicSumDB)
	if _, set := s.origin("public-sumdb"); !set {
		if gosumdb, err = fromGo(ctx, "public-fork", goEnv, "GOSUMDB", "give --public-sumdb as serve has it"); err != nil {
			return err
		}
	}
	if gosumdb == "" {
		gosumdb = client.DefaultGOSUMDB()
	}
	if gosumdb == "off" {
		return s.invalid("public-sumdb", "off: name the public checksum database that serve cross-checks with")
	}
	// No proxy to ask: only the name is needed, and no network.
	remote, err := client.Open(ctx, client.Config{GOSUMDB: gosumdb, GOPROXY: "off"})
	if err != nil {
		return s.invalid("public-sumdb", "%v", err)
	}
	name := remote.Verifier.Name()

	if cfg.DatabaseURL == "" {
		// Never create an empty store where the operator mistyped the
		// directory.
		if _, err := os.Stat(cfg.SQLitePath()); err != nil {
			return fmt.Errorf("public-fork: %w: give the --data-dir or --database-url of serve", err)
		}
	}
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("public-fork: %w", err)
	}
	defer st.Close()
	state, ok := st.(public.StateStore)
	if !ok {
		return fmt.Errorf("public-fork: the %s keeps no state", storeName(cfg))
	}
	evidence, err := public.ReadFork(ctx, state, name)
	if err != nil {
		return fmt.Errorf("public-fork: %w", err)
	}
	switch {
	case evidence == "":
		fmt.Fprintf(stdout, "no fork of the public checksum database %s is recorded in the %s\n", name, storeName(cfg))
		return nil
	case pc.Clear:
		if err := public.ClearFork(ctx, state, name); err != nil {
			return fmt.Errorf("public-fork: %w", err)
		}
		fmt.Fprintf(stdout, "cleared the fork of the public checksum database %s: serve cross-checks public module versions again\n", name)
		return nil
	}
	fmt.Fprintf(stdout, "the public checksum database %s showed a fork; new public module versions are refused until it is cleared (sumdb public-fork --clear):\n\n%s\n", name, strings.TrimRight(evidence, "\n"))
	return &exitError{code: 1}
}
