package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/sumdb/public"
)

// loadOrganization checks the settings of an organization's log: the
// public checksum database that public modules are cross-checked with,
// the patterns of private module paths and where those come from, and the
// auth file. Defaults come from the go command's own settings, as the
// organization's developers have them.
func (cfg *ServeConfig) loadOrganization(ctx context.Context, s *settings, goEnv goEnvFunc) error {
	if _, set := s.origin("public-sumdb"); !set {
		v, err := goEnv(ctx, "GOSUMDB")
		if err != nil {
			return fmt.Errorf("no --public-sumdb set and cannot read the go command's GOSUMDB (%v): set --public-sumdb or %s to the public checksum database (\"<verifier key> [URL]\"), or off", err, envName("public-sumdb"))
		}
		cfg.PublicSumDB = v
	}
	cfg.PublicSumDB = strings.TrimSpace(cfg.PublicSumDB)
	if cfg.PublicSumDB == "" {
		// The go command's own default: the built-in database.
		cfg.PublicSumDB = client.DefaultGOSUMDB()
	}
	if cfg.PublicSumDB != "off" {
		// Open checks the key and the URL; with no proxy to ask, it needs
		// no network. serve resolves the database again, as the go command
		// reaches it.
		if _, err := client.Open(ctx, client.Config{GOSUMDB: cfg.PublicSumDB, GOPROXY: "off"}); err != nil {
			if _, set := s.origin("public-sumdb"); !set {
				return fmt.Errorf("no --public-sumdb set, and go env GOSUMDB: %w: set --public-sumdb or %s", err, envName("public-sumdb"))
			}
			return s.invalid("public-sumdb", "%v", err)
		}
	}

	if _, set := s.origin("private"); !set {
		p, err := privateFromGo(ctx, goEnv)
		switch {
		case err != nil && cfg.PublicSumDB != "off":
			// Guessing "none" could send private paths to the public log.
			return fmt.Errorf("no --private set and %v: set --private or %s to the patterns of your private module paths (GOPRIVATE syntax), or off for none", err, envName("private"))
		case err == nil:
			cfg.Private = p
		}
	}
	cfg.Private = strings.TrimSpace(cfg.Private)
	if cfg.Private == "off" {
		// No private paths, said where an empty value cannot be (an
		// environment variable set to nothing counts as unset).
		cfg.Private = ""
	}
	if err := checkPatterns(cfg.Private); err != nil {
		return s.invalid("private", "%v", err)
	}
	// module.MatchPrefixPatterns, which every matcher of private paths
	// uses, trims nothing: " example.com/x" would match no path, and the
	// path would go to the public services.
	cfg.Private = normalPatterns(cfg.Private)
	if _, set := s.origin("private"); !set && cfg.Private == "" && cfg.PublicSumDB != "off" {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("no private module paths (go env GONOSUMDB and GOPRIVATE are empty): every new module version is cross-checked with the public checksum database, and a private path would be sent to it and to the upstream; set --private (%s) to your private patterns, or to off if there are none", envName("private")))
	}

	if cfg.Private != "" && cfg.AuthFile == "" {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("--private is set but --auth-file is not: anyone who reaches the server can read the log, whose data tiles list every private module path it holds, and have the server look up private repositories with its own credentials; set --auth-file (%s) to the users who may read it", envName("auth-file")))
	}

	cfg.PrivateUpstream = strings.TrimSpace(cfg.PrivateUpstream)
	if cfg.PrivateUpstream == "" {
		return s.invalid("private-upstream", "empty (want a GOPROXY-style list, such as direct or https://proxy.internal,direct)")
	}
	direct, proxies := splitDirect(cfg.PrivateUpstream)
	if proxies {
		if _, err := fetch.New(fetch.Config{Proxy: cfg.PrivateUpstream}); err != nil {
			return s.invalid("private-upstream", "%v", err)
		}
	}
	if cfg.Private != "" && direct {
		if _, err := exec.LookPath("go"); err != nil {
			return s.invalid("private-upstream", "%s needs the go command, which is not installed here (%v): install Go, or name a module proxy that serves the private modules", guard.RedactList(cfg.PrivateUpstream), err)
		}
	}
	return nil
}

// normalPatterns returns the GOPRIVATE-style list with each pattern
// trimmed of spaces and the empty ones dropped.
func normalPatterns(list string) string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// privateFromGo returns the patterns of private module paths that the go
// command keeps out of the checksum database: GONOSUMDB, which defaults to
// GOPRIVATE.
func privateFromGo(ctx context.Context, goEnv goEnvFunc) (string, error) {
	for _, name := range []string{"GONOSUMDB", "GOPRIVATE"} {
		v, err := goEnv(ctx, name)
		if err != nil {
			return "", fmt.Errorf("cannot read the go command's %s (%v)", name, err)
		}
		if v = strings.TrimSpace(v); v != "" {
			return v, nil
		}
	}
	return "", nil
}

// checkPatterns checks a list of GOPRIVATE-style patterns: glob patterns
// of path prefixes, separated by commas.
func checkPatterns(list string) error {
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.ContainsAny(p, " \t\n\"'") {
			return fmt.Errorf("pattern %q holds a space or a quote (want glob patterns of module path prefixes separated by commas, such as *.corp.example.com,code.example.com/org/private)", p)
		}
		if _, err := path.Match(p, "x"); err != nil {
			return fmt.Errorf("pattern %q: %v", p, err)
		}
	}
	return nil
}

// splitDirect reports whether the GOPROXY-style list holds a "direct"
// entry, and whether it holds any other entry before an "off".
func splitDirect(list string) (direct, proxies bool) {
	for _, e := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '|' }) {
		switch strings.TrimSpace(e) {
		case "":
		case "off":
			return direct, proxies
		case "direct":
			direct = true
		default:
			proxies = true
		}
	}
	return direct, proxies
}

// publicRetry is how long a failure to reach the public checksum database
// is answered without trying again.
const publicRetry = 10 * time.Second

// A publicLog is the cross-check with the public checksum database, set up
// on first use: finding the database may need the network (a proxy's
// /sumdb/<name>/supported), and a server must start, and answer from its
// log, while the network is down. The set-up runs in the background, under
// its own bound: a lookup waits for it only as long as the lookup's own
// context lasts, and a client that goes away fails no other.
type publicLog struct {
	ctx      context.Context // of the server: the set-up ends with it
	gosumdb  string          // the --public-sumdb setting
	goproxy  string          // the proxies through which to find it
	next     fetch.Fetcher
	private  string
	state    public.StateStore
	logger   *slog.Logger
	register prometheus.Registerer
	now      func() time.Time

	mu      sync.Mutex
	cc      *public.CrossCheck // guarded by mu; nil until set up
	setup   chan struct{}      // guarded by mu; closed when the set-up in progress ends; nil if none is
	err     error              // guarded by mu; the last failure to set up
	errTime time.Time          // guarded by mu; when it failed
}

// publicSetupTimeout bounds the set-up of the cross-check: finding the
// database through the proxies.
const publicSetupTimeout = time.Minute

// Fetch fetches path@version through the cross-check.
func (p *publicLog) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	cc, err := p.crossCheck(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s@%s: the public checksum database cannot be reached; retry later", fetch.ErrRetryLater, path, version)
	}
	return cc.Fetch(ctx, path, version)
}

// start sets the cross-check up at once, so that its metrics and a fork
// found before the restart show without waiting for the first new public
// module version (open logs the fork).
func (p *publicLog) start() {
	go p.crossCheck(p.ctx) // a failure is logged; the first lookup tries again
}

// crossCheck returns the cross-check once it is set up, starting the
// set-up if none is in progress and the last one did not fail less than
// publicRetry ago. It waits for the set-up as long as ctx lasts.
func (p *publicLog) crossCheck(ctx context.Context) (*public.CrossCheck, error) {
	p.mu.Lock()
	if p.cc != nil {
		p.mu.Unlock()
		return p.cc, nil
	}
	if p.setup == nil {
		if p.err != nil && p.now().Sub(p.errTime) < publicRetry {
			err := p.err
			p.mu.Unlock()
			return nil, err
		}
		p.setup = make(chan struct{})
		go p.open(p.setup)
	}
	done := p.setup
	p.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cc != nil {
		return p.cc, nil
	}
	return nil, p.err
}

// open sets the cross-check up and closes done.
func (p *publicLog) open(done chan struct{}) {
	ctx, cancel := context.WithTimeout(p.ctx, publicSetupTimeout)
	defer cancel()
	remote, err := client.Open(ctx, client.Config{GOSUMDB: p.gosumdb, GOPROXY: p.goproxy, Logger: p.logger})
	var cc *public.CrossCheck
	if err == nil {
		cc, err = public.New(public.Config{
			Remote:     remote,
			Next:       p.next,
			Private:    p.private,
			State:      p.state,
			Logger:     p.logger,
			Registerer: p.register,
		})
	}
	if err != nil {
		p.logger.ErrorContext(ctx, "cannot reach the public checksum database: new public module versions are refused until it can be reached", "public_sumdb", shownGOSUMDB(p.gosumdb), "err", err)
	} else {
		p.logger.InfoContext(ctx, "public checksum database reached", "name", remote.Verifier.Name(), "url", remote.Base)
		// A fork found before the restart, or by another replica, shows
		// at once, in the log and in sumdb_public_fork.
		if evidence, err := cc.Fork(ctx); err == nil && evidence != "" {
			p.logger.ErrorContext(ctx, "the public checksum database showed a fork: every new public module version is refused until an operator investigates and runs sumdb public-fork --clear", "evidence", evidence)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cc, p.setup = cc, nil
	if err != nil {
		p.err, p.errTime = err, p.now()
	}
	close(done)
}

// shownGOSUMDB returns a GOSUMDB value as logs show it: its URL redacted.
func shownGOSUMDB(v string) string {
	f := strings.Fields(v)
	if len(f) == 2 {
		f[1] = guard.RedactURL(f[1])
	}
	return strings.Join(f, " ")
}

// newFetcher returns the fetcher of the server cfg describes: the public
// upstream up, behind the cross-check with the public checksum database
// unless it is off, and the private upstream for the private paths. st
// keeps the cross-check's newest verified public head.
func newFetcher(ctx context.Context, cfg *ServeConfig, up *fetch.Upstream, st public.StateStore, logger *slog.Logger, reg prometheus.Registerer) (sumdb.Fetcher, error) {
	var fetcher fetch.Fetcher = up
	if cfg.PublicSumDB != "off" {
		pl := &publicLog{
			ctx:      ctx,
			gosumdb:  cfg.PublicSumDB,
			goproxy:  cfg.Upstream,
			next:     up,
			private:  cfg.Private,
			state:    st,
			logger:   logger,
			register: reg,
			now:      time.Now,
		}
		pl.start()
		fetcher = pl
	}
	if cfg.Private == "" {
		return fetcher, nil
	}
	var direct fetch.Fetcher
	if hasDirect, _ := splitDirect(cfg.PrivateUpstream); hasDirect {
		gc, err := fetch.NewGoCommand(fetch.GoCommandConfig{
			Private:    cfg.Private,
			Timeout:    cfg.UpstreamTimeout,
			MaxZipSize: int64(cfg.MaxZipSize),
			Logger:     logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: check --private-upstream", err)
		}
		direct = gc
	}
	priv, err := fetch.New(fetch.Config{
		Proxy:      cfg.PrivateUpstream,
		Direct:     direct,
		Timeout:    cfg.UpstreamTimeout,
		MaxZipSize: int64(cfg.MaxZipSize),
		Logger:     logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: check --private-upstream", err)
	}
	return &fetch.Route{Private: cfg.Private, PrivateFetcher: priv, PublicFetcher: fetcher}, nil
}
