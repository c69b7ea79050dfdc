package fetch

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
)

// A testProxy is a modproxy.Proxy behind an httptest.Server that records
// the URL paths it is asked for.
type testProxy struct {
	*modproxy.Proxy
	URL string

	mu    sync.Mutex
	paths []string // guarded by mu
}

// startProxy starts a test proxy. With chunked, responses carry no
// Content-Length, so that size limits are enforced while streaming.
func startProxy(t *testing.T, chunked bool) *testProxy {
	t.Helper()
	tp := &testProxy{Proxy: modproxy.New()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		tp.paths = append(tp.paths, r.URL.Path)
		tp.mu.Unlock()
		if chunked {
			w = &noLengthWriter{ResponseWriter: w, h: make(http.Header)}
		}
		tp.Proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tp.URL = srv.URL
	return tp
}

// requested returns the URL paths requested so far.
func (tp *testProxy) requested() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.paths)
}

// A noLengthWriter drops the Content-Length header of a response.
type noLengthWriter struct {
	http.ResponseWriter
	h           http.Header
	wroteHeader bool
}

func (w *noLengthWriter) Header() http.Header { return w.h }

func (w *noLengthWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	for k, v := range w.h {
		if k != "Content-Length" {
			w.ResponseWriter.Header()[k] = v
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noLengthWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

// newTestUpstream returns an Upstream for cfg whose TempDir is checked to
// be empty at the end of the test.
func newTestUpstream(t *testing.T, cfg Config) *Upstream {
	t.Helper()
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
		t.Cleanup(func() { checkEmptyDir(t, cfg.TempDir) })
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	u, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return u
}

// checkEmptyDir fails the test if dir has entries: spooled zips left over.
func checkEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("temporary file left behind: %s", e.Name())
	}
}

// wantRecord computes the record of a module made of files independently
// of the code under test: dirhash.Hash1 over the files named
// <path>@<version>/<name>, and over the go.mod or its synthesized form.
func wantRecord(t *testing.T, path, version string, files map[string]string) string {
	t.Helper()
	prefix := path + "@" + version + "/"
	var names []string
	for name := range files {
		names = append(names, prefix+name)
	}
	zipHash, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(files[strings.TrimPrefix(name, prefix)])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mod, ok := files["go.mod"]
	if !ok {
		mod = "module " + path + "\n"
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(mod)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, zipHash, path, version, modHash)
}

// makeZip returns a zip archive of files, by full name, stored uncompressed.
func makeZip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// infoJSON returns a .info body naming version.
func infoJSON(version string) []byte {
	return fmt.Appendf(nil, `{"Version":%q,"Time":"2019-11-09T02:19:31Z"}`, version)
}

func TestUpstreamFetch(t *testing.T) {
	tests := []struct {
		name    string
		mod     modproxy.Module
		wantURL string // the .info URL path requested, if checked
	}{
		{
			name: "normal",
			mod: modproxy.Module{Path: "example.com/m", Version: "v1.2.3", Files: map[string]string{
				"go.mod":   "module example.com/m\n\ngo 1.21\n",
				"m.go":     "package m\n",
				"LICENSE":  "public domain\n",
				"sub/x.go": "package sub\n",
			}},
			wantURL: "/example.com/m/@v/v1.2.3.info",
		},
		{
			name: "uppercase path",
			mod: modproxy.Module{Path: "github.com/Azure/x", Version: "v1.0.0", Files: map[string]string{
				"go.mod": "module github.com/Azure/x\n",
				"x.go":   "package x\n",
			}},
			wantURL: "/github.com/!azure/x/@v/v1.0.0.info",
		},
		{
			name: "uppercase version",
			mod: modproxy.Module{Path: "example.com/m", Version: "v1.0.0-RC1", Files: map[string]string{
				"go.mod": "module example.com/m\n",
			}},
			wantURL: "/example.com/m/@v/v1.0.0-!r!c1.info",
		},
		{
			name: "incompatible without go.mod",
			mod: modproxy.Module{Path: "example.com/m", Version: "v2.0.0+incompatible", Files: map[string]string{
				"m.go": "package m\n",
			}},
			wantURL: "/example.com/m/@v/v2.0.0+incompatible.info",
		},
		{
			name: "pseudo-version without base",
			mod: modproxy.Module{Path: "example.com/m", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{
				"go.mod": "module example.com/m\n", "m.go": "package m\n",
			}},
		},
		{
			name: "pseudo-version after release",
			mod: modproxy.Module{Path: "example.com/m", Version: "v1.2.4-0.20191109021931-daa7c04131f5", Files: map[string]string{
				"go.mod": "module example.com/m\n", "m.go": "package m // 2\n",
			}},
		},
		{
			name: "pseudo-version after pre-release",
			mod: modproxy.Module{Path: "example.com/m", Version: "v1.2.3-pre.0.20191109021931-daa7c04131f5", Files: map[string]string{
				"go.mod": "module example.com/m\n", "m.go": "package m // 3\n",
			}},
		},
		{
			name: "major version suffix",
			mod: modproxy.Module{Path: "example.com/m/v2", Version: "v2.1.0", Files: map[string]string{
				"go.mod": "module example.com/m/v2\n", "m.go": "package m\n",
			}},
		},
		{
			name: "gopkg.in",
			mod: modproxy.Module{Path: "gopkg.in/yaml.v2", Version: "v2.4.0", Files: map[string]string{
				"go.mod":  "module gopkg.in/yaml.v2\n\nrequire gopkg.in/check.v1 v0.0.0-20161208181325-20d25e280405\n",
				"yaml.go": "package yaml\n",
			}},
			wantURL: "/gopkg.in/yaml.v2/@v/v2.4.0.info",
		},
		{
			name: "no go.mod",
			mod: modproxy.Module{Path: "example.com/old", Version: "v1.0.0", Files: map[string]string{
				"old.go": "package old\n",
			}},
		},
		{
			name: "toolchain",
			mod: modproxy.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.21.0.linux-amd64", Files: map[string]string{
				"go/VERSION": "go1.21.0\ntime 2023-08-08T15:49:39Z\n",
				"go/bin/go":  "\x7fELF not really",
			}},
			wantURL: "/golang.org/toolchain/@v/v0.0.1-go1.21.0.linux-amd64.info",
		},
		{
			name: "empty module",
			mod:  modproxy.Module{Path: "example.com/empty", Version: "v0.1.0", Files: map[string]string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, false)
			if err := p.Add(tt.mod); err != nil {
				t.Fatal(err)
			}
			u := newTestUpstream(t, Config{Proxy: p.URL})
			m := tt.mod
			got, err := u.Fetch(t.Context(), m.Path, m.Version)
			if err != nil {
				t.Fatalf("Fetch(%q, %q) = %v", m.Path, m.Version, err)
			}
			if want := wantRecord(t, m.Path, m.Version, m.Files); string(got) != want {
				t.Errorf("Fetch(%q, %q) =\n%s, want\n%s", m.Path, m.Version, got, want)
			}
			if want, err := p.GoSum(m.Path, m.Version); err != nil || string(got) != string(want) {
				t.Errorf("Fetch(%q, %q) =\n%s, want modproxy's GoSum\n%s (err %v)", m.Path, m.Version, got, want, err)
			}
			if c, want := p.Requests(""), (modproxy.Counts{Info: 1, Mod: 1, Zip: 1}); c != want {
				t.Errorf("proxy requests = %+v, want %+v", c, want)
			}
			if tt.wantURL != "" {
				if paths := p.requested(); len(paths) == 0 || paths[0] != tt.wantURL {
					t.Errorf("requested %q, want first %q", paths, tt.wantURL)
				}
			}
		})
	}
}

func TestUpstreamFetchErrors(t *testing.T) {
	const path, version = "example.com/m", "v1.0.0"
	goodFiles := map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}
	prefix := path + "@" + version + "/"

	// A zip whose stored file fails its CRC: CheckZip reads only the
	// directory, so hashing must catch it.
	corrupt := makeZip(t, map[string]string{prefix + "go.mod": "module example.com/m\n", prefix + "m.go": "package m // 0123456789\n"})
	i := bytes.Index(corrupt, []byte("0123456789"))
	corrupt[i] = 'X'

	// An incompressible file, so the zip is larger than it.
	big := make([]byte, 8<<10)
	rand.NewChaCha8([32]byte{}).Read(big)

	tests := []struct {
		name       string
		setup      func(p *testProxy)
		cfg        Config
		chunked    bool
		path       string // default path
		version    string // default version
		wantErr    string // the exact message
		wantKind   error
		wantCounts *modproxy.Counts
	}{
		{
			name:       "unknown version",
			setup:      func(p *testProxy) {},
			wantErr:    "not found: example.com/m@v1.0.0: unknown revision v1.0.0",
			wantKind:   ErrNotFound,
			wantCounts: &modproxy.Counts{Info: 1},
		},
		{
			name: "info names another version",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON("v1.0.1"), []byte("module example.com/m\n"), makeZip(t, map[string]string{prefix + "go.mod": "module example.com/m\n"}))
			},
			wantErr:    "not found: example.com/m@v1.0.0: upstream resolved to v1.0.1",
			wantKind:   ErrNotFound,
			wantCounts: &modproxy.Counts{Info: 1},
		},
		{
			name: "info is not JSON",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, []byte("v1.0.0"), nil, nil)
			},
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: malformed .info response",
			wantKind: ErrUpstream,
		},
		{
			name: "no .mod",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), nil, makeZip(t, map[string]string{prefix + "go.mod": "module example.com/m\n"}))
			},
			wantErr:    "not found: example.com/m@v1.0.0: unknown revision v1.0.0",
			wantKind:   ErrNotFound,
			wantCounts: &modproxy.Counts{Info: 1, Mod: 1},
		},
		{
			name: "go.mod too large",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), bytes.Repeat([]byte("\n"), 16<<20+1), nil)
			},
			wantErr:  "not found: example.com/m@v1.0.0: go.mod larger than 16777216 bytes",
			wantKind: ErrNotFound,
		},
		{
			name: "file outside the prefix",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), []byte("module example.com/m\n"), makeZip(t, map[string]string{
					prefix + "go.mod":       "module example.com/m\n",
					"example.com/evil/x.go": "package evil\n",
				}))
			},
			wantErr:    `not found: example.com/m@v1.0.0: invalid module zip: example.com/evil/x.go: path does not have prefix "example.com/m@v1.0.0/"`,
			wantKind:   ErrNotFound,
			wantCounts: &modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "several invalid files",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), []byte("module example.com/m\n"), makeZip(t, map[string]string{
					prefix + "a.go": "package m\n",
					prefix + "A.go": "package m\n",
					"x/y.go":        "package y\n",
				}))
			},
			wantErr:  "not found: example.com/m@v1.0.0: invalid module zip: ",
			wantKind: ErrNotFound,
		},
		{
			name: "files for another version",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), []byte("module example.com/m\n"), makeZip(t, map[string]string{
					"example.com/m@v1.0.1/go.mod": "module example.com/m\n",
				}))
			},
			wantErr:  `not found: example.com/m@v1.0.0: invalid module zip: example.com/m@v1.0.1/go.mod: path does not have prefix "example.com/m@v1.0.0/"`,
			wantKind: ErrNotFound,
		},
		{
			name: "not a zip",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), []byte("module example.com/m\n"), []byte("<html>oops</html>"))
			},
			wantErr:  "not found: example.com/m@v1.0.0: invalid module zip: zip: not a valid zip file",
			wantKind: ErrNotFound,
		},
		{
			name: "corrupt file in zip",
			setup: func(p *testProxy) {
				p.AddRaw(path, version, infoJSON(version), []byte("module example.com/m\n"), corrupt)
			},
			wantErr:  "not found: example.com/m@v1.0.0: invalid module zip: zip: checksum error",
			wantKind: ErrNotFound,
		},
		{
			name: "zip too large",
			setup: func(p *testProxy) {
				if err := p.Add(modproxy.Module{Path: path, Version: version, Files: map[string]string{"go.mod": "module example.com/m\n", "big": string(big)}}); err != nil {
					t.Fatal(err)
				}
			},
			cfg:      Config{MaxZipSize: 4096},
			wantErr:  "not found: example.com/m@v1.0.0: module zip larger than 4096 bytes",
			wantKind: ErrNotFound,
		},
		{
			name: "zip too large without Content-Length",
			setup: func(p *testProxy) {
				if err := p.Add(modproxy.Module{Path: path, Version: version, Files: map[string]string{"go.mod": "module example.com/m\n", "big": string(big)}}); err != nil {
					t.Fatal(err)
				}
			},
			chunked:  true,
			cfg:      Config{MaxZipSize: 4096},
			wantErr:  "not found: example.com/m@v1.0.0: module zip larger than 4096 bytes",
			wantKind: ErrNotFound,
		},
		{
			name: "server error",
			setup: func(p *testProxy) {
				if err := p.Add(modproxy.Module{Path: path, Version: version, Files: goodFiles}); err != nil {
					t.Fatal(err)
				}
				p.SetFault(path, modproxy.FaultServerError)
			},
			wantErr:    "upstream unavailable: example.com/m@v1.0.0: proxy answered 500 Internal Server Error for .info",
			wantKind:   ErrUpstream,
			wantCounts: &modproxy.Counts{Info: 1},
		},
		{
			name: "forbidden",
			setup: func(p *testProxy) {
				p.SetFault("", modproxy.FaultForbidden)
			},
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: proxy answered 403 Forbidden for .info",
			wantKind: ErrUpstream,
		},
		{
			name: "gone",
			setup: func(p *testProxy) {
				p.SetFault(path, modproxy.FaultGone)
			},
			wantErr:  "not found: example.com/m@v1.0.0: Gone",
			wantKind: ErrNotFound,
		},
		{
			name: "stall",
			setup: func(p *testProxy) {
				if err := p.Add(modproxy.Module{Path: path, Version: version, Files: goodFiles}); err != nil {
					t.Fatal(err)
				}
				p.SetFault(path, modproxy.FaultStall)
			},
			cfg:      Config{Timeout: 100 * time.Millisecond},
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: timed out",
			wantKind: context.DeadlineExceeded,
		},
		{
			name:       "invalid version",
			setup:      func(p *testProxy) {},
			version:    "v1.0",
			wantErr:    "invalid module version: example.com/m@v1.0: invalid version: must be canonical (v1.0.0)",
			wantKind:   ErrInvalid,
			wantCounts: &modproxy.Counts{},
		},
		{
			name:       "invalid incompatible",
			setup:      func(p *testProxy) {},
			path:       "example.com/m/v2",
			version:    "v2.0.0+incompatible",
			wantErr:    "invalid module version: example.com/m/v2@v2.0.0+incompatible: invalid version: +incompatible suffix not allowed: module path has a major version suffix (/v2)",
			wantKind:   ErrInvalid,
			wantCounts: &modproxy.Counts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, tt.chunked)
			tt.setup(p)
			cfg := tt.cfg
			cfg.Proxy = p.URL
			u := newTestUpstream(t, cfg)
			path, version := path, version
			if tt.path != "" {
				path = tt.path
			}
			if tt.version != "" {
				version = tt.version
			}
			got, err := u.Fetch(t.Context(), path, version)
			if err == nil {
				t.Fatalf("Fetch(%q, %q) = %q, nil, want error %q", path, version, got, tt.wantErr)
			}
			if got != nil {
				t.Errorf("Fetch(%q, %q) = %q with the error, want nil", path, version, got)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) || !strings.HasSuffix(tt.wantErr, ": ") && err.Error() != tt.wantErr {
				t.Errorf("Fetch(%q, %q) = %q, want %q", path, version, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("Fetch(%q, %q) = %q, want one line without the proxy's address", path, version, err)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("Fetch(%q, %q) = %v, does not wrap %v", path, version, err, tt.wantKind)
			}
			// The three kinds exclude one another.
			kinds := 0
			for _, k := range []error{ErrInvalid, ErrNotFound, ErrUpstream} {
				if errors.Is(err, k) {
					kinds++
				}
			}
			if kinds != 1 {
				t.Errorf("Fetch(%q, %q) = %v, wraps %d of ErrInvalid, ErrNotFound, ErrUpstream, want 1", path, version, err, kinds)
			}
			if tt.wantCounts != nil {
				if c := p.Requests(""); c != *tt.wantCounts {
					t.Errorf("proxy requests = %+v, want %+v", c, *tt.wantCounts)
				}
			}
		})
	}
}

// TestUpstreamGoModConsistency checks that a module version is logged only
// if its .mod file is the go.mod of its zip or, for a zip without one, the
// go.mod the go command synthesizes for it ("module <path>\n",
// cmd/go/internal/modfetch.LegacyGoMod): a checksum database that logs
// both hashes from different sources vouches for a pair that no module
// source ever held.
func TestUpstreamGoModConsistency(t *testing.T) {
	const mismatch = ".mod differs from the zip's go.mod: the upstream proxy serves an inconsistent module version; ask its operator to fix it"
	noGoMod := func(mod string) string {
		return fmt.Sprintf("the zip has no go.mod, so .mod must be %q: the upstream proxy serves an inconsistent module version; ask its operator to fix it", mod)
	}
	tests := []struct {
		name          string
		path, version string            // default example.com/m v1.0.0
		files         map[string]string // in the zip, relative to its prefix
		mod           string
		wantErr       string // after "not found: <path>@<version>: "; "" for success
	}{
		{name: "go.mod", files: map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n"}, mod: "module example.com/m\n\ngo 1.21\n"},
		{name: "no go.mod", files: map[string]string{"m.go": "package m\n"}, mod: "module example.com/m\n"},
		{name: "go.mod as synthesized", files: map[string]string{"go.mod": "module example.com/m\n"}, mod: "module example.com/m\n"},
		{name: "empty module", files: map[string]string{}, mod: "module example.com/m\n"},
		{name: "incompatible without go.mod", version: "v2.0.0+incompatible", files: map[string]string{"m.go": "package m\n"}, mod: "module example.com/m\n"},
		{name: "uppercase path without go.mod", path: "github.com/Azure/x", files: map[string]string{"x.go": "package x\n"}, mod: "module github.com/Azure/x\n"},

		{
			name:    "go.mod differs",
			files:   map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"},
			mod:     "module example.com/m\n\nrequire example.com/evil v1.0.0\n",
			wantErr: mismatch,
		},
		{
			// git archive applies an eol=crlf attribute to the zip's
			// go.mod, not to .mod, which the go command reads as committed.
			name:  "go.mod differs in line endings",
			files: map[string]string{"go.mod": "module example.com/m\r\n\r\nrequire (\r\n\texample.com/a v1.0.0\r\n)\r\n"},
			mod:   "module example.com/m\n\nrequire (\n\texample.com/a v1.0.0\n)\n",
		},
		{
			name:  "go.mod differs in comments and spacing",
			files: map[string]string{"go.mod": "// $Id: 1234 $\nmodule example.com/m\n\nrequire example.com/a v1.0.0 // indirect\n"},
			mod:   "// $Id$\nmodule   example.com/m\nrequire example.com/a v1.0.0\n",
		},
		{
			name:    "go.mod differs in a block's statement",
			files:   map[string]string{"go.mod": "module example.com/m\n\nrequire (\n\texample.com/a v1.0.0\n)\n"},
			mod:     "module example.com/m\n\nrequire (\n\texample.com/a v1.0.1\n)\n",
			wantErr: mismatch,
		},
		{
			name:    "go.mod with a statement moved out of its block",
			files:   map[string]string{"go.mod": "module example.com/m\n\nrequire (\n\texample.com/a v1.0.0\n)\n"},
			mod:     "module example.com/m\n\nexclude example.com/a v1.0.0\n",
			wantErr: mismatch,
		},
		{
			name:    "synthesized .mod for a zip with go.mod",
			files:   map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n"},
			mod:     "module example.com/m\n",
			wantErr: mismatch,
		},
		{
			name:    "empty .mod for a zip with an empty go.mod",
			files:   map[string]string{"go.mod": "", "m.go": "package m\n"},
			mod:     "",
			wantErr: "",
		},
		{
			name:    "zip without go.mod, .mod with more",
			files:   map[string]string{"m.go": "package m\n"},
			mod:     "module example.com/m\n\ngo 1.21\n",
			wantErr: noGoMod("module example.com/m\n"),
		},
		{
			name:    "zip without go.mod, .mod without the newline",
			files:   map[string]string{"m.go": "package m\n"},
			mod:     "module example.com/m",
			wantErr: noGoMod("module example.com/m\n"),
		},
		{
			name:    "zip without go.mod, empty .mod",
			files:   map[string]string{"m.go": "package m\n"},
			mod:     "",
			wantErr: noGoMod("module example.com/m\n"),
		},
		{
			name:    "incompatible without go.mod, .mod of the major version",
			version: "v2.0.0+incompatible",
			files:   map[string]string{"m.go": "package m\n"},
			mod:     "module example.com/m/v2\n",
			wantErr: noGoMod("module example.com/m\n"),
		},
		{
			// The go.mod of the module root only: a file named go.mod
			// elsewhere makes the zip invalid (module zips leave nested
			// modules out).
			name:    "nested go.mod",
			files:   map[string]string{"sub/go.mod": "module example.com/m\n"},
			mod:     "module example.com/m\n",
			wantErr: "invalid module zip: example.com/m@v1.0.0/sub/go.mod: go.mod file not in module root directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path, version := "example.com/m", "v1.0.0"
			if tt.path != "" {
				path = tt.path
			}
			if tt.version != "" {
				version = tt.version
			}
			zipFiles := make(map[string]string)
			for name, data := range tt.files {
				zipFiles[path+"@"+version+"/"+name] = data
			}
			p := startProxy(t, false)
			p.AddRaw(path, version, infoJSON(version), []byte(tt.mod), makeZip(t, zipFiles))
			var buf guardtest.Logs
			u := newTestUpstream(t, Config{Proxy: p.URL, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
			got, err := u.Fetch(t.Context(), path, version)
			if tt.wantErr == "" {
				want, gerr := p.GoSum(path, version)
				if err != nil || gerr != nil || string(got) != string(want) {
					t.Fatalf("Fetch(%q, %q) = %q, %v, want %q (%v)", path, version, got, err, want, gerr)
				}
				return
			}
			wantErr := "not found: " + path + "@" + version + ": " + tt.wantErr
			if err == nil || err.Error() != wantErr || !errors.Is(err, ErrNotFound) {
				t.Fatalf("Fetch(%q, %q) = %q, %v, want error %q", path, version, got, err, wantErr)
			}
			if c := p.Requests(""); c != (modproxy.Counts{Info: 1, Mod: 1, Zip: 1}) {
				t.Errorf("proxy requests = %+v, want one of each", c)
			}
			if strings.HasPrefix(tt.wantErr, "invalid module zip") {
				return
			}
			// An inconsistent module is the proxy's fault, and maybe an
			// attack: an error for the operator, with both hashes.
			var rec struct{ Level, Result, Cause string }
			if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			if rec.Level != "ERROR" || rec.Result != "not_found" || !strings.Contains(rec.Cause, ".mod is not the module zip's go.mod: .mod h1:") {
				t.Errorf("log line %s, want level ERROR, result not_found and a cause with the hashes", buf.String())
			}
		})
	}
}

func TestUpstreamNotFoundReason(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{"not found: unknown revision v1.0.0", "unknown revision v1.0.0"},
		{"not found: module example.com/m: no matching versions for query \"v1.0.0\"\n", `module example.com/m: no matching versions for query "v1.0.0"`},
		{"reason on the first line\nand more\n", "reason on the first line"},
		{"  spaced  \n", "spaced"},
		{"", "unknown revision"},
		{"\n", "unknown revision"},
		{strings.Repeat("x", 201), "unknown revision"},
		{strings.Repeat("x", 200), strings.Repeat("x", 200)},
		{"bad \x1b[31m escape", "unknown revision"},
		{"bad \xff utf-8", "unknown revision"},
		{"bidi \u202e override", "unknown revision"},
		{"unicode is fine: é", "unicode is fine: é"},
		{strings.Repeat("y", 1<<20), "unknown revision"},
	}
	for _, tt := range tests {
		name := tt.body
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			u := newTestUpstream(t, Config{Proxy: srv.URL})
			_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
			want := "not found: example.com/m@v1.0.0: " + tt.want
			if err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
				t.Errorf("Fetch with 404 body %q = %v, want %q", tt.body, err, want)
			}
		})
	}
}

func TestUpstreamCanceled(t *testing.T) {
	p := startProxy(t, false)
	p.SetFault("", modproxy.FaultStall)
	u := newTestUpstream(t, Config{Proxy: p.URL})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := u.Fetch(ctx, "example.com/m", "v1.0.0")
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch with canceled context = %v, want ErrUpstream and context.Canceled", err)
	}
	if want := "upstream unavailable: example.com/m@v1.0.0: canceled"; err.Error() != want {
		t.Errorf("Fetch with canceled context = %q, want %q", err, want)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	u := newTestUpstream(t, Config{Proxy: url})
	_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if want := "upstream unavailable: example.com/m@v1.0.0: cannot reach proxy"; err == nil || err.Error() != want || !errors.Is(err, ErrUpstream) {
		t.Fatalf("Fetch from closed server = %v, want %q", err, want)
	}
}

func TestUpstreamProxyList(t *testing.T) {
	const path, version = "example.com/m", "v1.0.0"
	files := map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}
	want := wantRecord(t, path, version, files)

	// Proxy a has nothing unless told; b has the module unless told.
	type setup struct {
		aFault, bFault modproxy.Fault
		aHas           bool
	}
	tests := []struct {
		name    string
		list    string // with A and B for the URLs
		setup   setup
		timeout time.Duration
		wantErr string // "" for want
		kind    error  // with wantErr
		aCounts modproxy.Counts
		bCounts modproxy.Counts
	}{
		{
			name: "comma falls through on 404", list: "A,B",
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "comma falls through on 410", list: "A,B", setup: setup{aFault: modproxy.FaultGone},
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "comma stops on 500", list: "A,B", setup: setup{aFault: modproxy.FaultServerError},
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy answered 500 Internal Server Error for .info", kind: ErrUpstream,
			aCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "comma stops on 403", list: "A,B", setup: setup{aFault: modproxy.FaultForbidden},
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy answered 403 Forbidden for .info", kind: ErrUpstream,
			aCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "comma stops on timeout", list: "A,B", setup: setup{aFault: modproxy.FaultStall}, timeout: 100 * time.Millisecond,
			wantErr: "upstream unavailable: example.com/m@v1.0.0: timed out", kind: context.DeadlineExceeded,
			aCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "pipe falls through on 500", list: "A|B", setup: setup{aFault: modproxy.FaultServerError},
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "pipe falls through on 404", list: "A|B",
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "pipe falls through on timeout", list: "A|B", setup: setup{aFault: modproxy.FaultStall}, timeout: 100 * time.Millisecond,
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "first proxy that has it wins", list: "A,B", setup: setup{aHas: true},
			aCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "both 404", list: "A,B", setup: setup{bFault: modproxy.FaultNotFound},
			wantErr: "not found: example.com/m@v1.0.0: unknown revision v1.0.0", kind: ErrNotFound,
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "a broken proxy beats not found", list: "A|B", setup: setup{aFault: modproxy.FaultServerError, bFault: modproxy.FaultNotFound},
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy answered 500 Internal Server Error for .info", kind: ErrUpstream,
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "separator after the second entry does not matter", list: "A,B|", setup: setup{aFault: modproxy.FaultServerError},
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy answered 500 Internal Server Error for .info", kind: ErrUpstream,
			aCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "direct is skipped", list: "direct,A,direct,B",
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
		{
			name: "off ends the list", list: "A,off,B",
			wantErr: "not found: example.com/m@v1.0.0: unknown revision v1.0.0", kind: ErrNotFound,
			aCounts: modproxy.Counts{Info: 1},
		},
		{
			name: "trailing slash and spaces", list: " A/ , B/ ",
			aCounts: modproxy.Counts{Info: 1}, bCounts: modproxy.Counts{Info: 1, Mod: 1, Zip: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := startProxy(t, false), startProxy(t, false)
			if tt.setup.aHas {
				if err := a.Add(modproxy.Module{Path: path, Version: version, Files: files}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Add(modproxy.Module{Path: path, Version: version, Files: files}); err != nil {
				t.Fatal(err)
			}
			a.SetFault("", tt.setup.aFault)
			b.SetFault("", tt.setup.bFault)
			list := strings.NewReplacer("A", a.URL, "B", b.URL).Replace(tt.list)
			u := newTestUpstream(t, Config{Proxy: list, Timeout: tt.timeout})
			got, err := u.Fetch(t.Context(), path, version)
			if tt.wantErr == "" {
				if err != nil || string(got) != want {
					t.Errorf("Fetch with GOPROXY=%s = %q, %v, want %q, nil", tt.list, got, err, want)
				}
			} else if err == nil || err.Error() != tt.wantErr || !errors.Is(err, tt.kind) {
				t.Errorf("Fetch with GOPROXY=%s = %q, %v, want error %q (%v)", tt.list, got, err, tt.wantErr, tt.kind)
			}
			if c := a.Requests(""); c != tt.aCounts {
				t.Errorf("proxy A requests = %+v, want %+v", c, tt.aCounts)
			}
			if c := b.Requests(""); c != tt.bCounts {
				t.Errorf("proxy B requests = %+v, want %+v", c, tt.bCounts)
			}
		})
	}
}

func TestUpstreamProxyUnderPath(t *testing.T) {
	p := modproxy.New()
	files := map[string]string{"go.mod": "module example.com/m\n"}
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: files}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/goproxy/", http.StripPrefix("/goproxy", p))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	u := newTestUpstream(t, Config{Proxy: srv.URL + "/goproxy/"})
	got, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if want := wantRecord(t, "example.com/m", "v1.0.0", files); err != nil || string(got) != want {
		t.Errorf("Fetch = %q, %v, want %q, nil", got, err, want)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty list", Config{Proxy: ""}, "has no http or https URL"},
		{"direct only", Config{Proxy: "direct"}, "has no http or https URL"},
		{"off only", Config{Proxy: "off"}, "has no http or https URL"},
		{"off first", Config{Proxy: "off,http://proxy.test"}, "has no http or https URL"},
		{"direct then off", Config{Proxy: "direct|off|http://proxy.test"}, "has no http or https URL"},
		{"separators only", Config{Proxy: ",|,"}, "has no http or https URL"},
		{"no scheme", Config{Proxy: "proxy.test"}, "want http:// or https://"},
		{"file scheme", Config{Proxy: "file:///tmp/proxy"}, "want http:// or https://"},
		{"no host", Config{Proxy: "http:///x"}, "want http:// or https://"},
		{"query", Config{Proxy: "https://proxy.test/?a=b"}, "query and fragment not allowed"},
		{"bad URL", Config{Proxy: "https://proxy.test/%zz"}, "proxy URL"},
		{"password not shown", Config{Proxy: "ftp://user:secret@proxy.test"}, "ftp://xxxxx@proxy.test"},
		{"token not shown", Config{Proxy: "ftp://secret@proxy.test"}, "ftp://xxxxx@proxy.test"},
		{"password in a malformed URL", Config{Proxy: "direct,http//user:secret@proxy.test"}, "proxy URL number 2 of the list: want http://"},
		{"password in a fragment", Config{Proxy: "#http://user:secret@proxy.test"}, "proxy URL number 1 of the list: want http://"},
		{"password after off", Config{Proxy: "off,http://user:secret@proxy.test"}, "proxy list has no http or https URL"},
		{"negative timeout", Config{Proxy: "https://proxy.test", Timeout: -time.Second}, "negative timeout"},
		{"negative zip size", Config{Proxy: "https://proxy.test", MaxZipSize: -1}, "max zip size -1 out of range"},
		{"zip size over the module limit", Config{Proxy: "https://proxy.test", MaxZipSize: 500<<20 + 1}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%+v) = %v, %v, want error containing %q", tt.cfg, u, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("New(%+v) = %v, shows the password", tt.cfg, err)
			}
		})
	}
}

func TestUpstreamConcurrent(t *testing.T) {
	p := startProxy(t, false)
	type mv struct{ path, version string }
	var mods []mv
	var wants []string
	for i := range 20 {
		m := mv{fmt.Sprintf("example.com/m%d", i%4), fmt.Sprintf("v1.0.%d", i)}
		files := map[string]string{"go.mod": "module " + m.path + "\n", "f.go": fmt.Sprintf("package m // %d\n", i)}
		if err := p.Add(modproxy.Module{Path: m.path, Version: m.version, Files: files}); err != nil {
			t.Fatal(err)
		}
		mods, wants = append(mods, m), append(wants, wantRecord(t, m.path, m.version, files))
	}
	u := newTestUpstream(t, Config{Proxy: p.URL, Logger: slog.New(slog.DiscardHandler)})
	var wg sync.WaitGroup
	for i, m := range mods {
		wg.Go(func() {
			got, err := u.Fetch(t.Context(), m.path, m.version)
			if err != nil || string(got) != wants[i] {
				t.Errorf("Fetch(%q, %q) = %q, %v, want %q, nil", m.path, m.version, got, err, wants[i])
			}
		})
	}
	wg.Wait()
	if c, want := p.Requests(""), (modproxy.Counts{Info: 20, Mod: 20, Zip: 20}); c != want {
		t.Errorf("proxy requests = %+v, want %+v", c, want)
	}
}

func TestUpstreamLog(t *testing.T) {
	p := startProxy(t, false)
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	var buf guardtest.Logs
	u := newTestUpstream(t, Config{Proxy: p.URL, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	u.Fetch(t.Context(), "example.com/m", "v1.0.1")
	u.Fetch(t.Context(), "example.com/m", "v1.0")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log has %d lines, want one per fetch:\n%s", len(lines), buf.String())
	}
	for i, want := range []struct{ version, result string }{
		{"v1.0.0", "ok"}, {"v1.0.1", "not_found"}, {"v1.0", "invalid"},
	} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["level"] != "INFO" || rec["module"] != "example.com/m" || rec["version"] != want.version || rec["result"] != want.result || rec["duration"] == nil {
			t.Errorf("log line %d = %s, want INFO module example.com/m version %s result %q with a duration", i, lines[i], want.version, want.result)
		}
	}
}

func TestUpstreamStallInZip(t *testing.T) {
	p := modproxy.New()
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".zip") {
			p.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "PK\x03\x04 and then nothing")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	u := newTestUpstream(t, Config{Proxy: srv.URL, Timeout: 200 * time.Millisecond})
	_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if want := "upstream unavailable: example.com/m@v1.0.0: timed out"; err == nil || err.Error() != want ||
		!errors.Is(err, ErrUpstream) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch with a zip that stalls = %v, want %q", err, want)
	}
}

func TestUpstreamLocalError(t *testing.T) {
	p := startProxy(t, false)
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	u := newTestUpstream(t, Config{Proxy: p.URL, TempDir: filepath.Join(t.TempDir(), "missing")})
	_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUpstream) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Fetch with a missing TempDir = %v, want a local error", err)
	}
}

// TestUpstreamLogRedacts checks that the fetch log never shows the password
// of a proxy URL, whatever the outcome.
func TestUpstreamLogRedacts(t *testing.T) {
	p := startProxy(t, false)
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	p.SetFault("example.com/broken", modproxy.FaultServerError)
	// An unreachable proxy first ("|": on to the next on any error), then
	// the real one with credentials.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://user:hunter2@" + dead.Addr().String()
	dead.Close()
	withPassword := strings.Replace(p.URL, "http://", "http://user:hunter2@", 1)
	var buf guardtest.Logs
	u := newTestUpstream(t, Config{Proxy: deadURL + "|" + withPassword, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for _, m := range []string{"example.com/m@v1.0.0", "example.com/m@v1.0.1", "example.com/broken@v1.0.0"} {
		path, version, _ := strings.Cut(m, "@")
		u.Fetch(t.Context(), path, version)
	}
	u2 := newTestUpstream(t, Config{Proxy: deadURL, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	_, err = u2.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Fetch from an unreachable proxy = %v, want an error without the password", err)
	}
	logs := buf.String()
	if n := strings.Count(logs, `msg="upstream fetch"`); n != 4 {
		t.Errorf("%d fetch log lines, want 4:\n%s", n, logs)
	}
	if strings.Contains(logs, "hunter2") {
		t.Errorf("the log shows the password:\n%s", logs)
	}
	if !strings.Contains(logs, "http://xxxxx@127.0.0.1:") {
		t.Errorf("the log does not name the proxy:\n%s", logs)
	}
}

// FuzzReadReason checks that a proxy's 404 body becomes a short printable
// line, whatever it holds.
func FuzzReadReason(f *testing.F) {
	for _, s := range []string{"not found: unknown revision v1.0.0", "gone: x\nmore", "", "\x00\x1b[31m", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got := readReason(strings.NewReader(body))
		if got == "" || len(got) > maxReasonSize || strings.ContainsAny(got, "\r\n") {
			t.Fatalf("readReason(%q) = %q", body, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("readReason(%q) = %q, holds %q", body, got, r)
			}
		}
	})
}

// FuzzParseProxyList checks that every proxy parseProxyList accepts is a
// plain http or https URL, and that no error repeats a password.
func FuzzParseProxyList(f *testing.F) {
	for _, s := range []struct{ prefix, password, suffix string }{
		{"", "hunter22", "proxy.example.com"},
		{"direct,", "s3cretpass", "proxy.example.com:99999|off"},
		{"https://a.example.com|", "passpass", "[::1]:x/path?q"},
		{"ftp://x,", "password1", "%zz"},
	} {
		f.Add(s.prefix, s.password, s.suffix)
	}
	f.Fuzz(func(t *testing.T, prefix, password, suffix string) {
		list := prefix + "http://u:" + password + "@" + suffix
		proxies, err := parseProxyList(list, false)
		if err != nil {
			secret := len(password) >= 8 && !strings.Contains(prefix+suffix, password) && !strings.Contains(
				"upstream config: proxy URL want http:// or https:// and a host query and fragment not allowed has no http or https URL (direct and off cannot serve a checksum database) invalid port after host", password)
			for _, c := range password {
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
					secret = false
				}
			}
			if secret && strings.Contains(err.Error(), password) {
				t.Fatalf("parseProxyList(%q) = %v, repeats the password", list, err)
			}
			return
		}
		if len(proxies) == 0 {
			t.Fatalf("parseProxyList(%q) = no proxies, no error", list)
		}
		for _, p := range proxies {
			if p.url.Scheme != "http" && p.url.Scheme != "https" || p.url.Host == "" || p.url.RawQuery != "" || p.url.Fragment != "" || strings.HasSuffix(p.url.Path, "/") {
				t.Fatalf("parseProxyList(%q) accepted %q", list, p.url.Redacted())
			}
		}
	})
}

// TestUpstreamGoModBlockOfTwoTokens checks this: the .mod check takes a .mod
// and a zip go.mod that hold the same statements as one module version, as
// the go command parses the go.mod of a dependency (modfile.ParseLax). A
// block opened after two tokens ("require example.com/a (") or one of a
// verb that may not open a block ("go (") is ignored by ParseLax (and
// refused by Parse), but its lines are compared, the block's tokens first,
// as if they were the statement of one line. The pair below is the same
// to the check, yet the go command reads a requirement (or a go version)
// in one file and none in the other: the log would vouch for two go.mod
// files of different meaning for one module version.
func TestUpstreamGoModBlockOfTwoTokens(t *testing.T) {
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
			u := newTestUpstream(t, Config{Proxy: p.URL})
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
