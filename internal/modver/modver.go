// Package modver decides which module versions can be entries of a
// checksum database, by the go command's rules, before anything touches an
// upstream or a log.
package modver

import (
	"errors"
	"fmt"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// ErrInvalid marks an error meaning the request names no possible module
// version: a malformed path, a non-canonical or mismatched version, or a bad
// escape. The server answers such a lookup with 400 without asking the
// upstream. Errors wrap it with the reason:
//
//	invalid module version: example.com/m@v1.2: invalid version: must be canonical (v1.2.0)
var ErrInvalid = errors.New("invalid module version")

// Check reports whether path@version can be a checksum database entry,
// before anything touches the upstream or the log. It applies the rules of
// the go command: a valid module path (module.CheckPath), a canonical
// semantic version (module.CanonicalVersion(version) == version, which admits
// pseudo-versions and golang.org/toolchain's v0.0.1-go1.X.Y.<os>-<arch>), a
// major version matching the path's /vN or gopkg.in .vN suffix (module.Check),
// and "+incompatible" only for major versions ≥ 2 on paths without a major
// version suffix.
//
// The error wraps ErrInvalid and is short enough to show to a user.
func Check(path, version string) error {
	if err := module.CheckPath(path); err != nil {
		// The message is `malformed module path "p": reason`, path quoted.
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	mod := path + "@" + version
	if !Printable(version) {
		mod = fmt.Sprintf("%s@%q", path, version)
	}
	if canon := module.CanonicalVersion(version); canon != version {
		if canon == "" {
			return fmt.Errorf("%w: %s: invalid version: not a semantic version (want the form v1.2.3)", ErrInvalid, mod)
		}
		return fmt.Errorf("%w: %s: invalid version: must be canonical (%s)", ErrInvalid, mod, canon)
	}
	if err := module.Check(path, version); err != nil {
		var merr *module.ModuleError
		if errors.As(err, &merr) {
			if verr, ok := merr.Err.(*module.InvalidVersionError); ok {
				// module.ModuleError omits the version unless it is set;
				// say it the way the go command does.
				return fmt.Errorf("%w: %s: invalid version: %w", ErrInvalid, mod, verr.Err)
			}
		}
		return fmt.Errorf("%w: %s: %w", ErrInvalid, mod, err)
	}
	if semver.Build(version) == "+incompatible" {
		// module.Check accepts any +incompatible version on a path without a
		// major suffix and any version matching the suffix, so the go
		// command's two extra rules live here (cmd/go/internal/modfetch).
		if _, pathMajor, _ := module.SplitPathVersion(path); pathMajor != "" {
			return fmt.Errorf("%w: %s: invalid version: +incompatible suffix not allowed: module path has a major version suffix (%s)", ErrInvalid, mod, pathMajor)
		}
		if major := semver.Major(version); major == "v0" || major == "v1" {
			return fmt.Errorf("%w: %s: invalid version: +incompatible suffix not allowed: major version %s is compatible", ErrInvalid, mod, major)
		}
	}
	return nil
}

// Printable reports whether s is non-empty, at most 200 bytes, and made of
// printable ASCII, so that it can be shown to a user without quoting.
func Printable(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
