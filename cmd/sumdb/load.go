package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/loadgen"
)

const loadUsage = `Usage: sumdb load --target URL [flags]

Load drives the checksum database at URL with a mix of requests for a set
time, then prints the request rate and the latency percentiles (p50, p90,
p99, max) of each kind of request:

  hit   a lookup of a module version in the log (read from its data tiles,
        or looked up once before the run when the log is empty)
  miss  a lookup of a module version new to the log, which the server must
        fetch from its upstream and log before answering
  tile  a read of a hash tile or data tile of the tree

Misses look up small modules that load generates and serves itself, as a
module proxy listening on --proxy-listen: start the server under test with
its upstream there, such as
	sumdb serve --upstream http://127.0.0.1:8081
Load checks this with one lookup before the run.

With --rate 0, load keeps --concurrency requests in flight (flat out). With
--rate R, it sends R requests per second on a fixed schedule, whatever the
latency, with at most --concurrency in flight, and measures each latency
from the time the request was due.

Requests go to URL only (no redirect is followed, no proxy used). The run
stops by itself after --duration or --max-requests; Ctrl-C stops it early
and still prints the report. The exit status is 1 if any request failed.
Load reads its settings from these flags only, never from the environment.

Flags:
`

// Defaults of the load settings.
const (
	defaultLoadDuration    = 30 * time.Second
	defaultLoadProxyListen = "127.0.0.1:8081"
	defaultLoadFormat      = "text"
)

// A LoadConfig is the validated configuration of "sumdb load".
type LoadConfig struct {
	Target      string        // base URL of the checksum database
	Verifier    note.Verifier // verifies tree heads; nil: parsed only
	Duration    time.Duration // how long requests are sent
	MaxRequests int64         // 0: no limit
	Rate        float64       // requests per second; 0: flat out
	Concurrency int           // requests in flight at most
	Mix         loadgen.Mix
	ProxyListen string        // host:port of the module proxy serving misses
	Timeout     time.Duration // bound on each request
	Format      string        // "text" or "json"
}

// newLoadFlags returns the flag set of load.
func newLoadFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("load", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("target", "", "base `URL` of the checksum database, such as http://127.0.0.1:8080 (required)")
	fs.String("key", "", "verifier `key` of the database (as in its GOSUMDB line), to verify every tree head; without it they are only parsed")
	fs.Duration("duration", defaultLoadDuration, "how long to send requests")
	fs.Int64("max-requests", 0, "stop after this many requests (0: no limit)")
	fs.Float64("rate", 0, "send this many requests per second, on a fixed schedule (0: flat out)")
	fs.Int("concurrency", loadgen.DefaultConcurrency, "most requests in flight")
	fs.String("mix", loadgen.DefaultMix.String(), "relative `weights` of the kinds of requests: hit, miss and tile")
	fs.String("proxy-listen", defaultLoadProxyListen, "serve the modules of misses on this `host:port` (port 0 picks a free port); the server's --upstream")
	fs.Duration("timeout", loadgen.DefaultTimeout, "bound on each request")
	fs.String("format", defaultLoadFormat, "report `format`: text or json")
	return fs
}

// runLoad runs "sumdb load".
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newLoadFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, loadUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("load: %v (run sumdb load --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("load: unexpected argument %q (run sumdb load --help)", fs.Arg(0))
	}
	cfg, err := loadLoadConfig(fs)
	if err != nil {
		return err
	}
	return loadTarget(ctx, cfg, stdout, stderr)
}

// loadLoadConfig reads the parsed flags fs into a validated LoadConfig.
func loadLoadConfig(fs *pflag.FlagSet) (*LoadConfig, error) {
	// Flags only (see toolEnvKeys): a load is measured as its command
	// line says, whatever the environment of a server or another tool.
	v := viper.New()
	if err := v.BindPFlags(fs); err != nil {
		return nil, fmt.Errorf("bind flags: %w", err)
	}
	bad := func(key, format string, args ...any) error {
		return usageErrorf("load: invalid --%s: %s", key, fmt.Sprintf(format, args...))
	}
	str := func(key string) string { return strings.TrimSpace(v.GetString(key)) }

	cfg := &LoadConfig{Target: str("target")}
	if cfg.Target == "" {
		return nil, usageErrorf("load: --target is required, such as --target http://127.0.0.1:8080")
	}
	if err := loadgen.CheckTarget(cfg.Target); err != nil {
		return nil, bad("target", "%v", err)
	}

	if vkey := str("key"); vkey != "" {
		verifier, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, bad("key", "not a verifier key (want the <name>+<hash>+<key> of the server's GOSUMDB line)")
		}
		cfg.Verifier = verifier
	}

	var err error
	if cfg.Duration, err = toDuration(v.Get("duration")); err != nil || cfg.Duration <= 0 || cfg.Duration > loadgen.MaxDuration {
		return nil, bad("duration", "want a duration from 1s to %v, such as 30s", loadgen.MaxDuration)
	}
	if cfg.MaxRequests, err = cast.ToInt64E(v.Get("max-requests")); err != nil || cfg.MaxRequests < 0 {
		return nil, bad("max-requests", "want 0 (no limit) or a number of requests")
	}
	if cfg.Rate, err = cast.ToFloat64E(v.Get("rate")); err != nil || !(cfg.Rate >= 0 && cfg.Rate <= loadgen.MaxRate) {
		return nil, bad("rate", "want 0 (flat out) or requests per second up to %g", float64(loadgen.MaxRate))
	}
	if cfg.Concurrency, err = cast.ToIntE(v.Get("concurrency")); err != nil || cfg.Concurrency < 1 || cfg.Concurrency > loadgen.MaxConcurrency {
		return nil, bad("concurrency", "want a number from 1 to %d", loadgen.MaxConcurrency)
	}
	if cfg.Mix, err = loadgen.ParseMix(str("mix")); err != nil {
		return nil, bad("mix", "%v", err)
	}
	cfg.ProxyListen = str("proxy-listen")
	if err := checkListen(cfg.ProxyListen); err != nil {
		return nil, bad("proxy-listen", "%v", err)
	}
	if cfg.Timeout, err = toDuration(v.Get("timeout")); err != nil || cfg.Timeout <= 0 {
		return nil, bad("timeout", "want a positive duration such as 30s")
	}
	cfg.Format = strings.ToLower(str("format"))
	if cfg.Format != "text" && cfg.Format != "json" {
		return nil, bad("format", "%q (want text or json)", cfg.Format)
	}
	return cfg, nil
}

// loadTarget runs the load cfg describes and prints its report on stdout;
// its progress goes to stderr.
func loadTarget(ctx context.Context, cfg *LoadConfig, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	proxy, err := loadgen.ListenProxy(cfg.ProxyListen)
	if err != nil {
		return fmt.Errorf("load: %w: choose another --proxy-listen address", err)
	}
	defer proxy.Close()
	logger.InfoContext(ctx, "serving the modules of misses; the server under test must fetch from there", "proxy", proxy.URL(), "server_flag", "--upstream "+proxy.URL())

	res, err := loadgen.Run(ctx, loadgen.Config{
		Target:      cfg.Target,
		Verifier:    cfg.Verifier,
		Duration:    cfg.Duration,
		MaxRequests: cfg.MaxRequests,
		Rate:        cfg.Rate,
		Concurrency: cfg.Concurrency,
		Mix:         cfg.Mix,
		Proxy:       proxy,
		Timeout:     cfg.Timeout,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	if cfg.Format == "json" {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return fmt.Errorf("load: write report: %w", err)
	}
	if n := res.Total.Failed(); n > 0 {
		return fmt.Errorf("load: %d of %d requests failed: see the report for why", n, res.Total.Requests)
	}
	return nil
}
