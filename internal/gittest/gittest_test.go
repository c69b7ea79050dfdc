package gittest

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestServer checks that the server asks for Basic authentication, and
// that git reaches its repository by the module prefix with the
// credentials of ClientEnv's .netrc only.
func TestServer(t *testing.T) {
	s := NewServer(t, "alice", "s3cret")
	s.NewRepo(t, "repo", map[string]string{"go.mod": "module vcs.test/repo.git\n"}, "v1.0.0")

	resp, err := http.Get(s.URL + "/repo/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("GET without credentials = %s, WWW-Authenticate %q; want 401 and Basic", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	for _, withCredentials := range []bool{true, false} {
		cmd := exec.Command(Git(t), "ls-remote", "https://vcs.test/repo")
		cmd.Env = append(s.ClientEnv(t, "vcs.test", withCredentials), "GIT_TERMINAL_PROMPT=0")
		out, err := cmd.CombinedOutput()
		if ok := err == nil && strings.Contains(string(out), "refs/tags/v1.0.0"); ok != withCredentials {
			t.Errorf("git ls-remote with credentials %v = %s, %v; want success %v", withCredentials, out, err, withCredentials)
		}
	}
	reqs := s.Requests()
	if len(reqs) == 0 || reqs[0] != "GET /repo/info/refs?service=git-upload-pack 401" {
		t.Errorf("Requests() = %q; want the unauthenticated GET first", reqs)
	}
}
