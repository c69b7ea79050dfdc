package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/tlog"
)

// A loadServer is a checksum database on an SQLite log, on loopback, whose
// upstream is the address where "sumdb load" will serve its modules.
type loadServer struct {
	url, vkey string
	proxyAddr string // host:port for --proxy-listen
	log       *tlog.Log
}

func newLoadServer(t *testing.T) *loadServer {
	t.Helper()
	// A free port for the load proxy, known before the server starts.
	proxyAddr := sumdbtest.FreeAddr(t)
	db := sumdbtest.MustStart(t, sumdbtest.Options{ProxyURL: "http://" + proxyAddr})
	return &loadServer{url: db.URL, vkey: db.Key.VKey, proxyAddr: proxyAddr, log: db.Log}
}

// loadReport is the part of the JSON report the tests read.
type loadReport struct {
	Mode           string               `json:"mode"`
	ElapsedS       float64              `json:"elapsed_s"`
	TreeSizeBefore int64                `json:"tree_size_before"`
	TreeSizeAfter  int64                `json:"tree_size_after"`
	Late           int64                `json:"late"`
	Total          loadStats            `json:"total"`
	Kinds          map[string]loadStats `json:"kinds"`
}

type loadStats struct {
	Requests  int64            `json:"requests"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors"`
	LatencyMS struct {
		P50, P90, P99, Max float64
	} `json:"latency_ms"`
}

// TestLoad runs "sumdb load" against a server for a second, with every kind
// of request, flat out and on a schedule.
func TestLoad(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"flat out", []string{"--concurrency", "4"}},
		{"rate", []string{"--rate", "100", "--concurrency", "8"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newLoadServer(t)
			args := append([]string{"load",
				"--target", srv.url, "--key", srv.vkey, "--duration", "1s",
				"--mix", "hit=60,miss=20,tile=20", "--proxy-listen", srv.proxyAddr, "--format", "json",
			}, tt.args...)
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), args, &stdout, &stderr); err != nil {
				t.Fatalf("sumdb %s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
			}
			if !strings.Contains(stderr.String(), "http://"+srv.proxyAddr) {
				t.Errorf("stderr does not name the load proxy http://%s:\n%s", srv.proxyAddr, stderr.String())
			}
			var rep loadReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
			}
			var sum int64
			for _, kind := range []string{"hit", "miss", "tile"} {
				s := rep.Kinds[kind]
				sum += s.Requests
				if s.Requests == 0 || s.Failed != 0 {
					t.Errorf("%s: %d requests, %d failed (%v); want some, 0", kind, s.Requests, s.Failed, s.Errors)
				}
				if l := s.LatencyMS; !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
					t.Errorf("%s latency = %+v, want 0 < p50 ≤ p90 ≤ p99 ≤ max", kind, l)
				}
			}
			if sum != rep.Total.Requests {
				t.Errorf("requests of each kind add up to %d, total is %d", sum, rep.Total.Requests)
			}
			if grew, misses := rep.TreeSizeAfter-rep.TreeSizeBefore, rep.Kinds["miss"].Requests; grew != misses {
				t.Errorf("tree grew by %d records, want %d (the misses)", grew, misses)
			}
			if got := srv.log.Head().Size; got != rep.TreeSizeAfter {
				t.Errorf("log holds %d records, report says %d", got, rep.TreeSizeAfter)
			}
			if rep.Mode == "rate" {
				// 100 requests due in 1s; how many were sent rather than late
				// depends on how busy the machine is, so only the schedule is exact.
				if rep.Total.Requests+rep.Late != 100 || rep.Total.Requests == 0 {
					t.Errorf("%d requests sent, %d late; want 100 due, some sent", rep.Total.Requests, rep.Late)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}

// TestLoadText checks the text report, and that a log that is not empty
// needs no proxy request for a mix without misses.
func TestLoadText(t *testing.T) {
	t.Parallel()
	srv := newLoadServer(t)
	// Fill the log once, then read it without misses.
	var stdout, stderr bytes.Buffer
	args := []string{"load", "--target", srv.url + "/", "--duration", "1s", "--max-requests", "10", "--mix", "miss=1", "--proxy-listen", srv.proxyAddr}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("sumdb %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	stdout.Reset()
	args = []string{"load", "--target", srv.url, "--duration", "1s", "--rate", "50", "--concurrency", "2", "--mix", "hit=1,tile=1", "--proxy-listen", "127.0.0.1:0"}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("sumdb %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	for _, want := range []string{"target    " + srv.url + "\n", "50 req/s on schedule", "mix hit=1,tile=1", "p50", "p99", "\n  hit ", "\n  tile", "\n  all "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "miss") {
		t.Errorf("report shows misses, not in the mix:\n%s", stdout.String())
	}
}

// TestLoadUsage checks the command line mistakes load refuses before
// sending anything.
func TestLoadUsage(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--target is required"},
		{[]string{"--target", "127.0.0.1:8080"}, "invalid --target"},
		{[]string{"--target", "ftp://127.0.0.1"}, "not an http or https URL"},
		{[]string{"--target", "http://"}, "has no host"},
		{[]string{"--target", "http:///latest"}, "has no host"},
		{[]string{"--target", "http://127.0.0.1", "extra"}, "unexpected argument \"extra\""},
		{[]string{"--target", "http://127.0.0.1", "--key", "nokey"}, "invalid --key"},
		{[]string{"--target", "http://127.0.0.1", "--duration", "0s"}, "invalid --duration"},
		{[]string{"--target", "http://127.0.0.1", "--duration", "48h"}, "invalid --duration"},
		{[]string{"--target", "http://127.0.0.1", "--rate", "-1"}, "invalid --rate"},
		{[]string{"--target", "http://127.0.0.1", "--concurrency", "0"}, "invalid --concurrency"},
		{[]string{"--target", "http://127.0.0.1", "--max-requests", "-5"}, "invalid --max-requests"},
		{[]string{"--target", "http://127.0.0.1", "--mix", "hit=1,foo=2"}, "invalid --mix"},
		{[]string{"--target", "http://127.0.0.1", "--proxy-listen", "nowhere"}, "invalid --proxy-listen"},
		{[]string{"--target", "http://127.0.0.1", "--timeout", "-1s"}, "invalid --timeout"},
		{[]string{"--target", "http://127.0.0.1", "--format", "xml"}, "invalid --format"},
		{[]string{"--frob"}, "unknown flag: --frob"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"load"}, tt.args...), &stdout, &stderr)
		status := report(err, &stderr)
		if status != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("sumdb load %q: status %d, stderr %q; want 2 and one line containing %q", tt.args, status, stderr.String(), tt.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("sumdb load %q: stdout %q, want nothing", tt.args, stdout.String())
		}
	}

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"load", "--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("sumdb load --help: %v", err)
	}
	for _, want := range []string{"Usage: sumdb load", "--target", "--proxy-listen", "--upstream http://127.0.0.1:8081"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("sumdb load --help lacks %q:\n%s", want, stdout.String())
		}
	}
}
