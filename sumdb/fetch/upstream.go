package fetch

import (
	stdzip "archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/internal/modver"
)

// Limits on what the upstream may send. The zip limit is configurable.
const (
	maxInfoSize   = 1 << 20      // a .info is a small JSON object
	maxModSize    = zip.MaxGoMod // the go command's own limit on go.mod
	maxReasonSize = 200          // longest upstream 404 text shown to users
)

// DefaultTimeout is the default of Config.Timeout.
const DefaultTimeout = 2 * time.Minute

// A Config configures an Upstream. The zero value of every field but
// Proxy means its default.
type Config struct {
	// Proxy is a GOPROXY-style list of module proxy URLs (http or https).
	// After an entry followed by ",", the next one is tried only when the
	// entry answers 404 or 410; after one followed by "|", on any error.
	// "direct" entries are served by Direct, whose ErrNotFound counts as a
	// 404; without Direct they are skipped. "off" ends the list. A list
	// with no URL and no direct entry served by Direct is an error.
	Proxy string

	// Direct, if not nil, fetches for the "direct" entries of Proxy,
	// usually a GoCommand fetching from version control. It bounds its
	// own fetches.
	Direct Fetcher

	// Client makes the requests; by default a client with connection
	// timeouts and no overall timeout (Timeout bounds each fetch). Whatever
	// the client, a redirect from https to plain http is refused, at most
	// 10 redirects are followed, and the credentials of a proxy URL are
	// sent only to its own scheme, host and port; the client's own
	// CheckRedirect, if any, is asked after that.
	Client *http.Client

	// Timeout bounds the fetch of one module version's three files from
	// one proxy; default DefaultTimeout. It cannot be off.
	Timeout time.Duration

	// MaxZipSize is the largest module zip accepted, in bytes, and also the
	// largest total size of the files in it once uncompressed (the go
	// command bounds both by 500 MiB). Bounding what a zip expands to
	// bounds the work of hashing a zip bomb to that of hashing the largest
	// legitimate module. Default and maximum zip.MaxZipFile (500 MiB).
	MaxZipSize int64

	// TempDir is where zips are spooled while checked and hashed; default
	// os.TempDir().
	TempDir string

	// Logger gets one line per fetch; by default nothing is logged.
	Logger *slog.Logger
}

// An Upstream fetches module versions from module proxies (the GOPROXY
// protocol) and hashes them into checksum database records. It is safe for
// concurrent use.
type Upstream struct {
	proxies    []proxyEntry
	direct     Fetcher // serves the direct entries of proxies
	client     *guard.Client
	timeout    time.Duration
	maxZipSize int64
	tempDir    string
	logger     *slog.Logger
}

// A proxyEntry is one usable entry of a GOPROXY list.
type proxyEntry struct {
	direct          bool          // a "direct" entry: url and user are nil
	url             *url.URL      // without trailing slash and user information
	user            *url.Userinfo // the entry's user information, if any (see guard.SetUserinfo)
	fallBackOnError bool          // the entry was followed by "|"
}

// String returns the entry's URL as logs show it: redacted.
func (p *proxyEntry) String() string {
	if p.direct {
		return "direct"
	}
	u := *p.url
	u.User = p.user
	return guard.Redacted(&u)
}

// New returns an Upstream for cfg, or an error if cfg is invalid.
func New(cfg Config) (*Upstream, error) {
	proxies, err := parseProxyList(cfg.Proxy, cfg.Direct != nil)
	if err != nil {
		return nil, err
	}
	u := &Upstream{
		proxies:    proxies,
		direct:     cfg.Direct,
		timeout:    cfg.Timeout,
		maxZipSize: cfg.MaxZipSize,
		tempDir:    cfg.TempDir,
		logger:     cfg.Logger,
	}
	if cfg.Client == nil {
		cfg.Client = defaultClient()
	}
	u.client = guard.NewClient(cfg.Client)
	if u.timeout, u.maxZipSize, err = limits("upstream config", u.timeout, u.maxZipSize); err != nil {
		return nil, err
	}
	if u.logger == nil {
		u.logger = slog.New(slog.DiscardHandler)
	}
	return u, nil
}

// limits returns the per-fetch timeout and the zip size limit of a
// fetcher's configuration, with their defaults for zero values, or an
// error starting with what if either is out of range.
func limits(what string, timeout time.Duration, maxZipSize int64) (time.Duration, int64, error) {
	switch {
	case timeout < 0:
		return 0, 0, fmt.Errorf("%s: negative timeout %v", what, timeout)
	case timeout == 0:
		timeout = DefaultTimeout
	}
	switch {
	case maxZipSize < 0 || maxZipSize > zip.MaxZipFile:
		return 0, 0, fmt.Errorf("%s: max zip size %d out of range (0 for the default, at most %d)", what, maxZipSize, int64(zip.MaxZipFile))
	case maxZipSize == 0:
		maxZipSize = zip.MaxZipFile
	}
	return timeout, maxZipSize, nil
}

// parseProxyList parses a GOPROXY-style list the way the go command does
// (cmd/go/internal/modfetch.proxyList), keeping only the URLs, and the
// direct entries if direct.
func parseProxyList(list string, direct bool) ([]proxyEntry, error) {
	var proxies []proxyEntry
	rest := list
	for n := 1; rest != ""; n++ {
		var entry string
		fallBackOnError := false
		if i := strings.IndexAny(rest, ",|"); i >= 0 {
			entry, fallBackOnError, rest = rest[:i], rest[i] == '|', rest[i+1:]
		} else {
			entry, rest = rest, ""
		}
		entry = strings.TrimSpace(entry)
		switch entry {
		case "":
			continue
		case "direct":
			if direct {
				proxies = append(proxies, proxyEntry{direct: true, fallBackOnError: fallBackOnError})
			}
			continue
		case "off":
			rest = ""
			continue
		}
		pu, err := url.Parse(entry)
		if err != nil {
			// url.Error repeats the URL, password included.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return nil, fmt.Errorf("upstream config: proxy URL: %w", err)
		}
		if pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" {
			return nil, fmt.Errorf("upstream config: proxy URL %s: want http:// or https:// and a host", entryName(entry, pu, n))
		}
		if pu.RawQuery != "" || pu.Fragment != "" {
			return nil, fmt.Errorf("upstream config: proxy URL %s: query and fragment not allowed", entryName(entry, pu, n))
		}
		pu.Path = strings.TrimSuffix(pu.Path, "/")
		pu.RawPath = ""
		user := pu.User
		pu.User = nil
		proxies = append(proxies, proxyEntry{url: pu, user: user, fallBackOnError: fallBackOnError})
	}
	if len(proxies) == 0 {
		shown := fmt.Sprintf(" %q", list)
		if strings.Contains(list, "@") {
			shown = "" // it may hold a password after an "off"
		}
		return nil, fmt.Errorf("upstream config: proxy list%s has no http or https URL (direct and off cannot serve a checksum database)", shown)
	}
	return proxies, nil
}

// entryName returns how an error names entry n of a proxy list, parsed as
// pu, without showing a password or a token: see guard.ShownURL, else its
// position.
func entryName(entry string, pu *url.URL, n int) string {
	if shown := guard.ShownURL(entry, pu); shown != "" {
		return shown
	}
	return fmt.Sprintf("number %d of the list", n)
}

// defaultClient returns the HTTP client used when none is configured.
func defaultClient() *http.Client {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	// Connection set-up is bounded here; whole fetches by Upstream.timeout.
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 32 // concurrent first lookups all go to one proxy
	return &http.Client{Transport: t}
}

// Fetch returns the checksum database record text for path@version,
// the two go.sum lines
//
//	<path> <version> h1:<zip hash>
//	<path> <version>/go.mod h1:<go.mod hash>
//
// after fetching the version's .info, .mod and .zip from the upstream,
// checking that .info names exactly this version, that the zip is a valid
// module zip within the size limit, and that .mod is the zip's go.mod or,
// for a zip without one, the go.mod the go command synthesizes for it.
//
// Errors are short enough to show to the go command user, in the form
// "<kind>: <path>@<version>: <reason>", and wrap ErrInvalid (bad input, no
// request made), ErrNotFound (the proxy answered 404 or 410, or served
// something that cannot be logged, such as a .mod that is not the zip's
// go.mod), or ErrUpstream (5xx, another 4xx, unreachable, timed out; a
// timeout also wraps context.DeadlineExceeded). Any other error is local,
// such as a full TempDir.
func (u *Upstream) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	start := time.Now()
	text, proxy, err := u.fetch(ctx, path, version)
	shown := ""
	if proxy != nil {
		shown = proxy.String()
	}
	logFetch(ctx, u.logger, "upstream fetch", path, version, shown, start, err)
	return text, err
}

// logFetch logs the line of a fetch of path@version from proxy ("" if
// none was asked) that started at start and ended with err.
func logFetch(ctx context.Context, logger *slog.Logger, msg, path, version, proxy string, start time.Time, err error) {
	attrs := []slog.Attr{
		slog.String("module", path),
		slog.String("version", version),
		slog.String("result", Result(err)),
		slog.Duration("duration", time.Since(start)),
	}
	if proxy != "" {
		attrs = append(attrs, slog.String("proxy", proxy))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
		var ferr *fetchError
		if errors.As(err, &ferr) && ferr.cause != nil {
			attrs = append(attrs, slog.String("cause", ferr.cause.Error()))
		}
	}
	level := slog.LevelInfo
	if errors.Is(err, errInconsistentMod) || errors.Is(err, errSumMismatch) {
		// Not a module that does not exist: a proxy that is broken, or
		// tampered with, or (the go command made both files, and agreed
		// with itself) a fault of this machine, for the operator to look
		// into.
		level = slog.LevelError
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// fetch implements Fetch, also returning the proxy that gave the answer, if
// any.
func (u *Upstream) fetch(ctx context.Context, path, version string) ([]byte, *proxyEntry, error) {
	if err := modver.Check(path, version); err != nil {
		return nil, nil, err
	}
	// Paths and versions that passed modver.Check escape to URL-safe text.
	escPath, err := module.EscapePath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}

	// Like the go command, report the most useful error: any proxy failure
	// beats "not found", which must not be claimed while a proxy is broken.
	var bestErr error
	var bestProxy *proxyEntry
	for i := range u.proxies {
		p := &u.proxies[i]
		var text []byte
		var err error
		if p.direct {
			text, err = u.direct.Fetch(ctx, path, version)
		} else {
			text, err = u.fetchFrom(ctx, p, path, version, escPath, escVersion)
		}
		if err == nil {
			return text, p, nil
		}
		if bestErr == nil || errors.Is(bestErr, ErrNotFound) && !errors.Is(err, ErrNotFound) {
			bestErr, bestProxy = err, p
		}
		if ctx.Err() != nil {
			break // the caller gave up: no next proxy
		}
		// What the go command calls not found from direct is what a
		// proxy answers 404 for.
		var ferr *fetchError
		missing := errors.As(err, &ferr) && ferr.missing || p.direct && errors.Is(err, ErrNotFound)
		if !p.fallBackOnError && !missing {
			break
		}
	}
	return nil, bestProxy, bestErr
}

// fetchFrom fetches path@version from proxy p, under the per-fetch timeout.
func (u *Upstream) fetchFrom(ctx context.Context, p *proxyEntry, path, version, escPath, escVersion string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	f := &fileFetch{
		u:    u,
		ctx:  ctx,
		mod:  path + "@" + version,
		base: p.url.String() + "/" + escPath + "/@v/" + escVersion,
		user: p.user,
	}

	info, err := f.getBytes(".info", maxInfoSize)
	if err != nil {
		return nil, err
	}
	var infoFields struct{ Version string }
	if err := json.Unmarshal(info, &infoFields); err != nil {
		return nil, f.upstreamErr("malformed .info response", err)
	}
	if infoFields.Version != version {
		resolved := "a different version"
		if modver.Printable(infoFields.Version) {
			resolved = infoFields.Version
		}
		return nil, f.notFound("upstream resolved to "+resolved, nil)
	}

	mod, err := f.getBytes(".mod", maxModSize)
	if err != nil {
		return nil, err
	}
	modHash, err := hashGoMod(mod)
	if err != nil {
		return nil, fmt.Errorf("hash go.mod of %s: %w", f.mod, err)
	}

	zipHash, err := f.hashZip(module.Version{Path: path, Version: version}, mod)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, version, zipHash, path, version, modHash), nil
}

// A fileFetch fetches the files of one module version from one proxy.
type fileFetch struct {
	u    *Upstream
	ctx  context.Context // with the per-fetch timeout
	mod  string          // path@version, for errors
	base string          // the files' URL without the extension
	user *url.Userinfo   // the proxy's user information, if any
}

// get requests the file with extension ext and returns the response if its
// status is 200, for the caller to read and close.
func (f *fileFetch) get(ext string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, f.base+ext, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s%s: %w", f.mod, ext, err)
	}
	guard.SetUserinfo(req, f.user)
	resp, err := f.u.client.Do(req)
	if err != nil {
		var rerr *guard.RedirectError
		if errors.As(err, &rerr) {
			// The redirect alone: net/http's error adds the Location
			// again.
			reason := fmt.Sprintf("proxy redirected %s more than %d times", ext, guard.MaxRedirects)
			if rerr.Downgrade {
				reason = "proxy redirected " + ext + " from https to plain http: refused"
			}
			return nil, f.upstreamErr(reason, rerr)
		}
		return nil, f.transportErr("cannot reach proxy", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp, nil
	case http.StatusNotFound, http.StatusGone:
		reason := readReason(resp.Body)
		resp.Body.Close()
		ferr := f.notFound(reason, fmt.Errorf("%s: %s", ext, resp.Status))
		ferr.missing = true
		return nil, ferr
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // reuse the connection
	resp.Body.Close()
	return nil, f.upstreamErr("proxy answered "+resp.Status+" for "+ext, nil)
}

// getBytes returns the content of the file with extension ext, which may
// be at most limit bytes.
func (f *fileFetch) getBytes(ext string, limit int64) ([]byte, error) {
	resp, err := f.get(ext)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, f.tooLarge(ext, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, f.transportErr("incomplete "+ext+" response", err)
	}
	if int64(len(data)) > limit {
		return nil, f.tooLarge(ext, limit)
	}
	return data, nil
}

// tooLarge returns the error for a file over its size limit. An oversized
// go.mod or zip cannot be a module (zip.MaxGoMod); an oversized .info is a
// broken proxy.
func (f *fileFetch) tooLarge(ext string, limit int64) error {
	switch ext {
	case ".info":
		return f.upstreamErr(fmt.Sprintf(".info larger than %d bytes", limit), nil)
	case ".mod":
		return f.notFound(fmt.Sprintf("go.mod larger than %d bytes", limit), nil)
	}
	return f.notFound(fmt.Sprintf("module zip larger than %d bytes", limit), nil)
}

// hashGoMod returns the go.sum hash of the go.mod file data.
func hashGoMod(data []byte) (string, error) {
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// hashZip spools the module zip to a temporary file, checks it with
// zip.CheckZip and against mod, the version's .mod file, and returns its
// dirhash.
func (f *fileFetch) hashZip(m module.Version, mod []byte) (hash string, err error) {
	resp, err := f.get(".zip")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	limit := f.u.maxZipSize
	if resp.ContentLength > limit {
		return "", f.tooLarge(".zip", limit)
	}

	tmp, err := os.CreateTemp(f.u.tempDir, "sumdb-*.zip")
	if err != nil {
		return "", fmt.Errorf("spool zip of %s: %w", f.mod, err)
	}
	defer func() {
		tmp.Close()
		if rerr := os.Remove(tmp.Name()); rerr != nil && err == nil {
			err = fmt.Errorf("remove spooled zip of %s: %w", f.mod, rerr)
		}
	}()
	n, err := copyBody(tmp, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		var werr writeError
		if errors.As(err, &werr) {
			return "", fmt.Errorf("spool zip of %s: %w", f.mod, werr.err)
		}
		return "", f.transportErr("incomplete .zip response", err)
	}
	if n > limit {
		return "", f.tooLarge(".zip", limit)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("spool zip of %s: %w", f.mod, err)
	}
	return hashZipFile(tmp.Name(), m, mod, limit)
}

// hashZipFile checks the module zip file name of module version m with
// zip.CheckZip, the declared sizes of its files against maxSize and its
// go.mod against mod, the version's .mod file, and returns its dirhash. It
// opens the zip once for the three, and reads go.mod before hashing
// anything. Its errors for a zip that cannot be logged are *fetchError of
// kind ErrNotFound. Both the proxies' zips and the go command's go
// through it, so that a module version is logged on the same terms
// whatever its source.
func hashZipFile(name string, m module.Version, mod []byte, maxSize int64) (string, error) {
	mv := m.Path + "@" + m.Version
	if _, err := zip.CheckZip(m, name); err != nil {
		return "", notFoundErr(mv, "invalid module zip: "+firstLine(err), err)
	}
	zr, err := stdzip.OpenReader(name)
	if err != nil {
		return "", notFoundErr(mv, "invalid module zip: "+firstLine(err), err)
	}
	defer zr.Close()

	// CheckZip bounds the declared sizes by 500 MiB; a lower MaxZipSize
	// bounds them further, before anything is decompressed. archive/zip
	// fails a file that decompresses to more than its declared size, so
	// the declared sizes bound the work of hashing.
	var total uint64
	names := make([]string, len(zr.File))
	files := make(map[string]*stdzip.File, len(zr.File))
	for i, zf := range zr.File {
		if total += zf.UncompressedSize64; total < zf.UncompressedSize64 {
			total = math.MaxUint64
		}
		names[i] = zf.Name
		files[zf.Name] = zf // CheckZip refused duplicate names
	}
	if total > uint64(maxSize) {
		return "", notFoundErr(mv, fmt.Sprintf("module zip expands to more than %d bytes", maxSize), nil)
	}

	// CheckZip refused a go.mod anywhere but at the module root, or in
	// another case: this is the only file the go command reads as the
	// module's go.mod once the zip is extracted.
	if err := checkGoMod(files[mv+"/go.mod"], m, mod); err != nil {
		return "", err
	}

	// dirhash.HashZip, on the zip already open.
	hash, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
	if err != nil {
		// CheckZip reads only the directory; a corrupt file shows here.
		return "", notFoundErr(mv, "invalid module zip: "+firstLine(err), err)
	}
	return hash, nil
}

// errInconsistentMod is the cause of the error for a module version whose
// .mod file is not the go.mod of its zip.
var errInconsistentMod = errors.New(".mod is not the module zip's go.mod")

// checkGoMod checks that mod, the .mod file of module version m, is the
// go.mod file zf of its zip or, if the zip has none (zf is nil), the one
// the go command synthesizes for it (cmd/go/internal/modfetch.LegacyGoMod).
// The go command reads .mod to build the module graph and the zip's go.mod
// once the module is extracted (its go version, for one): a checksum
// database that logs the hashes of two different files vouches for a
// module version that no source ever held, which the public one cannot do
// since its proxy makes both from the same source.
func checkGoMod(zf *stdzip.File, m module.Version, mod []byte) error {
	const next = ": the upstream proxy serves an inconsistent module version; ask its operator to fix it"
	mv := m.Path + "@" + m.Version
	if zf == nil {
		want := "module " + modfile.AutoQuote(m.Path) + "\n"
		if string(mod) == want {
			return nil
		}
		modHash, _ := hashGoMod(mod)
		return notFoundErr(mv, fmt.Sprintf("the zip has no go.mod, so .mod must be %q%s", want, next),
			fmt.Errorf("%w: .mod %s, and the zip has no go.mod", errInconsistentMod, modHash))
	}
	rc, err := zf.Open()
	if err != nil {
		return notFoundErr(mv, "invalid module zip: "+firstLine(err), err)
	}
	defer rc.Close()
	// CheckZip bounded its declared size by MaxGoMod, which archive/zip
	// holds it to; the limit is for a zip that lies all the same.
	data, err := io.ReadAll(io.LimitReader(rc, maxModSize+1))
	if err != nil {
		return notFoundErr(mv, "invalid module zip: "+firstLine(err), err)
	}
	if bytes.Equal(data, mod) || sameStatements(data, mod) {
		return nil
	}
	modHash, _ := hashGoMod(mod)
	zipHash, _ := hashGoMod(data)
	return notFoundErr(mv, ".mod differs from the zip's go.mod"+next,
		fmt.Errorf("%w: .mod %s, go.mod in the zip %s", errInconsistentMod, modHash, zipHash))
}

// sameStatements reports whether the go.mod files a and b hold the same
// statements, in the same blocks, token for token, both parsing as the go
// command parses the go.mod of a dependency: they may differ in comments,
// blank lines, spacing and line endings, nothing the go command reads to
// load the module graph or build the module. The go command itself makes
// such pairs: it reads .mod from the repository as committed, and the zip
// from git archive, which applies the repository's .gitattributes (an
// eol=crlf rule, an ident expansion in a comment), and the public checksum
// database logs them. Blocks are compared as blocks: the parser reads
// some a block holds otherwise than the same tokens on one line (a block
// opened after two tokens is ignored), and the go command makes both files
// from one source, so their blocks are the same.
func sameStatements(a, b []byte) bool {
	sa, ok := statements(a)
	if !ok {
		return false
	}
	sb, ok := statements(b)
	return ok && slices.EqualFunc(sa, sb, slices.Equal[[]string])
}

// statements returns the tokens of each line of the go.mod file data,
// those of a block between lines "(" and ")" of their own, or false if
// data does not parse.
func statements(data []byte) ([][]string, bool) {
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return nil, false
	}
	var list [][]string
	for _, st := range f.Syntax.Stmt {
		switch st := st.(type) {
		case *modfile.Line:
			list = append(list, st.Token)
		case *modfile.LineBlock:
			list = append(list, append(slices.Clip(st.Token), "("))
			for _, l := range st.Line {
				list = append(list, l.Token)
			}
			list = append(list, []string{")"})
		}
	}
	return list, true
}

// copyBody copies src to dst like io.Copy, telling write errors (local)
// apart from read errors (the upstream) by wrapping the former.
func copyBody(dst io.Writer, src io.Reader) (int64, error) {
	return io.Copy(writerFunc(func(p []byte) (int, error) {
		n, err := dst.Write(p)
		if err != nil {
			err = writeError{err}
		}
		return n, err
	}), src)
}

// writerFunc is an io.Writer made of a function. It hides any ReaderFrom
// of the destination so that io.Copy calls Write.
type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// A writeError is an error writing the spooled zip.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// A fetchError is a failure to fetch a module version whose message is
// short and fit to show to the go command user, while its chain holds the
// kind (ErrNotFound or ErrUpstream) and the cause for callers and logs.
type fetchError struct {
	kind    error  // ErrNotFound or ErrUpstream
	mod     string // path@version
	reason  string // short and printable
	ctxErr  error  // context.DeadlineExceeded for any timeout, or the context's error; may be nil
	cause   error  // for the log; may be nil; not part of the message
	missing bool   // the proxy answered 404 or 410
}

func (e *fetchError) Error() string {
	return e.kind.Error() + ": " + e.mod + ": " + e.reason
}

func (e *fetchError) Unwrap() []error {
	errs := []error{e.kind}
	for _, err := range []error{e.ctxErr, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// notFound returns an ErrNotFound error with the given reason.
func (f *fileFetch) notFound(reason string, cause error) *fetchError {
	return notFoundErr(f.mod, reason, cause)
}

// notFoundErr returns an ErrNotFound error for mod, path@version, with the
// given reason.
func notFoundErr(mod, reason string, cause error) *fetchError {
	return &fetchError{kind: ErrNotFound, mod: mod, reason: reason, cause: cause}
}

// upstreamErr returns an ErrUpstream error with the given reason.
func (f *fileFetch) upstreamErr(reason string, cause error) *fetchError {
	return &fetchError{kind: ErrUpstream, mod: f.mod, reason: reason, cause: cause}
}

// transportErr classifies an error of the HTTP transport: a timeout, the
// caller's cancellation, or another failure described by reason.
func (f *fileFetch) transportErr(reason string, err error) *fetchError {
	ferr := f.upstreamErr(reason, err)
	var nerr net.Error
	switch {
	case errors.Is(f.ctx.Err(), context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		// Our timeout, the caller's deadline or the transport's: a caller
		// answers 504 whatever the transport wrapped.
		ferr.reason, ferr.ctxErr = "timed out", context.DeadlineExceeded
	case f.ctx.Err() != nil:
		ferr.reason, ferr.ctxErr = "canceled", f.ctx.Err()
	}
	return ferr
}

// readReason returns the first line of a 404 or 410 body if it is short and
// printable, else "unknown revision". A leading "not found: " is dropped,
// as the error says it already.
func readReason(body io.Reader) string {
	const fallback = "unknown revision"
	line, err := bufio.NewReaderSize(io.LimitReader(body, 4<<10), 4<<10).ReadString('\n')
	if err != nil && err != io.EOF {
		return fallback
	}
	line = strings.TrimSpace(line)
	for _, prefix := range []string{"not found: ", "gone: "} {
		line = strings.TrimPrefix(line, prefix)
	}
	if line == "" || len(line) > maxReasonSize || !utf8.ValidString(line) {
		return fallback
	}
	for _, r := range line {
		if !unicode.IsPrint(r) {
			return fallback
		}
	}
	return line
}

// firstLine returns the first line of err's message, made printable and at
// most maxReasonSize bytes, noting further lines (zip.FileErrorList has one
// per invalid file).
func firstLine(err error) string {
	msg := err.Error()
	more := strings.Count(msg, "\n")
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.Map(func(r rune) rune {
		if r < ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, msg)
	if len(msg) > maxReasonSize {
		msg = msg[:maxReasonSize-3] + "..."
	}
	if more > 0 {
		msg += fmt.Sprintf(" (and %d more)", more)
	}
	return msg
}
