package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"
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

// A LoadConfig is the validated configuration of "sumdb load". Viper
// decodes the settings into the fields tagged with their keys.
type LoadConfig struct {
	Target      string        `mapstructure:"target"`       // base URL of the checksum database
	Key         string        `mapstructure:"key"`          // verifier key; "" for none
	Duration    time.Duration `mapstructure:"duration"`     // how long requests are sent
	MaxRequests int64         `mapstructure:"max-requests"` // 0: no limit
	Rate        float64       `mapstructure:"rate"`         // requests per second; 0: flat out
	Concurrency int           `mapstructure:"concurrency"`  // requests in flight at most
	Mix         loadgen.Mix   `mapstructure:"mix"`
	ProxyListen string        `mapstructure:"proxy-listen"` // host:port of the module proxy serving misses
	Timeout     time.Duration `mapstructure:"timeout"`      // bound on each request
	Format      string        `mapstructure:"format"`       // "text" or "json"

	Verifier note.Verifier `mapstructure:"-"` // verifies tree heads, from Key; nil: parsed only
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

// loadLoadConfig decodes the parsed flags fs into a validated LoadConfig.
func loadLoadConfig(fs *pflag.FlagSet) (*LoadConfig, error) {
	// Flags only (see toolEnvKeys): a load is measured as its command
	// line says, whatever the environment of a server or another tool.
	s, err := newSettings("load", fs, "", nil)
	if err != nil {
		return nil, err
	}
	cfg := &LoadConfig{}
	rules := []rule{
		{"duration", fmt.Sprintf("want a duration from 1s to %v, such as 30s", loadgen.MaxDuration), &cfg.Duration,
			func() bool { return cfg.Duration > 0 && cfg.Duration <= loadgen.MaxDuration }},
		{"max-requests", "want 0 (no limit) or a number of requests", &cfg.MaxRequests,
			func() bool { return cfg.MaxRequests >= 0 }},
		{"rate", fmt.Sprintf("want 0 (flat out) or requests per second up to %g", float64(loadgen.MaxRate)), &cfg.Rate,
			func() bool { return cfg.Rate >= 0 && cfg.Rate <= loadgen.MaxRate }},
		{"concurrency", fmt.Sprintf("want a number from 1 to %d", loadgen.MaxConcurrency), &cfg.Concurrency,
			func() bool { return cfg.Concurrency >= 1 && cfg.Concurrency <= loadgen.MaxConcurrency }},
		{"timeout", "want a positive duration such as 30s", &cfg.Timeout,
			func() bool { return cfg.Timeout > 0 }},
	}
	if err := s.decode(cfg, rules); err != nil {
		return nil, err
	}
	if cfg.Target == "" {
		return nil, usageErrorf("load: --target is required, such as --target http://127.0.0.1:8080")
	}
	if err := loadgen.CheckTarget(cfg.Target); err != nil {
		return nil, s.invalid("target", "%v", err)
	}
	if cfg.Key != "" {
		if cfg.Verifier, err = note.NewVerifier(cfg.Key); err != nil {
			return nil, s.invalid("key", "not a verifier key (want the <name>+<hash>+<key> of the server's GOSUMDB line)")
		}
	}
	if err := s.check(rules); err != nil {
		return nil, err
	}
	if err := checkListen(cfg.ProxyListen); err != nil {
		return nil, s.invalid("proxy-listen", "%v", err)
	}
	cfg.Format = strings.ToLower(cfg.Format)
	if cfg.Format != "text" && cfg.Format != "json" {
		return nil, s.invalid("format", "%q (want text or json)", cfg.Format)
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
