package modver

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		path, version string
		wantErr       string // substring of the error; "" for success
	}{
		{"example.com/m", "v1.2.3", ""},
		{"example.com/m", "v0.0.1", ""},
		{"github.com/Azure/x", "v1.0.0", ""},
		{"example.com/m", "v1.0.0-RC1", ""},
		{"example.com/m", "v2.0.0+incompatible", ""},
		{"example.com/m", "v10.1.0+incompatible", ""},
		{"example.com/m/v2", "v2.0.1", ""},
		{"example.com/m/v3", "v3.0.0-20191109021931-daa7c04131f5", ""},
		{"example.com/m", "v0.0.0-20191109021931-daa7c04131f5", ""},
		{"example.com/m", "v1.2.4-0.20191109021931-daa7c04131f5", ""},
		{"example.com/m", "v1.2.3-pre.0.20191109021931-daa7c04131f5", ""},
		{"gopkg.in/yaml.v2", "v2.4.0", ""},
		{"gopkg.in/check.v1", "v0.0.0-20161208181325-20d25e280405", ""},
		{"golang.org/toolchain", "v0.0.1-go1.21.0.linux-amd64", ""},
		{"golang.org/toolchain", "v0.0.1-go1.22rc1.windows-arm64", ""},

		{"example.com/m", "v1.2", "example.com/m@v1.2: invalid version: must be canonical (v1.2.0)"},
		{"example.com/m", "v1", "must be canonical (v1.0.0)"},
		{"example.com/m", "v1.2.3+build", "must be canonical (v1.2.3)"},
		{"example.com/m", "1.2.3", "example.com/m@1.2.3: invalid version: not a semantic version"},
		{"example.com/m", "latest", "not a semantic version"},
		{"example.com/m", "master", "not a semantic version"},
		{"example.com/m", "", "not a semantic version"},
		{"example.com/m", "v1.2.3\n", `example.com/m@"v1.2.3\n": invalid version`},
		{"example.com/m", "v2.0.0", "example.com/m@v2.0.0: invalid version: should be v0 or v1, not v2"},
		{"example.com/m/v2", "v1.0.0", "invalid version: should be v2, not v1"},
		{"example.com/m/v2", "v3.0.0", "should be v2, not v3"},
		{"gopkg.in/yaml.v2", "v3.0.0", "should be v2, not v3"},
		{"example.com/m", "v1.0.0+incompatible", "+incompatible suffix not allowed: major version v1 is compatible"},
		{"example.com/m", "v0.1.0+incompatible", "major version v0 is compatible"},
		{"example.com/m/v2", "v2.0.0+incompatible", "+incompatible suffix not allowed: module path has a major version suffix (/v2)"},
		{"gopkg.in/yaml.v2", "v2.0.0+incompatible", "module path has a major version suffix (.v2)"},
		{"example.com/m/v1", "v1.0.0", "malformed module path"},
		{"Example.com/m", "v1.0.0", `malformed module path "Example.com/m"`},
		{"example", "v1.0.0", "missing dot in first path element"},
		{"", "v1.0.0", "malformed module path"},
		{"example.com/m/", "v1.0.0", "malformed module path"},
		{"example.com//m", "v1.0.0", "malformed module path"},
		{"example.com/m@v1", "v1.0.0", "malformed module path"},
		{"example.com/../m", "v1.0.0", "malformed module path"},
	}
	for _, tt := range tests {
		t.Run(tt.path+"@"+tt.version, func(t *testing.T) {
			err := Check(tt.path, tt.version)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%q, %q) = %v, want nil", tt.path, tt.version, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check(%q, %q) = %v, want error containing %q", tt.path, tt.version, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Check(%q, %q) = %v, does not wrap ErrInvalid", tt.path, tt.version, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid module version: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Check(%q, %q) = %q, want one line starting %q", tt.path, tt.version, err, "invalid module version: ")
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range Examples() {
		path, version, _ := strings.Cut(s, "@")
		f.Add(path, version)
	}
	f.Fuzz(func(t *testing.T, path, version string) {
		err := Check(path, version)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Check(%q, %q) = %v, does not wrap ErrInvalid", path, version, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("Check(%q, %q) = %q, want one line", path, version, err)
			}
			return
		}
		// Everything the x/mod code will later require of it holds.
		if err := module.Check(path, version); err != nil {
			t.Fatalf("Check(%q, %q) = nil, but module.Check: %v", path, version, err)
		}
		if module.CanonicalVersion(version) != version {
			t.Fatalf("Check(%q, %q) = nil, but not canonical", path, version)
		}
		// And it escapes, for its one lookup URL, to text that unescapes
		// back to it.
		escPath, err1 := module.EscapePath(path)
		escVersion, err2 := module.EscapeVersion(version)
		if err1 != nil || err2 != nil {
			t.Fatalf("Check(%q, %q) = nil, but escape: %v, %v", path, version, err1, err2)
		}
		p, err1 := module.UnescapePath(escPath)
		v, err2 := module.UnescapeVersion(escVersion)
		if err1 != nil || err2 != nil || p != path || v != version {
			t.Fatalf("Check(%q, %q) = nil, but %q@%q unescapes to %q@%q (%v, %v)", path, version, escPath, escVersion, p, v, err1, err2)
		}
	})
}
