// Package authfile keeps a checksum database readable only by the users
// named in a file: its handler wrapper asks every request but the health
// checks for a user name and password (HTTP Basic) or a bearer token, and
// reloads the file when it changes.
//
// # The file
//
// One entry a line; blank lines and lines starting with '#' are ignored,
// and so are the spaces around an entry:
//
//	# name:bcrypt hash, as htpasswd -nB writes it
//	alice:$2y$05$...
//	# a bearer token, by the hex SHA-256 of the token
//	token ci sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// A user line is "<user>:<bcrypt hash>": the name (no ':' and no spaces)
// and a bcrypt hash in the $2a$, $2b$ or $2y$ form, of cost 4 to 14 (cost
// 14 takes about a second a check; htpasswd's default is 5). Make one with
//
//	htpasswd -nB alice
//
// A token line is "token <name> sha256:<hex>": the name only tells the
// tokens apart in the logs, and the hex is the SHA-256 of the token, which
// a client sends as "Authorization: Bearer <token>". A token is a long
// random string (openssl rand -hex 32), so a plain hash is as strong as a
// salted one. Make its line with
//
//	printf 'token ci sha256:%s\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
//
// Any other line makes the whole file invalid, with an error that names its
// line number and never repeats a hash. Names and token hashes must be
// unique.
//
// # Reloading
//
// At most once a second, on a request, Wrap reads the file again (it is
// small: at most 4 MiB) and, if its content changed, parses it: a user
// removed, or whose password changed, is refused from the next request on.
// The content is compared, not the size and modification time: a new
// bcrypt hash is as long as the old one, and may be written within the
// granularity of the file system's clock. A file that has become unreadable or invalid
// leaves the last valid one in force, and is logged at ERROR once per change.
//
// # What is checked, counted and logged
//
// A successful bcrypt check is remembered (by the SHA-256 of
// "user:password", at most a few thousand, forgotten at every reload), so
// that the go command's many tile requests cost one bcrypt check, not one
// each; failures are never remembered. A client (its IP address, or IPv6
// /64, as ratelimit.ClientKey tells) that sent too many wrong credentials
// is answered 429 with Retry-After for every request until its bucket
// refills, right credentials included, so that guessing gains nothing from
// the answer. Requests without credentials are not counted against the
// limit: they guess nothing, and clients (the go command in GOAUTH's git
// mode) send one before their credentials. Failures are counted in
// sumdb_auth_failures_total{reason="missing|wrong|limited"}, and a wrong
// one is logged at WARN with the client and, only if the file has that
// user, the user name: a name the file does not have may be a password
// typed in the wrong field. Passwords, tokens and hashes are never logged.
//
// # Caches
//
// Answers to authenticated requests carry "Cache-Control: private" (public
// and s-maxage removed), so that no CDN or shared cache stores a tile,
// which lists module paths, for whoever asks next; refusals carry no-store.
// A CDN in front of a log that was world-readable before must be purged
// when the file is introduced, and one configured to cache private answers
// must not be used.
package authfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/sumdb/sumdb/internal/lru"
	"github.com/sumdb/sumdb/internal/ratelimit"
)

// Bounds of the file and of its entries.
const (
	maxFileSize = 4 << 20
	minCost     = bcrypt.MinCost // 4
	maxCost     = 14
	// maxVerified bounds the successful checks remembered.
	maxVerified = 4096
	// reloadInterval is how often at most the file is looked at.
	reloadInterval = time.Second
	// maxCredentials bounds the Authorization header decoded: a bcrypt
	// password is at most 72 bytes, and a token is a few dozen.
	maxCredentials = 4096
)

// Config configures New. The zero value of a field means its default.
type Config struct {
	// File is the auth file (see the package documentation). Required.
	File string
	// Logger receives the reloads, the refused files and the wrong
	// credentials. Default: discard.
	Logger *slog.Logger
	// Registerer registers sumdb_auth_failures_total. Default: none.
	Registerer prometheus.Registerer
	// FailRate is how many wrong credentials a client may send a second on
	// average, and FailBurst at once. Defaults 1 and 20.
	FailRate  float64
	FailBurst int
	// TrustProxyHeaders makes the client of a request the last address of
	// its X-Forwarded-For header, as the server's own limits do.
	TrustProxyHeaders bool
	// Now is the clock of the limit and of the reloads. Default time.Now.
	Now func() time.Time
	// Realm is the realm of the WWW-Authenticate challenge. Default "sumdb".
	Realm string
}

// An Auth checks the credentials of requests against an auth file. It is
// safe for concurrent use.
type Auth struct {
	file     string
	logger   *slog.Logger
	limiter  *ratelimit.Limiter
	trust    bool
	now      func() time.Time
	realm    string
	failures *prometheus.CounterVec
	// bcryptSlots bounds the bcrypt checks running at once, so that wrong
	// passwords from many addresses cannot take every CPU.
	bcryptSlots chan struct{}

	mu      sync.Mutex
	entries *entries  // guarded by mu; the entries in force
	sum     [32]byte  // guarded by mu; SHA-256 of the file entries came from
	bad     fileState // guarded by mu; the last file refused, logged once
	checked time.Time // guarded by mu; when the file was last looked at
}

// entries are the contents of a valid auth file, never modified.
type entries struct {
	users  map[string][]byte   // bcrypt hash by user name
	tokens map[[32]byte]string // token name by SHA-256 of the token
	// dummy is a hash the check of an unknown user's password is made
	// against, so that the time of the answer does not tell whether the
	// user exists. Nil if there are no users.
	dummy []byte
	// verified holds the SHA-256 of the "user:password" pairs checked
	// right with these entries.
	verified *lru.Cache[[32]byte, struct{}]
}

// A fileState is a version of the file that was refused: its content's
// SHA-256, or why it could not be read.
type fileState struct {
	sum [32]byte
	err string // "" if it was read
	set bool
}

// New loads cfg.File and returns the Auth that checks requests against it.
// A file that cannot be read or is invalid is an error.
func New(cfg Config) (*Auth, error) {
	if cfg.File == "" {
		return nil, errors.New("auth file: no file named")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FailRate == 0 {
		cfg.FailRate = 1
	}
	if cfg.FailBurst == 0 {
		cfg.FailBurst = 20
	}
	if cfg.FailRate < 0 || math.IsNaN(cfg.FailRate) || math.IsInf(cfg.FailRate, 0) {
		return nil, fmt.Errorf("auth file: invalid failure rate %v: want a positive number of failures a second", cfg.FailRate)
	}
	if cfg.FailBurst < 0 {
		return nil, fmt.Errorf("auth file: invalid failure burst %d: want a positive number", cfg.FailBurst)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = "sumdb"
	}
	if strings.ContainsFunc(cfg.Realm, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
		return nil, fmt.Errorf("auth file: invalid realm %q: no quotes, backslashes or control characters", cfg.Realm)
	}
	a := &Auth{
		file:    cfg.File,
		logger:  cfg.Logger,
		limiter: ratelimit.New(cfg.FailRate, cfg.FailBurst),
		trust:   cfg.TrustProxyHeaders,
		now:     cfg.Now,
		realm:   cfg.Realm,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sumdb_auth_failures_total",
			Help: "Requests refused for their credentials, by reason: missing, wrong, limited (too many wrong ones from the client).",
		}, []string{"reason"}),
		bcryptSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	data, err := readFile(cfg.File)
	if err != nil {
		return nil, err
	}
	e, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", cfg.File, err)
	}
	a.entries, a.sum, a.checked = e, sha256.Sum256(data), cfg.Now()
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.failures); err != nil {
			return nil, fmt.Errorf("auth file: register metrics: %w", err)
		}
	}
	for _, reason := range []string{reasonMissing, reasonWrong, reasonLimited} {
		a.failures.WithLabelValues(reason) // a series of zeros from the start
	}
	return a, nil
}

// readFile reads the auth file, a regular file of at most maxFileSize
// bytes.
func readFile(file string) ([]byte, error) {
	// Opened without blocking, and then refused, if it is a FIFO or a
	// device, whose open or read could block every request: a check
	// before the open could be raced by a FIFO renamed over the file.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("auth file %s: not a regular file", file)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("auth file %s: larger than %d bytes: is it the right file?", file, maxFileSize)
	}
	return data, nil
}

// parse parses the contents of an auth file. Its errors name the line and
// never repeat a hash.
func parse(data []byte) (*entries, error) {
	e := &entries{
		users:    make(map[string][]byte),
		tokens:   make(map[[32]byte]string),
		verified: lru.New[[32]byte, struct{}](maxVerified*(lru.EntryOverhead+32), func(struct{}) int64 { return 32 }),
	}
	tokenNames := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxFileSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) > 0 && f[0] == "token" {
			name, sum, err := parseToken(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if tokenNames[name] {
				return nil, fmt.Errorf("line %d: token %q named twice: give each token a name of its own", n, name)
			}
			if old, ok := e.tokens[sum]; ok {
				return nil, fmt.Errorf("line %d: token %q has the hash of token %q: make a new token for each", n, name, old)
			}
			tokenNames[name] = true
			e.tokens[sum] = name
			continue
		}
		user, hash, err := parseUser(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if _, ok := e.users[user]; ok {
			return nil, fmt.Errorf("line %d: user %q named twice: remove one of the lines", n, user)
		}
		e.users[user] = hash
		if e.dummy == nil {
			e.dummy = hash
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return e, nil
}

// parseToken parses the fields of a token line.
func parseToken(f []string) (name string, sum [32]byte, err error) {
	if len(f) != 3 {
		return "", sum, errors.New(`want "token <name> sha256:<hex of the SHA-256 of the token>"`)
	}
	name = f[1]
	h, ok := strings.CutPrefix(f[2], "sha256:")
	if !ok {
		return "", sum, fmt.Errorf(`token %q: want "sha256:<hex of the SHA-256 of the token>" after the name`, name)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(sum) {
		return "", sum, fmt.Errorf("token %q: the hash is not 64 hex digits (make it with: printf %%s \"$token\" | sha256sum)", name)
	}
	copy(sum[:], b)
	return name, sum, nil
}

// parseUser parses a user line.
func parseUser(line string) (string, []byte, error) {
	user, hash, ok := strings.Cut(line, ":")
	if !ok || user == "" || strings.ContainsFunc(user, isSpaceOrControl) {
		return "", nil, errors.New(`want "<user>:<bcrypt hash>" (htpasswd -nB <user>) or "token <name> sha256:<hex>"`)
	}
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return "", nil, fmt.Errorf("user %q: the hash is not a bcrypt hash ($2a$, $2b$ or $2y$): make it with htpasswd -nB %s", user, user)
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return "", nil, fmt.Errorf("user %q: the bcrypt hash is malformed: make it again with htpasswd -nB %s", user, user)
	}
	if cost < minCost || cost > maxCost {
		return "", nil, fmt.Errorf("user %q: bcrypt cost %d, want %d to %d (htpasswd -nB -C 5 %s)", user, cost, minCost, maxCost, user)
	}
	return user, []byte(hash), nil
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// Users returns the number of users and of tokens in force.
func (a *Auth) Users() (users, tokens int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries.users), len(a.entries.tokens)
}

// current returns the entries in force, reloading the file first if it is
// time to look at it and it changed.
func (a *Auth) current(ctx context.Context) *entries {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if now.Sub(a.checked) < reloadInterval && !now.Before(a.checked) {
		return a.entries
	}
	a.checked = now
	// The content, not the size and time of the file, tells a change: a
	// new password's hash is as long as the old one's, and it may be
	// written within the granularity of the file's modification time.
	data, err := readFile(a.file)
	var state fileState
	if err != nil {
		state = fileState{err: err.Error(), set: true}
	} else {
		state = fileState{sum: sha256.Sum256(data), set: true}
		if state.sum == a.sum {
			a.bad = fileState{}
			return a.entries
		}
	}
	if state == a.bad {
		return a.entries
	}
	var e *entries
	if err == nil {
		if e, err = parse(data); err != nil {
			err = fmt.Errorf("auth file %s: %w", a.file, err)
		}
	}
	if err != nil {
		a.bad = state
		a.logger.ErrorContext(ctx, "auth file not reloaded: the last valid one stays in force until it is fixed", "file", a.file, "err", err)
		return a.entries
	}
	a.entries, a.sum, a.bad = e, state.sum, fileState{}
	a.logger.InfoContext(ctx, "auth file reloaded", "file", a.file, "users", len(e.users), "tokens", len(e.tokens))
	return e
}

// Reasons of failure, the values of the metric's label.
const (
	reasonMissing = "missing"
	reasonWrong   = "wrong"
	reasonLimited = "limited"
)

// Wrap returns a handler that passes to next the requests with valid
// credentials, and /healthz and /readyz without any. It answers the others
// 401, or 429 for a client that sent too many wrong credentials.
func (a *Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		client := ratelimit.ClientKey(r, a.trust)
		if !hasCredentials(r) {
			a.failures.WithLabelValues(reasonMissing).Inc()
			a.refuse(w, http.StatusUnauthorized, "this checksum database is readable only by its users: give a user name and password (in .netrc, or through GOAUTH) or a bearer token")
			return
		}
		if wait := a.limiter.Wait(client, a.now()); wait > 0 {
			a.limited(w, wait)
			return
		}
		user, known, ok := a.check(ctx, r)
		if !ok {
			if allowed, wait := a.limiter.Allow(client, a.now()); !allowed {
				a.limited(w, wait)
				return
			}
			a.failures.WithLabelValues(reasonWrong).Inc()
			attrs := []any{"client", client}
			if known {
				attrs = append(attrs, "user", user)
			}
			a.logger.WarnContext(ctx, "wrong credentials", attrs...)
			a.refuse(w, http.StatusUnauthorized, "wrong user name or password, or unknown token: check your .netrc or GOAUTH credentials for this server")
			return
		}
		next.ServeHTTP(&privateWriter{ResponseWriter: w}, r)
	})
}

// hasCredentials reports whether r has an Authorization header.
func hasCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != ""
}

// check checks r's credentials. It returns the user name, whether the file
// has that user, and whether the credentials are right.
func (a *Auth) check(ctx context.Context, r *http.Request) (user string, known, ok bool) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 || len(h[0]) > maxCredentials {
		return "", false, false
	}
	scheme, cred, _ := strings.Cut(h[0], " ")
	cred = strings.TrimSpace(cred)
	e := a.current(ctx)
	switch strings.ToLower(scheme) {
	case "bearer":
		_, ok := e.tokens[sha256.Sum256([]byte(cred))]
		return "", false, ok
	case "basic":
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", false, false
		}
		user, password, found := strings.Cut(string(b), ":")
		if !found {
			return "", false, false
		}
		hash, known := e.users[user]
		key := sha256.Sum256(b)
		if known {
			if _, hit := e.verified.Get(key); hit {
				return user, true, true
			}
		}
		target := hash
		if !known {
			target = e.dummy
		}
		if target == nil {
			return user, false, false
		}
		select {
		case a.bcryptSlots <- struct{}{}:
		case <-ctx.Done():
			return user, known, false
		}
		err = bcrypt.CompareHashAndPassword(target, []byte(password))
		<-a.bcryptSlots
		if err != nil || !known {
			return user, known, false
		}
		e.verified.Put(key, struct{}{})
		return user, true, true
	}
	return "", false, false
}

// limited answers a request of a client that sent too many wrong
// credentials.
func (a *Auth) limited(w http.ResponseWriter, wait time.Duration) {
	a.failures.WithLabelValues(reasonLimited).Inc()
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	a.refuse(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong credentials from your address: retry in %d seconds", secs))
}

// refuse writes a refusal that no cache may store.
func (a *Auth) refuse(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="`+a.realm+`", charset="UTF-8"`)
	}
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// A privateWriter makes the answers of the handler it wraps private to the
// user who asked: no shared cache may store them (RFC 9111, section 5.2.2.7).
type privateWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *privateWriter) WriteHeader(code int) {
	w.wrote = true
	makePrivate(w.Header())
	w.ResponseWriter.WriteHeader(code)
}

func (w *privateWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *privateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// makePrivate rewrites the Cache-Control of h so that only the user's own
// cache may store the answer: public and s-maxage, which let a shared cache
// store an answer to a request with credentials (RFC 9111, section 3.5),
// are removed, and private is added; the rest (max-age, immutable, no-cache)
// still holds for the user's cache.
func makePrivate(h http.Header) {
	out := []string{"private"}
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "", "public", "private", "s-maxage":
				continue
			}
			out = append(out, d)
		}
	}
	h.Set("Cache-Control", strings.Join(out, ", "))
}
