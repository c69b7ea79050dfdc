// Package goauth gives HTTP requests the credentials that the go command's
// GOAUTH setting would give them (go help goauth), so that the tools that
// read a checksum database reach one that only its users may read exactly
// as the go command does.
//
// GOAUTH is a list of commands separated by ';', "netrc" when empty:
//
//   - off: no credentials; not with any other command.
//   - netrc: the machine, login and password entries of the file named by
//     $NETRC, else ~/.netrc (%USERPROFILE%\_netrc first on Windows), parsed
//     as the go command parses it: the "default" entry is never used, and a
//     file that does not exist gives no credentials. The parser is this
//     package's own, a few dozen lines: the go command's is internal to
//     it, and the netrc libraries read "default" entries and match
//     machines without their port, which would send credentials the go
//     command keeps back.
//   - git <dir>: "git credential fill" run in dir, an absolute path, after
//     a server refused a request (401 or 403), as the go command runs it
//     after a 4xx answer. It is asked for the protocol and host only, once
//     per host: a log is read through thousands of tile URLs, which path
//     credentials (credential.useHttpPath) could not cover. It runs with
//     GIT_TERMINAL_PROMPT=0, bounded in time and output.
//   - any other command (an authentication program) is refused: sumdb
//     does not run them; set GOAUTH to netrc or git in its environment.
//
// Credentials are for https URLs only, as the go command sends them, never
// over plain http, even to the loopback. They are Basic credentials found
// by prefix: those of the longest "host[:port][/path]" that begins the
// request's URL, so that a netrc machine with a port matches that port
// only, and one without it the default port only. For the same prefix, the
// command listed first wins, as in the go command.
package goauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sumdb/sumdb/internal/limitbuf"
)

// Bounds of a run of git credential fill.
const (
	gitTimeout   = 30 * time.Second
	maxGitOutput = 64 << 10
	maxNetrcSize = 1 << 20
)

// Credentials are the credentials that one GOAUTH setting gives. They are
// safe for concurrent use.
type Credentials struct {
	off     bool
	gitDirs []gitDir
	errs    []error // why a command gave no credentials at setup, for Refresh

	mu     sync.Mutex
	stored map[string]credential // guarded by mu; by prefix, host[:port][/path]
	asked  map[string]error      // guarded by mu; git runs by dir and host: nil if they gave credentials

	gitMu sync.Mutex // serializes the runs of git, so that a host is asked once
}

// A credential is an Authorization header value and the position in GOAUTH
// of the command that gave it.
type credential struct {
	header string
	pos    int
}

// A gitDir is a git command of GOAUTH.
type gitDir struct {
	dir string
	pos int
}

// New returns the credentials that goauth, a GOAUTH value, gives. env
// looks up environment variables (NETRC, HOME, USERPROFILE); nil means
// os.Getenv. The netrc file is read now; git is run later, by Refresh.
// The errors of a malformed GOAUTH are those of the go command.
func New(goauth string, env func(string) string) (*Credentials, error) {
	if env == nil {
		env = os.Getenv
	}
	if strings.TrimSpace(goauth) == "" {
		goauth = "netrc" // the go command's default
	}
	c := &Credentials{stored: make(map[string]credential), asked: make(map[string]error)}
	cmds := strings.Split(goauth, ";")
	for pos, cmd := range cmds {
		words := strings.Fields(cmd)
		if len(words) == 0 {
			return nil, fmt.Errorf("GOAUTH=%s: an empty command: remove the extra ';'", goauth)
		}
		switch words[0] {
		case "off":
			if len(cmds) != 1 {
				return nil, fmt.Errorf("GOAUTH=%s: off cannot be combined with other authentication commands", goauth)
			}
			c.off = true
		case "netrc":
			lines, err := readNetrc(env)
			if err != nil {
				c.errs = append(c.errs, fmt.Errorf("GOAUTH netrc: %w", err))
				continue
			}
			for _, l := range lines {
				c.store(l.machine, basicAuth(l.login, l.password), pos)
			}
		case "git":
			if len(words) != 2 || !filepath.IsAbs(words[1]) {
				return nil, errors.New("GOAUTH: the git method wants an absolute path to a git working directory (git /path/to/dir)")
			}
			if fi, err := os.Stat(words[1]); err != nil {
				return nil, fmt.Errorf("GOAUTH git: %w", err)
			} else if !fi.IsDir() {
				return nil, fmt.Errorf("GOAUTH git %s: not a directory: give the git working directory whose credential helpers to use", words[1])
			}
			c.gitDirs = append(c.gitDirs, gitDir{dir: words[1], pos: pos})
		default:
			// Only the program: its arguments may hold a secret.
			return nil, fmt.Errorf("GOAUTH command %q: authentication programs are not run by sumdb: give the credentials in .netrc or a git credential helper, and set GOAUTH=netrc or GOAUTH=\"git <dir>\" for sumdb", words[0])
		}
	}
	return c, nil
}

// basicAuth returns the Authorization header value of Basic credentials.
func basicAuth(user, password string) string {
	r := http.Request{Header: make(http.Header)}
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// store keeps header as the credentials of prefix, unless a command listed
// earlier, or the same command earlier (an earlier line of the netrc file),
// gave some. c.mu is held, or c is not shared yet.
func (c *Credentials) store(prefix, header string, pos int) {
	prefix = strings.TrimSuffix(strings.TrimPrefix(prefix, "https://"), "/")
	if old, ok := c.stored[prefix]; ok && old.pos <= pos {
		return
	}
	c.stored[prefix] = credential{header: header, pos: pos}
}

// lookup returns the credentials of u: those of its longest stored
// prefix. c.mu is held.
func (c *Credentials) lookup(u *url.URL) (string, bool) {
	prefix := strings.TrimSuffix(u.Host+u.EscapedPath(), "/")
	for {
		if cr, ok := c.stored[prefix]; ok {
			return cr.header, true
		}
		i := strings.LastIndexByte(prefix, '/')
		if i < 0 {
			return "", false
		}
		prefix = prefix[:i]
	}
}

// Apply sets the Authorization header of req to the credentials known for
// its URL, if it is an https URL and there are any.
func (c *Credentials) Apply(req *http.Request) {
	if c == nil || c.off || req.URL.Scheme != "https" {
		return
	}
	c.mu.Lock()
	h, ok := c.lookup(req.URL)
	c.mu.Unlock()
	if ok {
		req.Header.Set("Authorization", h)
	}
}

// Refresh looks for credentials again after the server refused
// resp.Request for its credentials (401 or 403): it asks the git
// credential helpers of GOAUTH's git commands about the request's host, if
// not asked before. It reports whether Apply would now set credentials
// other than those sent, so that the request is worth repeating; if not,
// err, if not nil, tells why no credentials were found (a netrc that could
// not be read, git failing). Neither names a secret.
func (c *Credentials) Refresh(resp *http.Response) (retry bool, err error) {
	if c == nil || c.off || resp.Request == nil || resp.Request.URL.Scheme != "https" {
		return false, nil
	}
	u := resp.Request.URL
	errs := append([]error(nil), c.errs...)
	c.gitMu.Lock()
	for i := len(c.gitDirs) - 1; i >= 0; i-- {
		g := c.gitDirs[i]
		key := g.dir + "\x00" + u.Host
		c.mu.Lock()
		gerr, asked := c.asked[key]
		c.mu.Unlock()
		if !asked {
			var prefix, header string
			prefix, header, gerr = askGit(g.dir, u)
			c.mu.Lock()
			c.asked[key] = gerr
			if gerr == nil {
				c.store(prefix, header, g.pos)
			}
			c.mu.Unlock()
		}
		if gerr != nil {
			errs = append(errs, gerr)
		}
	}
	c.gitMu.Unlock()
	c.mu.Lock()
	h, ok := c.lookup(u)
	c.mu.Unlock()
	if ok && h != resp.Request.Header.Get("Authorization") {
		return true, nil
	}
	return false, errors.Join(errs...)
}

// askGit runs git credential fill in dir for the protocol and host of u,
// and returns the prefix the credentials are for and their Authorization
// header value.
func askGit(dir string, u *url.URL) (prefix, header string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "credential", "fill")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never")
	cmd.Stdin = strings.NewReader("protocol=https\nhost=" + u.Host + "\n\n")
	stdout := limitbuf.New(maxGitOutput)
	stderr := limitbuf.New(4 << 10)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	what := fmt.Sprintf("GOAUTH git %s: git credential fill for https://%s", dir, u.Host)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("%s: no answer in %v: check the credential helper", what, gitTimeout)
		}
		// Stderr only: stdout would hold the password.
		return "", "", fmt.Errorf("%s: %w%s", what, err, lastLine(stderr.Bytes()))
	}
	if stdout.Truncated() {
		return "", "", fmt.Errorf("%s: more than %d bytes of output: check the credential helper", what, maxGitOutput)
	}
	prefix, user, password := parseGitAuth(stdout.Bytes())
	if user == "" && password == "" {
		return "", "", fmt.Errorf("%s: no user name or password given: configure a credential helper for the host", what)
	}
	// As the go command checks: the credentials must be for a prefix of
	// the URL asked about.
	if pu, perr := url.Parse(prefix); perr != nil || pu.Scheme != "https" || pu.Host != u.Host || pu.User != nil {
		return "", "", fmt.Errorf("%s: the credentials given are for another URL: check the credential helper", what)
	}
	return prefix, basicAuth(user, password), nil
}

// parseGitAuth parses the output of git credential fill as the go command
// does: the URL of the credentials (protocol, host, path, or url), the
// user name and the password.
func parseGitAuth(data []byte) (prefix, user, password string) {
	p := new(url.URL)
	for line := range strings.SplitSeq(string(data), "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch key {
		case "protocol":
			p.Scheme = value
		case "host":
			p.Host = value
		case "path":
			p.Path = value
		case "username":
			user = value
		case "password":
			password = value
		case "url":
			if u, err := url.ParseRequestURI(value); err == nil {
				p = u
			}
		}
	}
	return p.String(), user, password
}

// lastLine returns ": " and the last line of a command's error output,
// short and printable, or "" if there is none.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if line == "" {
		return ""
	}
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	line = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, line)
	// git names URLs with their user name, which may be a token.
	return ": " + userinfo.ReplaceAllString(line, "://xxxxx@")
}

// userinfo matches the user information of a URL in a message.
var userinfo = regexp.MustCompile(`://[^/\s'"@]*@`)

// A netrcLine is a machine entry of a netrc file.
type netrcLine struct {
	machine, login, password string
}

// readNetrc reads the netrc file, as the go command finds it.
func readNetrc(env func(string) string) ([]netrcLine, error) {
	path, err := netrcPath(env)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxNetrcSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxNetrcSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: is it the right file?", path, maxNetrcSize)
	}
	return parseNetrc(string(data)), nil
}

// netrcPath returns the name of the netrc file: $NETRC, else .netrc in
// the home directory (on Windows _netrc there, if it exists).
func netrcPath(env func(string) string) (string, error) {
	if p := env("NETRC"); p != "" {
		return p, nil
	}
	home := env("HOME")
	if runtime.GOOS == "windows" {
		home = env("USERPROFILE")
	}
	if home == "" {
		return "", errors.New("no home directory to find .netrc in: set HOME or NETRC")
	}
	if runtime.GOOS == "windows" {
		legacy := filepath.Join(home, "_netrc")
		if _, err := os.Stat(legacy); err == nil {
			return legacy, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return filepath.Join(home, ".netrc"), nil
}

// parseNetrc parses a netrc file as the go command does
// (cmd/go/internal/auth): pairs of tokens; an entry is complete once it has
// a machine, a login and a password; macdef bodies are skipped up to the
// next empty line; a line that ends in "default" ends the file, and the
// default entry gives no credentials, for it would send them to any server.
func parseNetrc(data string) []netrcLine {
	var nrc []netrcLine
	var l netrcLine
	inMacro := false
	for line := range strings.SplitSeq(data, "\n") {
		if inMacro {
			if line == "" {
				inMacro = false
			}
			continue
		}
		f := strings.Fields(line)
		i := 0
		for ; i < len(f)-1; i += 2 {
			switch f[i] {
			case "machine":
				l = netrcLine{machine: f[i+1]}
			case "login":
				l.login = f[i+1]
			case "password":
				l.password = f[i+1]
			case "macdef":
				inMacro = true
			}
			if l.machine != "" && l.login != "" && l.password != "" {
				nrc = append(nrc, l)
				l = netrcLine{}
			}
		}
		if i < len(f) && f[i] == "default" {
			break
		}
	}
	return nrc
}
