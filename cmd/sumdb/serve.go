package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/sumdb/sumdb/internal/authfile"
	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/explorer"
	"github.com/sumdb/sumdb/sumdb/explorer/index"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/sumdb/mirror"
	"github.com/sumdb/sumdb/sumdb/public"
	cosign "github.com/sumdb/sumdb/sumdb/witness"
	"github.com/sumdb/sumdb/tlog"
)

// Bounds on the server's phases.
const (
	connectTimeout  = 10 * time.Second // open the database, migrations included
	shutdownTimeout = 15 * time.Second // let requests in flight finish
	// shutdownGrace is how long requests in flight go on after a signal
	// before they are cancelled: a lookup still waiting for the upstream
	// then answers 503 rather than hold the process for up to
	// --upstream-timeout.
	shutdownGrace = 10 * time.Second
)

const serveUsage = `Usage: sumdb serve [flags]

Serve runs the checksum database. On start it prints one line to stdout,
	GOSUMDB="<verifier key> http://<address>"
for clients to use (https://<host> with --tls-cert or --acme-host, the host
a name the certificate covers), then logs to stderr. It stops on SIGINT or
SIGTERM.

Every flag can also be set in the environment as SUMDB_<FLAG> (dashes as
underscores, such as SUMDB_DATABASE_URL) and as a key of the YAML --config
file (such as "database-url: postgres://..."). The command line wins over the
environment, which wins over the config file.

Flags:
`

// runServe runs "sumdb serve".
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newServeFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, serveUsage+fs.FlagUsages())
			return nil
		}
		return usageErrorf("serve: %v (run sumdb serve --help)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("serve: unexpected argument %q (run sumdb serve --help)", fs.Arg(0))
	}
	cfg, err := loadServeConfig(ctx, fs, goEnv)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}

// newLogger returns the logger cfg asks for, writing to w.
func newLogger(cfg *ServeConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the checksum database described by cfg until ctx ends.
func serve(ctx context.Context, cfg *ServeConfig, stdout, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		logger.WarnContext(ctx, w)
	}

	// Check what needs no I/O first, so that a mistake there leaves no trace.
	up, err := fetch.New(fetch.Config{
		Proxy:      cfg.Upstream,
		Logger:     logger,
		Timeout:    cfg.UpstreamTimeout,
		MaxZipSize: int64(cfg.MaxZipSize),
	})
	if err != nil {
		return fmt.Errorf("%w: check --upstream", err)
	}

	// Released last, once the log and the store are closed.
	lock, err := holdDataDir(cfg)
	if err != nil {
		return err
	}
	defer lock.Close()

	// Before the store, so that a certificate to fix leaves no new store.
	tlsSetup, err := newTLSSetup(cfg, logger)
	if err != nil {
		return err
	}

	// The process's own registry, never the global default one.
	reg := prometheus.NewRegistry()
	var auth *authfile.Auth
	if cfg.AuthFile != "" {
		auth, err = authfile.New(authfile.Config{
			File:              cfg.AuthFile,
			Logger:            logger,
			Registerer:        reg,
			TrustProxyHeaders: cfg.TrustProxy,
		})
		if err != nil {
			return fmt.Errorf("%w: check --auth-file", err)
		}
	}

	st, backend, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.ErrorContext(ctx, "close store", "err", err)
		}
	}()

	k, err := loadKey(ctx, cfg, st, logger)
	if err != nil {
		return err
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := sumdb.NewMetrics(reg)
	if err != nil {
		return err
	}

	// The cosigner needs the log, and the log tells it of each commit: it
	// is set once the log is open.
	var cosigner atomic.Pointer[cosign.Cosigner]
	var indexer atomic.Pointer[index.Indexer]
	lg, err := tlog.Open(ctx, st, tlog.Config{
		Signer:   k.Signer,
		Verifier: k.Verifier,
		Logger:   logger,
		MaxQueue: cfg.MaxQueue,
		OnCommit: func(records int, d time.Duration) {
			metrics.ObserveCommit(records, d)
			if c := cosigner.Load(); c != nil {
				c.Notify()
			}
			if ix := indexer.Load(); ix != nil {
				ix.Notify()
			}
		},
		// The newest head served, outside the store: see "Backups and restore" in docs/operating.md.
		PublishedFile: filepath.Join(cfg.DataDir, "published-head"),
	})
	if err != nil {
		if errors.Is(err, tlog.ErrWrongKey) {
			return fmt.Errorf("open log: %w (the store must hold a log signed by the key in %s)", err, cfg.KeyFile)
		}
		return fmt.Errorf("open log: %w", err)
	}
	defer lg.Close()

	state, ok := st.(public.StateStore)
	if !ok {
		return fmt.Errorf("the %s store keeps no state for the cross-check with the public checksum database", backend)
	}
	fetcher, err := newFetcher(ctx, cfg, up, state, logger, reg)
	if err != nil {
		return err
	}

	// The index of module paths and commit times that the explorer
	// searches, kept beside the log (never in its commits).
	ixStore, ok := st.(index.Store)
	if !ok {
		return fmt.Errorf("the %s store keeps no index for the explorer", backend)
	}
	indexer.Store(index.New(lg, ixStore, logger))

	var latest func(context.Context) ([]byte, error)
	if len(cfg.witnessList) > 0 {
		cs, ok := st.(cosign.CosignatureStore)
		if !ok {
			return fmt.Errorf("the %s store keeps no cosignatures of witnesses", backend)
		}
		c, err := cosign.New(cosign.Config{
			Witnesses:  cfg.witnessList,
			Log:        lg,
			Store:      cs,
			Quorum:     cfg.WitnessQuorum,
			Logger:     logger,
			Registerer: reg,
		})
		if err != nil {
			return fmt.Errorf("%w: check --witness and --witness-quorum", err)
		}
		cosigner.Store(c)
		latest = c.Latest
	}

	// A first lookup waits for the upstream fetch and the append; the
	// server's write timeout must outlast it, or the answer is lost.
	lookupTimeout := cfg.UpstreamTimeout + time.Minute
	// 0 on the command line turns the not-found TTL, the fetch rate limit
	// and the caches off; to sumdb, 0 is the default and Disabled is off.
	app, err := sumdb.NewServer(sumdb.ServerConfig{
		Log:               lg,
		Fetcher:           fetcher,
		Logger:            logger,
		Metrics:           metrics,
		LookupTimeout:     lookupTimeout,
		MaxFetches:        cfg.MaxFetches,
		NotFoundTTL:       offIfZero(cfg.NotFoundTTL),
		FetchRate:         offIfZero(cfg.FetchRate),
		FetchBurst:        cfg.FetchBurst,
		TrustProxyHeaders: cfg.TrustProxy,
		TileCacheSize:     int64(offIfZero(cfg.TileCacheSize)),
		LookupCacheSize:   int64(offIfZero(cfg.LookupCacheSize)),
		Latest:            latest,
	})
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	// The log itself, and each mirror, under /sumdb/<name>/, as a module
	// proxy serves the checksum databases it supports.
	var mirrors []*mirror.Mirror
	ms, ok := st.(mirrorStore)
	if !ok && len(cfg.Mirrors) > 0 {
		return fmt.Errorf("the %s store keeps no mirror cache", backend)
	}
	for _, mv := range cfg.Mirrors {
		m, err := openMirror(ctx, mv, cfg.Upstream, ms, logger, reg)
		if err != nil {
			return fmt.Errorf("mirror %s: %w", shownGOSUMDB(mv), err)
		}
		if m.Name() == k.Signer.Name() {
			return fmt.Errorf("--mirror %s: the log itself has that name: a server cannot mirror another database under its own name", m.Name())
		}
		mirrors = append(mirrors, m)
	}
	handler := withMirrorStatus(mirror.NewHandler(app, k.Signer.Name(), mirrors...), mirrors, time.Now)
	handler = withWitnessStatus(handler, cosigner.Load(), time.Now)
	exIndex, ok := st.(explorer.Index)
	if !ok {
		return fmt.Errorf("the %s store keeps no index for the explorer", backend)
	}
	ex, err := explorer.New(explorer.Config{
		Log:    lg,
		Index:  exIndex,
		VKey:   k.VKey,
		Latest: latest,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	handler = withExplorer(handler, ex)

	metricsHandler := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Registry: reg,
	}))
	mainHandler, opsHandler := routes(handler, metricsHandler, cfg.MetricsListen != "")
	if auth != nil {
		// The metrics listener, if separate, stays open: it serves no part
		// of the log.
		mainHandler = auth.Wrap(mainHandler)
	}

	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	listen := func(addr, flag string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%w: choose another --%s address", err, flag)
		}
		listeners = append(listeners, ln)
		return ln, nil
	}
	ln, err := listen(cfg.Listen, "listen")
	if err != nil {
		return err
	}
	mainServer := newHTTPServer(mainHandler, logger, serveLimits(lookupTimeout))
	servers := []*http.Server{mainServer}
	var metricsAddr, acmeHTTPAddr string
	if cfg.MetricsListen != "" {
		mln, err := listen(cfg.MetricsListen, "metrics-listen")
		if err != nil {
			return err
		}
		metricsAddr = mln.Addr().String()
		servers = append(servers, newHTTPServer(opsHandler, logger, opsLimits()))
	}
	if tlsSetup != nil && tlsSetup.challenge != nil {
		aln, err := listen(cfg.ACMEHTTP, "acme-http")
		if err != nil {
			return err
		}
		acmeHTTPAddr = aln.Addr().String()
		servers = append(servers, newHTTPServer(tlsSetup.challenge, logger, opsLimits()))
	}
	addr := ln.Addr().String()
	baseURL, covered := "http://"+addr, true
	if tlsSetup != nil {
		// net/http speaks HTTP/2 over TLS, offered in NextProtos.
		mainServer.TLSConfig = tlsSetup.config
		var host string
		host, covered = tlsSetup.urlHost(k.Signer.Name(), addr)
		baseURL = "https://" + host
	}
	if _, err := fmt.Fprintf(stdout, "GOSUMDB=\"%s %s\"\n", k.VKey, baseURL); err != nil {
		closeAll()
		return fmt.Errorf("print GOSUMDB line: %w", err)
	}
	attrs := []any{
		"addr", addr,
		"url", baseURL,
		"name", k.Signer.Name(),
		"store", backend,
		"size", lg.Head().Size,
		"upstream", guard.RedactList(cfg.Upstream),
		"public_sumdb", shownGOSUMDB(cfg.PublicSumDB),
	}
	if cfg.Private != "" {
		attrs = append(attrs, "private", cfg.Private, "private_upstream", guard.RedactList(cfg.PrivateUpstream))
	}
	for _, m := range mirrors {
		attrs = append(attrs, "mirror", m.Name())
	}
	if c := cosigner.Load(); c != nil {
		for _, st := range c.Status() {
			attrs = append(attrs, "witness", st.Name+" "+st.URL)
		}
		attrs = append(attrs, "witness_quorum", cfg.WitnessQuorum)
	}
	if auth != nil {
		users, tokens := auth.Users()
		attrs = append(attrs, "auth_file", cfg.AuthFile, "auth_users", users, "auth_tokens", tokens)
	}
	attrs = append(attrs, tlsSetup.logAttrs()...)
	if metricsAddr != "" {
		attrs = append(attrs, "metrics_addr", metricsAddr)
	}
	if acmeHTTPAddr != "" {
		attrs = append(attrs, "acme_http_addr", acmeHTTPAddr)
	}
	logger.InfoContext(ctx, "serving", attrs...)
	if !covered {
		logger.WarnContext(ctx, "the TLS certificate names no host for the printed URL (neither the key's name, the address listened on, nor a name or address without a wildcard): clients will refuse it; point them at a name the certificate covers")
	}

	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	for _, srv := range servers {
		srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, srv := range servers {
		g.Go(func() error {
			serve := srv.Serve
			if srv.TLSConfig != nil {
				serve = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
			}
			if err := serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve http: %w", err)
			}
			return nil
		})
	}
	if c := cosigner.Load(); c != nil {
		g.Go(func() error {
			c.Run(gctx)
			return nil
		})
	}
	g.Go(func() error {
		indexer.Load().Run(gctx)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.InfoContext(ctx, "shutting down")
		grace := time.AfterFunc(shutdownGrace, cancelRequests)
		defer grace.Stop()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				// Connections still busy at the deadline: drop them, so that
				// the log and the store close with no request in flight.
				logger.WarnContext(ctx, "closing the connections still busy at the shutdown deadline", "timeout", shutdownTimeout, "err", err)
				srv.Close()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	logger.InfoContext(ctx, "stopped")
	return nil
}

// withExplorer returns a handler that serves the explorer's pages (the
// paths explorer.IsExplorerPath reports, none of the protocol's) with ex
// and every other path with next.
func withExplorer(next http.Handler, ex http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if explorer.IsExplorerPath(r.URL.Path) {
			ex.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// offIfZero returns sumdb.Disabled for 0, the value of a serve setting
// that 0 turns off, and any other value as it is.
func offIfZero[T ~int64 | ~float64](v T) T {
	if v == 0 {
		return sumdb.Disabled
	}
	return v
}

// routes returns the handler of the main listener and, for a separate
// metrics listener, the handler of that one. The main listener serves the
// checksum database (app), its health checks and, unless separate,
// /metrics; the metrics listener serves /metrics and the health checks.
// No http.ServeMux: it would redirect the non-canonical paths that app
// answers 400.
func routes(app, metrics http.Handler, separate bool) (main, ops http.Handler) {
	if !separate {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				metrics.ServeHTTP(w, r)
				return
			}
			app.ServeHTTP(w, r)
		}), nil
	}
	return app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			metrics.ServeHTTP(w, r)
		case "/healthz", "/readyz":
			app.ServeHTTP(w, r)
		default:
			http.Error(w, "not found: this address serves /metrics, /healthz and /readyz", http.StatusNotFound)
		}
	})
}

// httpLimits are the bounds an http.Server puts on its clients.
type httpLimits struct {
	readHeader     time.Duration // to send the request line and headers
	read           time.Duration // to send the whole request
	write          time.Duration // from the end of the headers to the end of the answer
	idle           time.Duration // between requests on a kept-alive connection
	maxHeaderBytes int
}

// serveLimits returns the limits of the main listener. A first lookup
// waits for the upstream fetch and the append, up to lookupTimeout: the
// write timeout must outlast it, or the answer is lost.
func serveLimits(lookupTimeout time.Duration) httpLimits {
	return httpLimits{
		readHeader:     10 * time.Second,
		read:           30 * time.Second,
		write:          lookupTimeout + 30*time.Second,
		idle:           2 * time.Minute,
		maxHeaderBytes: 64 << 10,
	}
}

// opsLimits returns the limits of the metrics listener, whose answers are
// quick.
func opsLimits() httpLimits {
	return httpLimits{
		readHeader:     10 * time.Second,
		read:           30 * time.Second,
		write:          time.Minute,
		idle:           2 * time.Minute,
		maxHeaderBytes: 64 << 10,
	}
}

// newHTTPServer returns the http.Server that serve runs: handler behind the
// limits lim, which cut off clients that send slowly, read slowly or not at
// all, and headers over lim.maxHeaderBytes (431). The handlers read no
// request body.
func newHTTPServer(handler http.Handler, logger *slog.Logger, lim httpLimits) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    lim.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// openStore opens the store cfg names, applying its migrations, and returns
// it with the name of its backend.
func openStore(ctx context.Context, cfg *ServeConfig) (tlog.Store, string, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if cfg.DatabaseURL != "" {
		st, err := store.OpenPostgres(ctx, cfg.DatabaseURL)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, "", fmt.Errorf("%w (no answer within %v)", err, connectTimeout)
			}
			return nil, "", err
		}
		return st, "postgres", nil
	}
	if err := durable.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data directory: %w", err)
	}
	file := cfg.SQLitePath()
	st, err := store.OpenSQLite(ctx, file)
	if err != nil {
		return nil, "", fmt.Errorf("open embedded store %s: %w", file, err)
	}
	// SQLite syncs the database file, not the directory entry of a new one.
	if err := durable.SyncDir(cfg.DataDir); err != nil {
		st.Close()
		return nil, "", fmt.Errorf("open embedded store %s: %w", file, err)
	}
	return st, "sqlite", nil
}

// loadKey reads the key file, or creates it if it does not exist and the
// store holds no log yet (a log that exists must keep its key).
func loadKey(ctx context.Context, cfg *ServeConfig, st tlog.Store, logger *slog.Logger) (*key, error) {
	k, err := readKeyFile(cfg.KeyFile)
	if errors.Is(err, errNoKeyFile) {
		head, herr := st.ReadHead(ctx)
		if herr != nil {
			return nil, fmt.Errorf("read stored head: %w", herr)
		}
		if head.Size > 0 {
			return nil, fmt.Errorf("key file %s does not exist, but the store holds a log of %d records: set --key-file to the key of that log", cfg.KeyFile, head.Size)
		}
		var skey string
		if k, skey, err = generateKey(cfg.Name); err != nil {
			return nil, err
		}
		if err := writeKeyFile(cfg.KeyFile, skey, durable.SyncDir); err != nil {
			return nil, err
		}
		logger.InfoContext(ctx, "created signer key", "file", cfg.KeyFile, "name", cfg.Name, "vkey", k.VKey)
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	if cfg.NameSet && k.Signer.Name() != cfg.Name {
		logger.WarnContext(ctx, "ignoring --name: the key file names the log", "name", cfg.Name, "key_name", k.Signer.Name(), "file", cfg.KeyFile)
	}
	return k, nil
}
