package fetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
)

// A fakeFetcher answers every fetch with err, or else a record made of
// the path and version, and records the fetches.
type fakeFetcher struct {
	err error

	mu    sync.Mutex
	calls []string // path@version; guarded by mu
}

func (f *fakeFetcher) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, path+"@"+version)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return fmt.Appendf(nil, "%s %s h1:fake\n", path, version), nil
}

func (f *fakeFetcher) taken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

// TestIsPrivate checks the GOPRIVATE matching of module paths.
func TestIsPrivate(t *testing.T) {
	for _, tc := range []struct {
		patterns, path string
		want           bool
	}{
		{"vcs.test", "vcs.test/repo.git", true},
		{"vcs.test", "vcs.test", true},
		{"vcs.test", "vcs.testing/repo", false},
		{"*.corp.example,vcs.test/team", "git.corp.example/a/b", true},
		{"*.corp.example,vcs.test/team", "vcs.test/team/x", true},
		{"*.corp.example,vcs.test/team", "vcs.test/other", false},
		{"", "vcs.test/repo.git", false},
		{"golang.org/x", "golang.org/x/mod", true},
	} {
		if got := IsPrivate(tc.patterns, tc.path); got != tc.want {
			t.Errorf("IsPrivate(%q, %q) = %v, want %v", tc.patterns, tc.path, got, tc.want)
		}
	}
}

// TestRoute checks that a Route sends private paths to the private
// fetcher only and the others to the public one only, and that a missing
// side serves nothing.
func TestRoute(t *testing.T) {
	priv, pub := &fakeFetcher{}, &fakeFetcher{}
	for _, tc := range []struct {
		name, path    string
		priv, pub     Fetcher
		want          error // nil for a record
		wantPrivCalls int
		wantPubCalls  int
	}{
		{"private", "vcs.test/repo.git", priv, pub, nil, 1, 0},
		{"private subpath pattern", "git.corp.example/team/x", priv, pub, nil, 1, 0},
		{"public", "example.com/pub", priv, pub, nil, 0, 1},
		{"private without a private fetcher", "vcs.test/repo.git", nil, pub, ErrNotFound, 0, 0},
		{"public without a public fetcher", "example.com/pub", priv, nil, ErrNotFound, 0, 0},
		{"invalid", "vcs.test/Repo\x00", priv, pub, ErrInvalid, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Route{Private: "vcs.test,*.corp.example", PrivateFetcher: tc.priv, PublicFetcher: tc.pub}
			got, err := r.Fetch(t.Context(), tc.path, "v1.0.0")
			switch {
			case tc.want == nil && (err != nil || !strings.HasPrefix(string(got), tc.path+" v1.0.0 ")):
				t.Errorf("Fetch(%q, v1.0.0) = %q, %v; want its record", tc.path, got, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("Fetch(%q, v1.0.0) = %q, %v; want an error wrapping %v", tc.path, got, err, tc.want)
			}
			if calls := priv.taken(); len(calls) != tc.wantPrivCalls {
				t.Errorf("Fetch(%q, v1.0.0): private fetcher calls %q, want %d", tc.path, calls, tc.wantPrivCalls)
			}
			if calls := pub.taken(); len(calls) != tc.wantPubCalls {
				t.Errorf("Fetch(%q, v1.0.0): public fetcher calls %q, want %d", tc.path, calls, tc.wantPubCalls)
			}
		})
	}
}

// TestRouteGoCommand routes between a GoCommand fetching from git and an
// Upstream fetching from a module proxy, the real fetchers: the private
// path reaches git only, and the public path the proxy only.
func TestRouteGoCommand(t *testing.T) {
	f := newGitFixture(t)
	p := startProxy(t, false)
	const pubPath, pubVersion = "example.com/pub", "v1.0.0"
	if err := p.Add(modproxy.Module{Path: pubPath, Version: pubVersion, Files: map[string]string{"pub.go": "package pub\n"}}); err != nil {
		t.Fatal(err)
	}
	r := &Route{Private: "vcs.test", PrivateFetcher: f.gocmd, PublicFetcher: newTestUpstream(t, Config{Proxy: p.URL})}

	got, err := r.Fetch(t.Context(), privPath, privVersion)
	if err != nil || !strings.HasPrefix(string(got), privPath+" "+privVersion+" h1:") {
		t.Fatalf("Fetch(%q, %q) = %q, %v; want its record", privPath, privVersion, got, err)
	}
	if reqs := p.requested(); len(reqs) > 0 {
		t.Errorf("Fetch(%q, %q): the public proxy was asked for %q", privPath, privVersion, reqs)
	}
	gitReqs := len(f.git.Requests())

	want, _ := p.GoSum(pubPath, pubVersion)
	got, err = r.Fetch(t.Context(), pubPath, pubVersion)
	if err != nil || string(got) != string(want) {
		t.Fatalf("Fetch(%q, %q) = %q, %v; want %q", pubPath, pubVersion, got, err, want)
	}
	if reqs := f.git.Requests()[gitReqs:]; len(reqs) > 0 {
		t.Errorf("Fetch(%q, %q): the git server was asked for %q", pubPath, pubVersion, reqs)
	}
}

// TestUpstreamDirect checks the "direct" entries of a proxy list served
// by Config.Direct, with the fallbacks of GOPROXY: after ",", on not
// found only; after "|", on any error.
func TestUpstreamDirect(t *testing.T) {
	p := startProxy(t, false)
	const path, version = "example.com/m", "v1.0.0"
	if err := p.Add(modproxy.Module{Path: path, Version: version, Files: map[string]string{"m.go": "package m\n"}}); err != nil {
		t.Fatal(err)
	}
	proxyRecord, _ := p.GoSum(path, version)
	const directRecord = path + " " + version + " h1:fake\n"
	notFound := fmt.Errorf("%w: %s@%s: unknown revision", ErrNotFound, path, version)
	forbidden := fmt.Errorf("%w: %s@%s: credentials refused", ErrForbidden, path, version)
	empty := startProxy(t, false) // answers 404 for everything
	for _, tc := range []struct {
		name      string
		list      string
		directErr error
		want      string // the record, or the error's kind
		wantCalls int
		wantProxy bool // the proxy was asked
	}{
		{"direct only", "direct", nil, directRecord, 1, false},
		{"proxy 404, then direct", empty.URL + ",direct", nil, directRecord, 1, false},
		{"proxy first", p.URL + ",direct", nil, string(proxyRecord), 0, true},
		{"direct not found, then proxy", "direct," + p.URL, notFound, string(proxyRecord), 1, true},
		{"direct forbidden, no fallback after a comma", "direct," + p.URL, forbidden, ErrForbidden.Error(), 1, false},
		{"direct forbidden, fallback after a pipe", "direct|" + p.URL, forbidden, string(proxyRecord), 1, true},
		{"direct not found, last", empty.URL + ",direct", notFound, ErrNotFound.Error(), 1, false},
		{"off ends the list", "direct,off," + p.URL, notFound, ErrNotFound.Error(), 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := &fakeFetcher{err: tc.directErr}
			u := newTestUpstream(t, Config{Proxy: tc.list, Direct: direct})
			before := len(p.requested())
			got, err := u.Fetch(t.Context(), path, version)
			if err != nil {
				if !strings.HasPrefix(err.Error(), tc.want+":") {
					t.Errorf("Fetch(%q, %q) with Proxy %q = %v; want %q", path, version, tc.list, err, tc.want)
				}
			} else if string(got) != tc.want {
				t.Errorf("Fetch(%q, %q) with Proxy %q = %q; want %q", path, version, tc.list, got, tc.want)
			}
			if calls := direct.taken(); len(calls) != tc.wantCalls {
				t.Errorf("Fetch(%q, %q) with Proxy %q: direct fetches %q, want %d", path, version, tc.list, calls, tc.wantCalls)
			}
			if asked := len(p.requested()) > before; asked != tc.wantProxy {
				t.Errorf("Fetch(%q, %q) with Proxy %q: proxy asked = %v, want %v", path, version, tc.list, asked, tc.wantProxy)
			}
		})
	}

	// Without Direct, direct entries are skipped, and a list of only
	// direct is refused as before.
	if u, err := New(Config{Proxy: "direct"}); err == nil {
		t.Errorf("New with Proxy direct and no Direct = %v, nil; want an error", u)
	}
	u := newTestUpstream(t, Config{Proxy: "direct," + p.URL})
	if got, err := u.Fetch(t.Context(), path, version); err != nil || string(got) != string(proxyRecord) {
		t.Errorf("Fetch(%q, %q) with Proxy direct,<proxy> and no Direct = %q, %v; want %q", path, version, got, err, proxyRecord)
	}
}

// TestUpstreamDirectGoCommand serves the direct entry of a proxy list with
// the GoCommand: the private module the proxy does not have comes from
// git, as GOPROXY=<proxy>,direct has the go command do.
func TestUpstreamDirectGoCommand(t *testing.T) {
	f := newGitFixture(t)
	p := startProxy(t, false)
	u := newTestUpstream(t, Config{Proxy: p.URL + ",direct", Direct: f.gocmd})
	got, err := u.Fetch(t.Context(), privPath, privVersion)
	want := goModDownload(t, f.git.ClientEnv(t, "vcs.test", true), privPath, privVersion)
	if err != nil || string(got) != want {
		t.Fatalf("Fetch(%q, %q) with Proxy <proxy>,direct = %q, %v; want %q", privPath, privVersion, got, err, want)
	}
	if reqs := p.requested(); !slices.Contains(reqs, "/"+privPath+"/@v/"+privVersion+".info") {
		t.Errorf("proxy requests %q: the proxy was not asked first", reqs)
	}
}
