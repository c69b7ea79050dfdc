package sumdb

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumdb/sumdb/internal/modver"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

func TestParseLookup(t *testing.T) {
	tests := []struct {
		in            string
		path, version string
		wantErr       string
	}{
		{in: "example.com/m@v1.2.3", path: "example.com/m", version: "v1.2.3"},
		{in: "github.com/!azure/x@v1.0.0", path: "github.com/Azure/x", version: "v1.0.0"},
		{in: "github.com/!burnt!sushi/toml@v1.3.2", path: "github.com/BurntSushi/toml", version: "v1.3.2"},
		{in: "example.com/m@v1.0.0-!r!c1", path: "example.com/m", version: "v1.0.0-RC1"},
		{in: "example.com/m@v2.0.0+incompatible", path: "example.com/m", version: "v2.0.0+incompatible"},
		{in: "gopkg.in/yaml.v2@v2.4.0", path: "gopkg.in/yaml.v2", version: "v2.4.0"},
		{in: "golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64", path: "golang.org/toolchain", version: "v0.0.1-go1.21.0.linux-amd64"},
		{in: "example.com/m@v0.0.0-20191109021931-daa7c04131f5", path: "example.com/m", version: "v0.0.0-20191109021931-daa7c04131f5"},

		{in: "example.com/m", wantErr: "missing @version"},
		{in: "", wantErr: "missing @version"},
		{in: "@v1.0.0", wantErr: "invalid escaped module path"},
		{in: "github.com/Azure/x@v1.0.0", wantErr: "invalid escaped module path"},
		{in: "github.com/!!azure/x@v1.0.0", wantErr: "invalid escaped module path"},
		{in: "github.com/!1/x@v1.0.0", wantErr: "invalid escaped module path"},
		{in: "github.com/azure!/x@v1.0.0", wantErr: "invalid escaped module path"},
		{in: "example.com/m@v1.0.0-RC1", wantErr: "invalid escaped version"},
		{in: "example.com/m@v1.0.0-!", wantErr: "invalid escaped version"},
		{in: "example.com/m@", wantErr: "invalid escaped version"},
		{in: "example.com/m@v1.2", wantErr: "example.com/m@v1.2: invalid version: must be canonical (v1.2.0)"},
		{in: "example.com/m@latest", wantErr: "not a semantic version"},
		{in: "example.com/m@v1.0.0@v1.0.0", wantErr: "malformed module path"},
		{in: "example.com/m@v1.0.0+incompatible", wantErr: "+incompatible suffix not allowed"},
		{in: "example.com/m/v2@v1.0.0", wantErr: "should be v2, not v1"},
		{in: "example.com/m@v1.0.0/go.mod", wantErr: "invalid escaped version"},
		{in: "example.com/m@v1.0.0%0a", wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			path, version, err := ParseLookup(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLookup(%q) = %q, %q, %v, want error containing %q", tt.in, path, version, err, tt.wantErr)
				}
				if !errors.Is(err, fetch.ErrInvalid) {
					t.Errorf("ParseLookup(%q) = %v, does not wrap ErrInvalid", tt.in, err)
				}
				return
			}
			if err != nil || path != tt.path || version != tt.version {
				t.Fatalf("ParseLookup(%q) = %q, %q, %v, want %q, %q, nil", tt.in, path, version, err, tt.path, tt.version)
			}
		})
	}
}

func FuzzParseLookup(f *testing.F) {
	for _, s := range modver.Examples() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		path, version, err := ParseLookup(in)
		if err != nil {
			if !errors.Is(err, fetch.ErrInvalid) {
				t.Fatalf("ParseLookup(%q) = %v, does not wrap ErrInvalid", in, err)
			}
			if path != "" || version != "" {
				t.Fatalf("ParseLookup(%q) = %q, %q, %v, want empty results with the error", in, path, version, err)
			}
			return
		}
		escPath, err := module.EscapePath(path)
		if err != nil {
			t.Fatalf("ParseLookup(%q) = %q: EscapePath: %v", in, path, err)
		}
		escVersion, err := module.EscapeVersion(version)
		if err != nil {
			t.Fatalf("ParseLookup(%q) = %q: EscapeVersion: %v", in, version, err)
		}
		if got := escPath + "@" + escVersion; got != in {
			t.Fatalf("ParseLookup(%q) = %q, %q, which escapes to %q", in, path, version, got)
		}
		if err := modver.Check(path, version); err != nil {
			t.Fatalf("ParseLookup(%q) = %q, %q, but modver.Check: %v", in, path, version, err)
		}
	})
}

// FuzzLookupURL checks that every module version that modver.Check admits
// has a lookup URL, its escaped path and version, which parses back to it.
func FuzzLookupURL(f *testing.F) {
	for _, s := range modver.Examples() {
		escPath, escVersion, _ := strings.Cut(s, "@")
		path, err1 := module.UnescapePath(escPath)
		version, err2 := module.UnescapeVersion(escVersion)
		if err1 == nil && err2 == nil {
			f.Add(path, version)
		}
	}
	f.Fuzz(func(t *testing.T, path, version string) {
		if modver.Check(path, version) != nil {
			return
		}
		escPath, err1 := module.EscapePath(path)
		escVersion, err2 := module.EscapeVersion(version)
		if err1 != nil || err2 != nil {
			t.Fatalf("modver.Check(%q, %q) = nil, but escape: %v, %v", path, version, err1, err2)
		}
		p, v, err := ParseLookup(escPath + "@" + escVersion)
		if err != nil || p != path || v != version {
			t.Fatalf("ParseLookup(%q) = %q, %q, %v, want %q, %q, nil", escPath+"@"+escVersion, p, v, err, path, version)
		}
	})
}
