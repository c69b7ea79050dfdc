package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/sumdb/sumdb/internal/limitbuf"
)

// Bounds of the git commands that AddGit runs.
const (
	gitTimeout = 5 * time.Minute // one command
	maxGitOut  = 16 << 20        // the output kept of a listing or a go.mod
	maxTags    = 100000          // tags of one repository
)

// AddGit authorizes the versions tagged in the git repository at dir, a
// clone with a work tree, of the modules that match: each tag that is a
// canonical semantic version ("v1.2.3") is a version of the module at the
// root of the repository, and each "<dir>/v1.2.3" of the module in that
// subdirectory. The module path is the one the tag's go.mod declares; a
// tag without a go.mod is a version of the root module's path (from the
// go.mod of HEAD) joined with the subdirectory, whose go.mod is then the
// one the go command synthesizes ("module <path>\n"), and whose major
// versions from v2 on are "+incompatible". The hashes are computed
// locally, as the go command computes them: the zip of the tag's files
// (golang.org/x/mod/zip.CreateFromVCS, which leaves out what git archive
// does, nested modules and vendor directories) hashed with dirhash.HashZip,
// and the go.mod file hashed alone.
//
// A tag that is no version of a watched module is skipped; one that cannot
// be a module version (a go.mod whose path lacks the tag's major version
// suffix) is skipped with a warning to logger.
func (a *Authorized) AddGit(ctx context.Context, dir string, match func(path string) bool, logger *slog.Logger) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("git repository %s: %w", dir, err)
	}
	out, err := git(ctx, abs, "tag", "--list")
	if err != nil {
		return fmt.Errorf("list the tags of git repository %s: %w: give the directory of a git clone with its tags", dir, err)
	}
	tags := strings.Fields(string(out))
	if len(tags) > maxTags {
		return fmt.Errorf("git repository %s has %d tags, more than %d", dir, len(tags), maxTags)
	}
	root := ""
	if gomod, ok, err := gitFile(ctx, abs, "HEAD", "go.mod"); err != nil {
		return fmt.Errorf("git repository %s: %w", dir, err)
	} else if ok {
		if p := modfile.ModulePath(gomod); p != "" {
			root, _, _ = module.SplitPathVersion(p)
		}
	}
	for _, tag := range tags {
		sub, version := "", tag
		if i := strings.LastIndex(tag, "/"); i >= 0 {
			sub, version = tag[:i], tag[i+1:]
		}
		if !semver.IsValid(version) || semver.Canonical(version) != version {
			continue
		}
		if err := a.addTag(ctx, abs, root, tag, sub, version, match, logger); err != nil {
			return fmt.Errorf("git repository %s: tag %s: %w", dir, tag, err)
		}
	}
	return nil
}

// addTag authorizes the version of tag, of the module in subdirectory sub.
func (a *Authorized) addTag(ctx context.Context, repo, root, tag, sub, version string, match func(string) bool, logger *slog.Logger) error {
	modFile := "go.mod"
	if sub != "" {
		modFile = sub + "/go.mod"
	}
	gomod, ok, err := gitFile(ctx, repo, tag, modFile)
	if err != nil {
		return err
	}
	var path string
	if ok {
		if path = modfile.ModulePath(gomod); path == "" {
			logger.WarnContext(ctx, "watch: skipped a tag whose go.mod declares no module", "tag", tag)
			return nil
		}
	} else {
		if root == "" {
			logger.WarnContext(ctx, "watch: skipped a tag without a go.mod in a repository whose HEAD has none either: its module path is unknown", "tag", tag)
			return nil
		}
		path = root
		if sub != "" {
			path = root + "/" + sub
		}
		if semver.Major(version) != "v0" && semver.Major(version) != "v1" {
			version += "+incompatible"
		}
		gomod = []byte(fmt.Sprintf("module %s\n", modfile.AutoQuote(path)))
	}
	if !match(path) {
		return nil
	}
	if err := module.Check(path, version); err != nil {
		logger.WarnContext(ctx, "watch: skipped a tag that is no version of its module", "tag", tag, "err", err)
		return nil
	}
	zipHash, err := zipHash(ctx, repo, tag, sub, module.Version{Path: path, Version: version})
	if err != nil {
		return err
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gomod)), nil
	})
	if err != nil {
		return fmt.Errorf("hash go.mod: %w", err)
	}
	return a.Add(path, version, Hashes{Zip: zipHash, Mod: modHash})
}

// zipHash returns the hash of the module zip of m made from the files of
// revision rev in subdirectory sub of repo.
func zipHash(ctx context.Context, repo, rev, sub string, m module.Version) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "sumdb-watch-*.zip")
	if err != nil {
		return "", fmt.Errorf("make the module zip: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := modzip.CreateFromVCS(f, m, repo, rev, sub); err != nil {
		return "", fmt.Errorf("make the module zip of %s@%s: %w", m.Path, m.Version, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("make the module zip: %w", err)
	}
	h, err := dirhash.HashZip(f.Name(), dirhash.Hash1)
	if err != nil {
		return "", fmt.Errorf("hash the module zip of %s@%s: %w", m.Path, m.Version, err)
	}
	return h, nil
}

// gitFile returns the content of file at revision rev, and whether it
// exists there.
func gitFile(ctx context.Context, repo, rev, file string) ([]byte, bool, error) {
	if _, err := git(ctx, repo, "cat-file", "-e", rev+":"+file); err != nil {
		var xerr *exec.ExitError
		if errors.As(err, &xerr) {
			return nil, false, nil
		}
		return nil, false, err
	}
	data, err := git(ctx, repo, "cat-file", "blob", rev+":"+file)
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// git runs git with args in repo and returns its output, bounded in size
// and time.
func git(ctx context.Context, repo string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	stdout, stderr := limitbuf.New(maxGitOut), limitbuf.New(4096)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	if stdout.Truncated() {
		return nil, fmt.Errorf("git %s: more than %d bytes of output", args[0], maxGitOut)
	}
	return stdout.Bytes(), nil
}
