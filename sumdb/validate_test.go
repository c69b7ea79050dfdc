package sumdb

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

func TestCheckModule(t *testing.T) {
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
			err := CheckModule(tt.path, tt.version)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckModule(%q, %q) = %v, want nil", tt.path, tt.version, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckModule(%q, %q) = %v, want error containing %q", tt.path, tt.version, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("CheckModule(%q, %q) = %v, does not wrap ErrInvalid", tt.path, tt.version, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid module version: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("CheckModule(%q, %q) = %q, want one line starting %q", tt.path, tt.version, err, "invalid module version: ")
			}
		})
	}
}

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
				if !errors.Is(err, ErrInvalid) {
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

// lookupSeeds returns lookup strings, valid and not, to start fuzzing from.
func lookupSeeds() []string {
	return []string{
		"example.com/m@v1.2.3",
		"github.com/!azure/x@v1.0.0",
		"example.com/m@v1.0.0-!r!c1",
		"example.com/m@v2.0.0+incompatible",
		"example.com/m/v2@v2.0.0+incompatible",
		"gopkg.in/yaml.v2@v2.4.0",
		"golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64",
		"example.com/m@v1.2.4-0.20191109021931-daa7c04131f5",
		"github.com/Azure/x@v1.0.0",
		"example.com/m@v1.2",
		"example.com/m@@v1.0.0",
		"",
	}
}

func FuzzParseLookup(f *testing.F) {
	for _, s := range lookupSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		path, version, err := ParseLookup(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
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
		if err := CheckModule(path, version); err != nil {
			t.Fatalf("ParseLookup(%q) = %q, %q, but CheckModule: %v", in, path, version, err)
		}
	})
}

func FuzzCheckModule(f *testing.F) {
	for _, s := range lookupSeeds() {
		path, version, _ := strings.Cut(s, "@")
		f.Add(path, version)
	}
	f.Fuzz(func(t *testing.T, path, version string) {
		err := CheckModule(path, version)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckModule(%q, %q) = %v, does not wrap ErrInvalid", path, version, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("CheckModule(%q, %q) = %q, want one line", path, version, err)
			}
			return
		}
		// Everything the x/mod code will later require of it holds.
		if err := module.Check(path, version); err != nil {
			t.Fatalf("CheckModule(%q, %q) = nil, but module.Check: %v", path, version, err)
		}
		if module.CanonicalVersion(version) != version {
			t.Fatalf("CheckModule(%q, %q) = nil, but not canonical", path, version)
		}
		// And it has exactly one lookup URL, which parses back to it.
		escPath, err1 := module.EscapePath(path)
		escVersion, err2 := module.EscapeVersion(version)
		if err1 != nil || err2 != nil {
			t.Fatalf("CheckModule(%q, %q) = nil, but escape: %v, %v", path, version, err1, err2)
		}
		p, v, err := ParseLookup(escPath + "@" + escVersion)
		if err != nil || p != path || v != version {
			t.Fatalf("ParseLookup(%q) = %q, %q, %v, want %q, %q, nil", escPath+"@"+escVersion, p, v, err, path, version)
		}
	})
}
