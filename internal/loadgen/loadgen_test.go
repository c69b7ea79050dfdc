package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// A testServer is a checksum database on an SQLite log, on loopback.
type testServer struct {
	url      string
	verifier note.Verifier
	log      *tlog.Log
}

// newTestServer starts a checksum database that fetches from upstream.
func newTestServer(t *testing.T, upstream string) *testServer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "sumdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := tlog.Open(t.Context(), st, tlog.Config{Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	up, err := fetch.New(fetch.Config{Proxy: upstream, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// No fetch rate limit: a load's misses all come from one client.
	srv, err := sumdb.NewServer(sumdb.ServerConfig{Log: l, Fetcher: up, FetchRate: sumdb.Disabled})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv) // on 127.0.0.1
	t.Cleanup(hs.Close)
	return &testServer{url: hs.URL, verifier: verifier, log: l}
}

// newLoadProxy starts a Proxy on loopback.
func newLoadProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := ListenProxy("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// checkResult checks what every successful run must satisfy.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	var sum, late int64
	for k, s := range res.Kinds {
		sum += s.Requests
		late += s.Late
		if res.Mix.weight(Kind(k)) > 0 && s.Requests == 0 {
			t.Errorf("no %s request sent, with mix %v", Kind(k), res.Mix)
		}
		if res.Mix.weight(Kind(k)) == 0 && s.Requests != 0 {
			t.Errorf("%d %s requests sent, with mix %v", s.Requests, Kind(k), res.Mix)
		}
		if n := s.Failed(); n != 0 {
			t.Errorf("%d %s requests failed: %v; first: %s", n, Kind(k), s.Errors, s.FirstError)
		}
		checkLatency(t, Kind(k).String(), s)
	}
	if sum != res.Total.Requests {
		t.Errorf("requests of each kind add up to %d, total is %d", sum, res.Total.Requests)
	}
	if late != res.Total.Late || late != res.Late || res.Rate == 0 && late != 0 {
		t.Errorf("late requests of each kind add up to %d, total is %d, result's %d (rate %v)", late, res.Total.Late, res.Late, res.Rate)
	}
	checkLatency(t, "all", res.Total)
	// Every miss logged one new record.
	if grew, misses := res.SizeAfter-res.SizeBefore, res.Kinds[Miss].Requests-res.Kinds[Miss].Failed(); grew != misses {
		t.Errorf("tree grew from %d to %d records (+%d), want +%d (the successful misses)", res.SizeBefore, res.SizeAfter, grew, misses)
	}
	if res.Elapsed > res.Duration+10*time.Second {
		t.Errorf("run took %v, want about %v", res.Elapsed, res.Duration)
	}
	if t.Failed() {
		var b strings.Builder
		res.WriteText(&b)
		t.Logf("result:\n%s", b.String())
	}
}

func checkLatency(t *testing.T, name string, s Stats) {
	t.Helper()
	l := s.Latency
	if !(0 <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s latency = %+v, want 0 ≤ p50 ≤ p90 ≤ p99 ≤ max", name, l)
	}
	if s.Requests > 0 && l.Max == 0 {
		t.Errorf("%s latency = %+v for %d requests, want a positive max", name, l, s.Requests)
	}
}

// TestLoadFlatOut runs every kind of request, flat out, against an empty log
// that the warm-up fills, verifying every tree head.
func TestLoadFlatOut(t *testing.T) {
	t.Parallel()
	p := newLoadProxy(t)
	srv := newTestServer(t, p.URL())
	res, err := Run(t.Context(), Config{
		Target:      srv.url,
		Verifier:    srv.verifier,
		Duration:    1500 * time.Millisecond,
		Concurrency: 4,
		Mix:         Mix{Hit: 60, Miss: 20, Tile: 20},
		Proxy:       p,
		Warmup:      8,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	if res.Warmup != 8 || res.SizeBefore != 8 {
		t.Errorf("warm-up of %d lookups, tree of %d records at the start; want 8 and 8", res.Warmup, res.SizeBefore)
	}
	if got := srv.log.Head().Size; got != res.SizeAfter {
		t.Errorf("log holds %d records, result says %d", got, res.SizeAfter)
	}
	if res.Elapsed < res.Duration {
		t.Errorf("run took %v, want at least %v", res.Elapsed, res.Duration)
	}
	if res.Rate != 0 || res.Late != 0 || res.Interrupted {
		t.Errorf("flat out run: rate %v, late %d, interrupted %v; want 0, 0, false", res.Rate, res.Late, res.Interrupted)
	}
}

// TestLoadRate runs on a schedule: about rate × duration requests.
func TestLoadRate(t *testing.T) {
	t.Parallel()
	p := newLoadProxy(t)
	srv := newTestServer(t, p.URL())
	const rate, duration = 100, 1500 * time.Millisecond
	res, err := Run(t.Context(), Config{
		Target:      srv.url,
		Verifier:    srv.verifier,
		Duration:    duration,
		Rate:        rate,
		Concurrency: 8,
		Mix:         Mix{Hit: 50, Miss: 10, Tile: 40},
		Proxy:       p,
		Warmup:      4,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	// The schedule is exact; what was sent depends on a busy machine.
	due := int64(rate * duration.Seconds())
	if got := res.Total.Requests + res.Late; got != due {
		t.Errorf("%d requests sent and %d late, want %d due in all", res.Total.Requests, res.Late, due)
	}
	if res.Total.Requests == 0 {
		t.Errorf("no request sent of %d due", due)
	}
	if res.Elapsed < duration*9/10 {
		t.Errorf("run took %v, want at least %v: requests were sent ahead of schedule", res.Elapsed, duration*9/10)
	}
}

// TestLoadExistingLog reads a log that other lookups filled: hits come from
// its data tiles, and a mix without misses changes nothing.
func TestLoadExistingLog(t *testing.T) {
	t.Parallel()
	// A log of 260 records (a full data tile and a partial one) of modules
	// that are not generated ones, appended straight to the log.
	other := httptest.NewServer(modproxy.New())
	t.Cleanup(other.Close)
	srv := newTestServer(t, other.URL)
	const size = 260
	var wg sync.WaitGroup
	for i := range size {
		path, version := "example.org/Some/m"+strconv.Itoa(i%7)+"/v"+strconv.Itoa(i+2), "v"+strconv.Itoa(i+2)+".0.0"
		h := sha256.Sum256([]byte(path))
		hash := "h1:" + base64.StdEncoding.EncodeToString(h[:])
		text := fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, hash, path, version, hash)
		wg.Go(func() {
			if _, _, err := srv.log.Append(t.Context(), path, version, []byte(text)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Without a Proxy and without a verifier.
	res, err := Run(t.Context(), Config{
		Target:      srv.url + "/",
		Duration:    time.Minute,
		MaxRequests: 200,
		Concurrency: 4,
		Mix:         Mix{Hit: 1, Tile: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	if res.Total.Requests != 200 {
		t.Errorf("%d requests sent, want --max-requests 200", res.Total.Requests)
	}
	if res.Warmup != 0 || res.SizeBefore != size || res.SizeAfter != size {
		t.Errorf("warm-up %d, tree %d → %d records; want 0, %d → %d", res.Warmup, res.SizeBefore, res.SizeAfter, size, size)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestLoadWrongUpstream checks that a server not fetching from the Proxy
// fails the run at once, saying how to start the server.
func TestLoadWrongUpstream(t *testing.T) {
	t.Parallel()
	p := newLoadProxy(t)
	other := httptest.NewServer(modproxy.New())
	t.Cleanup(other.Close)
	srv := newTestServer(t, other.URL)
	_, err := Run(t.Context(), Config{Target: srv.url, Duration: time.Minute, Proxy: p})
	if err == nil || !strings.Contains(err.Error(), "--upstream "+p.URL()) {
		t.Fatalf("Run against a server with another upstream: err = %v, want one naming --upstream %s", err, p.URL())
	}
	if p.Requests() != 0 {
		t.Errorf("the load proxy received %d requests, want 0", p.Requests())
	}
}

// TestLoadOnlyTarget checks that a run on an http:// target (and so its
// Client) follows no redirect: its requests go to the target and nowhere
// else. TestLoadOnlyTargetHTTPS checks the client of an https:// target.
func TestLoadOnlyTarget(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	_, err := Run(t.Context(), Config{Target: redirect.URL, Duration: time.Second, Mix: Mix{Tile: 1}})
	if err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("Run against a redirect: err = %v, want a 302", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d requests went to the redirect's target, want 0", n)
	}
}

// TestLoadOnlyTargetHTTPS checks that the client of an https:// target
// (newClient, through which a run's requests go as in Run) follows no
// redirect and uses no proxy from the environment, though the target is not
// on loopback (which net/http never sends through a proxy).
func TestLoadOnlyTargetHTTPS(t *testing.T) {
	const child = "SUMDB_LOADGEN_TEST_ONLY_TARGET"
	if os.Getenv(child) == "" {
		// net/http reads the proxy variables once in a process, perhaps
		// already: set them in a new one.
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLoadOnlyTargetHTTPS$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestLoadOnlyTargetHTTPS")) {
			t.Fatalf("test in a process of its own: %v\n%s", err, out)
		}
		return
	}

	// elsewhere stands for every server but the target: a redirect's
	// destination, and the proxy of every variable.
	var mu sync.Mutex
	var hits []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.Method+" "+r.Host+r.URL.Path)
		mu.Unlock()
		http.Error(w, "not the target", http.StatusTeapot)
	}))
	t.Cleanup(elsewhere.Close)
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(v, elsewhere.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(target.Close)

	// The target as https://example.com, a name its certificate holds:
	// dialed at the test server, and trusted.
	c := newClient(2)
	t.Cleanup(c.CloseIdleConnections)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig = target.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "example.com:443" {
			addr = target.Listener.Addr().String()
		}
		return dial(ctx, network, addr)
	}
	r := &runner{cfg: Config{Timeout: 10 * time.Second}, base: "https://example.com", client: c}
	_, cause, err := r.get(t.Context(), nil, "latest")
	if cause != "302" {
		t.Errorf("get /latest from a target that redirects: cause %q, err %v; want 302", cause, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 0 {
		t.Errorf("requests went elsewhere than the target: %q", hits)
	}
}

// newStubServer starts a checksum database of 300 records on loopback that
// answers /latest and every tile, and calls stall before answering a tile.
func newStubServer(t *testing.T, stall func(*http.Request)) string {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "stub.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	head, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: 300}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest" {
			w.Write(head)
			return
		}
		tile, err := xtlog.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		stall(r)
		if tile.L < 0 {
			w.Write(bytes.Repeat([]byte("record\n\n"), tile.W))
		} else {
			w.Write(make([]byte, tile.W*32))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestLoadLate checks that on a schedule, the requests due that a server
// stalling at the end left unsent count in the latencies, with their wait.
func TestLoadLate(t *testing.T) {
	t.Parallel()
	// The first requests are answered at once, every later one after 3s: the
	// two in flight then last beyond the end of the run, and the requests
	// due meanwhile find no free slot.
	const fast, stall = 4, 3 * time.Second
	var tiles atomic.Int64
	target := newStubServer(t, func(r *http.Request) {
		if tiles.Add(1) > fast {
			select {
			case <-time.After(stall):
			case <-r.Context().Done():
			}
		}
	})
	const rate, duration, concurrency = 50, time.Second, 2
	res, err := Run(t.Context(), Config{Target: target, Duration: duration, Rate: rate, Concurrency: concurrency, Mix: Mix{Tile: 1}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	res.WriteText(&text)
	t.Logf("result:\n%s", text.String())
	due := int64(rate * duration.Seconds())
	if res.Total.Requests+res.Late != due || res.Kinds[Tile].Requests != res.Total.Requests || res.Kinds[Tile].Late != res.Late {
		t.Errorf("%d requests sent (%d tiles) and %d late (%d tiles), want %d due in all, all tiles", res.Total.Requests, res.Kinds[Tile].Requests, res.Late, res.Kinds[Tile].Late, due)
	}
	// At most fast+concurrency requests were sent: the others waited for a
	// slot from when they were due (before the end) until a stalled
	// request ended (after the end, and 3s after the start at least).
	if res.Total.Requests > fast+concurrency || res.Late < due-fast-concurrency {
		t.Errorf("%d requests sent and %d late, want at most %d sent", res.Total.Requests, res.Late, fast+concurrency)
	}
	if l := res.Total.Latency; l.P50 < duration || l.P90 < duration {
		t.Errorf("latency p50 %v, p90 %v; want at least %v: most requests waited that long, sent or not", l.P50, l.P90, duration)
	}
	if res.Total.Failed() != 0 {
		t.Errorf("%d requests failed, want 0: %v", res.Total.Failed(), res.Total.FirstError)
	}
	if want := fmt.Sprintf("late      %d requests due", res.Late); !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q", want)
	}
}

// TestLoadInterrupted checks that a canceled run ends at once, and reports
// what it measured.
func TestLoadInterrupted(t *testing.T) {
	t.Parallel()
	p := newLoadProxy(t)
	srv := newTestServer(t, p.URL())
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	res, err := Run(ctx, Config{Target: srv.url, Duration: time.Hour, Rate: 20, Concurrency: 2, Mix: Mix{Hit: 1}, Proxy: p, Warmup: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("canceled run took %v", d)
	}
	if !res.Interrupted || res.Total.Requests == 0 || res.Total.Failed() != 0 {
		t.Errorf("canceled run: interrupted %v, %d requests, %d failed; want true, some, 0", res.Interrupted, res.Total.Requests, res.Total.Failed())
	}
}

func TestLoadConfigErrors(t *testing.T) {
	p := &Proxy{}
	good := Config{Target: "http://127.0.0.1:8080", Duration: time.Second, Proxy: p}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no target", func(c *Config) { c.Target = "" }, "not an http or https URL"},
		{"scheme", func(c *Config) { c.Target = "ftp://127.0.0.1" }, "not an http or https URL"},
		{"no scheme", func(c *Config) { c.Target = "127.0.0.1:8080" }, "127.0.0.1:8080"},
		{"no host", func(c *Config) { c.Target = "http:///lookup" }, "has no host"},
		{"port only", func(c *Config) { c.Target = "http://:8080" }, "has no host"},
		{"user", func(c *Config) { c.Target = "http://u:p@127.0.0.1" }, "user information"},
		{"query", func(c *Config) { c.Target = "http://127.0.0.1/?x=1" }, "query"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"long duration", func(c *Config) { c.Duration = 25 * time.Hour }, "duration"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"high rate", func(c *Config) { c.Rate = 2e6 }, "rate"},
		{"concurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency"},
		{"max requests", func(c *Config) { c.MaxRequests = -1 }, "max requests"},
		{"misses without proxy", func(c *Config) { c.Proxy = nil }, "no load proxy"},
		{"negative mix", func(c *Config) { c.Mix = Mix{Hit: -1, Tile: 2} }, "weight of hit is -1"},
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		_, err := checkConfig(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: checkConfig = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := checkConfig(good); err != nil {
		t.Errorf("checkConfig(%+v) = %v, want nil", good, err)
	}
}

func TestLoadParseMix(t *testing.T) {
	tests := []struct {
		in   string
		want Mix
		err  string
	}{
		{"hit=80,miss=5,tile=15", Mix{80, 5, 15}, ""},
		{" tile = 1 , hit=2", Mix{Hit: 2, Tile: 1}, ""},
		{"miss=1", Mix{Miss: 1}, ""},
		{"hit=0", Mix{}, "every weight is 0"},
		{"hit=1,hit=2", Mix{}, "given twice"},
		{"hits=1", Mix{}, "not hit=N"},
		{"hit", Mix{}, "not hit=N"},
		{"hit=-1", Mix{}, "whole number"},
		{"hit=x", Mix{}, "whole number"},
		{"", Mix{}, "not hit=N"},
	}
	for _, tt := range tests {
		got, err := ParseMix(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseMix(%q) = %v, %v, want an error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMix(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
		if back, err := ParseMix(got.String()); err != nil || back != got {
			t.Errorf("ParseMix(%q.String() = %q) = %v, %v, want %v", tt.in, got.String(), back, err, got)
		}
	}
}

// TestLoadProxy checks the modules a Proxy generates.
func TestLoadProxy(t *testing.T) {
	t.Parallel()
	p := newLoadProxy(t)
	tests := []struct {
		path string
		code int
	}{
		{"/example.com/load/abc123/m0/@v/v1.0.0.info", 200},
		{"/example.com/load/abc123/m17/@v/v1.0.0.mod", 200},
		{"/example.com/load/abc123/w3/@v/v1.0.0.zip", 200},
		{"/example.com/load/abc123/m17/@v/list", 200},
		{"/example.com/load/abc123/m17/@v/v1.0.1.info", 404},
		{"/example.com/load/abc123/m017/@v/v1.0.0.info", 404},
		{"/example.com/load/abc123/x1/@v/v1.0.0.info", 404},
		{"/example.com/load/!a/m1/@v/v1.0.0.info", 404},
		{"/example.com/other/m1/@v/v1.0.0.info", 404},
		{"/nothing", 404},
	}
	for _, tt := range tests {
		code, body := get(t, p.URL()+tt.path)
		if code != tt.code {
			t.Errorf("GET %s = %d %q, want %d", tt.path, code, body, tt.code)
		}
	}
	if got := p.Requests(); got != int64(len(tests)) {
		t.Errorf("Requests() = %d, want %d", got, len(tests))
	}
	// Rebuilt after being forgotten, a module is the same.
	_, mod1 := get(t, p.URL()+"/example.com/load/abc123/m17/@v/v1.0.0.mod")
	p.mu.Lock()
	p.genSize = 4
	p.mu.Unlock()
	for i := range 2*4 + 1 {
		p.generation(moduleName("rotate", 'm', int64(i)))
	}
	if p.cur.paths["example.com/load/abc123/m17"] || p.old.paths["example.com/load/abc123/m17"] {
		t.Fatal("module still held after two generations")
	}
	_, mod2 := get(t, p.URL()+"/example.com/load/abc123/m17/@v/v1.0.0.mod")
	if !bytes.Equal(mod1, mod2) || !bytes.Contains(mod1, []byte("module example.com/load/abc123/m17\n")) {
		t.Errorf("go.mod of a rebuilt module = %q, was %q", mod2, mod1)
	}
}

// TestLoadResultOutput checks both formats of a Result.
func TestLoadResultOutput(t *testing.T) {
	res := &Result{
		Target: "http://127.0.0.1:8080", Rate: 100, Concurrency: 8, Mix: Mix{Hit: 1, Miss: 1},
		Duration: 10 * time.Second, Elapsed: 10 * time.Second, SizeBefore: 10, SizeAfter: 15, Late: 3,
		Total: Stats{Requests: 1000, Errors: map[string]int64{"503": 2}, Latency: Latency{P50: time.Millisecond, P90: 2 * time.Millisecond, P99: 15 * time.Millisecond, Max: time.Second}},
	}
	res.Kinds[Hit] = Stats{Requests: 995, Late: 3, Latency: Latency{P50: 900 * time.Microsecond, Max: 2 * time.Millisecond}}
	res.Kinds[Miss] = Stats{Requests: 5, Errors: map[string]int64{"503": 2}, FirstError: "get /lookup/x@v1.0.0: 503 Service Unavailable: server busy"}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"100 req/s on schedule", "10 → 15 records (+5)", "1000 in 10.00s: 100.0 req/s, 2 failed",
		"late      3 requests due", "\n  hit ", "\n  miss", "\n  all ", "1.00ms", "900µs", "1.00s", "503 ×2; first: get /lookup/x@v1.0.0",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("WriteText output lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "tile") {
		t.Errorf("WriteText output shows tiles, not in the mix:\n%s", text.String())
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back jsonResult
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("WriteJSON output does not parse: %v\n%s", err, js.String())
	}
	if back.Mode != "rate" || back.Total.Requests != 1000 || back.Total.Failed != 2 || back.Total.LatencyMS.P99 != 15 ||
		back.Kinds["miss"].Errors["503"] != 2 || back.TreeSizeAfter != 15 || back.Total.PerSecond != 100 ||
		back.Late != 3 || back.Kinds["hit"].Late != 3 {
		t.Errorf("WriteJSON output = %s", js.String())
	}
}

func TestLoadFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0ns"},
		{999, "999ns"},
		{1500, "1.50µs"},
		{12345 * time.Microsecond, "12.3ms"},
		{123456 * time.Microsecond, "123ms"},
		{90 * time.Second, "90.0s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%d) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
