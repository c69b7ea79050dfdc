package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/internal/durable"
)

// defaultKeyOut is where keygen writes by default: the key file serve
// uses by default, so that "sumdb keygen --name N" then "sumdb serve" works.
var defaultKeyOut = filepath.Join(defaultDataDir, defaultKeyFileName)

const keygenUsage = `Usage: sumdb keygen --name NAME [--out FILE]

Keygen creates a signer key for a checksum database named NAME, writes it to
FILE with mode 0600 (never overwriting a file), and prints the verifier key,
which clients put in GOSUMDB, alone on a line on stdout.

NAME is a clean host[/path], such as sum.example.com: the go command keeps
what it learns from the log under that name.

Flags:
`

// A keygenConfig is the configuration of "sumdb keygen".
type keygenConfig struct {
	Name string `mapstructure:"name"`
	Out  string `mapstructure:"out"`
}

// runKeygen runs "sumdb keygen".
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("keygen", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.String("name", "", "key `name`: a host[/path] such as sum.example.com (required)")
	fs.String("out", defaultKeyOut, "write the signer key to this `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, keygenUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("keygen: %v (run sumdb keygen --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("keygen: unexpected argument %q (run sumdb keygen --help)", fs.Arg(0))
	}
	// Flags only: a key is created as its command line says.
	s, err := newSettings("keygen", fs, "", nil)
	if err != nil {
		return err
	}
	var cfg keygenConfig
	if err := s.decode(&cfg, nil); err != nil {
		return err
	}
	name, out := cfg.Name, cfg.Out
	if name == "" {
		return usageErrorf("keygen: --name is required, such as --name sum.example.com")
	}
	if err := checkName(name); err != nil {
		return usageErrorf("keygen: invalid --name: %v", err)
	}
	if out == "" {
		return usageErrorf("keygen: --out is empty (name the file to write the signer key to)")
	}
	k, skey, err := generateKey(name)
	if err != nil {
		return err
	}
	if err := writeKeyFile(out, skey, durable.SyncDir); err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.VKey)
	fmt.Fprintf(stderr, "sumdb: wrote the signer key of %s to %s; keep it secret\n", name, out)
	return nil
}
