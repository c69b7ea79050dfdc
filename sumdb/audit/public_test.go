package audit

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

// TestAuditPublic audits the first records of the public log the go command
// uses (go env GOSUMDB), reached as the go command reaches it (through go env
// GOPROXY's /sumdb/ path), and rehashes a few of them from the proxy. It
// needs the network: opt in with SUMDB_TEST_PUBLIC=1. SUMDB_TEST_PUBLIC_LIMIT
// sets the number of records (default 10,000).
func TestAuditPublic(t *testing.T) {
	if os.Getenv("SUMDB_TEST_PUBLIC") != "1" {
		t.Skip("set SUMDB_TEST_PUBLIC=1 to audit a prefix of the public log named by go env GOSUMDB")
	}
	limit := int64(10_000)
	if s := os.Getenv("SUMDB_TEST_PUBLIC_LIMIT"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("SUMDB_TEST_PUBLIC_LIMIT=%q: want a positive number of records", s)
		}
		limit = n
	}
	env := make(map[string]string)
	out, err := exec.CommandContext(t.Context(), "go", "env", "GOSUMDB", "GOPROXY").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		env[[]string{"GOSUMDB", "GOPROXY"}[i]] = line
	}
	if env["GOSUMDB"] == "off" {
		t.Skip("go env GOSUMDB is off")
	}
	remote, err := client.Open(t.Context(), client.Config{GOSUMDB: env["GOSUMDB"], GOPROXY: env["GOPROXY"]})
	if err != nil {
		t.Fatal(err)
	}
	up, err := fetch.New(fetch.Config{Proxy: env["GOPROXY"]})
	if err != nil {
		t.Fatal(err)
	}
	run := func(remote *client.Remote) (*Report, error) {
		t.Logf("auditing the first %d records of %s at %s", limit, remote.Verifier.Name(), remote.Base)
		var progress strings.Builder
		rep, err := Run(t.Context(), Config{Remote: remote, Dir: t.TempDir(), Limit: limit, Rehash: 3, Upstream: up, Progress: &progress, ProgressInterval: 5 * time.Second})
		var b strings.Builder
		if rep != nil {
			rep.WriteText(&b)
		}
		t.Logf("progress:\n%s\nreport:\n%s", progress.String(), b.String())
		return rep, err
	}
	rep, err := run(remote)
	if err != nil && strings.Contains(err.Error(), "reached through a module proxy") {
		// A module proxy serves the go command's requests, and need not
		// serve data tiles. Go to the log itself, as the go command does
		// for "direct".
		t.Logf("Run through the proxy = %v", err)
		direct, derr := client.Open(t.Context(), client.Config{GOSUMDB: remote.Key + " https://" + remote.Verifier.Name()})
		if derr != nil {
			t.Fatal(derr)
		}
		rep, err = run(direct)
	}
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !rep.OK() {
		t.Fatalf("the public log has violations")
	}
	if want := (limit + 255) / 256 * 256; rep.Records != want {
		t.Errorf("clone holds %d records, want %d", rep.Records, want)
	}
}
