package fetch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoCommandAncestorGoMod shows that the go command of a fetch reads a
// go.mod file outside the fetch's own temporary directory: its work
// directory has no go.mod, so the go command looks in every parent, up to
// TempDir's (by default os.TempDir(), which any local user may write to)
// and beyond. A go.mod there makes the go command run in that module,
// under its go line, replacements, exclusions and go.sum: here a go line
// that no toolchain satisfies makes every private fetch fail.
func TestGoCommandAncestorGoMod(t *testing.T) {
	f := newGitFixture(t)
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "go.mod"), []byte("module planted.example\n\ngo 1.999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(parent, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	g := f.newGoCommand(t, GoCommandConfig{TempDir: tmp})
	got, err := g.Fetch(t.Context(), privPath, privVersion)
	if err != nil || !strings.HasPrefix(string(got), privPath+" "+privVersion+" h1:") {
		t.Errorf("Fetch(%q, %q) with a go.mod above TempDir = %q, %v; want the record, the planted go.mod ignored", privPath, privVersion, got, err)
	}
}

// A sideFetcher records the paths it was asked for.
type sideFetcher struct{ asked []string }

func (s *sideFetcher) Fetch(_ context.Context, path, version string) ([]byte, error) {
	s.asked = append(s.asked, path+"@"+version)
	return nil, ErrNotFound
}

// TestRouteCaseVariantIsPublic shows that a path that differs from a
// private pattern only in case (which the server's lookup accepts in its
// escaped form, /lookup/github.com/!corp-!private/...) is routed to the
// public upstream, and from there to the public checksum database, though
// hosts such as github.com name the same private repository whatever the
// case. The go command matches GOPRIVATE the same case-sensitive way.
func TestRouteCaseVariantIsPublic(t *testing.T) {
	for _, path := range []string{"github.com/Corp-Private/secret", "GitHub.com/corp-private/secret"} {
		priv, pub := &sideFetcher{}, &sideFetcher{}
		r := &Route{Private: "github.com/corp-private", PrivateFetcher: priv, PublicFetcher: pub}
		r.Fetch(t.Context(), path, "v1.0.0")
		if len(pub.asked) != 0 {
			t.Errorf("Route{Private: github.com/corp-private}.Fetch(%s) asked the public fetcher %q; want the private one", path, pub.asked)
		}
	}
}
