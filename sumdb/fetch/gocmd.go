package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/internal/limitbuf"
	"github.com/sumdb/sumdb/internal/modver"
)

// Limits on what the go command and git may print.
const (
	maxGoStdout = 1 << 20  // the JSON of one module version, with its error
	maxGoStderr = 64 << 10 // progress lines and errors
)

// DefaultMaxConcurrent is the default of GoCommandConfig.MaxConcurrent.
const DefaultMaxConcurrent = 4

// A GoCommandConfig configures a GoCommand. The zero value of every field
// means its default.
type GoCommandConfig struct {
	// GoBin is the go command; default "go", looked up in PATH.
	GoBin string

	// Private is the comma-separated list of glob patterns of private
	// module paths (GOPRIVATE syntax), given to the go command as
	// GOPRIVATE, GONOPROXY and GONOSUMDB.
	Private string

	// Env is the environment of the go command, and so of git; default
	// os.Environ(). Its credentials are what the go command and git use:
	// HOME (.netrc, ~/.gitconfig and its credential helpers, SSH keys),
	// NETRC, GOAUTH, GIT_CONFIG_*, SSH_AUTH_SOCK. The variables that choose
	// where modules come from and where they are checked are replaced (see
	// Fetch).
	Env []string

	// Timeout bounds one fetch, the wait for a free slot (MaxConcurrent)
	// included; default DefaultTimeout. When it ends, the go command and
	// every process it started are killed.
	Timeout time.Duration

	// MaxZipSize is the largest module zip accepted, and the largest
	// total size of its files once uncompressed, as Config.MaxZipSize.
	MaxZipSize int64

	// TempDir is the parent of the module cache made for each fetch and
	// removed after it; default os.TempDir().
	TempDir string

	// MaxConcurrent is how many go commands may run at once; default
	// DefaultMaxConcurrent. More fetches wait.
	MaxConcurrent int

	// MaxDisk bounds the disk one fetch may use, its clone of the
	// repository and its module cache: a fetch that uses more is stopped
	// and answered as a module too large to log. Default four times
	// MaxZipSize, at least 1 GiB.
	MaxDisk int64

	// Logger gets one line per fetch; by default nothing is logged.
	Logger *slog.Logger
}

// A GoCommand fetches module versions from version control with the go
// command ("go mod download -json", as GOPROXY=direct does), using the
// credentials of its environment, and hashes them into checksum database
// records, checked as an Upstream checks a proxy's. It is the "direct"
// entry of a private upstream list. It is safe for concurrent use.
type GoCommand struct {
	goBin      string
	private    string
	env        []string // the environment but GOMODCACHE
	timeout    time.Duration
	maxZipSize int64
	maxDisk    int64
	tempDir    string
	slots      chan struct{} // one value per go command running
	logger     *slog.Logger
}

// goEnvSet are the variables Fetch sets whatever the configured
// environment holds: they decide where a module comes from and which
// checksum database hears of it, so none of the environment's may apply.
var goEnvSet = []string{
	"GO111MODULE", "GOENV", "GOFLAGS", "GOINSECURE", "GOMODCACHE", "GONOPROXY",
	"GONOSUMDB", "GOPRIVATE", "GOPROXY", "GOSUMDB", "GOTOOLCHAIN", "GOWORK",
	"GIT_TERMINAL_PROMPT", "GCM_INTERACTIVE",
}

// NewGoCommand returns a GoCommand for cfg, or an error if cfg is invalid
// or its go command cannot be found.
func NewGoCommand(cfg GoCommandConfig) (*GoCommand, error) {
	g := &GoCommand{
		goBin:      cfg.GoBin,
		private:    cfg.Private,
		timeout:    cfg.Timeout,
		maxZipSize: cfg.MaxZipSize,
		tempDir:    cfg.TempDir,
		logger:     cfg.Logger,
	}
	if g.goBin == "" {
		g.goBin = "go"
	}
	bin, err := exec.LookPath(g.goBin)
	if err != nil {
		return nil, fmt.Errorf("go command config: %w (install Go, or give the go command's path)", err)
	}
	g.goBin = bin
	if strings.ContainsAny(g.private, "\x00\n\r") {
		return nil, fmt.Errorf("go command config: private patterns %q hold a control character", g.private)
	}
	if g.timeout, g.maxZipSize, err = limits("go command config", g.timeout, g.maxZipSize); err != nil {
		return nil, err
	}
	switch g.maxDisk = cfg.MaxDisk; {
	case g.maxDisk < 0:
		return nil, fmt.Errorf("go command config: negative max disk %d", g.maxDisk)
	case g.maxDisk == 0:
		g.maxDisk = max(4*g.maxZipSize, 1<<30)
	}
	if g.tempDir == "" {
		g.tempDir = os.TempDir()
	}
	if fi, err := os.Stat(g.tempDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("go command config: temporary directory %s: not a directory (create it, or choose another)", g.tempDir)
	}
	n := cfg.MaxConcurrent
	switch {
	case n < 0:
		return nil, fmt.Errorf("go command config: negative max concurrent %d", n)
	case n == 0:
		n = DefaultMaxConcurrent
	}
	g.slots = make(chan struct{}, n)
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	g.env = goEnv(cfg.Env, g.private)
	return g, nil
}

// goEnv returns the environment of the go command: base (os.Environ() if
// nil) without the variables of goEnvSet, and with them set so that the
// go command fetches from version control only (GOPROXY=direct), asks no
// checksum database (GOSUMDB=off: the server is the checksum database,
// and a private path must reach no other), reads no go env file, no
// workspace and no go.mod, runs no other toolchain, writes a module cache
// it can remove, and never prompts for a password.
func goEnv(base []string, private string) []string {
	if base == nil {
		base = os.Environ()
	}
	var env []string
	sshSet := false
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(goEnvSet, name) {
			continue
		}
		sshSet = sshSet || name == "GIT_SSH" || name == "GIT_SSH_COMMAND"
		env = append(env, kv)
	}
	env = append(env,
		"GO111MODULE=on",
		"GOENV=off",
		// Replaces the environment's GOFLAGS whole (an -insecure, a
		// -modfile); outside a module there is no -mod to choose.
		"GOFLAGS=-modcacherw",
		"GOINSECURE=",
		"GONOPROXY="+private,
		"GONOSUMDB="+private,
		"GOPRIVATE="+private,
		"GOPROXY=direct",
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GIT_TERMINAL_PROMPT=0",
		"GCM_INTERACTIVE=never",
	)
	if !sshSet {
		// No password or passphrase prompt, no host key question, no
		// shared connection outliving the fetch.
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o ControlMaster=no")
	}
	return env
}

// Fetch returns the checksum database record text for path@version, the
// two go.sum lines, as (*Upstream).Fetch does, after downloading it with
// "go mod download -json" into a module cache of its own, checking that
// the go command resolved exactly this version, checking its zip and .mod
// file as an Upstream checks a proxy's, and checking that the hashes
// computed here equal the Sum and GoModSum the go command reports.
//
// Errors are short enough to show to the go command user, name no secret,
// and wrap ErrInvalid (no go command run), ErrNotFound (no such
// repository, revision or module, or nothing that can be logged),
// ErrForbidden (the version control server refused the credentials of the
// environment, or there were none) or ErrUpstream (anything else the go
// command reports, a timeout, which also wraps context.DeadlineExceeded,
// or hashes that differ from the go command's). Any other error is local,
// such as a full TempDir.
func (g *GoCommand) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	start := time.Now()
	text, err := g.fetch(ctx, path, version)
	logFetch(ctx, g.logger, "go command fetch", path, version, "direct", start, err)
	return text, err
}

// errSumMismatch is the cause of the error for a module version whose
// hashes computed here differ from those the go command reports.
var errSumMismatch = errors.New("hashes differ from the go command's")

// A goDownload is the output of "go mod download -json" for one module
// version (cmd/go/internal/modcmd.ModuleJSON).
type goDownload struct {
	Path, Version, Error string
	Info, GoMod, Zip     string
	Sum, GoModSum        string
}

// A goRun is one run of the go command, or git, for one fetch.
type goRun struct {
	g     *GoCommand
	ctx   context.Context // with the fetch's timeout
	mod   string          // path@version
	dir   string          // the fetch's temporary directory
	cache string          // GOMODCACHE, under dir
	env   []string
}

// fetch implements Fetch.
func (g *GoCommand) fetch(ctx context.Context, path, version string) ([]byte, error) {
	if err := modver.Check(path, version); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	r := &goRun{g: g, ctx: ctx, mod: path + "@" + version}
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	case <-ctx.Done():
		return nil, r.ctxErr("waiting for a free go command", ctx.Err())
	}

	dir, err := os.MkdirTemp(g.tempDir, "sumdb-gocmd-*")
	if err != nil {
		return nil, fmt.Errorf("go command fetch of %s: %w", r.mod, err)
	}
	defer os.RemoveAll(dir) // -modcacherw made it all removable
	r.dir, r.cache = dir, filepath.Join(dir, "modcache")
	// A go.mod of its own, with no requirement, so that the go command
	// looks for none in the directories above: any local user may write
	// one in the temporary directory, and the go command would obey its
	// go line, replace and exclude directives. (GOWORK=off does the same
	// for go.work.)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, fmt.Errorf("go command fetch of %s: %w", r.mod, err)
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module sumdb.invalid/fetch\n"), 0o600); err != nil {
		return nil, fmt.Errorf("go command fetch of %s: %w", r.mod, err)
	}
	r.env = append(slices.Clip(g.env), "GOMODCACHE="+r.cache)

	stdout, stderr, runErr := r.run(work, g.goBin, "mod", "download", "-json", r.mod)
	if errors.Is(runErr, errDiskLimit) {
		return nil, r.notFound(fmt.Sprintf("the repository and module take more than %d bytes of disk, more than the server allows", g.maxDisk), runErr)
	}
	if err := r.ctx.Err(); err != nil {
		return nil, r.ctxErr("go command", err)
	}
	var dl goDownload
	if stdout.Truncated() {
		return nil, r.upstreamErr(fmt.Sprintf("go command printed more than %d bytes", maxGoStdout), nil)
	}
	if err := json.Unmarshal(stdout.Bytes(), &dl); err != nil {
		reason := "go command failed"
		if runErr != nil {
			reason += ": " + r.clean(stderr.String())
		}
		return nil, r.upstreamErr(reason, fmt.Errorf("%v: %s", runErr, r.redact(stderr.String())))
	}
	if dl.Error != "" {
		return nil, r.classify(path, dl.Error)
	}
	if runErr != nil {
		return nil, r.upstreamErr("go command failed: "+r.clean(stderr.String()), fmt.Errorf("%v: %s", runErr, r.redact(stderr.String())))
	}
	if dl.Path != path || dl.Version != version {
		// A query such as a branch name must not be logged under a
		// version it does not name.
		resolved := "a different version"
		if modver.Printable(dl.Path+"@"+dl.Version) && dl.Path == path {
			resolved = dl.Version
		}
		return nil, r.notFound("the go command resolved it to "+resolved, nil)
	}
	return r.hash(module.Version{Path: path, Version: version}, &dl)
}

// hash returns the record text of module version m from the files the go
// command downloaded, checked and hashed here, if the hashes equal the go
// command's.
func (r *goRun) hash(m module.Version, dl *goDownload) ([]byte, error) {
	for _, name := range []string{dl.GoMod, dl.Zip} {
		if rel, err := filepath.Rel(r.cache, name); err != nil || !filepath.IsLocal(rel) {
			return nil, r.upstreamErr("the go command reported files outside its module cache", fmt.Errorf("%q", name))
		}
	}
	mod, err := readFileMax(dl.GoMod, maxModSize)
	if errors.Is(err, errTooLarge) {
		return nil, r.notFound(fmt.Sprintf("go.mod larger than %d bytes", maxModSize), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("go command fetch of %s: read .mod: %w", r.mod, err)
	}
	fi, err := os.Stat(dl.Zip)
	if err != nil {
		return nil, fmt.Errorf("go command fetch of %s: %w", r.mod, err)
	}
	if fi.Size() > r.g.maxZipSize {
		return nil, r.notFound(fmt.Sprintf("module zip larger than %d bytes", r.g.maxZipSize), nil)
	}
	modHash, err := hashGoMod(mod)
	if err != nil {
		return nil, fmt.Errorf("hash go.mod of %s: %w", r.mod, err)
	}
	zipHash, err := hashZipFile(dl.Zip, m, mod, r.g.maxZipSize)
	if err != nil {
		return nil, err
	}
	if zipHash != dl.Sum || modHash != dl.GoModSum {
		return nil, r.upstreamErr("the hashes computed by the checksum database differ from the go command's; its operator must look into it",
			fmt.Errorf("%w: zip %s, go command %q; go.mod %s, go command %q", errSumMismatch, zipHash, dl.Sum, modHash, dl.GoModSum))
	}
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, zipHash, m.Path, m.Version, modHash), nil
}

// errTooLarge is the error of readFileMax for a file over its limit.
var errTooLarge = errors.New("file too large")

// readFileMax returns the content of the file name, which may be at most
// limit bytes.
func readFileMax(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// errDiskLimit is the cause of a run stopped for using more disk than
// the fetch may.
var errDiskLimit = errors.New("disk limit of the fetch reached")

// diskCheckInterval is how often a run's use of disk is measured.
const diskCheckInterval = 250 * time.Millisecond

// run runs the command name with args in dir under the fetch's context
// and environment, and returns what it printed, bounded, and the error of
// its run. When the context ends, or the fetch's directory grows beyond
// the disk limit (the error then wraps errDiskLimit), the command and
// every process it started are killed.
func (r *goRun) run(dir, name string, args ...string) (stdout, stderr *limitbuf.Buffer, err error) {
	stdout = limitbuf.New(maxGoStdout)
	stderr = limitbuf.New(maxGoStderr)
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go r.watchDisk(stop, cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, r.env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	killProcessGroup(cmd)
	// A process that outlives the kill and keeps a pipe open must not
	// hold the fetch.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	// Once more at the end: a quick command may have finished between two
	// measures.
	if cause := context.Cause(ctx); errors.Is(cause, errDiskLimit) || r.diskUsed() > r.g.maxDisk {
		err = fmt.Errorf("%w: %v", errDiskLimit, err)
	}
	return stdout, stderr, err
}

// watchDisk measures the disk under the fetch's directory until stop is
// closed, and cancels the run with errDiskLimit once it exceeds the limit.
// Measures are spaced by four times the last one's duration at least, so
// that a tree of very many files does not keep a core walking it.
func (r *goRun) watchDisk(stop <-chan struct{}, cancel context.CancelCauseFunc) {
	wait := diskCheckInterval
	for {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		start := time.Now()
		if r.diskUsed() > r.g.maxDisk {
			cancel(errDiskLimit)
			return
		}
		wait = max(diskCheckInterval, 4*time.Since(start))
	}
}

// entryCharge is what each file and directory is counted for beyond its
// blocks: its inode and directory entry.
const entryCharge = 512

// diskUsed returns the disk taken under the fetch's directory, as the file
// system allocates it (blocks, not sizes: a module of very many small
// files takes far more than their sizes), plus entryCharge a file or
// directory, or a number over the limit once it is reached.
func (r *goRun) diskUsed() int64 {
	var total int64
	filepath.WalkDir(r.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking
		}
		total += entryCharge
		if fi, err := d.Info(); err == nil && (fi.Mode().IsRegular() || fi.IsDir()) {
			total += max(diskSize(fi), 0)
		}
		if total > r.g.maxDisk {
			return filepath.SkipAll
		}
		return nil
	})
	return total
}

// The texts of the go command's and git's errors that tell what failed,
// matched lower-cased. The refusals of credentials come first: a fetch
// that failed for them may also say "invalid version" or "not found".
var (
	forbiddenTexts = []string{
		"terminal prompts disabled", "authentication failed", "could not read username",
		"could not read password", "401 unauthorized", "403 forbidden", "returned error: 401",
		"returned error: 403", "permission denied (publickey", "http basic: access denied",
	}
	notFoundTexts = []string{
		"unknown revision", "no matching versions", "' not found", "repository not found",
		"does not appear to be a git repository", "returned error: 404", "404 not found",
		"410 gone", "does not contain package", "disallowed version string",
	}
)

// classify returns the error for a failed download whose go command error
// is msg.
func (r *goRun) classify(path, msg string) error {
	cause := errors.New(r.redact(msg))
	text := msg
	if strings.Contains(msg, "no secure protocol found for repository") {
		// The go command tried each scheme for a path with a VCS
		// qualifier, and dropped what git said: ask git again.
		text += "\n" + r.diagnose(path)
		if err := r.ctx.Err(); err != nil {
			return r.ctxErr("go command", err)
		}
		cause = errors.New(r.redact(text))
	}
	lower := strings.ToLower(text)
	for _, s := range forbiddenTexts {
		if strings.Contains(lower, s) {
			return &fetchError{kind: ErrForbidden, mod: r.mod, cause: cause,
				reason: "the version control server refused the credentials of the checksum database server, or it has none for this module; its operator must give it read access (.netrc, a git credential helper, GOAUTH or an SSH key)"}
		}
	}
	for _, s := range notFoundTexts {
		if strings.Contains(lower, s) {
			return r.notFound(r.notFoundReason(lower, msg), cause)
		}
	}
	// The go command calls most failures of a version "invalid version",
	// those of git too ("exit status 128"), which may be passing.
	if strings.Contains(lower, "invalid version") && !strings.Contains(lower, "exit status") {
		return r.notFound(r.clean(msg), cause)
	}
	return r.upstreamErr("go command failed: "+r.clean(msg), cause)
}

// notFoundReason returns the reason of a not-found error whose go command
// error is msg, and the text git added to it lower-cased, lower.
func (r *goRun) notFoundReason(lower, msg string) string {
	_, version, _ := strings.Cut(r.mod, "@")
	switch {
	case strings.Contains(lower, "unknown revision"):
		return "unknown revision " + version
	case strings.Contains(lower, "no matching versions"):
		return "no matching versions"
	case strings.Contains(lower, "' not found"),
		strings.Contains(lower, "repository not found"),
		strings.Contains(lower, "does not appear to be a git repository"),
		strings.Contains(lower, "returned error: 404"):
		return "repository not found"
	}
	return r.clean(msg)
}

// vcsPathRE matches a module path with a VCS qualifier, as the go command
// reads one (cmd/go/internal/vcs.vcsPaths, its last entry): the go
// command asks git for <scheme>://<repo>, trying each secure scheme.
var vcsPathRE = regexp.MustCompile(`^(?P<repo>([a-z0-9.\-]+\.)+[a-z0-9.\-]+(:[0-9]+)?(/~?[\w\.\-]+)+?)\.git(/~?[\w\.\-]+)*$`)

// gitSchemes are the secure schemes the go command tries for a path with
// a VCS qualifier, in its order (cmd/go/internal/vcs.vcsGit.Scheme).
var gitSchemes = []string{"https", "git+ssh", "ssh"}

// diagnose returns what git says when asked for the repository of the
// path, which has a VCS qualifier, at each scheme the go command tried, or
// "" if the path has no git qualifier or git cannot be run.
func (r *goRun) diagnose(path string) string {
	m := vcsPathRE.FindStringSubmatch(path)
	if m == nil {
		return ""
	}
	repo := m[vcsPathRE.SubexpIndex("repo")]
	git, err := exec.LookPath("git")
	if err != nil {
		return ""
	}
	var out []string
	for _, scheme := range gitSchemes {
		if r.ctx.Err() != nil {
			break
		}
		_, stderr, err := r.run(r.dir, git, "ls-remote", "-q", scheme+"://"+repo)
		if err != nil {
			out = append(out, scheme+": "+strings.TrimSpace(stderr.String()))
		}
	}
	return strings.Join(out, "\n")
}

// redact returns the text of the go command or git for a log line: URL
// user information masked, local paths of the fetch replaced, and at most
// 1000 bytes.
func (r *goRun) redact(text string) string {
	text = redactURLs(text)
	if r.dir != "" {
		text = strings.ReplaceAll(text, r.cache, "$GOMODCACHE")
		text = strings.ReplaceAll(text, r.dir, "$WORK")
	}
	text = strings.TrimSpace(strings.ReplaceAll(text, "\n", "; "))
	if len(text) > 1000 {
		text = text[:997] + "..."
	}
	return text
}

// clean returns the first line of the go command's error text for a
// message to users: redacted, without the path@version the message names
// already, printable and clipped.
func (r *goRun) clean(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimPrefix(line, r.mod+": ")
	line = strings.TrimPrefix(line, "go: ")
	line = strings.TrimPrefix(line, r.mod+": ")
	if line = r.redact(line); line == "" {
		return "no error text"
	}
	return firstLine(errors.New(line))
}

// urlRE matches a URL with a scheme in a text, and userinfoRE user
// information written before a host without a scheme ("user:token@host").
var (
	urlRE      = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>]+`)
	userinfoRE = regexp.MustCompile(`[^\s'"/@:]+:[^\s'"/@]+@`)
)

// redactURLs returns text with the user information of its URLs masked,
// and their secret query parameters (see guard.RedactURL).
func redactURLs(text string) string {
	text = urlRE.ReplaceAllStringFunc(text, guard.RedactURL)
	return userinfoRE.ReplaceAllString(text, "xxxxx@")
}

// notFound returns an ErrNotFound error with the given reason.
func (r *goRun) notFound(reason string, cause error) *fetchError {
	return notFoundErr(r.mod, reason, cause)
}

// upstreamErr returns an ErrUpstream error with the given reason.
func (r *goRun) upstreamErr(reason string, cause error) *fetchError {
	return &fetchError{kind: ErrUpstream, mod: r.mod, reason: reason, cause: cause}
}

// ctxErr returns the error for a fetch whose context ended with err while
// doing what.
func (r *goRun) ctxErr(what string, err error) *fetchError {
	ferr := r.upstreamErr(what+" canceled", nil)
	ferr.ctxErr = err
	if errors.Is(err, context.DeadlineExceeded) {
		ferr.reason, ferr.ctxErr = what+" timed out", context.DeadlineExceeded
	}
	return ferr
}
