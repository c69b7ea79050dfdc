package modproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// get requests urlPath from p and returns the status and body.
func get(t *testing.T, p *Proxy, urlPath string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest(http.MethodGet, urlPath, nil))
	return w.Code, w.Body.String()
}

func TestProxy(t *testing.T) {
	p := New()
	mods := []Module{
		{Path: "github.com/Azure/x", Version: "v1.0.0", Files: map[string]string{"go.mod": "module github.com/Azure/x\n", "x.go": "package x\n"}},
		{Path: "github.com/Azure/x", Version: "v1.1.0-RC1", Files: map[string]string{"x.go": "package x\n"}},
		{Path: "github.com/Azure/x", Version: "v1.0.1-0.20191109021931-daa7c04131f5", Files: map[string]string{"x.go": "package x\n"}},
		{Path: "github.com/Azure/x", Version: "v0.9.0", Files: map[string]string{"x.go": "package x\n"}, Time: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Path: "example.com/pre", Version: "v0.0.0-20191109021931-daa7c04131f5", Files: map[string]string{"p.go": "package p\n"}},
		{Path: "example.com/pre", Version: "v0.1.0-rc.1", Files: map[string]string{"p.go": "package p\n"}},
	}
	for _, m := range mods {
		if err := p.Add(m); err != nil {
			t.Fatalf("Add(%s@%s) = %v", m.Path, m.Version, err)
		}
	}

	tests := []struct {
		path string
		code int
		body string // exact, or a prefix when it ends in "…"
	}{
		{"/github.com/!azure/x/@v/list", 200, "v0.9.0\nv1.0.0\nv1.1.0-RC1\n"},
		{"/github.com/!azure/x/@latest", 200, `{"Version":"v1.0.0","Time":"2019-11-09T02:19:31Z"}`},
		{"/example.com/pre/@latest", 200, `{"Version":"v0.1.0-rc.1","Time":"2019-11-09T02:19:31Z"}`},
		{"/example.com/pre/@v/list", 200, "v0.1.0-rc.1\n"},
		{"/github.com/!azure/x/@v/v1.0.0.info", 200, `{"Version":"v1.0.0","Time":"2019-11-09T02:19:31Z"}`},
		{"/github.com/!azure/x/@v/v0.9.0.info", 200, `{"Version":"v0.9.0","Time":"2020-01-02T03:04:05Z"}`},
		{"/github.com/!azure/x/@v/v1.0.1-0.20191109021931-daa7c04131f5.info", 200, `{"Version":"v1.0.1-0.20191109021931-daa7c04131f5","Time":"2019-11-09T02:19:31Z"}`},
		{"/github.com/!azure/x/@v/v1.1.0-!r!c1.info", 200, `{"Version":"v1.1.0-RC1","Time":"2019-11-09T02:19:31Z"}`},
		{"/github.com/!azure/x/@v/v1.0.0.mod", 200, "module github.com/Azure/x\n"},
		{"/github.com/!azure/x/@v/v0.9.0.mod", 200, "module github.com/Azure/x\n"},
		{"/github.com/!azure/x/@v/v1.0.0.zip", 200, "PK…"},
		{"/github.com/!azure/x/@v/v2.0.0.info", 404, "not found: unknown revision v2.0.0\n"},
		{"/github.com/!azure/x/@v/v1.1.0-rc1.info", 404, "not found: unknown revision v1.1.0-rc1\n"},
		{"/github.com/Azure/x/@v/v1.0.0.info", 400, "bad request: …"},
		{"/example.com/none/@v/list", 404, "not found: unknown module example.com/none\n"},
		{"/example.com/none/@latest", 404, "not found: unknown module example.com/none\n"},
		{"/github.com/!azure/x/@v/v1.0.0.txt", 404, "not found: unknown request\n"},
		{"/github.com/!azure/x/@v/.zip", 404, "not found: unknown request\n"},
		{"/@v/list", 404, "not found: unknown request\n"},
		{"/", 404, "not found: unknown request\n"},
	}
	for _, tt := range tests {
		code, body := get(t, p, tt.path)
		want, prefix := strings.CutSuffix(tt.body, "…")
		if code != tt.code || !prefix && body != want || prefix && !strings.HasPrefix(body, want) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}

	if got, want := p.Requests("github.com/Azure/x"), (Counts{List: 1, Latest: 1, Info: 6, Mod: 2, Zip: 1}); got != want {
		t.Errorf("Requests(github.com/Azure/x) = %+v, want %+v", got, want)
	}
	if got, want := p.Requests(""), (Counts{List: 3, Latest: 3, Info: 7, Mod: 2, Zip: 1}); got != want {
		t.Errorf("Requests(\"\") = %+v, want %+v", got, want)
	}
	if got := p.Requests("example.com/unasked"); got != (Counts{}) {
		t.Errorf("Requests(example.com/unasked) = %+v, want zero", got)
	}
}

func TestProxyZip(t *testing.T) {
	p := New()
	m := Module{Path: "example.com/m", Version: "v1.2.3", Files: map[string]string{
		"go.mod":        "module example.com/m\n",
		"m.go":          "package m\n",
		"sub/s.go":      "package sub\n",
		"nested/go.mod": "module example.com/m/nested\n", // another module: left out
		"nested/n.go":   "package nested\n",
	}}
	if err := p.Add(m); err != nil {
		t.Fatal(err)
	}
	code, zipData := get(t, p, "/example.com/m/@v/v1.2.3.zip")
	if code != 200 {
		t.Fatalf("GET .zip = %d", code)
	}
	file := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(file, []byte(zipData), 0o666); err != nil {
		t.Fatal(err)
	}
	cf, err := modzip.CheckZip(module.Version{Path: m.Path, Version: m.Version}, file)
	if err != nil {
		t.Fatalf("CheckZip = %v", err)
	}
	want := []string{"example.com/m@v1.2.3/go.mod", "example.com/m@v1.2.3/m.go", "example.com/m@v1.2.3/sub/s.go"}
	if fmt.Sprint(cf.Valid) != fmt.Sprint(want) {
		t.Errorf("zip files = %q, want %q", cf.Valid, want)
	}

	// GoSum agrees with dirhash.HashZip on the served bytes.
	zipHash, err := dirhash.HashZip(file, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(m.Files["go.mod"])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := p.GoSum(m.Path, m.Version)
	wantSum := fmt.Sprintf("example.com/m v1.2.3 %s\nexample.com/m v1.2.3/go.mod %s\n", zipHash, modHash)
	if err != nil || string(sum) != wantSum {
		t.Errorf("GoSum = %q, %v, want %q", sum, err, wantSum)
	}
	// The same zip twice: Add is deterministic.
	if err := p.Add(m); err != nil {
		t.Fatal(err)
	}
	if _, again := get(t, p, "/example.com/m/@v/v1.2.3.zip"); again != zipData {
		t.Errorf("second Add served a different zip")
	}
}

// TestProxyMod checks that Module.Mod replaces the .mod file, and only it.
func TestProxyMod(t *testing.T) {
	p := New()
	files := map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}
	for _, mod := range []string{"module example.com/m\n\nrequire example.com/x v1.0.0\n", ""} {
		if err := p.Add(Module{Path: "example.com/m", Version: "v1.0.0", Files: files, Mod: []byte(mod)}); err != nil {
			t.Fatal(err)
		}
		if code, body := get(t, p, "/example.com/m/@v/v1.0.0.mod"); code != 200 || body != mod {
			t.Errorf("GET .mod with Mod %q = %d %q, want 200 %q", mod, code, body, mod)
		}
		_, zipData := get(t, p, "/example.com/m/@v/v1.0.0.zip")
		if err := p.Add(Module{Path: "example.com/m", Version: "v1.0.0", Files: files}); err != nil {
			t.Fatal(err)
		}
		if _, consistent := get(t, p, "/example.com/m/@v/v1.0.0.zip"); consistent != zipData {
			t.Errorf("Mod %q changed the zip", mod)
		}
	}
}

func TestProxyAddErrors(t *testing.T) {
	tests := []Module{
		{Path: "example.com/m", Version: "v1.2", Files: map[string]string{"m.go": ""}},
		{Path: "example.com/m", Version: "v2.0.0", Files: map[string]string{"m.go": ""}},
		{Path: "Example.com/m", Version: "v1.0.0", Files: map[string]string{"m.go": ""}},
		{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"../m.go": ""}},
		{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"a.go": "", "A.go": ""}},
	}
	for _, m := range tests {
		p := New()
		if err := p.Add(m); err == nil {
			t.Errorf("Add(%s@%s with %d files) = nil, want error", m.Path, m.Version, len(m.Files))
		}
		if got := p.Requests(""); got != (Counts{}) {
			t.Errorf("Requests after Add = %+v", got)
		}
		if _, err := p.GoSum(m.Path, m.Version); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("GoSum after failed Add = %v, want fs.ErrNotExist", err)
		}
	}
}

func TestProxyRawAndFaults(t *testing.T) {
	p := New()
	p.AddRaw("example.com/raw", "v1.0.0", []byte(`{"Version":"v9.9.9"}`), nil, []byte{})
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/example.com/raw/@v/v1.0.0.info", 200, `{"Version":"v9.9.9"}`},
		{"/example.com/raw/@v/v1.0.0.mod", 404, "not found: unknown revision v1.0.0\n"},
		{"/example.com/raw/@v/v1.0.0.zip", 200, ""},
	} {
		if code, body := get(t, p, tt.path); code != tt.code || body != tt.body {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}
	if _, err := p.GoSum("example.com/raw", "v1.0.0"); err == nil {
		t.Errorf("GoSum of a module without .mod = nil, want error")
	}

	if err := p.Add(Module{Path: "example.com/a", Version: "v1.0.0"}); err != nil {
		t.Fatal(err)
	}
	p.SetFault("", FaultServerError)
	p.SetFault("example.com/a", FaultGone)
	if code, _ := get(t, p, "/example.com/a/@v/v1.0.0.info"); code != 410 {
		t.Errorf("with path fault, GET = %d, want 410", code)
	}
	if code, _ := get(t, p, "/example.com/raw/@v/v1.0.0.info"); code != 500 {
		t.Errorf("with global fault, GET = %d, want 500", code)
	}
	p.SetFault("example.com/a", FaultNone)
	if code, _ := get(t, p, "/example.com/a/@v/v1.0.0.info"); code != 500 {
		t.Errorf("with global fault only, GET = %d, want 500", code)
	}
	p.SetFault("", FaultNone)
	if code, _ := get(t, p, "/example.com/a/@v/v1.0.0.info"); code != 200 {
		t.Errorf("without faults, GET = %d, want 200", code)
	}

	// A stall lasts until the request's context ends.
	p.SetFault("example.com/a", FaultStall)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/example.com/a/@v/v1.0.0.zip", nil).WithContext(ctx))
	if ctx.Err() == nil {
		t.Errorf("stalled request returned before its context ended")
	}
	if got, want := p.Requests("example.com/a"), (Counts{Info: 3, Zip: 1}); got != want {
		t.Errorf("Requests(example.com/a) = %+v, want %+v", got, want)
	}

	w = httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/example.com/a/@v/list", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", w.Code)
	}
}
