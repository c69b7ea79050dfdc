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

	"github.com/spf13/pflag"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/mod/zip"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/fetch"
	cosign "github.com/sumdb/sumdb/sumdb/witness"
	"github.com/sumdb/sumdb/tlog"
)

// envPrefix prefixes the environment variable of every serve setting:
// --data-dir is SUMDB_DATA_DIR.
const envPrefix = "SUMDB"

// Defaults of the serve settings.
const (
	defaultListen      = "127.0.0.1:8080"
	defaultDataDir     = "sumdb-data"
	defaultKeyFileName = "signer.key" // in the data directory
	defaultDBFileName  = "sumdb.db"   // in the data directory
	defaultMaxZipSize  = zip.MaxZipFile
	defaultLogFormat   = "text"
	defaultLogLevel    = "info"

	// defaultName is the key name of a log whose operator did not choose
	// one. It is a clean host name that is not anybody's checksum database:
	// the .localhost domain is reserved for loopback (RFC 6761).
	defaultName = "sumdb.localhost"
)

// A ServeConfig is the validated configuration of "sumdb serve". Viper
// decodes the settings into the fields tagged with their keys.
type ServeConfig struct {
	ConfigFile      string        `mapstructure:"config"`           // the config file read, if any
	Listen          string        `mapstructure:"listen"`           // address to listen on, host:port; port 0 picks a free port
	DataDir         string        `mapstructure:"data-dir"`         // directory of the embedded store and the default key file
	DatabaseURL     string        `mapstructure:"database-url"`     // postgres:// URL; empty means the embedded store in DataDir
	KeyFile         string        `mapstructure:"key-file"`         // signer key file; never empty after loading
	Name            string        `mapstructure:"name"`             // key name, used only when a key is created
	Upstream        string        `mapstructure:"upstream"`         // GOPROXY-style list of module proxies
	UpstreamTimeout time.Duration `mapstructure:"upstream-timeout"` // bound on fetching one module version
	MaxZipSize      byteSize      `mapstructure:"max-zip-size"`     // largest module zip accepted, and its largest uncompressed size
	LogFormat       string        `mapstructure:"log-format"`       // "text" or "json"
	LogLevel        slog.Level    `mapstructure:"log-level"`
	MaxFetches      int           `mapstructure:"max-fetches"`         // concurrent upstream fetches
	MaxQueue        int           `mapstructure:"max-queue"`           // appends waiting for the sequencer before 503
	NotFoundTTL     time.Duration `mapstructure:"not-found-ttl"`       // how long an upstream not-found is remembered; 0 disables (sumdb.Disabled)
	FetchRate       float64       `mapstructure:"fetch-rate"`          // per client, per second; 0 disables the limit (sumdb.Disabled)
	FetchBurst      int           `mapstructure:"fetch-burst"`         // per client, at once
	TrustProxy      bool          `mapstructure:"trust-proxy-headers"` // take the client from X-Forwarded-For
	MetricsListen   string        `mapstructure:"metrics-listen"`      // separate host:port for /metrics, /healthz, /readyz; empty: the main listener
	TileCacheSize   byteSize      `mapstructure:"tile-cache-size"`     // tiles kept in memory; 0 disables the cache (sumdb.Disabled)
	LookupCacheSize byteSize      `mapstructure:"lookup-cache-size"`   // logged records kept in memory; 0 disables the cache (sumdb.Disabled)
	TLSCert         string        `mapstructure:"tls-cert"`            // PEM certificate chain file for HTTPS; empty: plain HTTP, or ACME
	TLSKey          string        `mapstructure:"tls-key"`             // PEM private key file of TLSCert; set exactly when TLSCert is
	ACMEHosts       []string      `mapstructure:"acme-host"`           // host names to get certificates for from an ACME CA; excludes TLSCert
	ACMEEmail       string        `mapstructure:"acme-email"`          // contact address given to the ACME CA; optional
	ACMEDirectory   string        `mapstructure:"acme-directory"`      // ACME directory URL; empty: autocert's default (Let's Encrypt)
	ACMEHTTP        string        `mapstructure:"acme-http"`           // host:port answering HTTP-01 challenges; empty: TLS-ALPN-01 only
	PublicSumDB     string        `mapstructure:"public-sumdb"`        // GOSUMDB of the public log to cross-check public modules with, or "off"; default go env GOSUMDB
	Private         string        `mapstructure:"private"`             // GOPRIVATE-style patterns of private module paths; default go env GONOSUMDB, else GOPRIVATE
	PrivateUpstream string        `mapstructure:"private-upstream"`    // GOPROXY-style list the private modules come from, "direct" for version control
	AuthFile        string        `mapstructure:"auth-file"`           // users and tokens who may read the log; empty: anyone may
	Mirrors         []string      `mapstructure:"mirror"`              // checksum databases to mirror, each "<verifier key> [URL]" as in GOSUMDB
	Witnesses       []string      `mapstructure:"witness"`             // witnesses to cosign each new head, each "<witness verifier key> <URL>"
	WitnessQuorum   int           `mapstructure:"witness-quorum"`      // cosignatures a head needs for /latest to serve it over an older one

	witnessList []cosign.Witness // Witnesses, parsed by checkWitnesses

	NameSet  bool     `mapstructure:"-"` // Name was given by the user, not the default
	Warnings []string `mapstructure:"-"` // things the user may want to fix, to log once a logger exists
}

// SQLitePath returns the file of the embedded store.
func (c *ServeConfig) SQLitePath() string { return filepath.Join(c.DataDir, defaultDBFileName) }

// serveKeys returns the keys of the settings of serve, in the order of
// --help. Each is a flag, an environment variable and a config file key;
// --config, which names the file, is no key of it.
func serveKeys() []string {
	var keys []string
	newServeFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" {
			keys = append(keys, f.Name)
		}
	})
	return keys
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
	fs.Duration("upstream-timeout", fetch.DefaultTimeout, "bound on fetching one module version from the upstream")
	sizeFlag(fs, "max-zip-size", defaultMaxZipSize, "largest module zip accepted, and largest total size of its files uncompressed, in bytes or with a unit (MiB, MB, ...)")
	fs.String("log-format", defaultLogFormat, "log `format`: text or json")
	fs.String("log-level", defaultLogLevel, "log `level`: debug, info, warn or error")
	fs.Int("max-fetches", sumdb.DefaultMaxFetches, "most upstream fetches in progress at once")
	fs.Int("max-queue", tlog.DefaultMaxQueue, "most new records waiting to be logged; beyond it first lookups get 503")
	fs.Duration("not-found-ttl", sumdb.DefaultNotFoundTTL, "how long an upstream \"not found\" is remembered (0 disables)")
	fs.Float64("fetch-rate", sumdb.DefaultFetchRate, "lookups needing an upstream fetch allowed per client per second, a `number`; beyond it 429 (0 disables)")
	fs.Int("fetch-burst", sumdb.DefaultFetchBurst, "lookups needing an upstream fetch allowed per client at once")
	fs.Bool("trust-proxy-headers", false, "identify clients by the last X-Forwarded-For address (only behind a proxy that sets it)")
	fs.String("metrics-listen", "", "serve /metrics, /healthz and /readyz on this `host:port` instead of --listen")
	sizeFlag(fs, "tile-cache-size", sumdb.DefaultTileCacheSize, "keep up to this size of tiles in memory (0 disables the cache)")
	sizeFlag(fs, "lookup-cache-size", sumdb.DefaultLookupCacheSize, "keep up to this size of logged records in memory for lookups (0 disables the cache)")
	fs.String("tls-cert", "", "serve HTTPS with the certificate chain in this PEM `file` (with --tls-key); reloaded when it changes")
	fs.String("tls-key", "", "private key PEM `file` of --tls-cert; reloaded when it changes")
	fs.StringSlice("acme-host", nil, "serve HTTPS with certificates for this public host `name` from an ACME CA, whose terms of service you accept (repeat, or separate names with commas)")
	fs.String("acme-email", "", "contact `address` given to the ACME CA, for notices about the certificates")
	fs.String("acme-directory", "", "ACME directory `URL` (default "+autocert.DefaultACMEDirectory+")")
	fs.String("acme-http", "", "also answer ACME HTTP-01 challenges on this `host:port` (the CA asks on port 80); other requests there are redirected to https")
	fs.String("public-sumdb", "", "cross-check new public module versions with this checksum `database`, \"<verifier key> [URL]\" as in GOSUMDB, or off (default: go env GOSUMDB)")
	fs.String("private", "", "GOPRIVATE-style `patterns` of private module paths, never sent to the public checksum database or the upstream, or off for none (default: go env GONOSUMDB, else GOPRIVATE)")
	fs.String("private-upstream", "direct", "GOPROXY-style `list` the private modules come from; direct runs the go command, which fetches from version control with this process's credentials")
	fs.String("auth-file", "", "only the users and tokens in this `file` may read the log (see docs/organization.md); reloaded when it changes")
	fs.StringSlice("mirror", nil, "mirror this checksum `database`, \"<verifier key> [URL]\" as in GOSUMDB, under /sumdb/<name>/ (repeat, or separate with commas)")
	fs.StringSlice("witness", nil, "submit each new tree head to this `witness`, \"<witness verifier key> <URL>\" (c2sp.org/tlog-witness), and serve its cosignatures on /latest (repeat, or separate with commas)")
	fs.Int("witness-quorum", 0, "serve on /latest the newest tree head with at least this `number` of --witness cosignatures; 0: the newest head, with the cosignatures it has")
	return fs
}

// sizeFlag adds a flag of a byte size to fs.
func sizeFlag(fs *pflag.FlagSet, name string, value int64, usage string) {
	b := byteSize(value)
	fs.Var(&b, name, usage)
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
	"check": {"state", "format", "concurrency", "witness", "quorum", "witness-policy"},
	"audit": {"state", "interval", "concurrency", "upstream", "witness", "quorum", "witness-policy"},
}

// toolEnvName returns the environment variable of the flag key of the
// command cmd: SUMDB_CHECK_STATE for check's --state.
func toolEnvName(cmd, key string) string { return envName(cmd + "-" + key) }

// newToolSettings returns the settings of check or audit: their flags, and
// the variables toolEnvKeys gives them.
func newToolSettings(cmd string, fs *pflag.FlagSet) (*settings, error) {
	return newSettings(cmd, fs, envName(cmd), toolEnvKeys[cmd])
}

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

// Bounds of the serve settings.
const (
	maxMaxFetches = 4096
	maxMaxQueue   = 1 << 24
)

// rules returns what valid values of c's settings are.
func (c *ServeConfig) rules() []rule {
	return []rule{
		{"upstream-timeout", "want a positive duration such as 2m or 30s", &c.UpstreamTimeout,
			func() bool { return c.UpstreamTimeout > 0 }},
		{"max-zip-size", fmt.Sprintf("want a number of bytes from 1 to %d (%v)", int64(zip.MaxZipFile), byteSize(zip.MaxZipFile)), &c.MaxZipSize,
			func() bool { return c.MaxZipSize > 0 && c.MaxZipSize <= zip.MaxZipFile }},
		{"max-fetches", fmt.Sprintf("want a number from 1 to %d", maxMaxFetches), &c.MaxFetches,
			func() bool { return c.MaxFetches >= 1 && c.MaxFetches <= maxMaxFetches }},
		{"max-queue", fmt.Sprintf("want a number from 1 to %d", maxMaxQueue), &c.MaxQueue,
			func() bool { return c.MaxQueue >= 1 && c.MaxQueue <= maxMaxQueue }},
		{"not-found-ttl", "want a duration such as 1m or 30s, or 0 to disable", &c.NotFoundTTL,
			func() bool { return c.NotFoundTTL >= 0 }},
		{"fetch-rate", "want a number of fetches per second such as 10 or 0.5, or 0 to disable", &c.FetchRate,
			func() bool { return c.FetchRate >= 0 && !math.IsInf(c.FetchRate, 0) }},
		{"fetch-burst", "want a number of fetches of at least 1", &c.FetchBurst,
			func() bool { return c.FetchBurst >= 1 }},
		{"trust-proxy-headers", "want true or false", &c.TrustProxy, nil},
		{"tile-cache-size", fmt.Sprintf("want a size in bytes such as %v, or 0 to disable the cache", byteSize(sumdb.DefaultTileCacheSize)), &c.TileCacheSize,
			func() bool { return c.TileCacheSize >= 0 }},
		{"lookup-cache-size", fmt.Sprintf("want a size in bytes such as %v, or 0 to disable the cache", byteSize(sumdb.DefaultLookupCacheSize)), &c.LookupCacheSize,
			func() bool { return c.LookupCacheSize >= 0 }},
		{"acme-host", "want host names, as a list or separated by commas", &c.ACMEHosts, nil},
		{"mirror", "want checksum databases, \"<verifier key> [URL]\", as a list or separated by commas", &c.Mirrors, nil},
		{"witness", "want witnesses, \"<witness verifier key> <URL>\", as a list or separated by commas", &c.Witnesses, nil},
		{"witness-quorum", "want a number from 0 to the number of --witness", &c.WitnessQuorum,
			func() bool { return c.WitnessQuorum >= 0 && c.WitnessQuorum <= len(c.Witnesses) }},
	}
}

// loadServeConfig decodes the parsed flags fs, the SUMDB_* environment and
// the config file into a validated ServeConfig. A flag set on the command
// line wins over the environment, which wins over the config file, which
// wins over the defaults. goEnv is asked for GOPROXY when no upstream is set.
func loadServeConfig(ctx context.Context, fs *pflag.FlagSet, goEnv goEnvFunc) (*ServeConfig, error) {
	s, err := newSettings("serve", fs, envPrefix, nil)
	if err != nil {
		return nil, err
	}
	if file := strings.TrimSpace(s.v.GetString("config")); file != "" {
		if err := s.readFile(file, serveKeys()); err != nil {
			return nil, err
		}
	}
	cfg := &ServeConfig{}
	rules := cfg.rules()
	if err := s.decode(cfg, rules); err != nil {
		return nil, err
	}

	if err := checkListen(cfg.Listen); err != nil {
		return nil, s.invalid("listen", "%v", err)
	}
	if cfg.DataDir == "" {
		return nil, s.invalid("data-dir", "empty (name a directory; it is created if missing)")
	}
	if err := checkDatabaseURL(cfg.DatabaseURL); err != nil {
		return nil, s.invalid("database-url", "%v", err)
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(cfg.DataDir, defaultKeyFileName)
	}
	if err := checkName(cfg.Name); err != nil {
		return nil, s.invalid("name", "%v", err)
	}
	_, cfg.NameSet = s.origin("name")
	if err := cfg.loadUpstream(ctx, s, goEnv); err != nil {
		return nil, err
	}
	if err := cfg.loadOrganization(ctx, s, goEnv); err != nil {
		return nil, err
	}
	if err := cfg.checkMirrors(ctx, s); err != nil {
		return nil, err
	}
	if err := cfg.checkWitnesses(s); err != nil {
		return nil, err
	}
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, s.invalid("log-format", "%q (want text or json)", cfg.LogFormat)
	}
	if err := s.check(rules); err != nil {
		return nil, err
	}
	if cfg.MetricsListen != "" {
		if err := checkListen(cfg.MetricsListen); err != nil {
			return nil, s.invalid("metrics-listen", "%v", err)
		}
	}
	if err := cfg.checkTLS(s); err != nil {
		return nil, err
	}
	cfg.Warnings = append(cfg.Warnings, unknownEnv(os.Environ())...)
	return cfg, nil
}

// loadUpstream checks the upstream of cfg, set to the go command's GOPROXY
// if none is.
func (cfg *ServeConfig) loadUpstream(ctx context.Context, s *settings, goEnv goEnvFunc) error {
	if cfg.Upstream == "" {
		proxy, err := goEnv(ctx, "GOPROXY")
		if err != nil {
			return fmt.Errorf("no upstream set and cannot read the go command's GOPROXY (%v): set --upstream or %s to your module proxy URL", err, envName("upstream"))
		}
		if proxy == "" || proxy == "off" || proxy == "direct" {
			return fmt.Errorf("no upstream set and go env GOPROXY is %q, which is no module proxy: set --upstream or %s to your module proxy URL", proxy, envName("upstream"))
		}
		cfg.Upstream = proxy
	}
	// Parse the upstream list now, so that a mistake in it is reported as
	// the setting's.
	if _, err := fetch.New(fetch.Config{Proxy: cfg.Upstream}); err != nil {
		if _, set := s.origin("upstream"); !set {
			return fmt.Errorf("no upstream set, and go env GOPROXY %q: %w: set --upstream or %s to your module proxy URL", guard.RedactList(cfg.Upstream), err, envName("upstream"))
		}
		return s.invalid("upstream", "%v", err)
	}
	return nil
}

// maxACMEHosts bounds --acme-host: each name is one certificate to obtain
// and renew.
const maxACMEHosts = 100

// checkTLS checks the TLS settings of cfg: a certificate from files or
// from an ACME CA, or neither (plain HTTP). The files are read when serve
// starts, not here.
func (cfg *ServeConfig) checkTLS(s *settings) error {
	// conflict returns the error for key, set together with or without
	// another setting.
	conflict := func(key, format string, args ...any) error {
		where, _ := s.origin(key)
		return s.fail(key, fmt.Errorf("%s %s", where, fmt.Sprintf(format, args...)))
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
			if _, set := s.origin(key); set {
				return conflict(key, "is set without --acme-host: name the host to get certificates for with --acme-host, or unset it")
			}
		}
		return nil
	}

	if len(cfg.ACMEHosts) > maxACMEHosts {
		return s.invalid("acme-host", "%d names, want at most %d", len(cfg.ACMEHosts), maxACMEHosts)
	}
	for _, h := range cfg.ACMEHosts {
		if err := checkACMEHost(h); err != nil {
			return s.invalid("acme-host", "%v", err)
		}
	}
	if cfg.ACMEEmail != "" {
		// The CA gets "mailto:" and the address: nothing more.
		if a, err := mail.ParseAddress(cfg.ACMEEmail); err != nil || a.Address != cfg.ACMEEmail || a.Name != "" {
			return s.invalid("acme-email", "%q (want a bare address such as ops@example.com)", cfg.ACMEEmail)
		}
	}
	if cfg.ACMEDirectory != "" {
		// RFC 8555, section 6.1: ACME runs over HTTPS.
		u, err := url.Parse(cfg.ACMEDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return s.invalid("acme-directory", "%s (want the https:// URL of an ACME directory, or nothing for %s)", guard.RedactURL(cfg.ACMEDirectory), autocert.DefaultACMEDirectory)
		}
	}
	if cfg.ACMEHTTP != "" {
		if err := checkListen(cfg.ACMEHTTP); err != nil {
			return s.invalid("acme-http", "%v", err)
		}
	}
	return nil
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

// unknownEnv returns a warning for each SUMDB_* variable in environ that
// no command reads: most likely a typo the user wants to know about, or
// a tool's setting without its command in the name (SUMDB_STATE).
func unknownEnv(environ []string) []string {
	known := map[string]bool{envName("config"): true}
	for _, k := range serveKeys() {
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

// gosumdb returns the checksum database of check or audit: --sumdb, else
// the go command's GOSUMDB.
func gosumdb(ctx context.Context, s *settings, sumdb string, goEnv goEnvFunc) (string, error) {
	if s.fs.Lookup("sumdb").Changed {
		if sumdb == "" {
			return "", s.invalid("sumdb", "empty (want \"<verifier key> [URL]\")")
		}
		return sumdb, nil
	}
	return fromGo(ctx, s.cmd, goEnv, "GOSUMDB", "give --sumdb \"<verifier key> [URL]\"")
}

// fromGo returns the go command's setting name, for the command cmd; why
// says what to give instead if the go command cannot tell.
func fromGo(ctx context.Context, cmd string, goEnv goEnvFunc, name, why string) (string, error) {
	val, err := goEnv(ctx, name)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read the go command's %s (%v): %s", cmd, name, err, why)
	}
	return val, nil
}

// reach returns the GOPROXY that client.Open needs to reach the database
// gosumdb as the go command does, asking the go command for it only for a
// database given without its URL, or when proxy is set (proxyWhy says what
// to give instead).
func reach(ctx context.Context, cmd string, goEnv goEnvFunc, gosumdb string, proxy bool, proxyWhy string) (goproxy string, err error) {
	fields := strings.Fields(gosumdb)
	if len(fields) == 1 && fields[0] != "off" || proxy {
		if goproxy, err = fromGo(ctx, cmd, goEnv, "GOPROXY", proxyWhy); err != nil {
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
