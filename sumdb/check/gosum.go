package check

import (
	"bytes"
	"fmt"
	"strings"
)

// An Entry is one line of a go.sum or go.work.sum file:
//
//	<path> <version> h1:<hash of the module zip>
//	<path> <version>/go.mod h1:<hash of the go.mod file>
type Entry struct {
	File    string `json:"file"`
	Line    int    `json:"line"`              // 1-based
	Path    string `json:"path,omitempty"`    // module path
	Version string `json:"version,omitempty"` // without the "/go.mod" suffix
	GoMod   bool   `json:"go_mod,omitempty"`  // a go.mod hash, not a zip hash
	Hash    string `json:"hash,omitempty"`    // "h1:..." as written
}

// Module returns the line's module version as the go.sum file writes it:
// "path version" or "path version/go.mod".
func (l Entry) Module() string {
	if l.GoMod {
		return l.Path + " " + l.Version + "/go.mod"
	}
	return l.Path + " " + l.Version
}

// text returns the go.sum line, without its newline.
func (l Entry) text() string { return l.Module() + " " + l.Hash }

// lineFormat is the form of a go.sum line, for error messages.
const lineFormat = `"<path> <version>[/go.mod] h1:<hash>"`

// emptyGoModHash is the hash of a go.mod file of zero bytes. Old go commands
// wrote it into go.sum files by mistake; the go command drops such lines
// when it reads go.sum (cmd/go/internal/modfetch), and so does Run.
const emptyGoModHash = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="

// ParseGoSum parses data, the content of the go.sum or go.work.sum file
// named file, as the go command reads it: lines split at '\n' and then into
// fields at white space; blank lines are skipped. A line that does not have
// three fields, has no version, or whose hash is not an h1: hash (the only
// hash the go command and the checksum database know) is returned as a
// Result of kind Malformed rather than as an Entry. ParseGoSum does not check
// module paths and versions: Run does that after leaving out private
// modules, whose paths need not be valid public ones.
func ParseGoSum(file string, data []byte) (lines []Entry, malformed []Result) {
	lineno := 0
	for len(data) > 0 {
		var raw []byte
		lineno++
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) {
			r := Result{Entry: Entry{File: file, Line: lineno}, Kind: Malformed, Message: fmt.Sprintf(format, args...)}
			if len(f) >= 2 {
				r.Path = f[0]
				r.Version, r.GoMod = strings.CutSuffix(f[1], "/go.mod")
			}
			malformed = append(malformed, r)
		}
		if len(f) != 3 {
			bad("wrong number of fields %d (want %s)", len(f), lineFormat)
			continue
		}
		if !strings.HasPrefix(f[2], "h1:") {
			bad("hash %q is not an h1: hash (want %s)", clip(f[2], 40), lineFormat)
			continue
		}
		version, gomod := strings.CutSuffix(f[1], "/go.mod")
		if version == "" {
			bad("no version (want %s)", lineFormat)
			continue
		}
		lines = append(lines, Entry{File: file, Line: lineno, Path: f[0], Version: version, GoMod: gomod, Hash: f[2]})
	}
	return lines, malformed
}

// clip shortens s to at most n bytes, for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
