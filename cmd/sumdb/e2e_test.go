package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to tamper with the log
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to tamper with the log

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/store/storetest"
)

// The end-to-end tests run the sumdb binary as a subprocess and the real go
// command against it: the go command is the client the server must satisfy.

// testBinDir holds the binaries built by the tests; TestMain removes it.
var testBinDir string

// pkgDir is the directory of this package, where the tests started.
var pkgDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sumdb-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	if pkgDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// sumdbBinary builds the sumdb command once, with the race detector when the
// tests have it, so that the end-to-end runs check the server for races too.
func sumdbBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildPath = filepath.Join(testBinDir, "sumdb")
		if runtime.GOOS == "windows" {
			buildPath += ".exe"
		}
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCommand(t), append(args, ".")...)
		cmd.Dir = pkgDir // whatever the current directory of the test
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// goCommand returns the go command of the toolchain running the tests.
func goCommand(t *testing.T) string {
	t.Helper()
	exe := "go"
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if goroot := runtime.GOROOT(); goroot != "" {
		if p := filepath.Join(goroot, "bin", exe); fileExists(p) {
			return p
		}
	}
	// go test puts its GOROOT/bin first in PATH.
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("cannot find the go command: %v", err)
	}
	return p
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// environ returns the environment without the variables that configure
// sumdb or the go command, so that the user's settings cannot leak in. It
// turns serve's cross-check with the public checksum database off, for
// the tests have no network: those of the cross-check turn it on again
// (a later variable of the same name wins).
func environ() []string {
	env := []string{envName("public-sumdb") + "=off"}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SUMDB_") || (strings.HasPrefix(name, "GO") && name != "GOCACHE" && name != "GOROOT") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// A sumdbProcess is a running "sumdb serve".
type sumdbProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	gosumdb string // the printed GOSUMDB value: "<vkey> http://<addr>"
	vkey    string
	url     string
	client  *http.Client // for get; nil: http.DefaultClient
	stdout  *lineBuffer
	stderr  *syncBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed
}

// A syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A lineBuffer is a syncBuffer that sends its first line on first.
type lineBuffer struct {
	syncBuffer
	first chan string // buffered; receives the first line once
	sent  bool        // guarded by syncBuffer.mu
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent {
		if line, _, ok := strings.Cut(b.buf.String(), "\n"); ok {
			b.first <- line
			b.sent = true
		}
	}
	return len(p), nil
}

// startSumdb starts "sumdb serve args..." and waits for its GOSUMDB line.
// If the server exits first, it returns its stderr as the error.
func startSumdb(t *testing.T, args ...string) (*sumdbProcess, error) {
	t.Helper()
	return startSumdbEnv(t, nil, args...)
}

// startSumdbEnv is startSumdb with the variables env added to the server's
// environment.
func startSumdbEnv(t *testing.T, env []string, args ...string) (*sumdbProcess, error) {
	t.Helper()
	cmd := exec.Command(sumdbBinary(t), append([]string{"serve"}, args...)...)
	// The zips the server spools while fetching stay behind when a test
	// kills it: in the test's own directory, not the machine's.
	cmd.Env = append(append(environ(), "TMPDIR="+t.TempDir()), env...)
	p := &sumdbProcess{t: t, cmd: cmd, stdout: &lineBuffer{first: make(chan string, 1)}, stderr: new(syncBuffer), exited: make(chan struct{})}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		// Nothing but the GOSUMDB line may appear on stdout: logs go to stderr.
		if out := p.stdout.String(); strings.Count(out, "\n") > 1 {
			t.Errorf("sumdb serve printed more than one line on stdout:\n%s", out)
		}
		if t.Failed() {
			t.Logf("sumdb serve %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})

	var line string
	select {
	case line = <-p.stdout.first:
	case <-p.exited:
		select {
		case line = <-p.stdout.first:
		default:
			return nil, fmt.Errorf("sumdb serve exited (%v) without its GOSUMDB line; stderr:\n%s", p.waitErr, p.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("sumdb serve printed no GOSUMDB line within 2m; stderr:\n%s", p.stderr.String())
	}
	value, found := strings.CutPrefix(line, "GOSUMDB=")
	if !found || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
		t.Fatalf("sumdb serve printed %q, want GOSUMDB=\"<vkey> http://<addr>\"", line)
	}
	p.gosumdb = value[1 : len(value)-1]
	fields := strings.Fields(p.gosumdb)
	if len(fields) != 2 || !(strings.HasPrefix(fields[1], "http://127.0.0.1:") || strings.HasPrefix(fields[1], "https://")) || strings.HasSuffix(fields[1], ":0") {
		t.Fatalf("sumdb serve printed GOSUMDB=%q, want \"<vkey> http://127.0.0.1:<port>\" or an https:// URL", p.gosumdb)
	}
	if _, err := note.NewVerifier(fields[0]); err != nil {
		t.Fatalf("sumdb serve printed GOSUMDB=%q: %v", p.gosumdb, err)
	}
	p.vkey, p.url = fields[0], fields[1]
	return p, nil
}

// stop interrupts the server and checks that it shuts down cleanly.
func (p *sumdbProcess) stop() {
	p.t.Helper()
	p.stopWith(os.Interrupt)
}

// stopWith sends sig to the server and checks that it shuts down cleanly.
func (p *sumdbProcess) stopWith(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && runtime.GOOS != "windows" {
		p.t.Fatalf("signal sumdb serve: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("sumdb serve did not stop within 30s of %v", sig)
	}
	if p.waitErr != nil && runtime.GOOS != "windows" {
		p.t.Fatalf("sumdb serve exited with %v after %v; stderr:\n%s", p.waitErr, sig, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		p.t.Errorf("sumdb serve did not log its clean stop after %v; stderr:\n%s", sig, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		p.t.Errorf("sumdb serve reported a data race:\n%s", p.stderr.String())
	}
}

// get fetches a path from the server.
func (p *sumdbProcess) get(path string) (int, []byte) {
	p.t.Helper()
	client := p.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(p.url + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// lookup returns the record text of path@version that the server serves,
// after checking the answer's signature and that its head covers the record.
func (p *sumdbProcess) lookup(path, version string) ([]byte, error) {
	p.t.Helper()
	escPath, err := module.EscapePath(path)
	if err != nil {
		p.t.Fatal(err)
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		p.t.Fatal(err)
	}
	code, body := p.get("/lookup/" + escPath + "@" + escVersion)
	if code != http.StatusOK {
		return nil, fmt.Errorf("lookup %s@%s: %d %s", path, version, code, body)
	}
	id, text, signed, err := tlog.ParseRecord(body)
	if err != nil {
		p.t.Fatalf("lookup %s@%s: %v", path, version, err)
	}
	tree := p.openTree(signed)
	if id >= tree.N {
		p.t.Fatalf("lookup %s@%s: record %d, head of size %d does not cover it", path, version, id, tree.N)
	}
	return text, nil
}

// openTree checks a signed tree note and returns its tree.
func (p *sumdbProcess) openTree(msg []byte) tlog.Tree {
	p.t.Helper()
	v, err := note.NewVerifier(p.vkey)
	if err != nil {
		p.t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		p.t.Fatalf("open signed tree %q: %v", msg, err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		p.t.Fatalf("parse tree: %v", err)
	}
	return tree
}

// latest returns the server's current tree.
func (p *sumdbProcess) latest() tlog.Tree {
	p.t.Helper()
	code, body := p.get("/latest")
	if code != http.StatusOK {
		p.t.Fatalf("GET /latest: %d %s", code, body)
	}
	return p.openTree(body)
}

// A goUser is the environment of the go command as one user: a GOPATH, which
// holds the newest tree head the go command has verified, and a module cache.
type goUser struct {
	t          *testing.T
	gopath     string
	gomodcache string
	goproxy    string
	env        []string // more variables, such as SSL_CERT_FILE
}

func newGoUser(t *testing.T, goproxy string) *goUser {
	return &goUser{t: t, gopath: t.TempDir(), gomodcache: t.TempDir(), goproxy: goproxy}
}

// run runs the go command in dir with GOSUMDB=gosumdb and returns its
// combined output.
func (e *goUser) run(dir, gosumdb string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCommand(e.t), args...)
	cmd.Dir = dir
	cmd.Env = append(environ(),
		"GOPATH="+e.gopath,
		"GOMODCACHE="+e.gomodcache,
		"GOPROXY="+e.goproxy,
		"GOSUMDB="+gosumdb,
		"GONOSUMDB=", "GOPRIVATE=", "GONOPROXY=", "GOINSECURE=",
		"GOFLAGS=-mod=mod -modcacherw", // -modcacherw: t.TempDir can remove the cache
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GOENV=off",
		"GOCACHE="+goCache(e.t),
	)
	cmd.Env = append(cmd.Env, e.env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		e.t.Fatalf("go %s: timed out\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// mustRun runs the go command and fails the test if it fails.
func (e *goUser) mustRun(dir, gosumdb string, args ...string) string {
	e.t.Helper()
	out, err := e.run(dir, gosumdb, args...)
	if err != nil {
		e.t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if strings.Contains(out, "SECURITY ERROR") {
		e.t.Fatalf("go %s reported a SECURITY ERROR:\n%s", strings.Join(args, " "), out)
	}
	return out
}

var (
	goCacheOnce sync.Once
	goCacheDir  string
)

// goCache returns the build cache of the user running the tests, so that
// the go commands of the tests do not rebuild the world.
func goCache(t *testing.T) string {
	goCacheOnce.Do(func() {
		out, err := exec.Command(goCommand(t), "env", "GOCACHE").Output()
		if err == nil {
			goCacheDir = strings.TrimSpace(string(out))
		}
	})
	if goCacheDir == "" || goCacheDir == "off" {
		return filepath.Join(testBinDir, "gocache")
	}
	return goCacheDir
}

// newMainModule creates a main module importing the given packages and
// returns its directory.
func newMainModule(t *testing.T, imports ...string) string {
	t.Helper()
	dir := t.TempDir()
	var main strings.Builder
	main.WriteString("package main\n\nimport (\n")
	for _, imp := range imports {
		fmt.Fprintf(&main, "\t_ %q\n", imp)
	}
	main.WriteString(")\n\nfunc main() {}\n")
	files := map[string]string{
		"go.mod":  "module example.com/e2e\n\ngo 1.21\n",
		"main.go": main.String(),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goSumLines returns the lines of dir/go.sum.
func goSumLines(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatalf("read go.sum: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// checkGoSum checks that every line of dir/go.sum is a line of the log's
// record of its module version, and that want lines are all there.
func checkGoSum(t *testing.T, srv *sumdbProcess, up *modproxy.Proxy, dir string, want ...string) {
	t.Helper()
	lines := goSumLines(t, dir)
	records := make(map[string][]byte)
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("go.sum line %q: want three fields", line)
		}
		path, version := f[0], strings.TrimSuffix(f[1], "/go.mod")
		key := path + "@" + version
		rec, ok := records[key]
		if !ok {
			var err error
			if rec, err = srv.lookup(path, version); err != nil {
				t.Fatalf("go.sum line %q: %v", line, err)
			}
			records[key] = rec
			// The log's record is the hash of what the upstream serves.
			if oracle, err := up.GoSum(path, version); err != nil || !bytes.Equal(rec, oracle) {
				t.Errorf("record of %s = %q, want %q (err %v)", key, rec, oracle, err)
			}
		}
		if !slices.Contains(strings.Split(strings.TrimSuffix(string(rec), "\n"), "\n"), line) {
			t.Errorf("go.sum line %q is not in the log's record of %s:\n%s", line, key, rec)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w+" h1:") }) {
			t.Errorf("go.sum has no line %q; go.sum:\n%s", w, strings.Join(lines, "\n"))
		}
	}
}

// proxies are the module proxy the go command uses and the one the checksum
// database fetches from. They serve the same modules, except modules added
// to the go command's only: for those, the go command gets the checksum
// database's "not found" answer.
type proxies struct {
	goProxy, upstream       *modproxy.Proxy
	goProxyURL, upstreamURL string
}

func newProxies(t *testing.T) *proxies {
	p := &proxies{goProxy: modproxy.New(), upstream: modproxy.New()}
	gs := httptest.NewServer(p.goProxy)
	t.Cleanup(gs.Close)
	us := httptest.NewServer(p.upstream)
	t.Cleanup(us.Close)
	p.goProxyURL, p.upstreamURL = gs.URL, us.URL
	return p
}

func (p *proxies) add(t *testing.T, mods ...modproxy.Module) {
	t.Helper()
	for _, m := range mods {
		if err := p.goProxy.Add(m); err != nil {
			t.Fatal(err)
		}
		if err := p.upstream.Add(m); err != nil {
			t.Fatal(err)
		}
	}
}

// pkg returns a module with one package at its root, and the go.mod text
// gomod if not empty.
func pkg(path, version, gomod string) modproxy.Module {
	name := path[strings.LastIndex(path, "/")+1:]
	name, _, _ = strings.Cut(name, ".") // gopkg.in/yaml.v2 is package yaml
	name = strings.ToLower(strings.ReplaceAll(name, "-", ""))
	files := map[string]string{name + ".go": "package " + name + "\n"}
	if gomod != "" {
		files["go.mod"] = gomod
	}
	return modproxy.Module{Path: path, Version: version, Files: files}
}

// maxZipSize is the zip size limit the end-to-end servers run with.
const maxZipSize = 256 << 10

func TestEndToEndSQLite(t *testing.T) {
	t.Parallel()
	testEndToEnd(t, func(t *testing.T) backend {
		dir := t.TempDir()
		return backend{
			dataDir:      dir,
			args:         []string{"--data-dir", dir},
			driver:       "sqlite",
			dsn:          filepath.Join(dir, "sumdb.db"),
			allowUpdate:  "DROP TRIGGER records_no_update",
			updateRecord: "UPDATE records SET text = ? WHERE id = ?",
		}
	})
}

func TestEndToEndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the end-to-end test on PostgreSQL")
	}
	t.Parallel()
	testEndToEnd(t, func(t *testing.T) backend {
		url := storetest.PostgresURL(t)
		dir := t.TempDir()
		return backend{
			dataDir:      dir,
			args:         []string{"--data-dir", dir, "--database-url", url},
			driver:       "pgx",
			dsn:          url,
			allowUpdate:  "DROP TRIGGER records_append_only ON records",
			updateRecord: "UPDATE records SET text = $1 WHERE id = $2",
		}
	})
}

// A backend is the store of one log.
type backend struct {
	dataDir string   // the data directory, which holds the key file
	args    []string // serve flags naming the data directory and the store
	// The store's database, as a tamperer would open it.
	driver, dsn string
	// allowUpdate drops the trigger that keeps records append-only;
	// updateRecord sets the text of a record, given text and id.
	allowUpdate, updateRecord string
}

func testEndToEnd(t *testing.T, newBackend func(t *testing.T) backend) {
	px := newProxies(t)
	be := newBackend(t)
	dataArgs := slices.Concat(be.args, []string{"--listen", "127.0.0.1:0", "--upstream", px.upstreamURL,
		"--max-zip-size", fmt.Sprint(maxZipSize), "--name", "sum.example.com", "--log-level", "debug"})

	px.add(t,
		pkg("example.com/Upper/mod", "v1.0.0", "module example.com/Upper/mod\n\ngo 1.16\n"),
		pkg("example.com/inc", "v2.0.0+incompatible", ""), // no go.mod
		pkg("example.com/pseudo", "v0.0.0-20240102030405-abcdef012345", "module example.com/pseudo\n"),
		pkg("example.com/pseudo/patch", "v1.2.4-0.20240102030405-abcdef012345", "module example.com/pseudo/patch\n"),
		pkg("example.com/pseudo/pre", "v1.3.0-pre.0.20240102030405-abcdef012345", "module example.com/pseudo/pre\n"),
		pkg("example.com/nogomod", "v1.0.0", ""),
		pkg("example.com/a", "v1.0.0", "module example.com/a\n"),
		pkg("example.com/a", "v1.1.0", "module example.com/a\n"),
		// b is unpruned (no go directive): the go command reads the go.mod
		// of its requirement a v1.0.0, which MVS then drops for v1.1.0.
		pkg("example.com/b", "v1.0.0", "module example.com/b\n\nrequire example.com/a v1.0.0\n"),
		pkg("gopkg.in/yaml.v2", "v2.4.0", "module gopkg.in/yaml.v2\n"),
		pkg("golang.org/toolchain", "v0.0.1-go1.99.0.linux-amd64", ""),
	)
	// Over the size limit: random bytes do not compress.
	rnd := rand.New(rand.NewChaCha8([32]byte{1}))
	big := make([]byte, maxZipSize+1024)
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	bigMod := pkg("example.com/big", "v1.0.0", "module example.com/big\n")
	bigMod.Files["data.bin"] = string(big)
	px.add(t, bigMod)
	// A .mod that is not the zip's go.mod: the log refuses the pair.
	incons := pkg("example.com/incons", "v1.0.0", "module example.com/incons\n")
	incons.Mod = []byte("module example.com/incons\n\nrequire example.com/a v1.0.0\n")
	px.add(t, incons)
	// Known to the go command's proxy only: the log cannot have it.
	if err := px.goProxy.Add(pkg("example.com/unlogged", "v1.0.0", "module example.com/unlogged\n")); err != nil {
		t.Fatal(err)
	}

	srv, err := startSumdb(t, dataArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if name := strings.SplitN(srv.vkey, "+", 2)[0]; name != "sum.example.com" {
		t.Fatalf("key name %q, want sum.example.com (from --name)", name)
	}
	user := newGoUser(t, px.goProxyURL)

	// The go command downloads and verifies every kind of module version.
	dir := newMainModule(t,
		"example.com/Upper/mod", "example.com/inc", "example.com/pseudo", "example.com/pseudo/patch",
		"example.com/pseudo/pre", "example.com/nogomod", "example.com/a", "example.com/b", "gopkg.in/yaml.v2")
	user.mustRun(dir, srv.gosumdb, "get",
		"example.com/Upper/mod@v1.0.0", "example.com/inc@v2.0.0+incompatible",
		"example.com/pseudo@v0.0.0-20240102030405-abcdef012345",
		"example.com/pseudo/patch@v1.2.4-0.20240102030405-abcdef012345",
		"example.com/pseudo/pre@v1.3.0-pre.0.20240102030405-abcdef012345",
		"example.com/nogomod@v1.0.0", "example.com/a@v1.1.0", "example.com/b@v1.0.0", "gopkg.in/yaml.v2@v2.4.0")
	user.mustRun(dir, srv.gosumdb, "mod", "tidy")
	user.mustRun(dir, srv.gosumdb, "mod", "download")
	user.mustRun(dir, srv.gosumdb, "build", "./...")
	checkGoSum(t, srv, px.upstream, dir,
		"example.com/Upper/mod v1.0.0", "example.com/Upper/mod v1.0.0/go.mod",
		"example.com/inc v2.0.0+incompatible", "example.com/inc v2.0.0+incompatible/go.mod",
		"example.com/pseudo v0.0.0-20240102030405-abcdef012345",
		"example.com/pseudo/patch v1.2.4-0.20240102030405-abcdef012345",
		"example.com/pseudo/pre v1.3.0-pre.0.20240102030405-abcdef012345",
		"example.com/nogomod v1.0.0", "example.com/nogomod v1.0.0/go.mod",
		"example.com/a v1.1.0", "example.com/a v1.0.0/go.mod", "example.com/b v1.0.0",
		"gopkg.in/yaml.v2 v2.4.0", "gopkg.in/yaml.v2 v2.4.0/go.mod")
	// a v1.0.0 is needed only for its go.mod.
	if lines := goSumLines(t, dir); slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "example.com/a v1.0.0 h1:") }) {
		t.Errorf("go.sum has the zip hash of example.com/a v1.0.0, which MVS does not select:\n%s", strings.Join(lines, "\n"))
	}

	// The go command asks for golang.org/toolchain versions when it switches
	// toolchains, which a test cannot make it do: look one up directly.
	if _, err := srv.lookup("golang.org/toolchain", "v0.0.1-go1.99.0.linux-amd64"); err != nil {
		t.Error(err)
	}

	// Versions the log cannot hold: the go command fails and shows why.
	if out, err := user.run(dir, srv.gosumdb, "get", "example.com/a@v1.9.9"); err == nil || !strings.Contains(out, "unknown revision v1.9.9") {
		t.Errorf("go get example.com/a@v1.9.9: %v, output:\n%s\nwant a failure saying unknown revision v1.9.9", err, out)
	}
	if code, body := srv.get("/lookup/example.com/a@v1.9.9"); code != http.StatusNotFound || !strings.Contains(string(body), "unknown revision") {
		t.Errorf("GET /lookup/example.com/a@v1.9.9: %d %q, want 404 saying unknown revision", code, body)
	}
	out, err := user.run(dir, srv.gosumdb, "get", "example.com/unlogged@v1.0.0")
	if err == nil || !strings.Contains(out, "server response: not found: example.com/unlogged@v1.0.0") || !strings.Contains(out, "unknown revision") {
		t.Errorf("go get example.com/unlogged@v1.0.0: %v, output:\n%s\nwant a failure with the checksum database's not found reason", err, out)
	}
	out, err = user.run(dir, srv.gosumdb, "get", "example.com/big@v1.0.0")
	if want := fmt.Sprintf("module zip larger than %d bytes", maxZipSize); err == nil || !strings.Contains(out, want) {
		t.Errorf("go get example.com/big@v1.0.0: %v, output:\n%s\nwant a failure saying %q", err, out, want)
	}
	out, err = user.run(dir, srv.gosumdb, "get", "example.com/incons@v1.0.0")
	if want := "server response: not found: example.com/incons@v1.0.0: .mod differs from the zip's go.mod"; err == nil || !strings.Contains(out, want) {
		t.Errorf("go get example.com/incons@v1.0.0: %v, output:\n%s\nwant a failure saying %q", err, out, want)
	}
	checkGoSum(t, srv, px.upstream, dir) // nothing unlogged crept in

	// Restart on the same store: same key, the log goes on, and the go
	// command, which remembers the old head, accepts the new ones.
	before := srv.latest()
	srv.stop()
	srv2, err := startSumdb(t, dataArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if srv2.vkey != srv.vkey {
		t.Fatalf("after a restart the verifier key is %q, was %q", srv2.vkey, srv.vkey)
	}
	if after := srv2.latest(); after != before {
		t.Fatalf("after a restart the tree is %+v, was %+v", after, before)
	}
	px.add(t,
		pkg("example.com/later", "v1.0.0", "module example.com/later\n\ngo 1.21\n"),
		pkg("example.com/a", "v1.2.0", "module example.com/a\n"),
	)
	user.mustRun(dir, srv2.gosumdb, "get", "example.com/later@v1.0.0", "example.com/a@v1.2.0")
	checkGoSum(t, srv2, px.upstream, dir, "example.com/later v1.0.0", "example.com/a v1.2.0")
	if n := srv2.latest().N; n <= before.N {
		t.Errorf("after new lookups the tree has %d records, want more than %d", n, before.N)
	}
	seen := srv2.latest() // the newest head the user's go command may have verified
	srv2.stop()

	// Tamper with a stored record: the go command must refuse it.
	t.Run("tamper", func(t *testing.T) {
		tamper(t, be, "example.com/nogomod v1.0.0 ")
		srv3, err := startSumdb(t, dataArgs...)
		if err != nil {
			t.Logf("sumdb serve refused the tampered store: %v", err)
			return // refusing to serve is a fine answer too
		}
		defer srv3.stop()
		// A fresh module cache forces the go command to look the module up
		// again; the GOPATH keeps the head it verified.
		tampered := &goUser{t: t, gopath: user.gopath, gomodcache: t.TempDir(), goproxy: px.goProxyURL}
		dir := newMainModule(t, "example.com/nogomod")
		out, err := tampered.run(dir, srv3.gosumdb, "get", "example.com/nogomod@v1.0.0")
		if err == nil || !(strings.Contains(out, "SECURITY ERROR") || strings.Contains(out, "cannot authenticate record data")) {
			t.Fatalf("go get of a tampered record: %v, output:\n%s\nwant a refusal", err, out)
		}
		t.Logf("the go command refused the tampered record:\n%s", out)
	})

	// A fork: the same key signing another tree. The go command, which
	// remembers a head of the first tree, must detect it.
	t.Run("fork", func(t *testing.T) {
		fork := newBackend(t)
		keyFile := filepath.Join(be.dataDir, "signer.key")
		forkArgs := slices.Concat(fork.args, []string{"--listen", "127.0.0.1:0", "--upstream", px.upstreamURL, "--key-file", keyFile})
		srv4, err := startSumdb(t, forkArgs...)
		if err != nil {
			t.Fatal(err)
		}
		defer srv4.stopWith(syscall.SIGTERM)
		if srv4.vkey != srv.vkey {
			t.Fatalf("the fork's verifier key is %q, want the first log's %q", srv4.vkey, srv.vkey)
		}
		// Grow the fork past the head the user has seen, in another order.
		px.add(t, pkg("example.com/forkonly", "v1.0.0", "module example.com/forkonly\n"))
		for _, mv := range []module.Version{
			{Path: "example.com/forkonly", Version: "v1.0.0"},
			{Path: "example.com/Upper/mod", Version: "v1.0.0"},
			{Path: "example.com/inc", Version: "v2.0.0+incompatible"},
			{Path: "example.com/pseudo", Version: "v0.0.0-20240102030405-abcdef012345"},
			{Path: "example.com/pseudo/patch", Version: "v1.2.4-0.20240102030405-abcdef012345"},
			{Path: "example.com/pseudo/pre", Version: "v1.3.0-pre.0.20240102030405-abcdef012345"},
			{Path: "example.com/nogomod", Version: "v1.0.0"},
			{Path: "example.com/a", Version: "v1.0.0"},
			{Path: "example.com/a", Version: "v1.1.0"},
			{Path: "example.com/a", Version: "v1.2.0"},
			{Path: "example.com/b", Version: "v1.0.0"},
			{Path: "gopkg.in/yaml.v2", Version: "v2.4.0"},
			{Path: "golang.org/toolchain", Version: "v0.0.1-go1.99.0.linux-amd64"},
			{Path: "example.com/later", Version: "v1.0.0"},
		} {
			if _, err := srv4.lookup(mv.Path, mv.Version); err != nil {
				t.Fatal(err)
			}
		}
		if n := srv4.latest().N; n <= seen.N {
			t.Fatalf("the fork has %d records, want more than the %d of the first log", n, seen.N)
		}
		// The same user, with the same GOPATH and module cache.
		dir := newMainModule(t, "example.com/forkonly")
		out, err := user.run(dir, srv4.gosumdb, "get", "example.com/forkonly@v1.0.0")
		if err == nil || !strings.Contains(out, "SECURITY ERROR") {
			t.Fatalf("go get through a forked log: %v, output:\n%s\nwant SECURITY ERROR", err, out)
		}
	})
}

// tamper replaces the zip hash in the stored record starting with prefix
// ("<path> <version> ") by another valid hash, as an attacker with write
// access to the database would.
func tamper(t *testing.T, be backend, prefix string) {
	t.Helper()
	db, err := sql.Open(be.driver, be.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, "SELECT id, text FROM records")
	if err != nil {
		t.Fatal(err)
	}
	var id int64 = -1
	var text []byte
	for rows.Next() {
		var rid int64
		var rtext []byte
		if err := rows.Scan(&rid, &rtext); err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(rtext, []byte(prefix)) {
			id, text = rid, rtext
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	if id < 0 {
		t.Fatalf("no stored record starts with %q", prefix)
	}
	i := bytes.Index(text, []byte(" h1:")) + len(" h1:")
	forged := slices.Clone(text)
	// Change one base64 digit of the hash: still a well-formed record.
	if forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	if _, err := db.ExecContext(ctx, be.allowUpdate); err != nil {
		t.Fatalf("%s: %v", be.allowUpdate, err)
	}
	if res, err := db.ExecContext(ctx, be.updateRecord, forged, id); err != nil {
		t.Fatalf("tamper with record %d: %v", id, err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper with record %d: %d rows updated", id, n)
	}
}
