// Package witnesstest runs real C2SP tlog-witness witnesses for tests:
// filippo.io/torchwood's litewitness, built from the version in go.mod,
// each on loopback with its own SQLite database and its own ssh-agent
// holding its key, and with one log registered by witnessctl. Its
// functions fail the test they are given on any error, and are called
// from the test's goroutine.
//
// The tests need the ssh-agent command (Debian's openssh-client); a test
// without it skips, unless CI is set, where it fails.
package witnesstest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/limitbuf"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// Bounds on the helpers' work: a build of the tools, a witnessctl run, a
// process coming up or shutting down, and the output kept of each run.
const (
	buildTimeout = 10 * time.Minute
	ctlTimeout   = 30 * time.Second
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	outputLimit  = 64 << 10
)

// The packages of the tools, as go.mod's tool directive names them.
const (
	litewitnessPkg = "filippo.io/torchwood/cmd/litewitness"
	witnessctlPkg  = "filippo.io/torchwood/cmd/witnessctl"
)

var built struct {
	once                    sync.Once
	litewitness, witnessctl string
	err                     error
}

// Build builds litewitness and witnessctl, once per test binary, with the
// go command of the toolchain running the tests, and returns their paths.
// It fails the test if they cannot be built.
//
// It asks "go tool -n" for each, which builds a tool of go.mod's tool
// directive into the go command's build cache and prints the executable's
// path: later runs reuse the build, and no copy is left in a temporary
// directory that no test could remove (about 30 MB a run).
func Build(t testing.TB) (litewitness, witnessctl string) {
	t.Helper()
	built.once.Do(func() {
		built.litewitness, built.witnessctl, built.err = buildTools()
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.litewitness, built.witnessctl
}

func buildTools() (litewitness, witnessctl string, err error) {
	goCmd, err := goCommand()
	if err != nil {
		return "", "", err
	}
	if litewitness, err = buildTool(goCmd, litewitnessPkg); err != nil {
		return "", "", err
	}
	if witnessctl, err = buildTool(goCmd, witnessctlPkg); err != nil {
		return "", "", err
	}
	return litewitness, witnessctl, nil
}

// buildTool builds the tool pkg and returns the path of its executable.
// The test's working directory is its package's, inside the module, so
// go.mod chooses the tool's version.
func buildTool(goCmd, pkg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "tool", "-n", pkg)
	stdout, stderr := newOutput(), newOutput()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("witnesstest: build %s: go tool -n: %w (is it in go.mod's tool directive?)\n%s", pkg, err, stderr)
	}
	exe := strings.TrimSpace(stdout.String())
	if fi, err := os.Stat(exe); err != nil || !fi.Mode().IsRegular() || strings.Contains(exe, "\n") {
		return "", fmt.Errorf("witnesstest: build %s: go tool -n printed %q, not the path of an executable\n%s", pkg, exe, stderr)
	}
	return exe, nil
}

// goCommand returns the go command of the toolchain running the tests,
// or the one on PATH.
func goCommand() (string, error) {
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("witnesstest: no go command to build litewitness: %w", err)
	}
	return p, nil
}

// A Witness is a running litewitness that knows one log.
type Witness struct {
	URL  string // http://127.0.0.1:<port>, the base URL of its add-checkpoint endpoint
	VKey string // its cosignature/v1 verifier key, as note verifier key text
	Name string // its name, which its cosignature lines carry

	t           testing.TB
	litewitness string
	args        []string

	mu   sync.Mutex
	run  *process  // the running litewitness; nil when stopped
	runs []*output // the output of each run, for a failing test's log
}

// Start runs a litewitness named name on loopback, with a new Ed25519 key
// held by an ssh-agent of its own, that knows the log of the given origin
// (the first line of its checkpoints) and verifier key. For a checksum
// database the origin is "go.sum database tree" and the key is the
// database's note verifier key, whose name is not the origin: litewitness
// accepts that. The witness and its agent are stopped when the test ends.
func Start(t testing.TB, name, origin, logVKey string) *Witness {
	t.Helper()
	if origin == "" || strings.ContainsAny(origin, "\n") {
		t.Fatalf("witnesstest.Start: origin %q: want one non-empty line", origin)
	}
	if _, err := note.NewVerifier(logVKey); err != nil {
		t.Fatalf("witnesstest.Start: log key %q: %v", logVKey, err)
	}
	agentCmd, err := exec.LookPath("ssh-agent")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("witnesstest: ssh-agent is needed to run litewitness, and CI is set: install openssh-client: %v", err)
		}
		t.Skipf("witnesstest: no ssh-agent to run litewitness (install openssh-client): %v", err)
	}
	litewitness, witnessctl := Build(t)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	noteVKey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatalf("witnesstest.Start: witness name %q: %v", name, err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(noteVKey)
	if err != nil {
		t.Fatalf("witnesstest.Start: witness name %q: %v", name, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}

	// A Unix socket's path is short (about 100 bytes): the agent's is in a
	// directory of its own under the system's temporary directory, not
	// under t.TempDir, whose path holds the test's name.
	sockDir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agent.sock")
	startAgent(t, agentCmd, sock, priv, name)

	db := filepath.Join(t.TempDir(), "litewitness.db")
	ctl(t, witnessctl, "add-log", "-db", db, "-origin", origin)
	ctl(t, witnessctl, "add-key", "-db", db, "-origin", origin, "-key", logVKey)

	w := &Witness{VKey: vkey, Name: name, t: t, litewitness: litewitness}
	t.Cleanup(func() {
		w.Stop()
		if t.Failed() {
			t.Logf("litewitness %s output:\n%s", name, w.output())
		}
	})
	// The port is free when chosen but may be taken before litewitness
	// listens on it: then litewitness exits, and another is tried.
	var errs []error
	for range 3 {
		addr := sumdbtest.FreeAddr(t)
		w.URL = "http://" + addr
		w.args = []string{
			"-db", db,
			"-name", name,
			"-key", ssh.FingerprintSHA256(sshPub),
			"-ssh-agent", sock,
			"-listen", addr,
		}
		p, err := w.start()
		if err == nil {
			w.run = p
			return w
		}
		errs = append(errs, err)
		if p == nil || !(strings.Contains(p.out.String(), "address already in use") || errors.Is(err, errOtherWitness)) {
			break
		}
	}
	t.Fatalf("witnesstest.Start(%q): %v", name, errors.Join(errs...))
	return nil
}

// Stop stops the witness, keeping its state (database, key) for Restart.
// Stopping a stopped witness does nothing.
func (w *Witness) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run == nil {
		return
	}
	w.run.stop()
	w.run = nil
}

// Restart stops the witness if it runs and starts it again, on the same
// address with the same database and key.
func (w *Witness) Restart() {
	w.t.Helper()
	w.Stop()
	p, err := w.start()
	if err != nil {
		w.t.Fatalf("witnesstest: restart %s: %v", w.Name, err)
	}
	w.mu.Lock()
	w.run = p
	w.mu.Unlock()
}

// A process is one run of litewitness or ssh-agent.
type process struct {
	cmd    *exec.Cmd
	out    *output
	exited chan struct{} // closed when the process has exited
	err    error         // its Wait error; set before exited is closed
}

func startProcess(name string, args ...string) (*process, error) {
	p := &process{cmd: exec.Command(name, args...), out: newOutput(), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop interrupts the process, which shuts down cleanly, and kills it if
// it has not exited in stopTimeout.
func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// start runs litewitness with w.args and waits until it answers on w.URL
// as the witness of w.VKey.
func (w *Witness) start() (*process, error) {
	p, err := startProcess(w.litewitness, w.args...)
	if err != nil {
		return nil, fmt.Errorf("start litewitness: %w", err)
	}
	w.mu.Lock()
	w.runs = append(w.runs, p.out)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// Its index page shows its verifier key: a server answering with it is
	// this litewitness, not another process that took the port.
	want := html.EscapeString(w.VKey)
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		select {
		case <-p.exited:
			return p, fmt.Errorf("litewitness exited before it was ready: %v", p.err)
		default:
		}
		last = indexHolds(ctx, client, w.URL+"/", want)
		if last == nil {
			return p, nil
		}
		if errors.Is(last, errOtherWitness) {
			p.stop()
			return p, last
		}
		select {
		case <-ctx.Done():
			p.stop()
			return p, fmt.Errorf("litewitness not ready on %s after %v: %w", w.URL, startTimeout, last)
		case <-p.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errOtherWitness is the error of a server that answers with an index page
// not showing the witness's verifier key.
var errOtherWitness = errors.New("page does not show the witness's verifier key: another server has the port, or litewitness uses another key")

// indexHolds checks that url answers 200 with a body that holds want.
func indexHolds(ctx context.Context, client *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %w (%s)", url, errOtherWitness, want)
	}
	return nil
}

// output returns what the runs of litewitness printed, in order.
func (w *Witness) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for i, o := range w.runs {
		fmt.Fprintf(&b, "--- run %d\n%s", i+1, o)
	}
	return b.String()
}

// startAgent runs ssh-agent in the foreground on sock, killed when the test
// ends, and adds priv to it.
func startAgent(t testing.TB, agentCmd, sock string, priv ed25519.PrivateKey, comment string) {
	t.Helper()
	p, err := startProcess(agentCmd, "-D", "-a", sock)
	if err != nil {
		t.Fatalf("witnesstest: start ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(startTimeout)
	var conn net.Conn
	for {
		conn, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("witnesstest: ssh-agent exited: %v\n%s", p.err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("witnesstest: ssh-agent not listening on %s after %v: %v\n%s", sock, startTimeout, err, p.out)
		}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ctlTimeout))
	if err := agent.NewClient(conn).Add(agent.AddedKey{PrivateKey: priv, Comment: comment}); err != nil {
		t.Fatalf("witnesstest: add the witness key to ssh-agent: %v\n%s", err, p.out)
	}
}

// ctl runs witnessctl with args.
func ctl(t testing.TB, witnessctl string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, witnessctl, args...)
	out := newOutput()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("witnesstest: witnessctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// An output keeps the first outputLimit bytes a process prints, safe to
// read while the process writes.
type output struct {
	mu  sync.Mutex
	buf *limitbuf.Buffer
}

func newOutput() *output { return &output{buf: limitbuf.New(outputLimit)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf.Truncated() {
		return o.buf.String() + "\n[output truncated]\n"
	}
	return o.buf.String()
}
