package sumdb

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/mod/modfile"
)

// TestReviewGoModBlockOfTwoTokens checks this: the .mod check takes a .mod
// and a zip go.mod that hold the same statements as one module version, as
// the go command parses the go.mod of a dependency (modfile.ParseLax). A
// block opened after two tokens ("require example.com/a (") or one of a
// verb that may not open a block ("go (") is ignored by ParseLax (and
// refused by Parse), but its lines are compared, the block's tokens first,
// as if they were the statement of one line. The pair below is the same
// to the check, yet the go command reads a requirement (or a go version)
// in one file and none in the other: the log would vouch for two go.mod
// files of different meaning for one module version.
func TestReviewGoModBlockOfTwoTokens(t *testing.T) {
	tests := []struct{ name, zipGoMod, mod string }{
		{"require", "module example.com/m\n\nrequire example.com/a (\n\tv1.0.0\n)\n", "module example.com/m\n\nrequire example.com/a v1.0.0\n"},
		{"go", "module example.com/m\n\ngo (\n\t1.21\n)\n", "module example.com/m\n\ngo 1.21\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// What the go command reads in each: not the same.
			z, err := modfile.ParseLax("go.mod", []byte(tt.zipGoMod), nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := modfile.ParseLax("go.mod", []byte(tt.mod), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(z.Require) == len(m.Require) && (z.Go == nil) == (m.Go == nil) {
				t.Fatalf("ParseLax reads the same in both files")
			}

			path, version := "example.com/m", "v1.0.0"
			p := startProxy(t, false)
			p.AddRaw(path, version, infoJSON(version), []byte(tt.mod), makeZip(t, map[string]string{
				path + "@" + version + "/go.mod": tt.zipGoMod,
				path + "@" + version + "/m.go":   "package m\n",
			}))
			u := newTestUpstream(t, UpstreamConfig{Proxy: p.URL})
			got, err := u.Fetch(t.Context(), path, version)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Fetch = %q, %v; want the .mod refused: ParseLax reads requirements %v and go %v in .mod, %v and %v in the zip's go.mod",
					got, err, reqs(m), m.Go != nil, reqs(z), z.Go != nil)
			}
		})
	}
}

func reqs(f *modfile.File) []string {
	var list []string
	for _, r := range f.Require {
		list = append(list, r.Mod.String())
	}
	return slices.Clip(list)
}
