package main

import (
	"context"
	"fmt"
	"os/exec"
	"path"
	"strings"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
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
			return fmt.Errorf("no --private set and %v: set --private or %s to the patterns of your private module paths (GOPRIVATE syntax; --private \"\" for none)", err, envName("private"))
		case err == nil:
			cfg.Private = p
		}
	}
	cfg.Private = strings.TrimSpace(cfg.Private)
	if err := checkPatterns(cfg.Private); err != nil {
		return s.invalid("private", "%v", err)
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
			return fmt.Errorf("pattern %q holds a space or a quote (want glob patterns of module path prefixes separated by commas, such as *.corp.example.com,github.com/org/private)", p)
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
