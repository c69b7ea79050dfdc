package goauth

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseNetrc(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []netrcLine
	}{
		{"one", "machine a.example login u password p\n", []netrcLine{{"a.example", "u", "p"}}},
		{"over lines", "machine a.example\n  login u\n  password p\nmachine b.example login v password q",
			[]netrcLine{{"a.example", "u", "p"}, {"b.example", "v", "q"}}},
		{"port", "machine 127.0.0.1:8443 login u password p", []netrcLine{{"127.0.0.1:8443", "u", "p"}}},
		{"crlf", "machine a.example login u password p\r\n", []netrcLine{{"a.example", "u", "p"}}},
		{"no password", "machine a.example login u\nmachine b.example login v password q", []netrcLine{{"b.example", "v", "q"}}},
		{"macdef skipped", "macdef init\nmachine x login y password z\n\nmachine a.example login u password p",
			[]netrcLine{{"a.example", "u", "p"}}},
		{"default ends", "machine a.example login u password p\ndefault\nlogin d password e\nmachine b.example login v password q",
			[]netrcLine{{"a.example", "u", "p"}}},
		{"default entry unused", "default login d password e\n", nil},
		{"account ignored", "machine a.example login u account acc password p", []netrcLine{{"a.example", "u", "p"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseNetrc(tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseNetrc(%q) = %v, want %v", tt.data, got, tt.want)
			}
		})
	}
}

// envOf returns an env function of the variables given.
func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// writeFile writes a file and returns its name.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// authOf returns the Authorization header that c gives a GET of u.
func authOf(t *testing.T, c *Credentials, u string) string {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(req)
	return req.Header.Get("Authorization")
}

func TestNetrc(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".netrc"), `
machine db.example login alice password home-pw
machine db.example login bob password later-line
machine 127.0.0.1:8443 login carol password port-pw
machine db.example/private login dave password path-pw
`)
	other := writeFile(t, filepath.Join(t.TempDir(), "netrc"), "machine db.example login erin password netrc-env-pw\n")
	c, err := New("netrc", envOf("HOME", home))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want string // "" for none
	}{
		{"https://db.example/latest", basicAuth("alice", "home-pw")}, // the first line wins
		{"https://db.example/tile/8/0/000", basicAuth("alice", "home-pw")},
		{"https://db.example/private/latest", basicAuth("dave", "path-pw")}, // the longest prefix
		{"https://db.example/privateer/latest", basicAuth("alice", "home-pw")},
		{"https://db.example:8443/latest", ""}, // another port
		{"https://127.0.0.1:8443/latest", basicAuth("carol", "port-pw")},
		{"https://127.0.0.1/latest", ""},
		{"https://other.example/latest", ""},
		{"https://sub.db.example/latest", ""},
		{"http://db.example/latest", ""}, // never over plain http
		{"http://127.0.0.1:8443/latest", ""},
	}
	for _, tt := range tests {
		if got := authOf(t, c, tt.url); got != tt.want {
			t.Errorf("Apply(GET %s): Authorization %q, want %q", tt.url, got, tt.want)
		}
	}

	// $NETRC wins over the home directory.
	c, err = New("netrc", envOf("HOME", home, "NETRC", other))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := authOf(t, c, "https://db.example/latest"), basicAuth("erin", "netrc-env-pw"); got != want {
		t.Errorf("with $NETRC: Authorization %q, want %q", got, want)
	}
	// The go command's default is netrc; off gives nothing; no file, nothing.
	for _, tt := range []struct {
		goauth string
		env    func(string) string
		want   string
	}{
		{"", envOf("HOME", home), basicAuth("alice", "home-pw")},
		{" netrc ", envOf("HOME", home), basicAuth("alice", "home-pw")},
		{"off", envOf("HOME", home), ""},
		{"netrc", envOf("HOME", t.TempDir()), ""},
		{"netrc", envOf(), ""},
	} {
		c, err := New(tt.goauth, tt.env)
		if err != nil {
			t.Fatalf("New(%q) = %v", tt.goauth, err)
		}
		if got := authOf(t, c, "https://db.example/latest"); got != tt.want {
			t.Errorf("New(%q): Authorization %q, want %q", tt.goauth, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "f"), "")
	for _, tt := range []struct {
		goauth, want string
	}{
		{"off;netrc", "off cannot be combined"},
		{"netrc;;netrc", "an empty command"},
		{"netrc;", "an empty command"},
		{"git", "absolute path"},
		{"git relative/dir", "absolute path"},
		{"git " + file, "not a directory"},
		{"git /does/not/exist", "no such file"},
		{"/usr/local/bin/auth --token=s3cret", `GOAUTH command "/usr/local/bin/auth": authentication programs are not run by sumdb`},
	} {
		_, err := New(tt.goauth, envOf())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %v, want %q", tt.goauth, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) = %v, showing the command's arguments", tt.goauth, err)
		}
	}
}

// gitEnv makes git's global configuration that of a new home directory,
// whose credential helper is script (a shell script run with the operation
// as $1), and returns a working directory.
func gitEnv(t *testing.T, script string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git command")
	}
	home := t.TempDir()
	helper := writeFile(t, filepath.Join(home, "helper"), "#!/bin/sh\n"+script+"\n")
	if err := os.Chmod(helper, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(home, "gitconfig"), "[credential]\n\thelper = "+helper+"\n")
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_GLOBAL", cfg)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_ASKPASS", "")
	t.Setenv("SSH_ASKPASS", "")
	return t.TempDir()
}

// refused returns the answer of a server that refused a GET of u with
// the Authorization header auth.
func refused(t *testing.T, u, auth string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return &http.Response{StatusCode: http.StatusUnauthorized, Request: req}
}

func TestGit(t *testing.T) {
	dir := gitEnv(t, `test "$1" = get || exit 0; echo run >> "$HOME/runs"; cat > "$HOME/input"; printf "username=alice\npassword=from-git\n"`)
	home := os.Getenv("HOME")
	c, err := New("git "+dir, envOf())
	if err != nil {
		t.Fatal(err)
	}
	const u = "https://db.example:8443/sumdb/db.example/tile/8/0/000"
	// As the go command: git is asked only after a refusal.
	if got := authOf(t, c, u); got != "" {
		t.Errorf("before a refusal: Authorization %q, want none", got)
	}
	retry, err := c.Refresh(refused(t, u, ""))
	if !retry || err != nil {
		t.Fatalf("Refresh = %v, %v; want true, nil", retry, err)
	}
	want := basicAuth("alice", "from-git")
	for _, other := range []string{u, "https://db.example:8443/latest"} {
		if got := authOf(t, c, other); got != want {
			t.Errorf("after git: Apply(GET %s): Authorization %q, want %q", other, got, want)
		}
	}
	for _, other := range []string{"https://db.example/latest", "http://db.example:8443/latest", "https://evil.example/db.example:8443/latest"} {
		if got := authOf(t, c, other); got != "" {
			t.Errorf("after git: Apply(GET %s): Authorization %q, want none", other, got)
		}
	}
	// Refused with the credentials git gave: no retry, and git is not
	// asked again about the host.
	if retry, err := c.Refresh(refused(t, u, want)); retry || err != nil {
		t.Errorf("Refresh after the credentials were refused = %v, %v; want false, nil", retry, err)
	}
	runs, _ := os.ReadFile(filepath.Join(home, "runs"))
	if n := strings.Count(string(runs), "run"); n != 1 {
		t.Errorf("git credential helper ran %d times, want 1", n)
	}
	input, _ := os.ReadFile(filepath.Join(home, "input"))
	if got := string(input); !strings.Contains(got, "protocol=https\n") || !strings.Contains(got, "host=db.example:8443\n") {
		t.Errorf("helper input %q, want protocol=https and host=db.example:8443", got)
	}
	// Plain http: not even asked.
	if retry, err := c.Refresh(refused(t, "http://db.example:8443/latest", "")); retry || err != nil {
		t.Errorf("Refresh(http) = %v, %v; want false, nil", retry, err)
	}
}

// TestGitOrder checks that for the same URL the command listed first wins.
func TestGitOrder(t *testing.T) {
	dir := gitEnv(t, `test "$1" = get || exit 0; printf "username=alice\npassword=from-git\n"`)
	netrc := writeFile(t, filepath.Join(t.TempDir(), "netrc"), "machine db.example login bob password from-netrc\n")
	const u = "https://db.example/latest"
	for _, tt := range []struct {
		goauth string
		want   string
	}{
		{"netrc;git " + dir, basicAuth("bob", "from-netrc")},
		{"git " + dir + ";netrc", basicAuth("alice", "from-git")},
	} {
		c, err := New(tt.goauth, envOf("NETRC", netrc))
		if err != nil {
			t.Fatal(err)
		}
		c.Refresh(refused(t, u, authOf(t, c, u)))
		if got := authOf(t, c, u); got != tt.want {
			t.Errorf("GOAUTH=%q: Authorization %q, want %q", tt.goauth, got, tt.want)
		}
	}
}

func TestGitFailures(t *testing.T) {
	tests := []struct {
		name, script, want string
	}{
		// No helper answers: git would prompt, and must not.
		{"no credentials", `exit 0`, "git credential fill for https://db.example: exit status"},
		{"helper for another host", `test "$1" = get || exit 0; printf "protocol=https\nhost=evil.example\nusername=a\npassword=s3cret\n"`, "the credentials given are for another URL"},
		{"too much output", `test "$1" = get || exit 0; printf "username=a\npassword=%s\n" "$(head -c 100000 /dev/zero | tr '\0' a)"`, "more than 65536 bytes of output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := gitEnv(t, tt.script)
			c, err := New("git "+dir, envOf())
			if err != nil {
				t.Fatal(err)
			}
			retry, err := c.Refresh(refused(t, "https://db.example/latest", ""))
			if retry || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Refresh = %v, %v; want false, %q", retry, err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Refresh error %q shows the password", err)
			}
			if got := authOf(t, c, "https://db.example/latest"); got != "" {
				t.Errorf("after a failure: Authorization %q, want none", got)
			}
		})
	}
}
