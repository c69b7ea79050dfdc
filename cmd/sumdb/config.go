package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/mod/zip"

	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

// envPrefix prefixes the environment variable of every serve setting:
// --data-dir is SUMDB_DATA_DIR.
const envPrefix = "SUMDB"

// Defaults of the serve settings.
const (
	defaultListen          = "127.0.0.1:8080"
	defaultDataDir         = "sumdb-data"
	defaultKeyFileName     = "signer.key" // in the data directory
	defaultDBFileName      = "sumdb.db"   // in the data directory
	defaultUpstreamTimeout = 2 * time.Minute
	defaultMaxZipSize      = zip.MaxZipFile
	defaultLogFormat       = "text"
	defaultLogLevel        = "info"
	defaultMaxFetches      = 16
	defaultMaxQueue        = 16384
	defaultNotFoundTTL     = time.Minute
	// A first download of a large project by one client needs one fetch
	// per module version new to the log, and the go command fails on a
	// 429: the burst is generous, the rate bounds a sustained storm.
	defaultFetchRate  = 10.0
	defaultFetchBurst = 1000

	// defaultName is the key name of a log whose operator did not choose
	// one. It is a clean host name that is not anybody's checksum database:
	// the .localhost domain is reserved for loopback (RFC 6761).
	defaultName = "sumdb.localhost"
)

// A ServeConfig is the validated configuration of "sumdb serve".
type ServeConfig struct {
	Listen          string        // address to listen on, host:port; port 0 picks a free port
	DataDir         string        // directory of the embedded store and the default key file
	DatabaseURL     string        // postgres:// URL; empty means the embedded store in DataDir
	KeyFile         string        // signer key file; never empty after loading
	Name            string        // key name, used only when a key is created
	NameSet         bool          // Name was given by the user, not the default
	Upstream        string        // GOPROXY-style list of module proxies
	UpstreamTimeout time.Duration // bound on fetching one module version
	MaxZipSize      int64         // largest module zip accepted, and its largest uncompressed size, in bytes
	LogFormat       string        // "text" or "json"
	LogLevel        slog.Level
	MaxFetches      int           // concurrent upstream fetches
	MaxQueue        int           // appends waiting for the sequencer before 503
	NotFoundTTL     time.Duration // how long an upstream not-found is remembered; 0 disables
	FetchRate       float64       // per client, per second; 0 disables the limit
	FetchBurst      int           // per client, at once
	TrustProxy      bool          // take the client from X-Forwarded-For
	MetricsListen   string        // separate host:port for /metrics, /healthz, /readyz; empty: the main listener
	TileCacheSize   int64         // bytes of tiles kept in memory; 0 disables the cache
	LookupCacheSize int64         // bytes of logged records kept in memory; 0 disables the cache
	TLSCert         string        // PEM certificate chain file for HTTPS; empty: plain HTTP, or ACME
	TLSKey          string        // PEM private key file of TLSCert; set exactly when TLSCert is
	ACMEHosts       []string      // host names to get certificates for from an ACME CA; excludes TLSCert
	ACMEEmail       string        // contact address given to the ACME CA; optional
	ACMEDirectory   string        // ACME directory URL; empty: autocert's default (Let's Encrypt)
	ACMEHTTP        string        // host:port answering HTTP-01 challenges; empty: TLS-ALPN-01 only
	ConfigFile      string        // the config file read, if any
	Warnings        []string      // things the user may want to fix, to log once a logger exists
}

// SQLitePath returns the file of the embedded store.
func (c *ServeConfig) SQLitePath() string { return filepath.Join(c.DataDir, defaultDBFileName) }

// serveKeys are the settings of serve, in the order of --help. Each is a
// flag, an environment variable and a config file key.
var serveKeys = []string{
	"listen", "data-dir", "database-url", "key-file", "name",
	"upstream", "upstream-timeout", "max-zip-size", "log-format", "log-level",
	"max-fetches", "max-queue", "not-found-ttl", "fetch-rate", "fetch-burst",
	"trust-proxy-headers", "metrics-listen", "tile-cache-size", "lookup-cache-size",
	"tls-cert", "tls-key", "acme-host", "acme-email", "acme-directory", "acme-http",
}

// newServeFlags returns the flag set of serve.
func newServeFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("config", "", "read settings from this YAML `file` (keys are the flag names)")
	fs.String("listen", defaultListen, "listen on this `host:port` (port 0 picks a free port)")
	fs.String("data-dir", defaultDataDir, "`directory` of the embedded store and of the default key file")
	fs.String("database-url", "", "PostgreSQL `URL` (postgres://...) or keyword/value string; empty means the embedded store in the data directory")
	fs.String("key-file", "", "signer key `file` (default <data-dir>/"+defaultKeyFileName+", created on first start)")
	fs.String("name", defaultName, "key `name` (host[/path]) of a key created on first start")
	fs.String("upstream", "", "GOPROXY-style `list` of module proxies to fetch from (default: go env GOPROXY)")
	fs.Duration("upstream-timeout", defaultUpstreamTimeout, "bound on fetching one module version from the upstream")
	fs.Int64("max-zip-size", defaultMaxZipSize, "largest module zip accepted, and largest total size of its files uncompressed, in `bytes`")
	fs.String("log-format", defaultLogFormat, "log `format`: text or json")
	fs.String("log-level", defaultLogLevel, "log `level`: debug, info, warn or error")
	fs.Int("max-fetches", defaultMaxFetches, "most upstream fetches in progress at once")
	fs.Int("max-queue", defaultMaxQueue, "most new records waiting to be logged; beyond it first lookups get 503")
	fs.Duration("not-found-ttl", defaultNotFoundTTL, "how long an upstream \"not found\" is remembered (0 disables)")
	fs.Float64("fetch-rate", defaultFetchRate, "lookups needing an upstream fetch allowed per client per second, a `number`; beyond it 429 (0 disables)")
	fs.Int("fetch-burst", defaultFetchBurst, "lookups needing an upstream fetch allowed per client at once")
	fs.Bool("trust-proxy-headers", false, "identify clients by the last X-Forwarded-For address (only behind a proxy that sets it)")
	fs.String("metrics-listen", "", "serve /metrics, /healthz and /readyz on this `host:port` instead of --listen")
	fs.Int64("tile-cache-size", sumdb.DefaultTileCacheSize, "keep up to this many `bytes` of tiles in memory (0 disables the cache)")
	fs.Int64("lookup-cache-size", sumdb.DefaultLookupCacheSize, "keep up to this many `bytes` of logged records in memory for lookups (0 disables the cache)")
	fs.String("tls-cert", "", "serve HTTPS with the certificate chain in this PEM `file` (with --tls-key); reloaded when it changes")
	fs.String("tls-key", "", "private key PEM `file` of --tls-cert; reloaded when it changes")
	fs.StringSlice("acme-host", nil, "serve HTTPS with certificates for this public host `name` from an ACME CA, whose terms of service you accept (repeat, or separate names with commas)")
	fs.String("acme-email", "", "contact `address` given to the ACME CA, for notices about the certificates")
	fs.String("acme-directory", "", "ACME directory `URL` (default "+autocert.DefaultACMEDirectory+")")
	fs.String("acme-http", "", "also answer ACME HTTP-01 challenges on this `host:port` (the CA asks on port 80); other requests there are redirected to https")
	return fs
}

// envName returns the environment variable of a setting.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// toolEnvKeys are, by command, the flags of check and audit that may also
// be set in the environment, as SUMDB_<COMMAND>_<FLAG> (toolEnvName).
//
// A variable means the same to every command that reads it. A setting of a
// command's own has the command in its name, so that check's --state (a
// file) and audit's --state (a directory), or their --concurrency, never
// change each other, and serve's SUMDB_UPSTREAM never changes the proxies
// audit rehashes from. export and import read serve's SUMDB_DATA_DIR,
// SUMDB_DATABASE_URL and SUMDB_KEY_FILE, which name the same store and
// key; keygen and load take flags only.
var toolEnvKeys = map[string][]string{
	"check": {"state", "format", "concurrency"},
	"audit": {"state", "interval", "concurrency", "upstream"},
}

// toolEnvName returns the environment variable of the flag key of the
// command cmd: SUMDB_CHECK_STATE for check's --state.
func toolEnvName(cmd, key string) string { return envName(cmd + "-" + key) }

// A goEnvFunc returns the value of a go command setting, as "go env NAME" prints it.
type goEnvFunc func(ctx context.Context, name string) (string, error)

// goEnv runs "go env name".
func goEnv(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "env", name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("go env %s: %w: %s", name, err, msg)
		}
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// loadServeConfig merges the parsed flags fs, the SUMDB_* environment and
// the config file into a validated ServeConfig. A flag set on the command
// line wins over the environment, which wins over the config file, which
// wins over the defaults. goEnv is asked for GOPROXY when no upstream is set.
func loadServeConfig(ctx context.Context, fs *pflag.FlagSet, goEnv goEnvFunc) (*ServeConfig, error) {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return nil, fmt.Errorf("bind flags: %w", err)
	}

	cfg := &ServeConfig{}
	cfg.ConfigFile = v.GetString("config")
	if cfg.ConfigFile != "" {
		settings, err := readConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(settings); err != nil {
			return nil, fmt.Errorf("config file %s: %w", cfg.ConfigFile, err)
		}
	}

	// source names the place a setting's value came from, for error
	// messages, and reports whether the user set it.
	source := func(key string) (where string, set bool) {
		if f := fs.Lookup(key); f != nil && f.Changed {
			return "--" + key, true
		}
		// Viper ignores empty environment variables, and so does this.
		if val, ok := os.LookupEnv(envName(key)); ok && val != "" {
			return envName(key), true
		}
		if cfg.ConfigFile != "" && v.InConfig(key) {
			return fmt.Sprintf("%s in %s", key, cfg.ConfigFile), true
		}
		return "the default --" + key, false
	}
	where := func(key string) string {
		w, _ := source(key)
		return w
	}
	// bad returns the error for an invalid value of key: a usage error if
	// it came from the command line.
	bad := func(key, format string, args ...any) error {
		err := fmt.Errorf("invalid %s: %s", where(key), fmt.Sprintf(format, args...))
		if f := fs.Lookup(key); f != nil && f.Changed {
			return &usageError{err}
		}
		return err
	}
	str := func(key string) (string, error) {
		s, err := cast.ToStringE(v.Get(key))
		if err != nil {
			return "", bad(key, "want a string")
		}
		return strings.TrimSpace(s), nil
	}

	var err error
	if cfg.Listen, err = str("listen"); err != nil {
		return nil, err
	}
	if err := checkListen(cfg.Listen); err != nil {
		return nil, bad("listen", "%v", err)
	}

	if cfg.DataDir, err = str("data-dir"); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, bad("data-dir", "empty (name a directory; it is created if missing)")
	}

	if cfg.DatabaseURL, err = str("database-url"); err != nil {
		return nil, err
	}
	if err := checkDatabaseURL(cfg.DatabaseURL); err != nil {
		return nil, bad("database-url", "%v", err)
	}

	if cfg.KeyFile, err = str("key-file"); err != nil {
		return nil, err
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(cfg.DataDir, defaultKeyFileName)
	}

	if cfg.Name, err = str("name"); err != nil {
		return nil, err
	}
	if err := checkName(cfg.Name); err != nil {
		return nil, bad("name", "%v", err)
	}
	_, cfg.NameSet = source("name")

	if cfg.Upstream, err = str("upstream"); err != nil {
		return nil, err
	}
	if cfg.Upstream == "" {
		proxy, err := goEnv(ctx, "GOPROXY")
		if err != nil {
			return nil, fmt.Errorf("no upstream set and cannot read the go command's GOPROXY (%v): set --upstream or %s to your module proxy URL", err, envName("upstream"))
		}
		if proxy == "" || proxy == "off" || proxy == "direct" {
			return nil, fmt.Errorf("no upstream set and go env GOPROXY is %q, which is no module proxy: set --upstream or %s to your module proxy URL", proxy, envName("upstream"))
		}
		cfg.Upstream = proxy
	}
	// Parse the upstream list now, so that a mistake in it is reported as
	// the setting's.
	if _, err := fetch.New(fetch.Config{Proxy: cfg.Upstream}); err != nil {
		if _, set := source("upstream"); !set {
			return nil, fmt.Errorf("no upstream set, and go env GOPROXY %q: %w: set --upstream or %s to your module proxy URL", redactList(cfg.Upstream), err, envName("upstream"))
		}
		return nil, bad("upstream", "%v", err)
	}

	if cfg.UpstreamTimeout, err = toDuration(v.Get("upstream-timeout")); err != nil || cfg.UpstreamTimeout <= 0 {
		return nil, bad("upstream-timeout", "want a positive duration such as 2m or 30s")
	}

	if cfg.MaxZipSize, err = cast.ToInt64E(v.Get("max-zip-size")); err != nil || cfg.MaxZipSize <= 0 || cfg.MaxZipSize > zip.MaxZipFile {
		return nil, bad("max-zip-size", "want a number of bytes from 1 to %d", int64(zip.MaxZipFile))
	}

	if cfg.LogFormat, err = str("log-format"); err != nil {
		return nil, err
	}
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, bad("log-format", "%q (want text or json)", cfg.LogFormat)
	}

	level, err := str("log-level")
	if err != nil {
		return nil, err
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, bad("log-level", "%q (want debug, info, warn or error)", level)
	}

	if cfg.MaxFetches, err = cast.ToIntE(v.Get("max-fetches")); err != nil || cfg.MaxFetches < 1 || cfg.MaxFetches > 4096 {
		return nil, bad("max-fetches", "want a number from 1 to 4096")
	}
	if cfg.MaxQueue, err = cast.ToIntE(v.Get("max-queue")); err != nil || cfg.MaxQueue < 1 || cfg.MaxQueue > 1<<24 {
		return nil, bad("max-queue", "want a number from 1 to %d", 1<<24)
	}
	if cfg.NotFoundTTL, err = toDuration(v.Get("not-found-ttl")); err != nil || cfg.NotFoundTTL < 0 {
		return nil, bad("not-found-ttl", "want a duration such as 1m or 30s, or 0 to disable")
	}
	if cfg.FetchRate, err = cast.ToFloat64E(v.Get("fetch-rate")); err != nil || !(cfg.FetchRate >= 0) || math.IsInf(cfg.FetchRate, 0) {
		return nil, bad("fetch-rate", "want a number of fetches per second such as 10 or 0.5, or 0 to disable")
	}
	if cfg.FetchBurst, err = cast.ToIntE(v.Get("fetch-burst")); err != nil || cfg.FetchBurst < 1 {
		return nil, bad("fetch-burst", "want a number of fetches of at least 1")
	}
	if cfg.TrustProxy, err = cast.ToBoolE(v.Get("trust-proxy-headers")); err != nil {
		return nil, bad("trust-proxy-headers", "want true or false")
	}
	if cfg.MetricsListen, err = str("metrics-listen"); err != nil {
		return nil, err
	}
	if cfg.MetricsListen != "" {
		if err := checkListen(cfg.MetricsListen); err != nil {
			return nil, bad("metrics-listen", "%v", err)
		}
	}

	if cfg.TileCacheSize, err = cast.ToInt64E(v.Get("tile-cache-size")); err != nil || cfg.TileCacheSize < 0 {
		return nil, bad("tile-cache-size", "want a number of bytes such as %d, or 0 to disable the cache", int64(sumdb.DefaultTileCacheSize))
	}
	if cfg.LookupCacheSize, err = cast.ToInt64E(v.Get("lookup-cache-size")); err != nil || cfg.LookupCacheSize < 0 {
		return nil, bad("lookup-cache-size", "want a number of bytes such as %d, or 0 to disable the cache", int64(sumdb.DefaultLookupCacheSize))
	}

	if err := loadTLSConfig(cfg, v, str, source, bad); err != nil {
		return nil, err
	}

	cfg.Warnings = unknownEnv(os.Environ())
	return cfg, nil
}

// maxACMEHosts bounds --acme-host: each name is one certificate to obtain
// and renew.
const maxACMEHosts = 100

// loadTLSConfig reads and checks the TLS settings of serve into cfg: a
// certificate from files or from an ACME CA, or neither (plain HTTP). The
// files are read when serve starts, not here.
func loadTLSConfig(cfg *ServeConfig, v *viper.Viper, str func(string) (string, error),
	source func(string) (string, bool), bad func(key, format string, args ...any) error) error {
	var err error
	for _, s := range []struct {
		key string
		dst *string
	}{
		{"tls-cert", &cfg.TLSCert}, {"tls-key", &cfg.TLSKey}, {"acme-email", &cfg.ACMEEmail},
		{"acme-directory", &cfg.ACMEDirectory}, {"acme-http", &cfg.ACMEHTTP},
	} {
		if *s.dst, err = str(s.key); err != nil {
			return err
		}
	}
	if cfg.ACMEHosts, err = toList(v.Get("acme-host")); err != nil {
		return bad("acme-host", "want host names, as a list or separated by commas")
	}

	// conflict returns the error for key, set together with or without
	// other: a usage error if key came from the command line.
	conflict := func(key, format string, args ...any) error {
		where, _ := source(key)
		err := fmt.Errorf("%s %s", where, fmt.Sprintf(format, args...))
		if strings.HasPrefix(where, "--") {
			return &usageError{err}
		}
		return err
	}
	switch {
	case cfg.TLSCert != "" && cfg.TLSKey == "":
		return conflict("tls-cert", "is set without --tls-key: give the private key of the certificate with --tls-key or %s", envName("tls-key"))
	case cfg.TLSKey != "" && cfg.TLSCert == "":
		return conflict("tls-key", "is set without --tls-cert: give the certificate with --tls-cert or %s", envName("tls-cert"))
	case cfg.TLSCert != "" && len(cfg.ACMEHosts) > 0:
		return conflict("acme-host", "and --tls-cert exclude each other: serve a certificate from files, or from an ACME CA, not both")
	}
	if len(cfg.ACMEHosts) == 0 {
		for _, key := range []string{"acme-email", "acme-directory", "acme-http"} {
			if _, set := source(key); set {
				return conflict(key, "is set without --acme-host: name the host to get certificates for with --acme-host, or unset it")
			}
		}
		return nil
	}

	if len(cfg.ACMEHosts) > maxACMEHosts {
		return bad("acme-host", "%d names, want at most %d", len(cfg.ACMEHosts), maxACMEHosts)
	}
	for _, h := range cfg.ACMEHosts {
		if err := checkACMEHost(h); err != nil {
			return bad("acme-host", "%v", err)
		}
	}
	if cfg.ACMEEmail != "" {
		// The CA gets "mailto:" and the address: nothing more.
		if a, err := mail.ParseAddress(cfg.ACMEEmail); err != nil || a.Address != cfg.ACMEEmail || a.Name != "" {
			return bad("acme-email", "%q (want a bare address such as ops@example.com)", cfg.ACMEEmail)
		}
	}
	if cfg.ACMEDirectory != "" {
		// RFC 8555, section 6.1: ACME runs over HTTPS.
		u, err := url.Parse(cfg.ACMEDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("acme-directory", "%s (want the https:// URL of an ACME directory, or nothing for %s)", redactURL(cfg.ACMEDirectory), autocert.DefaultACMEDirectory)
		}
	}
	if cfg.ACMEHTTP != "" {
		if err := checkListen(cfg.ACMEHTTP); err != nil {
			return bad("acme-http", "%v", err)
		}
	}
	return nil
}

// toList returns the names of a list setting: a list from a flag or the
// config file, or a string from the environment, each item possibly a
// comma-separated list itself. Empty items are dropped.
func toList(v any) ([]string, error) {
	var items []string
	switch v := v.(type) {
	case nil:
	case string:
		items = []string{v}
	case []string:
		items = v
	case []any:
		for _, e := range v {
			s, err := cast.ToStringE(e)
			if err != nil {
				return nil, err
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("%v is no list", v)
	}
	var list []string
	for _, item := range items {
		for _, s := range strings.Split(item, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
	}
	return list, nil
}

// checkACMEHost checks a host name to get certificates for: a public DNS
// name, which is all an ACME CA validates and all autocert serves (it
// refuses a TLS server name without a dot).
func checkACMEHost(h string) error {
	if net.ParseIP(h) != nil {
		return fmt.Errorf("%q is an IP address (want a public host name such as sum.example.com)", h)
	}
	if err := checkHostName(h); err != nil {
		return err
	}
	if !strings.Contains(h, ".") {
		return fmt.Errorf("%q has no dot (want a public host name such as sum.example.com)", h)
	}
	return nil
}

// toDuration returns the duration of a setting: a time.Duration from a
// flag, or a string with a unit ("30s", "2m") from the environment or a
// config file. A bare number is refused, except 0: cast would read "30" as
// 30 nanoseconds, where the flag refuses it for its missing unit.
func toDuration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case time.Duration:
		return v, nil
	case string:
		return time.ParseDuration(strings.TrimSpace(v))
	}
	if n, err := cast.ToFloat64E(v); err == nil && n == 0 {
		return 0, nil
	}
	return 0, fmt.Errorf("%v is no duration: give its unit, such as 30s or 2m", v)
}

// readConfigFile reads a YAML config file and refuses keys that are not
// settings, so that a misspelt key is not silently ignored.
func readConfigFile(file string) (map[string]any, error) {
	fv := viper.New()
	fv.SetConfigFile(file)
	fv.SetConfigType("yaml")
	if err := fv.ReadInConfig(); err != nil {
		var perr *os.PathError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("read config file: %w", perr)
		}
		return nil, fmt.Errorf("read config file %s: %w (want YAML such as \"listen: 127.0.0.1:8080\")", file, err)
	}
	for _, k := range fv.AllKeys() {
		if !slices.Contains(serveKeys, k) {
			return nil, fmt.Errorf("config file %s: unknown key %q (known keys: %s)", file, k, strings.Join(serveKeys, ", "))
		}
	}
	return fv.AllSettings(), nil
}

// unknownEnv returns a warning for each SUMDB_* variable in environ that
// no command reads: most likely a typo the user wants to know about, or
// a tool's setting without its command in the name (SUMDB_STATE).
func unknownEnv(environ []string) []string {
	known := map[string]bool{envName("config"): true}
	for _, k := range serveKeys {
		known[envName(k)] = true
	}
	// meant lists the variables of the tools' settings by their name
	// without the command: SUMDB_STATE → SUMDB_AUDIT_STATE, SUMDB_CHECK_STATE.
	meant := make(map[string][]string)
	for _, cmd := range slices.Sorted(maps.Keys(toolEnvKeys)) {
		for _, k := range toolEnvKeys[cmd] {
			known[toolEnvName(cmd, k)] = true
			meant[envName(k)] = append(meant[envName(k)], toolEnvName(cmd, k))
		}
	}
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		// SUMDB_TEST_* configure the tests, not the commands.
		if !strings.HasPrefix(name, envPrefix+"_") || strings.HasPrefix(name, envPrefix+"_TEST_") || known[name] {
			continue
		}
		w := fmt.Sprintf("ignoring environment variable %s: no such setting", name)
		if m := meant[name]; len(m) > 0 {
			w += fmt.Sprintf(" (did you mean %s?)", strings.Join(m, " or "))
		}
		warnings = append(warnings, w)
	}
	return warnings
}

// A toolConfig reads the settings of check or audit: its parsed flags, the
// environment variables toolEnvKeys gives the command, and the go command's
// settings. A flag on the command line wins over the environment, which
// wins over the flag's default.
type toolConfig struct {
	ctx   context.Context
	cmd   string // "check" or "audit", for messages
	fs    *pflag.FlagSet
	v     *viper.Viper
	goEnv goEnvFunc
}

func newToolConfig(ctx context.Context, cmd string, fs *pflag.FlagSet, goEnv goEnvFunc) (*toolConfig, error) {
	v := viper.New()
	if err := v.BindPFlags(fs); err != nil {
		return nil, fmt.Errorf("bind flags: %w", err)
	}
	for _, k := range toolEnvKeys[cmd] {
		if err := v.BindEnv(k, toolEnvName(cmd, k)); err != nil {
			return nil, fmt.Errorf("bind environment: %w", err)
		}
	}
	return &toolConfig{ctx: ctx, cmd: cmd, fs: fs, v: v, goEnv: goEnv}, nil
}

// get returns the value of the setting key.
func (c *toolConfig) get(key string) any { return c.v.Get(key) }

// str returns the value of the setting key as a string, trimmed.
func (c *toolConfig) str(key string) string { return strings.TrimSpace(cast.ToString(c.v.Get(key))) }

// bad returns the usage error for an invalid value of the setting key,
// naming where the value came from.
func (c *toolConfig) bad(key, format string, args ...any) error {
	where := "--" + key
	if !c.fs.Lookup(key).Changed && slices.Contains(toolEnvKeys[c.cmd], key) {
		if val, ok := os.LookupEnv(toolEnvName(c.cmd, key)); ok && val != "" {
			where = toolEnvName(c.cmd, key)
		}
	}
	return usageErrorf("%s: invalid %s: %s", c.cmd, where, fmt.Sprintf(format, args...))
}

// fromGo returns the go command's setting name; why says what to give
// instead if the go command cannot tell.
func (c *toolConfig) fromGo(name, why string) (string, error) {
	val, err := c.goEnv(c.ctx, name)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read the go command's %s (%v): %s", c.cmd, name, err, why)
	}
	return val, nil
}

// gosumdb returns the checksum database: --sumdb, else the go command's
// GOSUMDB.
func (c *toolConfig) gosumdb() (string, error) {
	if f := c.fs.Lookup("sumdb"); f.Changed {
		gosumdb := strings.TrimSpace(f.Value.String())
		if gosumdb == "" {
			return "", c.bad("sumdb", "empty (want \"<verifier key> [URL]\")")
		}
		return gosumdb, nil
	}
	return c.fromGo("GOSUMDB", "give --sumdb \"<verifier key> [URL]\"")
}

// reach returns the GOPROXY that client.Open needs to reach the
// database gosumdb as the go command does, asking the go command for it
// only for a database given without its URL, or when proxy is set
// (proxyWhy says what to give instead).
func (c *toolConfig) reach(gosumdb string, proxy bool, proxyWhy string) (goproxy string, err error) {
	fields := strings.Fields(gosumdb)
	if len(fields) == 1 && fields[0] != "off" || proxy {
		if goproxy, err = c.fromGo("GOPROXY", proxyWhy); err != nil {
			return "", err
		}
	}
	return goproxy, nil
}

// checkListen checks a host:port listen address.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q (want host:port, such as 127.0.0.1:8080 or :8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}

// checkDatabaseURL checks a PostgreSQL URL, without repeating it (it may
// hold a password) in the error.
func checkDatabaseURL(s string) error {
	if s == "" {
		return nil
	}
	if !strings.Contains(s, "://") && strings.Contains(s, "=") {
		return nil // a keyword/value connection string, such as "host=db dbname=sumdb"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("want a postgres://user@host:port/database URL, or nothing for the embedded store")
	}
	return nil
}

// checkName checks a key name: it must be a clean host[/path], because the
// go command derives https://<name> from it and refuses anything else, and it
// must be usable by note.GenerateKey (no spaces, no plus signs).
func checkName(name string) error {
	if name == "" {
		return errors.New("empty (want a host name such as sum.example.com, optionally with a /path)")
	}
	if strings.Contains(name, "://") {
		return fmt.Errorf("%q has a scheme (want host[/path], such as sum.example.com)", name)
	}
	host, path, _ := strings.Cut(name, "/")
	hostOnly := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: bad port %q", name, port)
		}
		hostOnly = h
	}
	if hostOnly == "" {
		return fmt.Errorf("%q has no host (want host[/path], such as sum.example.com)", name)
	}
	if err := checkHostName(hostOnly); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	if strings.Contains(name, "/") {
		for _, elem := range strings.Split(path, "/") {
			if elem == "" || elem == "." || elem == ".." {
				return fmt.Errorf("%q: path %q has an empty, . or .. element", name, path)
			}
			for _, c := range elem {
				if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~", c)) {
					return fmt.Errorf("%q: path %q may only hold letters, digits and -._~", name, path)
				}
			}
		}
	}
	// The go command's own check (cmd/go/internal/modfetch, dbDial).
	direct, err := url.Parse("https://" + name)
	if err != nil || *direct != (url.URL{Scheme: "https", Host: direct.Host, Path: direct.Path}) {
		return fmt.Errorf("%q is not a clean host[/path]", name)
	}
	return nil
}

// checkHostName checks a clean host name: lowercase labels of a-z, 0-9 and
// inner dashes, separated by dots.
func checkHostName(host string) error {
	for _, label := range strings.Split(host, ".") {
		ok := label != "" && label[0] != '-' && label[len(label)-1] != '-'
		for _, c := range label {
			ok = ok && ('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-')
		}
		if !ok {
			return fmt.Errorf("host %q is not a clean host name (want lowercase labels of a-z, 0-9 and inner dashes, separated by dots)", host)
		}
	}
	return nil
}
