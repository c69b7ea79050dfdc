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

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/internal/goauth"
	"github.com/sumdb/sumdb/sumdb/audit"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

const auditUsage = `Usage: sumdb audit --state DIR [flags]

Audit clones a checksum database's whole log into DIR, through its data and
hash tiles, and verifies it: the signature of every tree head; every head
consistent with every head seen before; every hash tile recomputed from the
records and equal to the one served, and the root equal to the signed one;
every record two go.sum lines of one valid module version with h1 hashes;
no module version logged twice. A later run resumes where the last one
stopped and verifies the new heads against the ones kept in DIR.

The database is --sumdb, else the go command's GOSUMDB, reached as the go
command reaches it: at the URL given with the key, else through the first
proxy of GOPROXY that serves it, else at https://<name>, with the
credentials that GOAUTH gives (.netrc by default; the netrc and git modes;
over https only).

--follow keeps polling the log and verifying its new heads until interrupted
or a violation is found. --rehash N downloads N records picked at random
again from the module proxy (--upstream, default go env GOPROXY) and
compares their hashes with the log's.

` + witnessFlagsUsage + `For audit, every signed head fetched must meet the policy: the report and
the file "cosigned" of DIR record which witnesses cosigned each head, and
a head without the quorum fails the audit (exit status 1). With --follow,
it is logged and polled again; the audit fails if the last head fetched
lacks the quorum when it ends.

The report goes to stdout; progress and log lines to stderr.

Exit status:
  0  no violation
  1  a violation: the report names its kind, the record ids, tiles and
     signed heads involved; or, with a witness policy, the last signed
     head fetched lacks a quorum of cosignatures (NOT WITNESSED)
  2  a usage error
  3  the audit could not complete (network, server error, state directory);
     with --follow, the last poll before the interruption could not complete

--state, --interval, --concurrency, --upstream, --witness, --quorum and
--witness-policy can also be set as SUMDB_AUDIT_STATE, SUMDB_AUDIT_INTERVAL,
SUMDB_AUDIT_CONCURRENCY, SUMDB_AUDIT_UPSTREAM, SUMDB_AUDIT_WITNESS,
SUMDB_AUDIT_QUORUM and SUMDB_AUDIT_WITNESS_POLICY.

Flags:
`

// Defaults and bounds of the audit settings.
const (
	defaultAuditInterval    = time.Minute
	defaultAuditConcurrency = 8
	maxAuditConcurrency     = 64
)

// Exit statuses of audit.
const (
	statusViolation  = 1
	statusIncomplete = 3
)

// newAuditFlags returns the flag set of audit.
func newAuditFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("audit", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("sumdb", "", "checksum `database`: \"<verifier key> [URL]\", or the bare name of the go command's built-in checksum database (default: go env GOSUMDB)")
	fs.String("state", "", "`directory` of the clone and of the heads verified (required; created if missing)")
	fs.Bool("follow", false, "keep polling and verifying new heads until interrupted")
	fs.Duration("interval", defaultAuditInterval, "polling interval of --follow")
	fs.Int("rehash", 0, "download this `many` records picked at random again from the upstream and compare")
	fs.String("upstream", "", "GOPROXY-style `list` of module proxies for --rehash (default: go env GOPROXY)")
	fs.Int("concurrency", defaultAuditConcurrency, "tile requests in flight, 1 to 64")
	fs.Int64("limit", 0, "clone only the first `N` records (rounded up to 256), verified against the signed head; 0 for all")
	addWitnessFlags(fs)
	return fs
}

// An AuditConfig is the validated configuration of "sumdb audit". Viper
// decodes the settings into the fields tagged with their keys.
type AuditConfig struct {
	GOSUMDB     string        `mapstructure:"sumdb"` // which database
	State       string        `mapstructure:"state"`
	Follow      bool          `mapstructure:"follow"`
	Interval    time.Duration `mapstructure:"interval"`
	Rehash      int           `mapstructure:"rehash"`
	Upstream    string        `mapstructure:"upstream"` // module proxies for Rehash
	Concurrency int           `mapstructure:"concurrency"`
	Limit       int64         `mapstructure:"limit"`
	WitnessKeys []string      `mapstructure:"witness"`        // witness verifier keys
	Quorum      int           `mapstructure:"quorum"`         // of WitnessKeys; 0 for all
	PolicyFile  string        `mapstructure:"witness-policy"` // instead of WitnessKeys and Quorum

	Witnesses *witnessed.Policy `mapstructure:"-"` // from WitnessKeys and Quorum, or PolicyFile; nil for none

	GOPROXY  string              `mapstructure:"-"` // how to reach the database
	Auth     *goauth.Credentials `mapstructure:"-"` // the database's credentials, from GOAUTH
	Warnings []string            `mapstructure:"-"` // things the user may want to fix, to log once a logger exists
}

// runAudit runs "sumdb audit". The report is on stdout; the error is an
// *exitError carrying the exit status, or a usage error.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newAuditFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, auditUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("audit: %v (run sumdb audit --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("audit: unexpected argument %q (run sumdb audit --help)", fs.Arg(0))
	}
	cfg, err := loadAuditConfig(ctx, fs, goEnv)
	if err != nil {
		var uerr *usageError
		if errors.As(err, &uerr) {
			return err
		}
		return &exitError{code: statusIncomplete, err: err}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, w := range cfg.Warnings {
		logger.WarnContext(ctx, w)
	}
	// One connection per request in flight: the default transport keeps
	// only two idle per host, and would open and close the others.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Concurrency + 2
	remote, err := client.Open(ctx, client.Config{
		GOSUMDB: cfg.GOSUMDB,
		GOPROXY: cfg.GOPROXY,
		Client:  &http.Client{Timeout: time.Minute, Transport: transport},
		Logger:  logger,
		Auth:    cfg.Auth,
	})
	if err != nil {
		return &exitError{code: statusIncomplete, err: fmt.Errorf("audit: %w", err)}
	}
	acfg := audit.Config{
		Remote:      remote,
		Dir:         cfg.State,
		Follow:      cfg.Follow,
		Interval:    cfg.Interval,
		Rehash:      cfg.Rehash,
		Limit:       cfg.Limit,
		Concurrency: cfg.Concurrency,
		Progress:    stderr,
		Logger:      logger,
		Witnesses:   cfg.Witnesses,
	}
	if cfg.Rehash > 0 {
		up, err := fetch.New(fetch.Config{Proxy: cfg.Upstream, Logger: logger})
		if err != nil {
			return usageErrorf("audit: --rehash needs a module proxy: %v (set --upstream)", err)
		}
		acfg.Upstream = up
	}
	rep, runErr := audit.Run(ctx, acfg)
	if rep != nil {
		if err := rep.WriteText(stdout); err != nil {
			return &exitError{code: statusIncomplete, err: fmt.Errorf("audit: write report: %w", err)}
		}
		if !rep.OK() || rep.Unwitnessed != "" {
			// The violations are in the report; a later failure to
			// finish does not make them less true.
			if runErr != nil {
				fmt.Fprintf(stderr, "sumdb: audit: %s\n", oneLine(runErr))
			}
			return &exitError{code: statusViolation}
		}
	}
	if runErr != nil {
		return &exitError{code: statusIncomplete, err: fmt.Errorf("audit incomplete: %w", runErr)}
	}
	return nil
}

// oneLine returns err's message on one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// loadAuditConfig decodes the parsed flags fs, the SUMDB_AUDIT_*
// environment and the go command's settings into a validated AuditConfig.
// A flag on the command line wins over the environment, which wins over
// the default.
func loadAuditConfig(ctx context.Context, fs *pflag.FlagSet, goEnv goEnvFunc) (*AuditConfig, error) {
	s, err := newToolSettings("audit", fs)
	if err != nil {
		return nil, err
	}
	cfg := &AuditConfig{}
	rules := []rule{
		{"interval", "want a duration of at least 1s, such as 1m", &cfg.Interval,
			func() bool { return cfg.Interval >= time.Second }},
		{"rehash", "want a number of records, 0 for none", &cfg.Rehash,
			func() bool { return cfg.Rehash >= 0 }},
		{"concurrency", fmt.Sprintf("want a number from 1 to %d", maxAuditConcurrency), &cfg.Concurrency,
			func() bool { return cfg.Concurrency >= 1 && cfg.Concurrency <= maxAuditConcurrency }},
		{"limit", "want a number of records, 0 for all", &cfg.Limit,
			func() bool { return cfg.Limit >= 0 }},
	}
	rules = append(rules, witnessRules(&cfg.WitnessKeys, &cfg.Quorum)...)
	if err := s.decode(cfg, rules); err != nil {
		return nil, err
	}
	if cfg.GOSUMDB, err = gosumdb(ctx, s, cfg.GOSUMDB, goEnv); err != nil {
		return nil, err
	}
	if cfg.State == "" {
		return nil, usageErrorf("audit: --state is required: name the directory that keeps the clone (it can grow to several GB for a large log)")
	}
	if err := s.check(rules); err != nil {
		return nil, err
	}
	if cfg.Witnesses, err = witnessPolicy(s, cfg.WitnessKeys, cfg.Quorum, cfg.PolicyFile); err != nil {
		return nil, err
	}

	// GOPROXY also serves as the upstream of --rehash.
	if cfg.GOPROXY, err = reach(ctx, "audit", goEnv, cfg.GOSUMDB, cfg.Rehash > 0 && cfg.Upstream == "",
		"give the database's URL with --sumdb \"<verifier key> <URL>\", and --upstream for --rehash"); err != nil {
		return nil, err
	}
	if cfg.Upstream == "" {
		cfg.Upstream = cfg.GOPROXY
	}
	if cfg.Auth, err = goAuth(ctx, "audit", goEnv); err != nil {
		return nil, err
	}
	cfg.Warnings = unknownEnv(os.Environ())
	return cfg, nil
}
