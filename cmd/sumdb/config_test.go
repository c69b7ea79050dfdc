package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/sumdb/client"
)

// clearEnv unsets every SUMDB_* variable for the test, so that the
// environment of whoever runs the tests cannot change their outcome.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") {
			t.Setenv(name, "") // restores the value after the test
			os.Unsetenv(name)
		}
	}
}

// fixedGoEnv is a goEnvFunc that answers GOPROXY with proxy, GOSUMDB
// with off, and GONOSUMDB and GOPRIVATE with nothing.
func fixedGoEnv(proxy string) goEnvFunc {
	return mapGoEnv(map[string]string{"GOPROXY": proxy, "GOSUMDB": "off", "GONOSUMDB": "", "GOPRIVATE": ""})
}

// mapGoEnv is a goEnvFunc that answers the variables of env, and fails
// for any other.
func mapGoEnv(env map[string]string) goEnvFunc {
	return func(_ context.Context, name string) (string, error) {
		v, ok := env[name]
		if !ok {
			return "", errors.New("unexpected go env " + name)
		}
		return v, nil
	}
}

// load parses args as serve flags and loads the config.
func load(t *testing.T, args []string, goEnv goEnvFunc) (*ServeConfig, error) {
	t.Helper()
	fs := newServeFlags()
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return loadServeConfig(context.Background(), fs, goEnv)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestConfigDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := load(t, nil, fixedGoEnv("http://proxy.test,direct"))
	if err != nil {
		t.Fatal(err)
	}
	want := ServeConfig{
		Listen:          "127.0.0.1:8080",
		DataDir:         "sumdb-data",
		KeyFile:         filepath.Join("sumdb-data", "signer.key"),
		Name:            "sumdb.localhost",
		Upstream:        "http://proxy.test,direct",
		UpstreamTimeout: 2 * time.Minute,
		MaxZipSize:      500 << 20,
		LogFormat:       "text",
		LogLevel:        slog.LevelInfo,
		MaxFetches:      16,
		MaxQueue:        16384,
		NotFoundTTL:     time.Minute,
		FetchRate:       10,
		FetchBurst:      1000,
	}
	if got := *cfg; !equalConfig(got, want) {
		t.Errorf("loadServeConfig() = %+v, want %+v", got, want)
	}
	if got, want := cfg.SQLitePath(), filepath.Join("sumdb-data", "sumdb.db"); got != want {
		t.Errorf("SQLitePath() = %q, want %q", got, want)
	}
}

func equalConfig(a, b ServeConfig) bool {
	a.Warnings, b.Warnings = nil, nil
	return a.Listen == b.Listen && a.DataDir == b.DataDir && a.DatabaseURL == b.DatabaseURL &&
		a.KeyFile == b.KeyFile && a.Name == b.Name && a.NameSet == b.NameSet && a.Upstream == b.Upstream &&
		a.UpstreamTimeout == b.UpstreamTimeout && a.MaxZipSize == b.MaxZipSize &&
		a.LogFormat == b.LogFormat && a.LogLevel == b.LogLevel && a.ConfigFile == b.ConfigFile &&
		a.MaxFetches == b.MaxFetches && a.MaxQueue == b.MaxQueue && a.NotFoundTTL == b.NotFoundTTL &&
		a.FetchRate == b.FetchRate && a.FetchBurst == b.FetchBurst && a.TrustProxy == b.TrustProxy &&
		a.MetricsListen == b.MetricsListen
}

// TestConfigPrecedence checks that the command line wins over the
// environment, which wins over the config file, which wins over the defaults.
func TestConfigPrecedence(t *testing.T) {
	clearEnv(t)
	file := writeFile(t, "sumdb.yaml", `
listen: 127.0.0.1:7001
data-dir: /file/data
database-url: postgres://file@db/file
name: file.example.com
upstream: http://file.test
upstream-timeout: 10s
max-zip-size: 1000
log-format: json
log-level: debug
max-fetches: 3
max-queue: 100
not-found-ttl: 0s
fetch-rate: 0.5
fetch-burst: 7
trust-proxy-headers: true
metrics-listen: 127.0.0.1:9101
`)
	t.Setenv("SUMDB_CONFIG", file)
	t.Setenv("SUMDB_LISTEN", "127.0.0.1:7002")
	t.Setenv("SUMDB_DATA_DIR", "/env/data")
	t.Setenv("SUMDB_MAX_ZIP_SIZE", "2000")
	t.Setenv("SUMDB_LOG_LEVEL", "warn")
	t.Setenv("SUMDB_MAX_QUEUE", "200")
	t.Setenv("SUMDB_FETCH_RATE", "2")
	t.Setenv("SUMDB_METRICS_LISTEN", "127.0.0.1:9102")
	cfg, err := load(t, []string{"--listen", "127.0.0.1:7003", "--log-level=error", "--fetch-burst=9", "--trust-proxy-headers=false"}, fixedGoEnv("http://goenv.test"))
	if err != nil {
		t.Fatal(err)
	}
	want := ServeConfig{
		Listen:          "127.0.0.1:7003",                         // flag over env and file
		DataDir:         "/env/data",                              // env over file
		DatabaseURL:     "postgres://file@db/file",                // file over default
		KeyFile:         filepath.Join("/env/data", "signer.key"), // follows the data directory
		Name:            "file.example.com",
		NameSet:         true,
		Upstream:        "http://file.test", // the file's, without asking go env
		UpstreamTimeout: 10 * time.Second,
		MaxZipSize:      2000,
		LogFormat:       "json",
		LogLevel:        slog.LevelError,
		MaxFetches:      3,   // file
		MaxQueue:        200, // env over file
		NotFoundTTL:     0,   // file: disabled
		FetchRate:       2,
		FetchBurst:      9,     // flag
		TrustProxy:      false, // flag false over file true
		MetricsListen:   "127.0.0.1:9102",
		ConfigFile:      file,
	}
	if !equalConfig(*cfg, want) {
		t.Errorf("loadServeConfig() = %+v\nwant %+v", *cfg, want)
	}
}

func TestConfigEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("SUMDB_DATABASE_URL", "postgres://u@h:5432/d?sslmode=disable")
	t.Setenv("SUMDB_KEY_FILE", "/keys/k")
	t.Setenv("SUMDB_UPSTREAM", "http://a.test|http://b.test")
	t.Setenv("SUMDB_UPSTREAM_TIMEOUT", "45s")
	t.Setenv("SUMDB_LSTEN", "typo")
	t.Setenv("SUMDB_PUBLIC_SUMDB", "off")
	t.Setenv("SUMDB_PRIVATE", "*.corp.example.com")
	t.Setenv("SUMDB_AUTH_FILE", "/etc/sumdb/users")
	cfg, err := load(t, nil, func(_ context.Context, name string) (string, error) {
		t.Errorf("go env %s called although every setting it gives is set", name)
		return "", errors.New("no go")
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres://u@h:5432/d?sslmode=disable" || cfg.KeyFile != "/keys/k" ||
		cfg.Upstream != "http://a.test|http://b.test" || cfg.UpstreamTimeout != 45*time.Second {
		t.Errorf("loadServeConfig() = %+v, want the environment's values", *cfg)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "SUMDB_LSTEN") {
		t.Errorf("Warnings = %q, want one about SUMDB_LSTEN", cfg.Warnings)
	}
}

// TestConfigDurations checks the durations of a config file and the
// environment: with a unit, and 0 without one.
func TestConfigDurations(t *testing.T) {
	clearEnv(t)
	t.Setenv("SUMDB_UPSTREAM_TIMEOUT", "90s")
	file := writeFile(t, "sumdb.yaml", "not-found-ttl: 0\n")
	cfg, err := load(t, []string{"--config", file}, fixedGoEnv("http://proxy.test"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UpstreamTimeout != 90*time.Second || cfg.NotFoundTTL != 0 {
		t.Errorf("upstream timeout %v, not-found TTL %v; want 1m30s and 0", cfg.UpstreamTimeout, cfg.NotFoundTTL)
	}
}

// TestConfigSizes checks the byte sizes of each source: a plain number of
// bytes, or a number with a unit, on the command line too.
func TestConfigSizes(t *testing.T) {
	clearEnv(t)
	t.Setenv("SUMDB_LOOKUP_CACHE_SIZE", "1.5MB")
	t.Setenv("SUMDB_TILE_CACHE_SIZE", "1")
	file := writeFile(t, "sumdb.yaml", "max-zip-size: 100MB\ntile-cache-size: 2\n")
	cfg, err := load(t, []string{"--config", file, "--tile-cache-size", "1GiB"}, fixedGoEnv("http://proxy.test"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TileCacheSize != 1<<30 || cfg.LookupCacheSize != 1_500_000 || cfg.MaxZipSize != 100_000_000 {
		t.Errorf("tile cache %d, lookup cache %d, max zip size %d; want %d, %d, %d",
			cfg.TileCacheSize, cfg.LookupCacheSize, cfg.MaxZipSize, 1<<30, 1_500_000, 100_000_000)
	}
	file = writeFile(t, "sumdb.yaml", "max-zip-size: 1000\n")
	if cfg, err = load(t, []string{"--config", file}, fixedGoEnv("http://proxy.test")); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxZipSize != 1000 || cfg.TileCacheSize != 1 {
		t.Errorf("max zip size %d, tile cache %d; want 1000 from the file, 1 from the environment", cfg.MaxZipSize, cfg.TileCacheSize)
	}
}

// TestConfigUnknownKey checks that a config file key that is no setting is
// an error naming the file and the key, whether the key is a flag of
// another command, --config itself, or a section.
func TestConfigUnknownKey(t *testing.T) {
	clearEnv(t)
	for _, content := range []string{"listne: :8080\n", "state: /tmp/x\n", "config: other.yaml\n", "tls:\n  cert: c.pem\n"} {
		file := writeFile(t, "sumdb.yaml", "listen: 127.0.0.1:0\n"+content)
		key := strings.TrimSuffix(strings.Split(content, ":")[0], "\n")
		if key == "tls" {
			key = "tls.cert"
		}
		_, err := load(t, []string{"--config", file}, fixedGoEnv("http://proxy.test"))
		want := fmt.Sprintf("config file %s: unknown key %q (known keys: listen, data-dir, ", file, key)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("loadServeConfig(file %q) error = %v, want %s...", content, err, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		file  string // config file content, if any
		goEnv goEnvFunc
		want  string // in the error
		usage bool   // a usage error (exit status 2)
	}{
		{name: "listen", args: []string{"--listen", "8080"}, want: `invalid --listen: "8080" (want host:port`, usage: true},
		{name: "listen port", args: []string{"--listen", ":99999"}, want: "port must be a number", usage: true},
		{name: "listen env", env: map[string]string{"SUMDB_LISTEN": "nope"}, want: "invalid SUMDB_LISTEN"},
		{name: "listen file", file: "listen: nope\n", want: "invalid listen in "},
		{name: "database url", args: []string{"--database-url", "mysql://x"}, want: "want a postgres://", usage: true},
		{name: "database url secret", args: []string{"--database-url", "mysql://u:hunter2@x"}, want: "want a postgres://", usage: true},
		{name: "name scheme", args: []string{"--name", "https://sum.example.com"}, want: "has a scheme", usage: true},
		{name: "name upper", env: map[string]string{"SUMDB_NAME": "Sum.Example.com"}, want: "invalid SUMDB_NAME"},
		{name: "log format", args: []string{"--log-format", "xml"}, want: `"xml" (want text or json)`, usage: true},
		{name: "log level", args: []string{"--log-level", "loud"}, want: `"loud" (want debug`, usage: true},
		{name: "zip size", env: map[string]string{"SUMDB_MAX_ZIP_SIZE": "big"}, want: "invalid SUMDB_MAX_ZIP_SIZE: want a number of bytes"},
		{name: "zip size range", args: []string{"--max-zip-size", "524288001"}, want: "want a number of bytes from 1 to 524288000", usage: true},
		{name: "timeout", file: "upstream-timeout: soon\n", want: "invalid upstream-timeout in"},
		// A number without a unit would be nanoseconds: refused, as by the flag.
		{name: "timeout env no unit", env: map[string]string{"SUMDB_UPSTREAM_TIMEOUT": "30"}, want: "invalid SUMDB_UPSTREAM_TIMEOUT: want a positive duration"},
		{name: "timeout file no unit", file: "upstream-timeout: 30\n", want: "invalid upstream-timeout in"},
		{name: "not found ttl file no unit", file: "not-found-ttl: 60\n", want: "invalid not-found-ttl in"},
		{name: "data dir", args: []string{"--data-dir", ""}, want: "invalid --data-dir: empty", usage: true},
		{name: "max fetches", args: []string{"--max-fetches", "0"}, want: "invalid --max-fetches: want a number from 1 to 4096", usage: true},
		{name: "max fetches env", env: map[string]string{"SUMDB_MAX_FETCHES": "many"}, want: "invalid SUMDB_MAX_FETCHES: want a number"},
		{name: "max queue", file: "max-queue: -1\n", want: "invalid max-queue in "},
		{name: "not found ttl", args: []string{"--not-found-ttl", "-1s"}, want: "invalid --not-found-ttl: want a duration", usage: true},
		{name: "not found ttl env", env: map[string]string{"SUMDB_NOT_FOUND_TTL": "forever"}, want: "invalid SUMDB_NOT_FOUND_TTL"},
		{name: "fetch rate", args: []string{"--fetch-rate", "-1"}, want: "invalid --fetch-rate: want a number of fetches per second", usage: true},
		{name: "fetch rate nan", env: map[string]string{"SUMDB_FETCH_RATE": "NaN"}, want: "invalid SUMDB_FETCH_RATE"},
		{name: "fetch rate inf", file: "fetch-rate: .inf\n", want: "invalid fetch-rate in "},
		{name: "fetch burst", args: []string{"--fetch-burst", "0"}, want: "invalid --fetch-burst: want a number of fetches of at least 1", usage: true},
		{name: "trust proxy", env: map[string]string{"SUMDB_TRUST_PROXY_HEADERS": "perhaps"}, want: "invalid SUMDB_TRUST_PROXY_HEADERS: want true or false"},
		{name: "metrics listen", args: []string{"--metrics-listen", "9100"}, want: `invalid --metrics-listen: "9100" (want host:port`, usage: true},
		{name: "tls cert alone", args: []string{"--tls-cert", "c.pem"}, want: "--tls-cert is set without --tls-key: give the private key", usage: true},
		{name: "tls key alone env", env: map[string]string{"SUMDB_TLS_KEY": "k.pem"}, want: "SUMDB_TLS_KEY is set without --tls-cert"},
		{name: "tls and acme", file: "tls-cert: c.pem\ntls-key: k.pem\nacme-host: sum.example.com\n", want: "acme-host in ", usage: false},
		{name: "tls and acme flags", args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--acme-host", "sum.example.com"}, want: "--acme-host and --tls-cert exclude each other", usage: true},
		{name: "acme host ip", args: []string{"--acme-host", "192.0.2.1"}, want: "invalid --acme-host: \"192.0.2.1\" is an IP address", usage: true},
		{name: "acme host no dot", env: map[string]string{"SUMDB_ACME_HOST": "sum.example.com,localhost"}, want: "invalid SUMDB_ACME_HOST: \"localhost\" has no dot"},
		{name: "acme host upper", file: "acme-host: [Sum.Example.com]\n", want: "invalid acme-host in "},
		{name: "acme host number", file: "acme-host: 3\n", want: "invalid acme-host in "},
		{name: "acme host too many", env: map[string]string{"SUMDB_ACME_HOST": strings.Repeat("a.example.com,", 101)}, want: "101 names, want at most 100"},
		{name: "acme email alone", args: []string{"--acme-email", "ops@example.com"}, want: "--acme-email is set without --acme-host", usage: true},
		{name: "acme http alone env", env: map[string]string{"SUMDB_ACME_HTTP": ":80"}, want: "SUMDB_ACME_HTTP is set without --acme-host"},
		{name: "acme directory alone", file: "acme-directory: https://acme.test/dir\n", want: "acme-directory in "},
		{name: "acme email", args: []string{"--acme-host", "sum.example.com", "--acme-email", "Ops <ops@example.com>"}, want: "want a bare address", usage: true},
		{name: "acme directory http", args: []string{"--acme-host", "sum.example.com", "--acme-directory", "http://u:hunter2@acme.test/dir"}, want: "invalid --acme-directory: http://xxxxx@acme.test/dir (want the https:// URL", usage: true},
		{name: "acme http", args: []string{"--acme-host", "sum.example.com", "--acme-http", "80"}, want: "invalid --acme-http: \"80\" (want host:port", usage: true},
		{name: "unknown file key", file: "listne: :8080\n", want: `unknown key "listne"`},
		{name: "zip size unit", env: map[string]string{"SUMDB_MAX_ZIP_SIZE": "64M"}, want: `invalid SUMDB_MAX_ZIP_SIZE: want a number of bytes from 1 to 524288000 (500MiB) ("64M" has an unknown unit "M"`},
		{name: "zip size fraction", file: "max-zip-size: 1.5\n", want: "invalid max-zip-size in "},
		{name: "zip size flag range", args: []string{"--max-zip-size", "1GiB"}, want: "invalid --max-zip-size: want a number of bytes from 1 to 524288000 (500MiB), not 1GiB", usage: true},
		{name: "tile cache negative", file: "tile-cache-size: -1MiB\n", want: "invalid tile-cache-size in "},
		{name: "lookup cache env", env: map[string]string{"SUMDB_LOOKUP_CACHE_SIZE": "lots"}, want: "invalid SUMDB_LOOKUP_CACHE_SIZE: want a size in bytes such as 32MiB, or 0 to disable the cache"},
		{name: "max fetches fraction", file: "max-fetches: 2.5\n", want: "invalid max-fetches in "},
		{name: "max fetches hex", env: map[string]string{"SUMDB_MAX_FETCHES": "0x10"}, want: "invalid SUMDB_MAX_FETCHES: want a number from 1 to 4096"},
		{name: "listen list", file: "listen: [a, b]\n", want: "want a string, not a list or map"},
		{name: "log level number", file: "log-level: 4\n", want: "invalid log-level in "},
		{name: "bad yaml", file: "listen: [\n", want: "want YAML"},
		{name: "missing file", args: []string{"--config", "/nonexistent/sumdb.yaml"}, want: "read config file: open /nonexistent/sumdb.yaml"},
		{
			name: "no go",
			goEnv: func(context.Context, string) (string, error) {
				return "", errors.New(`exec: "go": executable file not found in $PATH`)
			},
			want: "no upstream set and cannot read the go command's GOPROXY (exec: \"go\": executable file not found in $PATH): set --upstream or SUMDB_UPSTREAM",
		},
		{name: "goproxy off", goEnv: fixedGoEnv("off"), want: `go env GOPROXY is "off"`},
		{name: "goproxy scheme", goEnv: fixedGoEnv("ftp://proxy.test"), want: `no upstream set, and go env GOPROXY "ftp://proxy.test": upstream config`},
		{name: "upstream scheme", args: []string{"--upstream", "ftp://proxy.test"}, want: "invalid --upstream: upstream config", usage: true},
		{name: "upstream direct", args: []string{"--upstream", "direct"}, want: "invalid --upstream: upstream config", usage: true},
		{name: "upstream env", env: map[string]string{"SUMDB_UPSTREAM": "ftp://proxy.test"}, want: "invalid SUMDB_UPSTREAM: upstream config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "sumdb.yaml", tt.file))
			}
			goEnv := tt.goEnv
			if goEnv == nil {
				goEnv = fixedGoEnv("http://proxy.test")
			}
			_, err := load(t, args, goEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadServeConfig(%q) error = %v, want it to contain %q", args, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the database password", err)
			}
			var uerr *usageError
			if got := errors.As(err, &uerr); got != tt.usage {
				t.Errorf("error %q is a usage error: %v, want %v", err, got, tt.usage)
			}
		})
	}
}

// TestConfigTLS checks the TLS settings from each source, --acme-host as
// repeated flags, comma lists and YAML lists.
func TestConfigTLS(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want ServeConfig // of the TLS fields
	}{
		{name: "none"},
		{
			name: "files from flags over env",
			args: []string{"--tls-cert", "flag.pem", "--tls-key", "flag.key"},
			env:  map[string]string{"SUMDB_TLS_CERT": "env.pem", "SUMDB_TLS_KEY": "env.key"},
			want: ServeConfig{TLSCert: "flag.pem", TLSKey: "flag.key"},
		},
		{
			name: "files from env over file",
			env:  map[string]string{"SUMDB_TLS_CERT": "env.pem", "SUMDB_TLS_KEY": "env.key"},
			file: "tls-cert: file.pem\ntls-key: file.key\n",
			want: ServeConfig{TLSCert: "env.pem", TLSKey: "env.key"},
		},
		{
			name: "acme flags",
			args: []string{"--acme-host", "a.example.com,b.example.com", "--acme-host", "c.example.com", "--acme-email", "ops@example.com",
				"--acme-directory", "https://acme.test/dir", "--acme-http", ":80"},
			want: ServeConfig{ACMEHosts: []string{"a.example.com", "b.example.com", "c.example.com"}, ACMEEmail: "ops@example.com",
				ACMEDirectory: "https://acme.test/dir", ACMEHTTP: ":80"},
		},
		{
			name: "acme env",
			env:  map[string]string{"SUMDB_ACME_HOST": " a.example.com, b.example.com ", "SUMDB_ACME_HTTP": "0.0.0.0:80"},
			file: "acme-host: [file.example.com]\n",
			want: ServeConfig{ACMEHosts: []string{"a.example.com", "b.example.com"}, ACMEHTTP: "0.0.0.0:80"},
		},
		{
			name: "acme file list",
			file: "acme-host:\n  - a.example.com\n  - b.example.com,c.example.com\nacme-email: ops@example.com\n",
			want: ServeConfig{ACMEHosts: []string{"a.example.com", "b.example.com", "c.example.com"}, ACMEEmail: "ops@example.com"},
		},
		{
			name: "acme file string",
			file: "acme-host: a.example.com\n",
			want: ServeConfig{ACMEHosts: []string{"a.example.com"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "sumdb.yaml", tt.file))
			}
			cfg, err := load(t, args, fixedGoEnv("http://proxy.test"))
			if err != nil {
				t.Fatal(err)
			}
			got := ServeConfig{TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey, ACMEHosts: cfg.ACMEHosts, ACMEEmail: cfg.ACMEEmail,
				ACMEDirectory: cfg.ACMEDirectory, ACMEHTTP: cfg.ACMEHTTP}
			if got.TLSCert != tt.want.TLSCert || got.TLSKey != tt.want.TLSKey || !slices.Equal(got.ACMEHosts, tt.want.ACMEHosts) ||
				got.ACMEEmail != tt.want.ACMEEmail || got.ACMEDirectory != tt.want.ACMEDirectory || got.ACMEHTTP != tt.want.ACMEHTTP {
				t.Errorf("loadServeConfig(%q) TLS settings = %+v, want %+v", args, got, tt.want)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings %q", cfg.Warnings)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	good := []string{"sum.example.com", "sumdb.localhost", "localhost", "sum.example.com/sub/path", "sum.example.com:8443", "a-b.c9.io/x_y.z~w"}
	for _, name := range good {
		if err := checkName(name); err != nil {
			t.Errorf("checkName(%q) = %v, want nil", name, err)
		}
	}
	bad := []string{"", "https://sum.example.com", "Sum.example.com", "sum example.com", "sum+x.com", "sum.example.com/", "/path",
		"sum..example.com", "-sum.example.com", "sum.example.com//x", "sum.example.com/a/../b", "sum.example.com?x=1", "sum.example.com#x",
		"user@sum.example.com", "sum.example.com:0", "sum.example.com:x", "sum.example.com/a b", "sum.exämple.com", "sum.example.com/%41"}
	for _, name := range bad {
		if err := checkName(name); err == nil {
			t.Errorf("checkName(%q) = nil, want an error", name)
		}
	}
}

// TestRunUsage checks the exit status and the one-line message of command
// line mistakes.
func TestRunUsage(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		args   []string
		status int
		want   string // the stderr line
	}{
		{nil, 2, "sumdb: missing command (want serve, keygen, check, audit, watch, load, export, import, public-fork or mirror)\n"},
		{[]string{"frob"}, 2, "sumdb: unknown command \"frob\" (want serve, keygen, check, audit, watch, load, export, import, public-fork or mirror; run sumdb help)\n"},
		{[]string{"serve", "--frob"}, 2, "sumdb: serve: unknown flag: --frob (run sumdb serve --help)\n"},
		{[]string{"serve", "extra"}, 2, "sumdb: serve: unexpected argument \"extra\" (run sumdb serve --help)\n"},
		{[]string{"serve", "--max-zip-size", "lots"}, 2, "sumdb: serve: invalid argument \"lots\" for \"--max-zip-size\" flag: \"lots\" is no size: give a number of bytes, or a number with a unit such as 64MiB (run sumdb serve --help)\n"},
		{[]string{"keygen"}, 2, "sumdb: keygen: --name is required, such as --name sum.example.com\n"},
		{[]string{"help"}, 0, ""},
		{[]string{"serve", "--help"}, 0, ""},
		{[]string{"keygen", "-h"}, 0, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		status := report(err, &stderr)
		got := stderr.String()
		if tt.want == "" {
			// Help goes to stdout; the usage text, not an error, goes to stderr.
			got = ""
		} else if i := strings.LastIndex(got, "sumdb: "); i >= 0 {
			got = got[i:]
		}
		if status != tt.status || got != tt.want {
			t.Errorf("run(%q): status %d, stderr %q; want %d, %q", tt.args, status, got, tt.status, tt.want)
		}
		if tt.status == 0 && !strings.Contains(stdout.String(), "Usage:") {
			t.Errorf("run(%q): stdout %q, want the usage", tt.args, stdout.String())
		}
	}
}

// operatingDoc is the operators' guide, which holds the configuration
// reference, relative to this package's directory.
var operatingDoc = filepath.Join("..", "..", "docs", "operating.md")

// readOperatingDoc returns the text of the operators' guide.
func readOperatingDoc(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(operatingDoc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestOperatingConfigTable checks that the configuration table of
// docs/operating.md has a row for every serve flag, with its environment
// variable, config key and default, and no row for a flag that does not
// exist.
func TestOperatingConfigTable(t *testing.T) {
	data := readOperatingDoc(t)
	rows := make(map[string][]string) // by flag name
	for line := range strings.Lines(data) {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		name := strings.Trim(cells[0], "`-")
		if len(cells) != 5 {
			t.Errorf("docs/operating.md row of --%s has %d cells, want 5", name, len(cells))
			continue
		}
		rows[name] = cells
	}
	fs := newServeFlags()
	fs.VisitAll(func(f *pflag.Flag) {
		row, ok := rows[f.Name]
		if !ok {
			t.Errorf("docs/operating.md has no row for --%s", f.Name)
			return
		}
		delete(rows, f.Name)
		if want := "`" + envName(f.Name) + "`"; row[1] != want {
			t.Errorf("docs/operating.md row of --%s: environment %s, want %s", f.Name, row[1], want)
		}
		if want := "`" + f.Name + "`"; f.Name != "config" && row[2] != want {
			t.Errorf("docs/operating.md row of --%s: config key %s, want %s", f.Name, row[2], want)
		}
		if f.DefValue == "" || f.DefValue == "[]" {
			return // the doc says how the default is found
		}
		def := strings.Trim(row[3], "`")
		if f.Value.Type() == "duration" {
			d, err := time.ParseDuration(def)
			if err != nil || d.String() != f.DefValue {
				t.Errorf("docs/operating.md row of --%s: default %s, want %s", f.Name, row[3], f.DefValue)
			}
			return
		}
		if def != f.DefValue {
			t.Errorf("docs/operating.md row of --%s: default %s, want `%s`", f.Name, row[3], f.DefValue)
		}
	})
	for name := range rows {
		t.Errorf("docs/operating.md has a row for --%s, which serve does not have", name)
	}
	// Every field viper fills is a flag: viper reads no variable and no
	// config key of a setting without one. (UnmarshalExact refuses a flag
	// without a field.)
	for _, k := range settingKeys(reflect.TypeFor[ServeConfig]()) {
		if fs.Lookup(k) == nil {
			t.Errorf("ServeConfig has a setting %q, which has no flag", k)
		}
	}
}

// TestOperatingConfigExample loads the example config file of
// docs/operating.md as serve would, and checks that every key of it is
// read, and that the README keeps no copy of the configuration table.
func TestOperatingConfigExample(t *testing.T) {
	clearEnv(t)
	doc := readOperatingDoc(t)
	_, rest, ok := strings.Cut(doc, "Example config file")
	if ok {
		_, rest, ok = strings.Cut(rest, "```yaml\n")
	}
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/operating.md has no ```yaml block after \"Example config file\"")
	}
	file := writeFile(t, "sumdb.yaml", example)
	// The example sets the upstream and the private paths: go env is
	// asked for the public checksum database only.
	cfg, err := load(t, []string{"--config", file}, mapGoEnv(map[string]string{"GOSUMDB": "off"}))
	if err != nil {
		t.Fatalf("load the example config file of docs/operating.md: %v", err)
	}
	got := map[string]string{
		"listen":           cfg.Listen,
		"data-dir":         cfg.DataDir,
		"database-url":     cfg.DatabaseURL,
		"name":             cfg.Name,
		"upstream":         cfg.Upstream,
		"log-format":       cfg.LogFormat,
		"private":          `"` + cfg.Private + `"`,
		"private-upstream": cfg.PrivateUpstream,
		"auth-file":        cfg.AuthFile,
	}
	for line := range strings.Lines(example) {
		key, val, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			t.Errorf("example config line %q: want key: value", line)
			continue
		}
		if g, ok := got[key]; !ok || g != val {
			t.Errorf("example config %s: %s, loaded as %q", key, val, g)
		}
	}

	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| `--") {
			t.Errorf("README has a row of the configuration table (%q): keep the table in docs/operating.md only", strings.TrimSpace(line))
		}
	}
}

// settingKeys returns the keys of the settings of the struct type st: the
// mapstructure tags of its fields, and of the fields of the structs it
// squashes.
func settingKeys(st reflect.Type) []string {
	var keys []string
	for f := range st.Fields() {
		tag := f.Tag.Get("mapstructure")
		switch {
		case tag == ",squash":
			keys = append(keys, settingKeys(f.Type)...)
		case tag != "" && tag != "-":
			keys = append(keys, tag)
		}
	}
	return keys
}

// toolFlags returns the flag sets of the commands with variables of their
// own.
var toolFlags = map[string]func() *pflag.FlagSet{"check": newCheckFlags, "audit": newAuditFlags}

// TestToolEnvKeys checks that every variable of check and audit is a flag
// of its command, and that no two settings share a variable.
func TestToolEnvKeys(t *testing.T) {
	owner := make(map[string]string) // setting by variable
	for _, k := range append(serveKeys(), "config") {
		owner[envName(k)] = "serve --" + k
	}
	for cmd, keys := range toolEnvKeys {
		newFlags, ok := toolFlags[cmd]
		if !ok {
			t.Errorf("toolEnvKeys has variables of %s, which toolFlags does not know", cmd)
			continue
		}
		fs := newFlags()
		for _, k := range keys {
			if fs.Lookup(k) == nil {
				t.Errorf("toolEnvKeys[%q] names %q, which is no flag of %s", cmd, k, cmd)
			}
			name, setting := toolEnvName(cmd, k), cmd+" --"+k
			if other, ok := owner[name]; ok {
				t.Errorf("%s is the variable of both %s and %s", name, other, setting)
			}
			owner[name] = setting
		}
	}
	if got, want := toolEnvName("check", "state"), "SUMDB_CHECK_STATE"; got != want {
		t.Errorf("toolEnvName(check, state) = %s, want %s", got, want)
	}
}

func TestUnknownEnv(t *testing.T) {
	environ := []string{
		"PATH=/bin",
		"SUMDB_LISTEN=:8080", "SUMDB_CONFIG=x.yaml", "SUMDB_TEST_PUBLIC=1", // serve's, the tests'
		"SUMDB_CHECK_STATE=f", "SUMDB_AUDIT_UPSTREAM=u", "SUMDB_AUDIT_INTERVAL=1m", // the tools'
		"SUMDB_LSTEN=typo",
		"SUMDB_STATE=d",       // check's or audit's, without the command
		"SUMDB_INTERVAL=1m",   // audit's
		"SUMDB_CHECK_LIMIT=3", // not a variable of check
	}
	want := []string{
		"ignoring environment variable SUMDB_LSTEN: no such setting",
		"ignoring environment variable SUMDB_STATE: no such setting (did you mean SUMDB_AUDIT_STATE or SUMDB_CHECK_STATE?)",
		"ignoring environment variable SUMDB_INTERVAL: no such setting (did you mean SUMDB_AUDIT_INTERVAL?)",
		"ignoring environment variable SUMDB_CHECK_LIMIT: no such setting",
	}
	if got := unknownEnv(environ); !slices.Equal(got, want) {
		t.Errorf("unknownEnv(%q) =\n%q\nwant\n%q", environ, got, want)
	}
}

// TestOperatingToolEnvTable checks that the table of the variables of the
// other commands in docs/operating.md has a row for each, and no other.
func TestOperatingToolEnvTable(t *testing.T) {
	data := readOperatingDoc(t)
	rows := make(map[string]string) // variable by "cmd --flag"
	for line := range strings.Lines(data) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if _, ok := toolEnvKeys[cells[0]]; !ok || !strings.HasPrefix(line, "| `") {
			continue
		}
		if len(cells) != 3 {
			t.Errorf("docs/operating.md row %q has %d cells, want 3", strings.TrimSpace(line), len(cells))
			continue
		}
		rows[cells[0]+" "+cells[1]] = cells[2]
	}
	for cmd, keys := range toolEnvKeys {
		for _, k := range keys {
			setting := cmd + " --" + k
			env, ok := rows[setting]
			if !ok {
				t.Errorf("docs/operating.md has no row for %s", setting)
				continue
			}
			delete(rows, setting)
			if want := toolEnvName(cmd, k); env != want {
				t.Errorf("docs/operating.md row of %s: environment %s, want %s", setting, env, want)
			}
		}
	}
	for setting := range rows {
		t.Errorf("docs/operating.md has a row for %s, which has no variable", setting)
	}
}

// TestConfigOrganization checks the settings of an organization's log:
// their defaults from the go command's settings, and their errors.
func TestConfigOrganization(t *testing.T) {
	_, vkey, err := note.GenerateKey(rand.Reader, "sum.example.net")
	if err != nil {
		t.Fatal(err)
	}
	goEnv := func(sumdb, nosumdb, private string) goEnvFunc {
		return mapGoEnv(map[string]string{"GOPROXY": "http://proxy.test", "GOSUMDB": sumdb, "GONOSUMDB": nosumdb, "GOPRIVATE": private})
	}
	for _, tt := range []struct {
		name      string
		args      []string
		goEnv     goEnvFunc
		public    string
		private   string
		privateUp string
		wantErr   string
	}{
		{name: "from go env", goEnv: goEnv(vkey, "", "*.corp.example.com"), public: vkey, private: "*.corp.example.com", privateUp: "direct"},
		{name: "GONOSUMDB over GOPRIVATE", goEnv: goEnv("off", "a.example.com", "b.example.com"), public: "off", private: "a.example.com", privateUp: "direct"},
		{name: "empty GOSUMDB is the built-in database", goEnv: goEnv("", "", ""), public: client.DefaultGOSUMDB(), privateUp: "direct"},
		{name: "flags over go env", args: []string{"--public-sumdb", vkey + " https://sum.example.net", "--private", "x.example.com", "--private-upstream", "https://proxy.corp.example.com,direct"},
			goEnv: goEnv("off", "a.example.com", ""), public: vkey + " https://sum.example.net", private: "x.example.com", privateUp: "https://proxy.corp.example.com,direct"},
		{name: "bad key", args: []string{"--public-sumdb", "sum.example.net+bad"}, goEnv: goEnv("off", "", ""), wantErr: "invalid --public-sumdb"},
		{name: "unknown bare name", goEnv: goEnv("sum.example.net", "", ""), wantErr: "no --public-sumdb set, and go env GOSUMDB"},
		{name: "go env fails with a public log", args: []string{"--public-sumdb", vkey},
			goEnv: mapGoEnv(map[string]string{"GOPROXY": "http://proxy.test"}), wantErr: "no --private set and cannot read the go command's GONOSUMDB"},
		{name: "go env fails with private off", args: []string{"--public-sumdb", vkey, "--private", "off"},
			goEnv: mapGoEnv(map[string]string{"GOPROXY": "http://proxy.test"}), public: vkey, privateUp: "direct"},
		{name: "go env fails without a public log", args: []string{"--public-sumdb", "off"},
			goEnv: mapGoEnv(map[string]string{"GOPROXY": "http://proxy.test"}), public: "off", privateUp: "direct"},
		{name: "patterns trimmed", args: []string{"--private", " a.example.com , ,\tb.example.com/x "}, goEnv: goEnv("off", "", ""), public: "off", private: "a.example.com,b.example.com/x", privateUp: "direct"},
		{name: "off is none", args: []string{"--private", "off"}, goEnv: goEnv("off", "a.example.com", ""), public: "off", privateUp: "direct"},
		{name: "bad pattern", args: []string{"--private", "a.example.com,[x"}, goEnv: goEnv("off", "", ""), wantErr: `invalid --private: pattern "[x"`},
		{name: "empty private upstream", args: []string{"--private-upstream", " "}, goEnv: goEnv("off", "", ""), wantErr: "invalid --private-upstream: empty"},
		{name: "bad private upstream", args: []string{"--private-upstream", "ftp://x.example.com,direct"}, goEnv: goEnv("off", "", ""), wantErr: "invalid --private-upstream"},
		{name: "private upstream password not shown", args: []string{"--private-upstream", "ftp://u:hunter2@x.example.com"}, goEnv: goEnv("off", "", ""), wantErr: "invalid --private-upstream"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			cfg, err := load(t, tt.args, tt.goEnv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("loadServeConfig(%q) error = %v, want one containing %q and no password", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.private != "" && !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, "--private is set but --auth-file is not") }) {
				t.Errorf("loadServeConfig(%q) warnings %q, want one about --private without --auth-file", tt.args, cfg.Warnings)
			}
			if cfg.PublicSumDB != tt.public || cfg.Private != tt.private || cfg.PrivateUpstream != tt.privateUp {
				t.Errorf("loadServeConfig(%q) = public %q, private %q, private upstream %q; want %q, %q, %q",
					tt.args, cfg.PublicSumDB, cfg.Private, cfg.PrivateUpstream, tt.public, tt.private, tt.privateUp)
			}
		})
	}
}
