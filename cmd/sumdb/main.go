// Command sumdb runs a checksum database for Go modules: a transparency log
// of go.sum lines that the go command can use as its GOSUMDB.
//
// Usage:
//
//	sumdb serve [flags]               run the checksum database
//	sumdb keygen --name NAME [flags]  create a signer key
//	sumdb check [flags] [FILE...]     check go.sum files against a checksum database
//	sumdb audit --state DIR [flags]   clone a checksum database's log and verify it
//	sumdb watch --module PATH --state DIR [flags]  alert on versions of your modules you did not release
//	sumdb load --target URL [flags]   drive a running server with load
//	sumdb export --out FILE [flags]   write the whole log to one file
//	sumdb import [flags] FILE         rebuild a log from an export file
//
// Run "sumdb help" or "sumdb <command> --help" for the flags. Every serve flag
// can also be set as SUMDB_<FLAG> in the environment (dashes as underscores)
// and as a key of a YAML config file given with --config; export and import
// read serve's SUMDB_DATA_DIR, SUMDB_DATABASE_URL and SUMDB_KEY_FILE. A few
// flags of check and audit can be set as SUMDB_CHECK_<FLAG> and
// SUMDB_AUDIT_<FLAG>; keygen and load take flags only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one stops the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(report(err, os.Stderr))
}

// report prints err as one line on stderr and returns the exit status:
// 0 for success, an *exitError's code, 2 for a usage error, 1 for any other
// error.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var xerr *exitError
	if errors.As(err, &xerr) {
		if xerr.err != nil {
			fmt.Fprintf(stderr, "sumdb: %s\n", strings.Join(strings.Fields(xerr.err.Error()), " "))
		}
		return xerr.code
	}
	// One line, whatever the error wraps: the user reads it in a terminal or
	// a service log, where a line break would split it.
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(stderr, "sumdb: %s\n", msg)
	var uerr *usageError
	if errors.As(err, &uerr) {
		return 2
	}
	return 1
}

// A usageError is a mistake in the command line: unknown command, unknown
// flag, bad flag value. The process exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// An exitError ends the process with exit status code, for commands whose
// statuses mean more than success or failure (check). If err is nil, the
// command has reported everything itself and nothing more is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

const usage = `sumdb is a checksum database for Go modules.

Usage:

	sumdb serve [flags]               run the checksum database
	sumdb keygen --name NAME [flags]  create a signer key, print its verifier key
	sumdb check [flags] [FILE...]     check go.sum files against a checksum database
	sumdb load --target URL [flags]   measure a running checksum database under load
	sumdb audit --state DIR [flags]   clone a checksum database's log and verify all of it
	sumdb watch --module PATH --state DIR [flags]  alert on versions of your modules you did not release
	sumdb export --out FILE [flags]   write the whole log (records, signed heads) to one file
	sumdb import [flags] FILE         rebuild a log from an export file in another store
	sumdb public-fork [--clear]       show or clear a fork of the public checksum database
	sumdb mirror fetch --of DB [FILE...]  cache go.sum files' module versions of a mirrored database

Run "sumdb <command> --help" for a command's flags.
`

// run runs the command line args (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErrorf("missing command (want serve, keygen, check, audit, watch, load, export, import, public-fork or mirror)")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "keygen":
		return runKeygen(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "load":
		return runLoad(ctx, rest, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "watch":
		return runWatch(ctx, rest, stdout, stderr)
	case "export":
		return runExport(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "public-fork":
		return runPublicFork(ctx, rest, stdout, stderr, goEnv)
	case "mirror":
		return runMirror(ctx, rest, stdout, stderr, goEnv)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageErrorf("unknown command %q (want serve, keygen, check, audit, watch, load, export, import, public-fork or mirror; run sumdb help)", cmd)
	}
}
