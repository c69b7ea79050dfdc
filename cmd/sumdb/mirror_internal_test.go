package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/mirror"
)

// TestParseMirrorKeys checks import's --mirror values: a verifier key, with
// a URL or not, or the built-in database's name, whose key is known.
func TestParseMirrorKeys(t *testing.T) {
	_, vkey := newTestVKey(t, "sum.mirrored.test")
	keys, err := parseMirrorKeys(t.Context(), []string{vkey + " https://sum.mirrored.test", client.DefaultGOSUMDB()})
	if err != nil {
		t.Fatal(err)
	}
	if keys["sum.mirrored.test"] != vkey {
		t.Errorf("key of sum.mirrored.test = %q, want %q", keys["sum.mirrored.test"], vkey)
	}
	if k := keys[client.DefaultGOSUMDB()]; !strings.HasPrefix(k, client.DefaultGOSUMDB()+"+") {
		t.Errorf("key of the built-in database %s = %q, want its verifier key", client.DefaultGOSUMDB(), k)
	}
	_, other := newTestVKey(t, "sum.mirrored.test")
	for _, bad := range [][]string{{"sum.unknown.test"}, {"a b c"}, {vkey, other}} {
		if _, err := parseMirrorKeys(t.Context(), bad); err == nil {
			t.Errorf("parseMirrorKeys(%q) = nil error, want one", bad)
		}
	}
}

// TestConfigMirrors checks serve's --mirror values.
func TestConfigMirrors(t *testing.T) {
	clearEnv(t)
	_, vkey := newTestVKey(t, "sum.mirrored.test")
	cfg, err := load(t, []string{"--mirror", vkey + " https://sum.mirrored.test", "--mirror", client.DefaultGOSUMDB()}, fixedGoEnv("http://proxy.test"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mirrors) != 2 {
		t.Errorf("Mirrors = %q, want two", cfg.Mirrors)
	}
	for _, args := range [][]string{{"--mirror", vkey, "--mirror", vkey + " https://x.example.com"}, {"--mirror", "sum.unknown.test"}} {
		if _, err := load(t, args, fixedGoEnv("http://proxy.test")); err == nil || !strings.Contains(err.Error(), "--mirror") {
			t.Errorf("loadServeConfig(%q) error = %v, want one about --mirror", args, err)
		}
	}
}

func TestMirrorStatusLine(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		st   mirror.Status
		want string
	}{
		{mirror.Status{}, "mirror m: no verified head yet"},
		{mirror.Status{Size: 5}, "mirror m: tree size 5, not verified with the upstream since the start"},
		{mirror.Status{Size: 5, Verified: now.Add(-90 * time.Second)}, "mirror m: tree size 5, head verified 1m30s ago"},
		{mirror.Status{Size: 5, Verified: now, Err: errors.New("GET x: 503\nmore")}, "mirror m: tree size 5, head verified 0s ago; upstream failing: GET x: 503 more"},
		{mirror.Status{Size: 5, Fork: "heads 5 and 7"}, "mirror m: tree size 5, not verified with the upstream since the start; FORK: the upstream showed a tree head inconsistent with the verified one, refused (see the server's log)"},
	} {
		if got := mirrorStatusLine("m", tt.st, now); got != tt.want {
			t.Errorf("mirrorStatusLine(%+v) = %q, want %q", tt.st, got, tt.want)
		}
	}
}
