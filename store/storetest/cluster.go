package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A Cluster is a throwaway PostgreSQL server that a test starts, and may
// stop and start again, to see what happens when the database goes away.
// It listens on a free port of 127.0.0.1, with trust authentication for the
// user postgres, and is removed when the test ends.
type Cluster struct {
	// URL is the postgres:// URL of the cluster's database "postgres".
	URL string

	t    testing.TB
	bin  string   // directory of initdb and pg_ctl
	as   []string // command prefix that runs a command as the cluster's OS user
	dir  string   // holds data/ (the cluster), the socket and the server log
	port int
}

// StartCluster creates a PostgreSQL cluster in a new temporary directory
// and starts it. It finds the server binaries with pg_config --bindir, in
// PATH, or in the versioned directories of Debian's packages.
//
// initdb refuses to run as root: when the test runs as root, the cluster
// belongs to the OS user postgres, and every server command runs through
// runuser. If the binaries or that user are missing, the test is skipped,
// or fails if the environment variable CI or SUMDB_REQUIRE_POSTGRES is set.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		skipOrFail(t, "storetest: cannot start a throwaway PostgreSQL cluster: %v (install the PostgreSQL server, whose pg_config --bindir holds initdb and pg_ctl)", err)
	}
	c := &Cluster{t: t, bin: bin}
	var owner *user.User
	if os.Geteuid() == 0 {
		if owner, err = user.Lookup("postgres"); err != nil {
			skipOrFail(t, "storetest: running as root, and initdb refuses root: need the OS user postgres to own a throwaway cluster: %v", err)
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			skipOrFail(t, "storetest: running as root, and initdb refuses root: need runuser to run it as the OS user postgres: %v", err)
		}
		c.as = []string{runuser, "-u", "postgres", "--"}
	}
	// Not t.TempDir: its parent is private to the user running the test.
	if c.dir, err = os.MkdirTemp("", "sumdb-pg-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate") // may already be stopped
		os.RemoveAll(c.dir)
	})
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	// --no-sync: a throwaway cluster need not survive a power loss.
	if out, err := c.run(filepath.Join(bin, "initdb"), "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("storetest: initdb: %v\n%s", err, out)
	}
	c.Start()
	return c
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("SUMDB_REQUIRE_POSTGRES") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set SUMDB_REQUIRE_POSTGRES=1 to fail instead of skipping)", args...)
}

// postgresBinDir returns the directory of initdb and pg_ctl.
func postgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	// Debian and Ubuntu keep the server binaries out of PATH, per version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // newest version first
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("initdb and pg_ctl not found by pg_config --bindir, in PATH or in /usr/lib/postgresql/*/bin")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// run runs a server command as the cluster's owner.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append(slices.Clone(c.as), name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	return c.run(filepath.Join(c.bin, "pg_ctl"), append([]string{"-D", c.data()}, args...)...)
}

// Start starts the cluster's server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c max_connections=60 -c shared_buffers=16MB", c.port, c.dir)
	out, err := c.pgctl("start", "-w", "-t", "90", "-l", filepath.Join(c.dir, "server.log"), "-o", opts)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("storetest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
}

// Stop stops the cluster's server at once, as a crash would: "pg_ctl stop
// -m immediate" ends every server process without a checkpoint, and the
// next Start recovers from the write-ahead log.
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.pgctl("stop", "-m", "immediate", "-w", "-t", "60"); err != nil {
		c.t.Fatalf("storetest: pg_ctl stop: %v\n%s", err, out)
	}
}
