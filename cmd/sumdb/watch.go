package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/watch"
)

const watchUsage = `Usage: sumdb watch --sumdb "<verifier key> [URL]" --module PATH [flags]

Watch follows a checksum database for the owners of modules, and alerts on
every new version of a watched module (--module, repeatable; a trailing
"/..." watches every module path under it) that they did not release, or
that is logged with other hashes than those they released. The released
versions are --authorized FILE (go.sum lines: "<path> <version> h1:..." and
"<path> <version>/go.mod h1:...") and --authorized-git DIR (a git clone:
each tag "vX.Y.Z", or "<subdirectory>/vX.Y.Z" for a module in a
subdirectory, is a released version, whose hashes are computed from the
tag). Without either, every new version of a watched module is an alert.

Every signed head is verified as "sumdb audit" verifies it (signed by the
key, consistent with the head verified before), and every record scanned
is verified to be in the tree of a verified head before it is read: a
database that serves anything else is refused (exit status 3). Every line
of a record is read as the go command reads it: a line
"<path> <version>[/go.mod] <hash>" of a watched module is checked wherever
it sits, and a record that is not well formed but names a watched module
is an alert of kind "malformed".

Alerts go to stdout (--format text or json: one JSON object a line), and
to --webhook URL (a POST of each alert as JSON, retried with backoff; the
URL is never shown in messages but for its host). --state DIR keeps the
newest verified head, the records scanned and the alerts delivered: an
alert is delivered once, and none is missed across restarts (a delivery
that fails is tried again). The first run scans the log from record
--from (default 0: the whole log; "latest" for only the versions logged
from then on).

The database is --sumdb, else the go command's GOSUMDB, reached as the go
command reaches it: at the URL given with the key, else through the first
proxy of GOPROXY that serves it (which must serve its data tiles too),
with the credentials that GOAUTH gives.

Exit status with --once:
  0  no alert
  1  alerts (printed, and delivered to the webhook if one is given)
  2  a usage error
  3  the database could not be read, or served data that does not verify;
     or the state directory could not be written
A database that served data that does not verify exits 3 even after alerts
were delivered (the records after it were not scanned); any other error
after alerts exits 1, with the error on stderr.
Without --once, watch polls every --interval until interrupted.

Flags:
`

// Exit statuses of watch.
const (
	statusAlert      = 1
	statusWatchError = 3
)

// newWatchFlags returns the flag set of watch.
func newWatchFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("sumdb", "", "checksum `database`: \"<verifier key> [URL]\" (default: go env GOSUMDB)")
	fs.StringSlice("module", nil, "module `path` to watch, or a prefix ending in /... (repeat, or separate with commas; required)")
	fs.String("state", "", "state `directory` (required; created if missing)")
	fs.StringSlice("authorized", nil, "`file` of go.sum lines of the released versions (repeat, or separate with commas)")
	fs.StringSlice("authorized-git", nil, "`directory` of a git clone whose version tags are the released versions (repeat, or separate with commas)")
	fs.String("format", "text", "alerts on stdout: text or json")
	fs.String("webhook", "", "`URL` to POST each alert to, as JSON")
	fs.Bool("once", false, "poll once and exit (exit status 1 if any alert; 3, which wins, if the database served data that does not verify)")
	fs.Duration("interval", time.Minute, "polling interval without --once")
	fs.String("from", "0", "first record `id` to scan on the first run, or latest")
	fs.Bool("restart", false, "scan again from --from even if the state has scanned further (alerts delivered before are not repeated)")
	return fs
}

// runWatch runs "sumdb watch".
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWatchEnv(ctx, args, stdout, stderr, goEnv)
}

// runWatchEnv is runWatch with the go command's settings from goEnv.
func runWatchEnv(ctx context.Context, args []string, stdout, stderr io.Writer, goEnv goEnvFunc) error {
	fs := newWatchFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, watchUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("watch: %v (run sumdb watch --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("watch: unexpected argument %q (run sumdb watch --help)", fs.Arg(0))
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := watchConfig(ctx, fs, stdout, logger, goEnv)
	if err != nil {
		var uerr *usageError
		if errors.As(err, &uerr) {
			return err
		}
		return &exitError{code: statusWatchError, err: err}
	}
	res, err := watch.Run(ctx, *cfg)
	found := res.Alerts + res.Undelivered
	switch {
	case cfg.Once && errors.Is(err, watch.ErrRefused):
		// Evidence against the log wins over the alerts delivered
		// before it: the records after it were not scanned.
		return &exitError{code: statusWatchError, err: err}
	case found > 0 && cfg.Once:
		if err != nil {
			fmt.Fprintf(stderr, "sumdb: %s\n", oneLine(err))
		}
		return &exitError{code: statusAlert}
	case err != nil && (cfg.Once || !errors.Is(err, context.Canceled)):
		return &exitError{code: statusWatchError, err: err}
	}
	return nil
}

// watchSettings are the settings of watch, decoded by viper from its
// flags into the fields tagged with their names.
type watchSettings struct {
	SumDB         string        `mapstructure:"sumdb"`
	Modules       []string      `mapstructure:"module"`
	State         string        `mapstructure:"state"`
	Authorized    []string      `mapstructure:"authorized"`
	AuthorizedGit []string      `mapstructure:"authorized-git"`
	Format        string        `mapstructure:"format"`
	Webhook       string        `mapstructure:"webhook"`
	Once          bool          `mapstructure:"once"`
	Interval      time.Duration `mapstructure:"interval"`
	From          string        `mapstructure:"from"`
	Restart       bool          `mapstructure:"restart"`
}

// watchConfig validates the flags fs and builds the watch's Config.
func watchConfig(ctx context.Context, fs *pflag.FlagSet, stdout io.Writer, logger *slog.Logger, goEnv goEnvFunc) (*watch.Config, error) {
	s, err := newSettings("watch", fs, "", nil)
	if err != nil {
		return nil, err
	}
	var ws watchSettings
	rules := []rule{{"interval", "want a duration of at least 1s, such as 1m", &ws.Interval,
		func() bool { return ws.Interval >= time.Second }}}
	if err := s.decode(&ws, rules); err != nil {
		return nil, err
	}
	if err := s.check(rules); err != nil {
		return nil, err
	}
	cfg := &watch.Config{Logger: logger, Once: ws.Once, Restart: ws.Restart, Interval: ws.Interval, Dir: ws.State}
	if cfg.Dir == "" {
		return nil, usageErrorf("watch: --state is required: name the directory that keeps the verified head and the alerts delivered")
	}
	if len(ws.Modules) == 0 {
		return nil, usageErrorf("watch: --module is required: name a module path to watch, or a prefix such as example.com/org/...")
	}
	for _, m := range ws.Modules {
		p, err := watch.ParsePattern(m)
		if err != nil {
			return nil, s.invalid("module", "%v", err)
		}
		cfg.Modules = append(cfg.Modules, p)
	}
	switch ws.From {
	case "latest":
		cfg.From = watch.FromHead
	default:
		n, err := strconv.ParseInt(ws.From, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != ws.From {
			return nil, s.invalid("from", "%q (want a record id, 0 for the whole log, or latest)", ws.From)
		}
		cfg.From = n
	}
	switch ws.Format {
	case "text":
		cfg.Sinks = append(cfg.Sinks, watch.WriterSink{W: stdout})
	case "json":
		cfg.Sinks = append(cfg.Sinks, watch.WriterSink{W: stdout, JSON: true})
	default:
		return nil, s.invalid("format", "%q (want text or json)", ws.Format)
	}
	if ws.Webhook != "" {
		hook, err := watch.NewWebhook(ws.Webhook, &http.Client{})
		if err != nil {
			return nil, s.invalid("webhook", "%v", err)
		}
		hook.Logger = logger
		cfg.Sinks = append(cfg.Sinks, hook)
	}
	if files, dirs := ws.Authorized, ws.AuthorizedGit; len(files)+len(dirs) > 0 {
		cfg.Authorized = watch.NewAuthorized()
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("watch: --authorized: %w", err)
			}
			if err := cfg.Authorized.AddGoSum(f, data); err != nil {
				return nil, fmt.Errorf("watch: --authorized: %w", err)
			}
		}
		match := func(path string) bool {
			for _, p := range cfg.Modules {
				if p.Match(path) {
					return true
				}
			}
			return false
		}
		for _, d := range dirs {
			if err := cfg.Authorized.AddGit(ctx, d, match, logger); err != nil {
				return nil, fmt.Errorf("watch: --authorized-git: %w", err)
			}
		}
		logger.InfoContext(ctx, "watch: authorized versions", "versions", cfg.Authorized.Len())
	}

	gosumdb, err := gosumdb(ctx, s, ws.SumDB, goEnv)
	if err != nil {
		return nil, err
	}
	if gosumdb = strings.TrimSpace(gosumdb); gosumdb == "" || gosumdb == "off" {
		return nil, s.invalid("sumdb", "%q (want \"<verifier key> [URL]\")", gosumdb)
	}
	goproxy, err := reach(ctx, "watch", goEnv, gosumdb, false, "give the database's URL with --sumdb \"<verifier key> <URL>\"")
	if err != nil {
		return nil, err
	}
	auth, err := goAuth(ctx, "watch", goEnv)
	if err != nil {
		return nil, err
	}
	cfg.Remote, err = client.Open(ctx, client.Config{
		GOSUMDB: gosumdb,
		GOPROXY: goproxy,
		Client:  &http.Client{Timeout: time.Minute},
		Logger:  logger,
		Auth:    auth,
	})
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return cfg, nil
}
