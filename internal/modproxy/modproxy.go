// Package modproxy is an in-memory module proxy speaking the GOPROXY
// protocol (the "Module proxy protocol" of the Go modules reference). It
// serves modules built from file contents with golang.org/x/mod/zip, or raw
// bytes, and can be told to fail or stall, which makes it a test upstream for
// the checksum database and a source of modules for load generators.
package modproxy

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// defaultTime returns the time in a module's .info when Module.Time is zero
// and the version is not a pseudo-version (whose time is part of it).
func defaultTime() time.Time { return time.Date(2019, 11, 9, 2, 19, 31, 0, time.UTC) }

// A Module is a module version to serve.
type Module struct {
	Path, Version string

	// Files are the module's files, by slash-separated path relative to the
	// module root, with their contents. Include "go.mod" to have one;
	// without it, the proxy serves "module <path>\n" as .mod, as real
	// proxies do.
	Files map[string]string

	// Mod, if not nil, is served as .mod instead of the go.mod file or its
	// synthesized form: a module version whose .mod is not its zip's
	// go.mod, as only a broken or malicious proxy serves one.
	Mod []byte

	// Time is the commit time reported by .info. The zero Time means the
	// pseudo-version's time, or else 2019-11-09T02:19:31Z.
	Time time.Time
}

// A Fault makes the proxy misbehave for some modules (see Proxy.SetFault).
// A positive Fault is an HTTP status code the proxy answers every request
// with, with the status text as the body; FaultStall holds the request until
// its context ends.
type Fault int

// Faults.
const (
	FaultNone        Fault = 0
	FaultStall       Fault = -1
	FaultNotFound    Fault = http.StatusNotFound
	FaultGone        Fault = http.StatusGone
	FaultForbidden   Fault = http.StatusForbidden
	FaultServerError Fault = http.StatusInternalServerError
)

// Counts are numbers of requests received, by kind of file, whatever the
// answer (including faults and 404s).
type Counts struct {
	List, Latest, Info, Mod, Zip int
}

// Total returns the number of requests of all kinds.
func (c Counts) Total() int { return c.List + c.Latest + c.Info + c.Mod + c.Zip }

// A Proxy is an in-memory module proxy; it is an http.Handler serving the
// GOPROXY protocol at the root of its URL space (mount it elsewhere with
// http.StripPrefix). Its methods may be called concurrently, also while it
// serves requests.
type Proxy struct {
	mu       sync.Mutex
	versions map[string]map[string]*files // path → version → files; guarded by mu
	faults   map[string]Fault             // path ("" for all) → fault; guarded by mu
	counts   map[string]*Counts           // path ("" for all) → counts; guarded by mu
}

// files are the bytes served for one module version; nil means 404.
type files struct {
	info, mod, zip []byte
}

// New returns an empty proxy.
func New() *Proxy {
	return &Proxy{
		versions: make(map[string]map[string]*files),
		faults:   make(map[string]Fault),
		counts:   map[string]*Counts{"": {}},
	}
}

// Add builds m and serves it: the zip is made with golang.org/x/mod/zip, so
// its files are named <path>@<version>/<file> and follow the module zip
// rules (files of nested modules or vendor directories are left out, as the
// go command does); .mod is m.Mod if set, else the "go.mod" file or
// "module <path>\n". Add replaces any module already served at
// m.Path@m.Version.
func (p *Proxy) Add(m Module) error {
	mv := module.Version{Path: m.Path, Version: m.Version}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	slices.Sort(names) // a deterministic zip
	zfiles := make([]modzip.File, len(names))
	for i, name := range names {
		zfiles[i] = memFile{name: name, data: m.Files[name]}
	}
	var zbuf bytes.Buffer
	if err := modzip.Create(&zbuf, mv, zfiles); err != nil {
		return fmt.Errorf("add %s: %w", mv, err)
	}

	mod, ok := m.Files["go.mod"]
	if !ok {
		// As the go command synthesizes it (cmd/go/internal/modfetch);
		// AutoQuote never quotes a valid module path.
		mod = "module " + modfile.AutoQuote(m.Path) + "\n"
	}
	if m.Mod != nil {
		mod = string(m.Mod)
	}

	t := m.Time
	if t.IsZero() {
		t = defaultTime()
		if module.IsPseudoVersion(m.Version) {
			if pt, err := module.PseudoVersionTime(m.Version); err == nil {
				t = pt
			}
		}
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, t.UTC()})
	if err != nil {
		return fmt.Errorf("add %s: %w", mv, err)
	}

	p.AddRaw(m.Path, m.Version, info, []byte(mod), zbuf.Bytes())
	return nil
}

// AddRaw serves exactly the given bytes as path@version's .info, .mod and
// .zip, without checking them: for bad zips, oversized zips or an .info
// naming another version. A nil slice makes that file answer 404; an empty
// one is served as an empty body. AddRaw replaces any module already served
// at path@version.
func (p *Proxy) AddRaw(path, version string, info, mod, zip []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vs := p.versions[path]
	if vs == nil {
		vs = make(map[string]*files)
		p.versions[path] = vs
	}
	vs[version] = &files{info: info, mod: mod, zip: zip}
}

// GoSum returns the go.sum lines of path@version, computed with dirhash from
// the bytes the proxy serves:
//
//	<path> <version> h1:<zip hash>
//	<path> <version>/go.mod h1:<go.mod hash>
func (p *Proxy) GoSum(path, version string) ([]byte, error) {
	p.mu.Lock()
	f := p.versions[path][version]
	p.mu.Unlock()
	if f == nil || f.mod == nil || f.zip == nil {
		return nil, fmt.Errorf("go.sum lines of %s@%s: %w", path, version, fs.ErrNotExist)
	}
	zr, err := zip.NewReader(bytes.NewReader(f.zip), int64(len(f.zip)))
	if err != nil {
		return nil, fmt.Errorf("go.sum lines of %s@%s: %w", path, version, err)
	}
	// dirhash.HashZip without a file on disk.
	byName := make(map[string]*zip.File, len(zr.File))
	names := make([]string, len(zr.File))
	for i, zf := range zr.File {
		names[i] = zf.Name
		byName[zf.Name] = zf
	}
	zipHash, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return byName[name].Open() })
	if err != nil {
		return nil, fmt.Errorf("go.sum lines of %s@%s: %w", path, version, err)
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(f.mod)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("go.sum lines of %s@%s: %w", path, version, err)
	}
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, version, zipHash, path, version, modHash), nil
}

// SetFault makes every request for module path (any version, and its list
// and @latest) misbehave as f; the path "" applies f to every request.
// FaultNone restores normal service. A fault for a path takes precedence
// over the fault for "".
func (p *Proxy) SetFault(path string, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == FaultNone {
		delete(p.faults, path)
		return
	}
	p.faults[path] = f
}

// Requests returns the numbers of requests received for module path, or for
// all paths (including malformed requests) when path is "".
func (p *Proxy) Requests(path string) Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.counts[path]; c != nil {
		return *c
	}
	return Counts{}
}

// ServeHTTP answers GOPROXY requests:
//
//	/<escaped path>/@v/list
//	/<escaped path>/@v/<escaped version>.info
//	/<escaped path>/@v/<escaped version>.mod
//	/<escaped path>/@v/<escaped version>.zip
//	/<escaped path>/@latest
//
// An unknown module version is 404 with the text
// "not found: unknown revision <version>".
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	escPath, file, ok := splitRequest(r.URL.Path)
	kind := kindOf(file)
	if !ok || kind == "" {
		p.count("", "")
		http.Error(w, "not found: unknown request", http.StatusNotFound)
		return
	}
	modPath, err := module.UnescapePath(escPath)
	if err != nil {
		p.count("", kind)
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}

	p.mu.Lock()
	p.countLocked(modPath, kind)
	fault, ok := p.faults[modPath]
	if !ok {
		fault = p.faults[""]
	}
	p.mu.Unlock()

	switch {
	case fault == FaultStall:
		<-r.Context().Done()
		return
	case fault > 0:
		http.Error(w, http.StatusText(int(fault)), int(fault))
		return
	}

	switch kind {
	case "list":
		p.serveList(w, modPath)
		return
	case "latest":
		p.serveLatest(w, modPath)
		return
	}

	escVersion := strings.TrimSuffix(file, "."+kind)
	version, err := module.UnescapeVersion(escVersion)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	f := p.versions[modPath][version]
	p.mu.Unlock()
	var body []byte
	var ctype string
	if f != nil {
		switch kind {
		case "info":
			body, ctype = f.info, "application/json"
		case "mod":
			body, ctype = f.mod, "text/plain; charset=utf-8"
		case "zip":
			body, ctype = f.zip, "application/zip"
		}
	}
	if body == nil {
		http.Error(w, "not found: unknown revision "+version, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// serveList answers @v/list: the known versions that are not
// pseudo-versions, in semver order, one per line.
func (p *Proxy) serveList(w http.ResponseWriter, modPath string) {
	p.mu.Lock()
	vs, ok := p.versions[modPath]
	var list []string
	for v := range vs {
		if !module.IsPseudoVersion(v) {
			list = append(list, v)
		}
	}
	p.mu.Unlock()
	if !ok {
		http.Error(w, "not found: unknown module "+modPath, http.StatusNotFound)
		return
	}
	semver.Sort(list)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, v := range list {
		io.WriteString(w, v+"\n")
	}
}

// serveLatest answers @latest with the .info of the highest release
// version, else the highest pre-release, else the highest pseudo-version,
// as the go command's "latest" query prefers.
func (p *Proxy) serveLatest(w http.ResponseWriter, modPath string) {
	p.mu.Lock()
	var best string
	var bestInfo []byte
	for v, f := range p.versions[modPath] {
		if f.info != nil && (best == "" || latestLess(best, v)) {
			best, bestInfo = v, f.info
		}
	}
	p.mu.Unlock()
	if best == "" {
		http.Error(w, "not found: unknown module "+modPath, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(bestInfo)
}

// latestLess reports whether a is a worse "latest" candidate than b.
func latestLess(a, b string) bool {
	if ra, rb := latestRank(a), latestRank(b); ra != rb {
		return ra < rb
	}
	return semver.Compare(a, b) < 0
}

// latestRank ranks pseudo-versions below pre-releases below releases.
func latestRank(v string) int {
	switch {
	case module.IsPseudoVersion(v):
		return 0
	case semver.Prerelease(v) != "":
		return 1
	}
	return 2
}

// splitRequest splits a request path into the escaped module path and the
// file under @v/ ("list", "v1.0.0.info", ...) or "@latest".
func splitRequest(urlPath string) (escPath, file string, ok bool) {
	p := strings.TrimPrefix(urlPath, "/")
	if before, ok := strings.CutSuffix(p, "/@latest"); ok {
		return before, "@latest", before != ""
	}
	i := strings.LastIndex(p, "/@v/")
	if i <= 0 {
		return "", "", false
	}
	file = p[i+len("/@v/"):]
	if file == "" || strings.Contains(file, "/") {
		return "", "", false
	}
	return p[:i], file, true
}

// kindOf returns the kind of file requested ("list", "latest", "info",
// "mod", "zip"), or "" for anything else.
func kindOf(file string) string {
	switch file {
	case "list":
		return "list"
	case "@latest":
		return "latest"
	}
	switch ext := path.Ext(file); ext {
	case ".info", ".mod", ".zip":
		if len(file) > len(ext) {
			return ext[1:]
		}
	}
	return ""
}

// count counts a request for modPath (which may be "") of the given kind.
func (p *Proxy) count(modPath, kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.countLocked(modPath, kind)
}

// countLocked is count with p.mu held.
func (p *Proxy) countLocked(modPath, kind string) {
	incr := func(c *Counts) {
		switch kind {
		case "list":
			c.List++
		case "latest":
			c.Latest++
		case "info":
			c.Info++
		case "mod":
			c.Mod++
		case "zip":
			c.Zip++
		}
	}
	incr(p.counts[""])
	if modPath != "" {
		c := p.counts[modPath]
		if c == nil {
			c = new(Counts)
			p.counts[modPath] = c
		}
		incr(c)
	}
}

// A memFile is a module file held in memory, for modzip.Create.
type memFile struct {
	name, data string
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error)  { return memFileInfo{f}, nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

// memFileInfo is the fs.FileInfo of a memFile: a regular file.
type memFileInfo struct{ f memFile }

func (fi memFileInfo) Name() string       { return path.Base(fi.f.name) }
func (fi memFileInfo) Size() int64        { return int64(len(fi.f.data)) }
func (fi memFileInfo) Mode() fs.FileMode  { return 0o644 }
func (fi memFileInfo) ModTime() time.Time { return time.Time{} }
func (fi memFileInfo) IsDir() bool        { return false }
func (fi memFileInfo) Sys() any           { return nil }

var _ http.Handler = (*Proxy)(nil)
