// Package gittest serves git repositories over HTTP on the loopback with
// git's own smart-HTTP backend (git http-backend) behind Basic
// authentication, and makes the environment under which the go command
// and git reach them by module paths such as vcs.test/repo.git, with no
// DNS: the tests of fetching private modules from version control.
//
// Tests using it need the git command; they skip when it is missing, which
// CI does not allow (it installs git).
package gittest

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The author, committer and date of every commit NewRepo makes, so that
// a repository's commits, and the module zips made from them, are the same
// on every run.
var commitEnv = []string{
	"GIT_AUTHOR_NAME=gittest", "GIT_AUTHOR_EMAIL=gittest@vcs.test", "GIT_AUTHOR_DATE=2019-11-09T02:19:31Z",
	"GIT_COMMITTER_NAME=gittest", "GIT_COMMITTER_EMAIL=gittest@vcs.test", "GIT_COMMITTER_DATE=2019-11-09T02:19:31Z",
}

// A Server is a git smart-HTTP server on the loopback serving the bare
// repositories made by NewRepo, to clients that authenticate with its user
// and password (Basic authentication); others get 401 with
// WWW-Authenticate. Its methods may be called concurrently, also while it
// serves requests.
type Server struct {
	URL string // http://127.0.0.1:port, without trailing slash

	git      string // the git command
	root     string // GIT_PROJECT_ROOT: the bare repositories
	user     string
	password string
	backend  http.Handler

	mu       sync.Mutex
	requests []string      // "<method> <path>?<query> <status>"; guarded by mu
	stall    bool          // hold every request until it ends; guarded by mu
	held     int           // requests held now; guarded by mu
	closed   chan struct{} // closed when the server closes
}

// Git returns the path of the git command, skipping the test if there is
// none (CI installs git, so there it fails instead).
func Git(t testing.TB) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no git command: %v (CI must install git)", err)
		}
		t.Skipf("no git command: %v", err)
	}
	return git
}

// NewServer starts a Server requiring user and password, closed when the
// test ends.
func NewServer(t testing.TB, user, password string) *Server {
	t.Helper()
	git := Git(t)
	home := t.TempDir()
	s := &Server{
		git:      git,
		root:     t.TempDir(),
		user:     user,
		password: password,
		closed:   make(chan struct{}),
	}
	s.backend = &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + home,
		},
		InheritEnv: []string{"PATH"},
		Stderr:     io.Discard, // "Not a git repository" for each repository that does not exist
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		close(s.closed)
		srv.Close()
	})
	s.URL = srv.URL
	return s
}

// ServeHTTP serves the git smart-HTTP protocol to authenticated requests,
// recording each.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, fmt.Sprintf("%s %s %d", r.Method, r.URL.RequestURI(), rw.status))
		s.mu.Unlock()
	}()
	s.mu.Lock()
	stall := s.stall
	if stall {
		s.held++
	}
	s.mu.Unlock()
	if stall {
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		s.mu.Lock()
		s.held--
		s.mu.Unlock()
		rw.status = 0 // no answer
		return
	}
	user, password, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(password), []byte(s.password)) != 1 {
		rw.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
		http.Error(rw, "authentication required", http.StatusUnauthorized)
		return
	}
	s.backend.ServeHTTP(rw, r)
}

// A statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Requests returns the requests served so far, each as
// "<method> <path>?<query> <status>" (status 0 for one held by SetStall
// until it ended).
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// SetStall makes the server hold every new request without an answer
// until the client goes away or the server closes (on), or serve them
// again (off): a git server that hangs.
func (s *Server) SetStall(on bool) {
	s.mu.Lock()
	s.stall = on
	s.mu.Unlock()
}

// Held returns the number of requests held now by SetStall: a request is
// released when its client closes the connection, as when the client
// process dies.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// NewRepo makes the bare repository name (reached at URL/name, which the
// go command asks for as the module path vcs.test/<name>.git under
// ClientEnv("vcs.test")) holding one commit of files, by slash-separated
// path, with the given lightweight tags. Commits have a fixed author,
// committer and date, and git runs with no system or user configuration.
func (s *Server) NewRepo(t testing.TB, name string, files map[string]string, tags ...string) {
	t.Helper()
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		t.Fatalf("NewRepo(%q): want a name without slashes or a leading dot", name)
	}
	r := NewLocal(t)
	r.Commit(t, files, tags...)
	r.Run(t, "clone", "-q", "--bare", r.Dir, filepath.Join(s.root, name))
}

// ClientEnv returns the environment of a client of the server: the
// process's own without its GIT_*, GO* (but GOROOT and GOCACHE), HOME and
// NETRC variables, and with a new HOME holding a .netrc with the server's
// user and password (if withCredentials; else one without them) and a git
// configuration, named by GIT_CONFIG_GLOBAL, that sends git from
// https://<modulePrefix>/ (and its ssh forms, which the go command tries
// next) to the server. So the module path <modulePrefix>/<name>.git, for
// which the go command asks git for https://<modulePrefix>/<name>, reaches
// the repository NewRepo made as name, with no DNS. The go command's
// module cache is under HOME (GOPATH).
func (s *Server) ClientEnv(t testing.TB, modulePrefix string, withCredentials bool) []string {
	t.Helper()
	if modulePrefix == "" || strings.ContainsAny(modulePrefix, "/:@ \t\n") {
		t.Fatalf("ClientEnv(%q): want a host name such as vcs.test", modulePrefix)
	}
	home := t.TempDir()
	netrc := filepath.Join(home, ".netrc")
	login, password := s.user, s.password
	if !withCredentials {
		login, password = "nobody", "wrong-"+s.password+"-wrong"
		if s.password == "" {
			login, password = "nobody", "wrong"
		}
	}
	netrcText := fmt.Sprintf("machine 127.0.0.1 login %s password %s\n", login, password)
	if err := os.WriteFile(netrc, []byte(netrcText), 0o600); err != nil {
		t.Fatal(err)
	}
	gitconfig := filepath.Join(home, ".gitconfig")
	base := s.URL + "/"
	cfg := fmt.Sprintf("[url %q]\n", base)
	for _, scheme := range []string{"https", "ssh", "git+ssh"} {
		cfg += fmt.Sprintf("\tinsteadOf = %s://%s/\n", scheme, modulePrefix)
	}
	if err := os.WriteFile(gitconfig, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return append(cleanEnv(),
		"HOME="+home,
		"NETRC="+netrc,
		"GIT_CONFIG_GLOBAL="+gitconfig,
		"GIT_CONFIG_NOSYSTEM=1",
		"GOPATH="+filepath.Join(home, "go"),
	)
}

// cleanEnv returns the process's environment without the variables that
// would let the user's own git or go configuration in.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "GOROOT", name == "GOCACHE":
		case strings.HasPrefix(name, "GIT_"), strings.HasPrefix(name, "GO"),
			name == "HOME", name == "NETRC", name == "XDG_CONFIG_HOME", name == "SSH_AUTH_SOCK":
			continue
		}
		env = append(env, kv)
	}
	return env
}
