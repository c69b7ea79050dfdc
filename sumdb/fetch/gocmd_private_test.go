package fetch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoCommandAncestorGoMod checks that the go command of a fetch reads
// no go.mod file outside the fetch's own temporary directory, such as one
// in TempDir (by default os.TempDir(), which any local user may write to):
// the go command would run in that module, under its go line,
// replacements, exclusions and go.sum. Here a go line that no toolchain
// satisfies would make every private fetch fail.
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

// TestRouteCaseVariantIsPrivate checks that a path that differs from a
// private pattern only in case (which the server's lookup accepts in its
// escaped form, /lookup/example.com/!corp-!private/...) is routed to the
// private upstream, never to the public one and the public checksum
// database: code hosts may name the same private repository whatever the
// case. (The go command matches GOPRIVATE case-sensitively.)
func TestRouteCaseVariantIsPrivate(t *testing.T) {
	for _, path := range []string{"code.example.com/Corp-Private/secret", "Code.Example.com/corp-private/secret"} {
		priv, pub := &sideFetcher{}, &sideFetcher{}
		r := &Route{Private: "code.example.com/corp-private", PrivateFetcher: priv, PublicFetcher: pub}
		r.Fetch(t.Context(), path, "v1.0.0")
		if len(pub.asked) != 0 {
			t.Errorf("Route{Private: code.example.com/corp-private}.Fetch(%s) asked the public fetcher %q; want the private one", path, pub.asked)
		}
	}
}
