package sumdb

import (
	"fmt"
	"strings"

	"golang.org/x/mod/module"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modver"
	"github.com/sumdb/sumdb/sumdb/fetch"
)

// ParseLookup parses the module version named by a lookup request: escaped
// is the part of the URL path after "/lookup/", such as
// "github.com/!azure/x@v1.0.0". The path and version are case-escaped as in
// the GOPROXY protocol (module.EscapePath, module.EscapeVersion); only the
// canonical escape is accepted, so every module version has exactly one
// lookup URL. The result has passed modver.Check.
//
// The error wraps fetch.ErrInvalid.
func ParseLookup(escaped string) (path, version string, err error) {
	i := strings.LastIndexByte(escaped, '@')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q: missing @version (want <module path>@<version>)", fetch.ErrInvalid, escaped)
	}
	escPath, escVersion := escaped[:i], escaped[i+1:]
	path, err = module.UnescapePath(escPath)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", fetch.ErrInvalid, err)
	}
	version, err = module.UnescapeVersion(escVersion)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", fetch.ErrInvalid, err)
	}
	// Unescaping rejects every non-canonical form it knows of; re-escaping
	// makes the one-URL-per-version property hold by construction.
	if e, err := module.EscapePath(path); err != nil || e != escPath {
		return "", "", fmt.Errorf("%w: %q: module path not escaped canonically", fetch.ErrInvalid, escaped)
	}
	if e, err := module.EscapeVersion(version); err != nil || e != escVersion {
		return "", "", fmt.Errorf("%w: %q: version not escaped canonically", fetch.ErrInvalid, escaped)
	}
	if err := modver.Check(path, version); err != nil {
		return "", "", err
	}
	return path, version, nil
}

// ParseTilePath parses path, the part of a tile URL after its first slash
// ("tile/8/0/000.p/1", "tile/8/data/000"), as the server does: only the
// canonical form (xtlog.Tile.Path) of a tile of height 8 is accepted, so
// that every tile has exactly one URL. A data tile has level -1.
func ParseTilePath(path string) (xtlog.Tile, error) { return parseTilePath(path) }

// CheckRecordText reports whether text is exactly the two go.sum lines of
// path@version, with well-formed h1 hashes, and a valid record: what the
// server checks of every record before it logs one.
func CheckRecordText(path, version string, text []byte) error {
	return checkRecordText(path, version, text)
}
