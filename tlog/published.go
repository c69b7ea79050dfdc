package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// maxPublishedFile bounds the published-head file: a signed tree note is a
// few hundred bytes, with up to 100 signatures a few kilobytes.
const maxPublishedFile = 64 << 10

// readPublished returns the head recorded in the published-head file, or
// a zero Head if the file does not exist.
func readPublished(file string, v note.Verifier) (Head, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("read published head: %w", err)
	}
	if len(data) > maxPublishedFile {
		return Head{}, fmt.Errorf("read published head %s: %d bytes is too large for a signed tree head", file, len(data))
	}
	n, err := note.Open(data, note.VerifierList(v))
	if err != nil {
		return Head{}, fmt.Errorf("read published head %s: %w: it must hold a tree head signed by key %s (remove the file only if this server now serves another log)", file, err, v.Name())
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return Head{}, fmt.Errorf("read published head %s: %w", file, err)
	}
	return Head{Size: tree.N, Hash: tree.Hash, Note: data}, nil
}

// removeTemps removes the temporary files that writePublished leaves
// behind when the process is killed between creating and renaming one.
func removeTemps(file string) {
	dir, prefix := filepath.Dir(file), filepath.Base(file)+".tmp"
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// checkPublished returns an error unless the tree of the stored head
// contains the published head pub (recorded in file): it is at least as
// large, and its hashes at pub's size give pub's root. The stored tiles are
// read through x/mod's TileHashReader, which proves each against the stored
// root.
func checkPublished(ctx context.Context, s Store, stored, pub Head, file string) error {
	if pub.Size == 0 {
		return nil
	}
	if stored.Size < pub.Size {
		return fmt.Errorf("the database holds a tree of size %d but this server published a tree of size %d (recorded in %s): "+
			"the database was restored from an older backup or lost commits; restore a backup holding at least %d records, "+
			"or, to serve the older tree anyway, remove %s (clients that saw the larger tree will report a SECURITY ERROR once the log grows differently)",
			stored.Size, pub.Size, file, pub.Size, file)
	}
	hr := xtlog.TileHashReader(xtlog.Tree{N: stored.Size, Hash: stored.Hash}, &tileReader{ctx: ctx, s: s})
	h, err := xtlog.TreeHash(pub.Size, hr)
	if err != nil {
		return fmt.Errorf("check the published head of size %d (recorded in %s) against the stored tree of size %d: %w", pub.Size, file, stored.Size, err)
	}
	if h != pub.Hash {
		return fmt.Errorf("the database's tree of size %d does not contain the tree of size %d that this server published (recorded in %s): "+
			"the database holds another log, or was rewritten; point sumdb at this log's database or restore a backup of it "+
			"(remove %s only if this server is meant to serve another log now)",
			stored.Size, pub.Size, file, file)
	}
	return nil
}

// writePublished replaces file by one holding msg, atomically: a new file
// in the same directory, synced, renamed over the old one. The rename is
// not synced (see Config.PublishedFile). A missing directory is created.
func writePublished(file string, msg []byte) (err error) {
	dir := filepath.Dir(file)
	f, err := os.CreateTemp(dir, filepath.Base(file)+".tmp*")
	if errors.Is(err, fs.ErrNotExist) {
		// The data directory of a server whose store is elsewhere.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, filepath.Base(file)+".tmp*")
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(msg); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// RecordPublished records the head of the log in s in file, the
// published-head file of a Log (Config.PublishedFile), as a Log does
// before it serves a head: the import of a log into a new store records its
// head there, so that the server that next serves the store refuses an older
// copy of it. The head must verify with v, and the store's tree must contain
// the head that file holds already, if any (as Open checks); a file that
// holds a larger or equal head is left as it is. It returns the store's head.
func RecordPublished(ctx context.Context, s Store, v note.Verifier, file string) (Head, error) {
	head, err := s.ReadHead(ctx)
	if err != nil {
		return Head{}, fmt.Errorf("read head: %w", err)
	}
	if head.Size == 0 {
		return Head{}, nil
	}
	if _, err := note.Open(head.Note, note.VerifierList(v)); err != nil {
		return Head{}, fmt.Errorf("stored head of size %d is not signed by key %s: %w: %w", head.Size, v.Name(), ErrWrongKey, err)
	}
	removeTemps(file)
	pub, err := readPublished(file, v)
	if err != nil {
		return Head{}, err
	}
	if err := checkPublished(ctx, s, head, pub, file); err != nil {
		return Head{}, err
	}
	if pub.Size >= head.Size {
		return head, nil
	}
	if err := writePublished(file, head.Note); err != nil {
		return Head{}, fmt.Errorf("record the published head of size %d: %w", head.Size, err)
	}
	return head, nil
}
