package watch

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/sumdb/sumdb/internal/modver"
	"github.com/sumdb/sumdb/sumdb/audit"
)

// Authorized are the versions that the owners of the watched modules
// released, with their hashes. The zero value holds none; use
// NewAuthorized.
type Authorized struct {
	versions map[string]Hashes // by "path@version"
}

// NewAuthorized returns an empty set of authorized versions.
func NewAuthorized() *Authorized {
	return &Authorized{versions: make(map[string]Hashes)}
}

// Len returns the number of authorized versions.
func (a *Authorized) Len() int { return len(a.versions) }

// Add authorizes path@version with hashes h (either may be ""). A version
// added twice keeps both hashes; two different hashes of one kind are an
// error: the owner cannot have released both.
func (a *Authorized) Add(path, version string, h Hashes) error {
	if err := modver.Check(path, version); err != nil {
		return err
	}
	for _, s := range []string{h.Zip, h.Mod} {
		if s == "" {
			continue
		}
		if _, err := audit.ParseRecord([]byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, s, path, version, s))); err != nil {
			return fmt.Errorf("%s@%s: %w", path, version, err)
		}
	}
	key := path + "@" + version
	old := a.versions[key]
	if old.Zip != "" && h.Zip != "" && old.Zip != h.Zip {
		return fmt.Errorf("%s@%s is authorized with two zip hashes, %s and %s: keep the one released", path, version, old.Zip, h.Zip)
	}
	if old.Mod != "" && h.Mod != "" && old.Mod != h.Mod {
		return fmt.Errorf("%s@%s is authorized with two go.mod hashes, %s and %s: keep the one released", path, version, old.Mod, h.Mod)
	}
	if h.Zip == "" {
		h.Zip = old.Zip
	}
	if h.Mod == "" {
		h.Mod = old.Mod
	}
	a.versions[key] = h
	return nil
}

// maxAuthorizedLine bounds a line of an authorized file: a module path, a
// version and a hash.
const maxAuthorizedLine = 4096

// AddGoSum authorizes the versions of data, go.sum lines
// ("<path> <version> h1:..." and "<path> <version>/go.mod h1:..."); blank
// lines and lines starting with "#" are skipped. name names data in errors.
func (a *Authorized) AddGoSum(name string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1024), maxAuthorizedLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return fmt.Errorf("%s:%d: %q is not a go.sum line \"<path> <version>[/go.mod] h1:<hash>\"", name, n, line)
		}
		var h Hashes
		version, isMod := strings.CutSuffix(f[1], "/go.mod")
		if isMod {
			h.Mod = f[2]
		} else {
			h.Zip = f[2]
		}
		if err := a.Add(f[0], version, h); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w (lines are at most %d bytes)", name, err, maxAuthorizedLine)
	}
	return nil
}

// check returns the alert kind of a logged version, if it is one, and the
// authorized hashes of a mismatch: a version logged with any hash of a
// kind (zip or go.mod) that is not the authorized one of that kind.
func (a *Authorized) check(v *loggedVersion) (Kind, *Hashes) {
	h, ok := a.versions[v.path+"@"+v.version]
	if !ok {
		return KindUnauthorized, nil
	}
	differs := func(want string, got []string) bool {
		return want != "" && slices.ContainsFunc(got, func(s string) bool { return s != want })
	}
	if differs(h.Zip, v.zips) || differs(h.Mod, v.mods) {
		return KindMismatch, &h
	}
	return "", nil
}
