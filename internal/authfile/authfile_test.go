package authfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
)

// htpasswd returns the line "user:hash" that htpasswd -nB writes: a bcrypt
// hash in the $2y$ form, of cost 5.
func htpasswd(t testing.TB, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), 5)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":$2y$" + strings.TrimPrefix(string(h), "$2a$")
}

// tokenLine returns the auth file line of a bearer token.
func tokenLine(name, token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token " + name + " sha256:" + hex.EncodeToString(sum[:])
}

func TestParse(t *testing.T) {
	alice := htpasswd(t, "alice", "wonderland")
	hash := strings.TrimPrefix(alice, "alice:")
	cost15, err := bcrypt.GenerateFromPassword([]byte("x"), 4)
	if err != nil {
		t.Fatal(err)
	}
	cost15[5] = '5' // "$2a$04$" -> "$2a$15$": only the cost field changes
	cost15[4] = '1'
	tests := []struct {
		name    string
		data    string
		users   int
		tokens  int
		wantErr string // "" for none
	}{
		{"empty", "", 0, 0, ""},
		{"comments and blanks", "# users\n\n   \n\t# more\n", 0, 0, ""},
		{"user and token", "# x\n" + alice + "\r\n  " + tokenLine("ci", "s3cret-token") + "  \n", 1, 1, ""},
		{"2a and 2b", "a:" + strings.Replace(hash, "$2y$", "$2a$", 1) + "\nb:" + strings.Replace(hash, "$2y$", "$2b$", 1) + "\n", 2, 0, ""},
		{"no colon", "\n\nalice " + hash + "\n", 0, 0, "line 3: want \"<user>:<bcrypt hash>\""},
		{"empty user", ":" + hash, 0, 0, "line 1: want"},
		{"space in user", "al ice:" + hash, 0, 0, "line 1: want"},
		{"md5 hash", "alice:$apr1$abc$defdefdefdefdefdefdefd", 0, 0, `line 1: user "alice": the hash is not a bcrypt hash`},
		{"plain password", "alice:wonderland", 0, 0, `line 1: user "alice": the hash is not a bcrypt hash`},
		{"truncated bcrypt", "alice:" + hash[:20], 0, 0, `line 1: user "alice": the bcrypt hash is malformed`},
		{"cost too high", "alice:" + string(cost15), 0, 0, `line 1: user "alice": bcrypt cost 15, want 4 to 14`},
		{"user twice", alice + "\n" + alice, 0, 0, `line 2: user "alice" named twice`},
		{"token without hash", "token ci", 0, 0, "line 1: want \"token <name> sha256:"},
		{"token extra field", tokenLine("ci", "x") + " more", 0, 0, "line 1: want \"token <name> sha256:"},
		{"token other hash", "token ci md5:00", 0, 0, `line 1: token "ci": want "sha256:`},
		{"token short hex", "token ci sha256:abcd", 0, 0, `line 1: token "ci": the hash is not 64 hex digits`},
		{"token bad hex", "token ci sha256:" + strings.Repeat("g", 64), 0, 0, `line 1: token "ci": the hash is not 64 hex digits`},
		{"token name twice", tokenLine("ci", "a") + "\n" + tokenLine("ci", "b"), 0, 0, `line 2: token "ci" named twice`},
		{"token hash twice", tokenLine("ci", "a") + "\n" + tokenLine("cd", "a"), 0, 0, `line 2: token "cd" has the hash of token "ci"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := parse([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse(%q) error = %v, want %q", tt.data, err, tt.wantErr)
				}
				// Never a hash in the message.
				for _, secret := range []string{hash, hash[7:], strings.Repeat("g", 64), "wonderland", "$defdef"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("parse error %q repeats %q", err, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q) = %v", tt.data, err)
			}
			if len(e.users) != tt.users || len(e.tokens) != tt.tokens {
				t.Errorf("parse(%q) = %d users, %d tokens; want %d, %d", tt.data, len(e.users), len(e.tokens), tt.users, tt.tokens)
			}
		})
	}
}

// env is an Auth in front of a handler that answers as the checksum
// database does, with a clock the test moves.
type env struct {
	t     *testing.T
	file  string
	auth  *Auth
	h     http.Handler
	reg   *prometheus.Registry
	logs  *bytes.Buffer
	now   atomic.Int64 // seconds after t0
	inner atomic.Int64 // requests that reached the inner handler
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, content string, cfg Config) *env {
	t.Helper()
	e := &env{t: t, file: filepath.Join(t.TempDir(), "auth"), reg: prometheus.NewRegistry(), logs: new(bytes.Buffer)}
	e.write(content)
	cfg.File = e.file
	cfg.Registerer = e.reg
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
	cfg.Now = func() time.Time { return t0.Add(time.Duration(e.now.Load()) * time.Second) }
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.auth = a
	e.h = a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inner.Add(1)
		switch {
		case strings.HasPrefix(r.URL.Path, "/tile/"):
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		case r.URL.Path == "/latest":
			w.Header().Set("Cache-Control", "no-cache")
		case strings.HasPrefix(r.URL.Path, "/lookup/"):
			w.Header().Set("Cache-Control", "public, s-maxage=30, max-age=5")
		}
		io.WriteString(w, "answer of "+r.URL.Path)
	}))
	return e
}

// write replaces the auth file.
func (e *env) write(content string) {
	e.t.Helper()
	if err := os.WriteFile(e.file, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// tick moves the clock past the reload interval.
func (e *env) tick() { e.now.Add(2) }

// get requests path from client with the Authorization header auth ("" for
// none).
func (e *env) get(path, client, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = client + ":1234"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func basic(user, password string) string {
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// failures returns the value of sumdb_auth_failures_total{reason}.
func (e *env) failures(reason string) int {
	return int(testutil.ToFloat64(e.auth.failures.WithLabelValues(reason)))
}

func TestWrap(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n"+tokenLine("ci", "s3cret-token")+"\n", Config{})
	tests := []struct {
		name, path, auth string
		code             int
		body             string
		reason           string // the failure counted, if any
	}{
		{"basic", "/latest", basic("alice", "wonderland"), 200, "answer of /latest", ""},
		{"basic again", "/lookup/example.com/m@v1.0.0", basic("alice", "wonderland"), 200, "answer of /lookup/", ""},
		{"bearer", "/tile/8/0/000", "Bearer s3cret-token", 200, "answer of /tile/8/0/000", ""},
		{"bearer lower case", "/latest", "bearer s3cret-token", 200, "answer of /latest", ""},
		{"missing", "/latest", "", 401, "readable only by its users", "missing"},
		{"missing on a tile", "/tile/8/0/000", "", 401, "readable only by its users", "missing"},
		{"wrong password", "/latest", basic("alice", "looking-glass"), 401, "wrong user name or password", "wrong"},
		{"unknown user", "/latest", basic("bob", "wonderland"), 401, "wrong user name or password", "wrong"},
		{"empty password", "/latest", basic("alice", ""), 401, "wrong user name", "wrong"},
		{"wrong token", "/latest", "Bearer s3cret-tokem", 401, "wrong user name", "wrong"},
		{"password as token", "/latest", "Bearer wonderland", 401, "wrong user name", "wrong"},
		{"token as password", "/latest", basic("ci", "s3cret-token"), 401, "wrong user name", "wrong"},
		{"bad base64", "/latest", "Basic !!!", 401, "wrong user name", "wrong"},
		{"other scheme", "/latest", "Digest username=alice", 401, "wrong user name", "wrong"},
		{"healthz open", "/healthz", "", 200, "answer of /healthz", ""},
		{"readyz open", "/readyz", "", 200, "answer of /readyz", ""},
		{"healthz with wrong credentials", "/healthz", basic("alice", "x"), 200, "answer of /healthz", ""},
		{"not only the exact health paths", "/healthz/x", "", 401, "readable only", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]int{}
			for _, r := range []string{"missing", "wrong", "limited"} {
				before[r] = e.failures(r)
			}
			inner := e.inner.Load()
			w := e.get(tt.path, "192.0.2.1", tt.auth)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("GET %s with %q = %d %q, want %d %q", tt.path, tt.auth, w.Code, w.Body, tt.code, tt.body)
			}
			if reached := e.inner.Load() > inner; reached != (tt.code == 200) {
				t.Errorf("GET %s with %q reached the handler: %v, want %v", tt.path, tt.auth, reached, tt.code == 200)
			}
			if tt.code == 401 {
				if got, want := w.Header().Get("WWW-Authenticate"), `Basic realm="sumdb", charset="UTF-8"`; got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				if got := w.Header().Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control of a 401 = %q, want no-store", got)
				}
			}
			for _, r := range []string{"missing", "wrong", "limited"} {
				want := before[r]
				if r == tt.reason {
					want++
				}
				if got := e.failures(r); got != want {
					t.Errorf("sumdb_auth_failures_total{reason=%q} = %d, want %d", r, got, want)
				}
			}
		})
	}
	// The logs name a user the file has, and no other name, password or
	// token.
	logs := e.logs.String()
	if !strings.Contains(logs, "user=alice") {
		t.Errorf("logs do not name alice, whose password was wrong:\n%s", logs)
	}
	for _, secret := range []string{"wonderland", "looking-glass", "s3cret", "bob", "$2y$", "ci"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs show %q:\n%s", secret, logs)
		}
	}
}

// TestCacheControl checks that answers to authenticated requests may be
// stored by the user's cache only.
func TestCacheControl(t *testing.T) {
	e := newEnv(t, tokenLine("ci", "tok"), Config{})
	for path, want := range map[string]string{
		"/tile/8/0/000":                "private, max-age=31536000, immutable",
		"/lookup/example.com/m@v1.0.0": "private, max-age=5",
		"/latest":                      "private, no-cache",
		"/other":                       "private",
	} {
		w := e.get(path, "192.0.2.1", "Bearer tok")
		if got := w.Result().Header.Values("Cache-Control"); len(got) != 1 || got[0] != want {
			t.Errorf("GET %s: Cache-Control %q, want %q", path, got, want)
		}
	}
}

func TestMakePrivate(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{nil, "private"},
		{[]string{"public"}, "private"},
		{[]string{"PUBLIC, Max-Age=60"}, "private, Max-Age=60"},
		{[]string{"public", "s-maxage=60,max-age=5"}, "private, max-age=5"},
		{[]string{"private, no-store"}, "private, no-store"},
		{[]string{" , ,no-cache"}, "private, no-cache"},
	} {
		h := http.Header{"Cache-Control": tt.in}
		makePrivate(h)
		if got := h.Values("Cache-Control"); len(got) != 1 || got[0] != tt.want {
			t.Errorf("makePrivate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLimit checks that a client that sent too many wrong credentials is
// refused with 429 whatever it sends, until its bucket refills, and that
// other clients are not.
func TestLimit(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland"), Config{FailRate: 0.5, FailBurst: 3})
	good, bad := basic("alice", "wonderland"), basic("alice", "x")
	for i := range 3 {
		if w := e.get("/latest", "192.0.2.1", bad); w.Code != 401 {
			t.Fatalf("wrong credentials %d: %d, want 401", i+1, w.Code)
		}
	}
	for _, auth := range []string{bad, good, "Bearer x"} {
		w := e.get("/latest", "192.0.2.1", auth)
		if w.Code != 429 || w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), "retry in 2 seconds") {
			t.Errorf("after the burst, %q: %d, Retry-After %q, %q; want 429, 2", auth, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if got := w.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control of a 429 = %q, want no-store", got)
		}
	}
	if n := e.failures("limited"); n != 3 {
		t.Errorf("limited failures = %d, want 3", n)
	}
	// Without credentials: 401, nothing guessed.
	if w := e.get("/latest", "192.0.2.1", ""); w.Code != 401 {
		t.Errorf("limited client without credentials: %d, want 401", w.Code)
	}
	// Another address, and the same client's IPv6 /64 neighbour counts as the client.
	if w := e.get("/latest", "192.0.2.2", good); w.Code != 200 {
		t.Errorf("other client: %d, want 200", w.Code)
	}
	e.now.Add(2)
	if w := e.get("/latest", "192.0.2.1", good); w.Code != 200 {
		t.Errorf("after the refill: %d, want 200", w.Code)
	}
	// Right credentials take no token.
	for range 10 {
		if w := e.get("/latest", "192.0.2.1", good); w.Code != 200 {
			t.Fatalf("right credentials: %d, want 200", w.Code)
		}
	}
	for i, addr := range []string{"[2001:db8::1]", "[2001:db8::2]", "[2001:db8::3]", "[2001:db8::4]"} {
		want := 401
		if i == 3 {
			want = 429
		}
		if w := e.get("/latest", addr, bad); w.Code != want {
			t.Errorf("wrong credentials from %s, number %d of its /64: %d, want %d", addr, i+1, w.Code, want)
		}
	}
}

// TestReload checks that a changed file is in force from the next request
// after the reload interval, without a restart, and that an invalid one
// leaves the last valid one in force and is logged once.
func TestReload(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n"+htpasswd(t, "bob", "builder")+"\n", Config{})
	want := func(auth string, code int) {
		t.Helper()
		if w := e.get("/latest", "192.0.2.1", auth); w.Code != code {
			t.Errorf("GET /latest with %q = %d, want %d", auth, w.Code, code)
		}
	}
	alice, bob := basic("alice", "wonderland"), basic("bob", "builder")
	want(alice, 200) // remembered as verified
	want(bob, 200)

	// alice's password changes, bob is removed: within the interval, the
	// old file holds; after it, the new one.
	e.write(htpasswd(t, "alice", "new-password") + "\n")
	want(alice, 200)
	e.tick()
	want(alice, 401)
	want(bob, 401)
	want(basic("alice", "new-password"), 200)

	// An invalid file: the last valid one stays, with one ERROR.
	e.write("alice:new-password\n")
	for range 3 {
		e.tick()
		want(basic("alice", "new-password"), 200)
	}
	if n := strings.Count(e.logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines for one invalid file, want 1:\n%s", n, e.logs)
	}
	if strings.Contains(e.logs.String(), "new-password") {
		t.Errorf("logs show the password:\n%s", e.logs)
	}
	// Another invalid version is logged again; a missing file too.
	e.write("alice:still-not-a-hash\n")
	e.tick()
	want(basic("alice", "new-password"), 200)
	os.Remove(e.file)
	e.tick()
	want(basic("alice", "new-password"), 200)
	if n := strings.Count(e.logs.String(), "level=ERROR"); n != 3 {
		t.Errorf("%d ERROR lines for three bad versions, want 3:\n%s", n, e.logs)
	}
	// A valid file again, renamed into place.
	tmp := e.file + ".new"
	if err := os.WriteFile(tmp, []byte(tokenLine("ci", "tok")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.file); err != nil {
		t.Fatal(err)
	}
	e.tick()
	want(basic("alice", "new-password"), 401)
	want("Bearer tok", 200)
	if u, tok := e.auth.Users(); u != 0 || tok != 1 {
		t.Errorf("Users() = %d, %d; want 0, 1", u, tok)
	}
}

// TestVerifiedCache checks that a right password is checked with bcrypt
// once, and that a wrong one is never taken for it.
func TestVerifiedCache(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland"), Config{})
	ent := e.auth.entries
	for range 5 {
		if w := e.get("/latest", "192.0.2.1", basic("alice", "wonderland")); w.Code != 200 {
			t.Fatalf("right password: %d", w.Code)
		}
	}
	if _, hit := ent.verified.Get(sha256.Sum256([]byte("alice:wonderland"))); !hit {
		t.Error("right password not remembered")
	}
	for _, p := range []string{"wonderlan", "wonderland ", "Wonderland"} {
		if w := e.get("/latest", "192.0.2.1", basic("alice", p)); w.Code != 401 {
			t.Errorf("password %q: %d, want 401", p, w.Code)
		}
		if _, hit := ent.verified.Get(sha256.Sum256([]byte("alice:" + p))); hit {
			t.Errorf("wrong password %q remembered", p)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid")
	if err := os.WriteFile(valid, []byte(tokenLine("ci", "tok")), 0o600); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid")
	if err := os.WriteFile(invalid, []byte("# header\nalice:secret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no file named"},
		{Config{File: filepath.Join(dir, "missing")}, "no such file"},
		{Config{File: invalid}, "invalid: line 2: user \"alice\": the hash is not a bcrypt hash"},
		{Config{File: valid, Realm: `a"b`}, "invalid realm"},
		{Config{File: valid, FailRate: -1}, "invalid failure rate"},
		{Config{File: valid, FailBurst: -1}, "invalid failure burst"},
	} {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-password") {
			t.Errorf("New(%+v) = %v, repeating the line", tt.cfg, err)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{File: valid, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{File: valid, Registerer: reg}); err == nil {
		t.Error("New registering the metrics twice: no error")
	}
}

// FuzzParse checks that any file parses or fails with a line number, and
// that a valid one keeps what its lines say.
func FuzzParse(f *testing.F) {
	f.Add("alice:$2y$05$" + strings.Repeat("a", 53) + "\n# c\n\ntoken ci sha256:" + strings.Repeat("0", 64))
	f.Add("token x sha256:zz")
	f.Add(":")
	f.Fuzz(func(t *testing.T, data string) {
		e, err := parse([]byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("parse(%q) = %v, want an error naming the line", data, err)
			}
			return
		}
		n := 0
		for l := range strings.SplitSeq(data, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		if got := len(e.users) + len(e.tokens); got != n {
			t.Fatalf("parse(%q) = %d entries, want %d", data, got, n)
		}
	})
}
