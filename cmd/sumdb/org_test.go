package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sumdb/sumdb/internal/gittest"
	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/store/storetest"
)

// TestOrganizationSQLite and TestOrganizationPostgres run an organization's
// log end to end with the real go command, on each store: public modules
// cross-checked with a public checksum database, a private module fetched
// from a git server by the go command on the server with the server's own
// credentials, and the log readable over HTTPS by the users of the auth
// file only.
func TestOrganizationSQLite(t *testing.T) {
	t.Parallel()
	testOrganization(t, []string{"--data-dir", t.TempDir()})
}

func TestOrganizationPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the organization test on PostgreSQL")
	}
	t.Parallel()
	testOrganization(t, []string{"--data-dir", t.TempDir(), "--database-url", storetest.PostgresURL(t)})
}

// bcryptLine returns an auth file line for user and password.
func bcryptLine(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h) + "\n"
}

// envValues returns the variables of env named names, as NAME=value.
func envValues(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(names, name) {
			out = append(out, kv)
		}
	}
	return out
}

func testOrganization(t *testing.T, storeArgs []string) {
	// The public world: a module proxy, and a public checksum database
	// that logs what it serves.
	world := modproxy.New()
	pub := sumdbtest.MustStart(t, sumdbtest.Options{KeyName: "sum.public.test"})
	// The organization's upstream proxy, which the developers use too.
	orgProxy := modproxy.New()
	ps := sumdbtest.NewFront(t, orgProxy)

	same := pkg("example.com/org/same", "v1.0.0", "module example.com/org/same\n")
	changed := pkg("example.com/org/changed", "v1.0.0", "module example.com/org/changed\n")
	changedHere := changed
	changedHere.Files = map[string]string{"changed.go": "package changed\n\n// Not what the world saw.\n"}
	unknown := pkg("example.com/org/unknown", "v1.0.0", "module example.com/org/unknown\n")
	for _, m := range []modproxy.Module{same, changed} {
		pub.Add(m)
		if err := world.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []modproxy.Module{same, changedHere, unknown} {
		if err := orgProxy.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	// The public log holds what the world saw.
	pub.GoSum(same, changed)
	pub.ResetRequests()

	// The private git server; the server's own .netrc holds the only
	// credentials it takes.
	const gitUser, gitPassword = "sumdb-bot", "git-secret-7f3a"
	git := gittest.NewServer(t, gitUser, gitPassword)
	git.NewRepo(t, "repo", map[string]string{
		"go.mod":  "module vcs.test/repo.git\n\ngo 1.21\n",
		"repo.go": "package repo\n",
	}, "v1.0.0")
	const private = "vcs.test/repo.git"
	serverEnv := envValues(git.ClientEnv(t, "vcs.test", true), "HOME", "NETRC", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")

	// HTTPS, and the auth file. The developer's .netrc names 127.0.0.1,
	// which is also the git server's host: one user and password serve
	// both, as one company account would.
	ca := newTestCA(t, "org test CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	certFile, keyFile := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	pair := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, pair.cert, pair.key)
	authFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(authFile, []byte("# developers\n"+bcryptLine(t, gitUser, gitPassword)), 0o600); err != nil {
		t.Fatal(err)
	}

	args := slices.Concat(storeArgs, []string{
		"--listen", "127.0.0.1:0", "--name", "sum.corp.test",
		"--upstream", ps.URL,
		"--public-sumdb", pub.GOSUMDB(),
		"--private", "vcs.test",
		"--private-upstream", "direct",
		"--auth-file", authFile,
		"--tls-cert", certFile, "--tls-key", keyFile,
	})
	env := append([]string{envName("public-sumdb") + "=" + pub.GOSUMDB()}, serverEnv...)
	srv, err := startSumdbEnv(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()

	// A developer: GOSUMDB is the organization's log, private modules come
	// from version control, and nothing is kept out of the checksum
	// database.
	devEnv := envValues(git.ClientEnv(t, "vcs.test", true), "HOME", "NETRC", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")
	srv.client = &http.Client{Transport: basicAuth{gitUser, gitPassword, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}}

	// The go command matches a .netrc machine with the port of the URL,
	// git (curl) without it: one line for each.
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range devEnv {
		if file, ok := strings.CutPrefix(kv, "NETRC="); ok {
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "machine %s login %s password %s\n", u.Host, gitUser, gitPassword)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	trusting := []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + t.TempDir()}
	dev := newGoUser(t, ps.URL)
	dev.env = slices.Concat(devEnv, trusting, []string{"GONOPROXY=vcs.test", "GOAUTH=netrc"})
	mod := newMainModule(t, "example.com/org/same", private)
	dev.mustRun(mod, srv.gosumdb, "get", "example.com/org/same@v1.0.0", private+"@v1.0.0")
	sums := goSumLines(t, mod)
	for _, want := range []string{"example.com/org/same v1.0.0 ", private + " v1.0.0 ", private + " v1.0.0/go.mod "} {
		if !slices.ContainsFunc(sums, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("go.sum has no line %q:\n%s", want, strings.Join(sums, "\n"))
		}
	}
	// Both are logged: sumdb check, with the developer's .netrc, proves
	// every line in the organization's log.
	check := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, sumdbBinary(t), "check", "--sumdb", srv.gosumdb, "--state", filepath.Join(t.TempDir(), "state"), filepath.Join(mod, "go.sum"))
		cmd.Env = slices.Concat(environ(), dev.env, extra)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(); err != nil {
		t.Errorf("sumdb check of the developer's go.sum: %v\n%s", err, out)
	}

	// The private path reached neither the public checksum database nor
	// any public proxy; the public module reached the public log.
	for _, p := range pub.Requests() {
		if strings.Contains(p, "vcs.test") {
			t.Errorf("the public checksum database was asked for %s", p)
		}
	}
	if !slices.ContainsFunc(pub.Requests(), func(p string) bool { return strings.HasPrefix(p, "/lookup/example.com/org/same@") }) {
		t.Errorf("the public checksum database was never asked for example.com/org/same: requests %q", pub.Requests())
	}
	for _, p := range ps.Requests() {
		if strings.Contains(p, "vcs.test") {
			t.Errorf("the upstream proxy was asked for %s", p)
		}
	}
	if n := world.Requests(private).Total() + orgProxy.Requests(private).Total(); n != 0 {
		t.Errorf("%d requests for %s reached a module proxy", n, private)
	}
	if len(git.Requests()) == 0 {
		t.Errorf("the git server saw no request")
	}

	t.Run("changed upstream zip", func(t *testing.T) {
		size := srv.latest().N
		mod := newMainModule(t, "example.com/org/changed")
		out, err := dev.run(mod, srv.gosumdb, "get", "example.com/org/changed@v1.0.0")
		want, _ := world.GoSum(changed.Path, changed.Version)
		here, _ := orgProxy.GoSum(changed.Path, changed.Version)
		wantHash := strings.Fields(strings.Split(string(want), "\n")[0])[2]
		hereHash := strings.Fields(strings.Split(string(here), "\n")[0])[2]
		if err == nil || !strings.Contains(out, wantHash) || !strings.Contains(out, hereHash) {
			t.Errorf("go get of a module whose upstream zip differs from the public log's: %v, want a failure naming %s and %s:\n%s", err, wantHash, hereHash, out)
		}
		if got := srv.latest().N; got != size {
			t.Errorf("tree size %d after the refused version, want %d: it was logged", got, size)
		}
		waitLog(srv, `level=ERROR.*example.com/org/changed`)
		t.Logf("go get:\n%s", out)
	})

	t.Run("not in the public log", func(t *testing.T) {
		mod := newMainModule(t, "example.com/org/unknown")
		out, err := dev.run(mod, srv.gosumdb, "get", "example.com/org/unknown@v1.0.0")
		if err == nil || !strings.Contains(out, "not in the public checksum database") || !strings.Contains(out, "--private") {
			t.Errorf("go get of a public path the public log lacks: %v, want a failure saying so:\n%s", err, out)
		}
		t.Logf("go get:\n%s", out)
	})

	t.Run("public log down", func(t *testing.T) {
		later := pkg("example.com/org/later", "v1.0.0", "module example.com/org/later\n")
		pub.Add(later)
		pub.GoSum(later)
		if err := orgProxy.Add(later); err != nil {
			t.Fatal(err)
		}
		pub.SetStatus(http.StatusServiceUnavailable)
		mod := newMainModule(t, later.Path)
		out, err := dev.run(mod, srv.gosumdb, "get", later.Path+"@v1.0.0")
		if err == nil || !strings.Contains(out, "503 Service Unavailable") || !strings.Contains(out, "retry later") {
			t.Errorf("go get while the public log is down: %v, want the 503 answer:\n%s", err, out)
		}
		t.Logf("go get:\n%s", out)
		// Back up: the same version is logged.
		pub.SetStatus(0)
		dev.mustRun(mod, srv.gosumdb, "get", later.Path+"@v1.0.0")
	})

	t.Run("no credentials", func(t *testing.T) {
		anon := newGoUser(t, ps.URL)
		anon.env = slices.Concat(trusting, []string{"HOME=" + t.TempDir(), "NETRC=" + filepath.Join(t.TempDir(), "none")})
		mod := newMainModule(t, "example.com/org/same")
		out, err := anon.run(mod, srv.gosumdb, "get", "example.com/org/same@v1.0.0")
		if err == nil || !strings.Contains(out, "401 Unauthorized") {
			t.Errorf("go get without credentials: %v, want the go command's 401 message:\n%s", err, out)
		}
		t.Logf("go get:\n%s", out)
		if out, err := check("NETRC=" + filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(out, "401") {
			t.Errorf("sumdb check without credentials: %v, want a failure naming 401:\n%s", err, out)
		}
	})

	t.Run("password changed", func(t *testing.T) {
		// Written as a renewal would be: a new file renamed over the old.
		tmp := authFile + ".new"
		if err := os.WriteFile(tmp, []byte(bcryptLine(t, gitUser, "a-new-password")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, authFile); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mod := newMainModule(t, "example.com/org/same")
			fresh := newGoUser(t, ps.URL)
			fresh.env = dev.env
			out, err := fresh.run(mod, srv.gosumdb, "get", "example.com/org/same@v1.0.0")
			if err != nil && strings.Contains(out, "401 Unauthorized") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("go get with the old password 10s after it changed: %v, want the go command's 401 message:\n%s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The server logged no password.
	for _, secret := range []string{gitPassword, "a-new-password"} {
		if strings.Contains(srv.stderr.String(), secret) {
			t.Errorf("the server's log shows the password %q", secret)
		}
	}
}

// basicAuth is a RoundTripper that sends a user and password.
type basicAuth struct {
	user, password string
	next           http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}
