package tlog_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/tlog"
)

// readPublishedFile returns the tree in a published-head file.
func readPublishedFile(t *testing.T, file string, k keys) xtlog.Tree {
	t.Helper()
	h, err := tlog.ReadPublished(file, k.verifier)
	if err != nil {
		t.Fatalf("published-head file: %v", err)
	}
	return xtlog.Tree{N: h.Size, Hash: h.Hash}
}

func openSQLiteAt(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openPublishing(t *testing.T, s tlog.Store, k keys, file string) (*tlog.Log, error) {
	return tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier, PublishedFile: file})
}

// TestPublishedFileBeforeAnswer checks that every head an Append returns is
// already recorded in the published-head file, and that the file ends with
// the log's head.
func TestPublishedFileBeforeAnswer(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t)
			file := filepath.Join(t.TempDir(), "published-head")
			l, err := openPublishing(t, b.open(t), k, file)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("an empty log wrote its published-head file (stat: %v): it has published nothing", err)
			}
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := w; i < 400; i += 16 {
						p, v, text := gosum(i)
						_, head, err := l.Append(context.Background(), p, v, text)
						if err != nil {
							t.Error(err)
							return
						}
						if got := readPublishedFile(t, file, k); got.N < head.Size {
							t.Errorf("Append returned a head of size %d while the published-head file holds size %d", head.Size, got.N)
							return
						}
					}
				})
			}
			wg.Wait()
			got, err := tlog.ReadPublished(file, k.verifier)
			if err != nil || !bytes.Equal(got.Note, l.Head().Note) {
				t.Errorf("published-head file = %q, %v; want the log's head %q", got.Note, err, l.Head().Note)
			}
			if matches, _ := filepath.Glob(file + ".tmp*"); len(matches) > 0 {
				t.Errorf("temporary files left behind: %v", matches)
			}
		})
	}
}

// TestPublishedFileRefresh checks that a head committed by another process
// sharing the store is recorded before this log serves it.
func TestPublishedFileRefresh(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	s := backends[0].open(t)
	l1 := openLog(t, s, k)
	file := filepath.Join(t.TempDir(), "published-head")
	l2, err := tlog.Open(context.Background(), s, tlog.Config{Signer: k.signer, Verifier: k.verifier, PublishedFile: file, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	appendN(t, l1, 0, 10)
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("published-head file written before the log served any head (stat: %v)", err)
	}
	// A lookup of a record l2 has not seen a head for makes it refresh.
	p, v, _ := gosum(9)
	rec, head, err := l2.Lookup(context.Background(), p, v)
	if err != nil || head.Size <= rec.ID {
		t.Fatalf("Lookup through the other log = record %d, head %d, %v", rec.ID, head.Size, err)
	}
	if got := readPublishedFile(t, file, k); got.N != head.Size {
		t.Errorf("published-head file holds size %d, want the served %d", got.N, head.Size)
	}
	appendN(t, l1, 10, 20)
	h, err := l2.Refresh(context.Background())
	if err != nil || h.Size != 20 {
		t.Fatalf("Refresh = %d, %v; want 20", h.Size, err)
	}
	if got := readPublishedFile(t, file, k); got.N != 20 {
		t.Errorf("published-head file holds size %d after a refresh to 20", got.N)
	}
}

// backupSQLite writes a consistent copy of the SQLite database at path to
// backup, as an operator's backup would be.
func backupSQLite(t *testing.T, path, backup string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, backup); err != nil {
		t.Fatalf("back up %s: %v", path, err)
	}
}

// restoreSQLite replaces the database at path by backup.
func restoreSQLite(t *testing.T, backup, path string) {
	t.Helper()
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPublishedFileRefusesOlderBackup restores a backup taken before the
// last heads were published: Open refuses it, saying what happened and what
// to do, until the operator restores a newer backup or removes the file.
func TestPublishedFileRefusesOlderBackup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sumdb.db")
	file := filepath.Join(dir, "published-head")
	k := newKeys(t)

	s := openSQLiteAt(t, path)
	l, err := openPublishing(t, s, k, file)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 100)
	backupSQLite(t, path, filepath.Join(dir, "old.db"))
	appendN(t, l, 100, 300)
	backupSQLite(t, path, filepath.Join(dir, "new.db"))
	appendN(t, l, 300, 310)
	l.Close()
	s.Close()

	restoreSQLite(t, filepath.Join(dir, "old.db"), path)
	s = openSQLiteAt(t, path)
	_, err = openPublishing(t, s, k, file)
	s.Close()
	want := "the database holds a tree of size 100 but this server published a tree of size 310"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "older backup") {
		t.Fatalf("Open(older backup) = %v, want an error saying %q and why", err, want)
	}
	t.Logf("Open(older backup): %v", err)

	// A newer backup is still older than the published head.
	restoreSQLite(t, filepath.Join(dir, "new.db"), path)
	s = openSQLiteAt(t, path)
	if _, err = openPublishing(t, s, k, file); err == nil || !strings.Contains(err.Error(), "size 300 but this server published a tree of size 310") {
		t.Fatalf("Open(backup of size 300) = %v, want a refusal", err)
	}
	// The operator decides to serve it anyway. (A temporary file left by a
	// process killed while it wrote the file goes away too.)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".tmp123", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = openPublishing(t, s, k, file)
	if err != nil {
		t.Fatalf("Open after removing the published-head file: %v", err)
	}
	if got := readPublishedFile(t, file, k); got.N != 300 {
		t.Errorf("published-head file after Open holds size %d, want 300", got.N)
	}
	if _, err := os.Stat(file + ".tmp123"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after Open (stat: %v)", err)
	}
	l.Close()
	s.Close()
}

// TestPublishedFileRefusesOtherLog opens a log whose tree is larger than
// the published head but does not contain it: another log under the same
// key, as a wrong database URL or a rewritten database would give.
func TestPublishedFileRefusesOtherLog(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	file := filepath.Join(t.TempDir(), "published-head")
	l, err := openPublishing(t, backends[0].open(t), k, file)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 100)
	l.Close()

	other := backends[0].open(t)
	lo := openLog(t, other, k)
	appendN(t, lo, 50, 200) // other records first
	lo.Close()
	_, err = openPublishing(t, other, k, file)
	want := "the database's tree of size 150 does not contain the tree of size 100 that this server published"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open(other log) = %v, want an error saying %q", err, want)
	}

	// Signed by another key.
	_, err = openPublishing(t, backends[0].open(t), newKeys(t), file)
	if err == nil || !strings.Contains(err.Error(), "must hold a tree head signed by key") {
		t.Fatalf("Open(published-head file of another key) = %v, want a refusal", err)
	}
}

// TestPublishedFileAccepts opens logs whose trees contain the published
// head: the same tree, and a larger one that another process grew.
func TestPublishedFileAccepts(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t)
			file := filepath.Join(t.TempDir(), "published-head")
			s := b.open(t)
			l, err := openPublishing(t, s, k, file)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 0, 300)
			l.Close()
			if l, err = openPublishing(t, s, k, file); err != nil {
				t.Fatalf("reopen on the same tree: %v", err)
			}
			l.Close()
			other := openLog(t, s, k) // another replica, without the file
			appendN(t, other, 300, 1000)
			if l, err = openPublishing(t, s, k, file); err != nil {
				t.Fatalf("reopen on a larger tree containing the published head: %v", err)
			}
			l.Close()
			if got := readPublishedFile(t, file, k); got.N != 1000 {
				t.Errorf("published-head file holds size %d after Open, want the served 1000", got.N)
			}
		})
	}
}

// TestPublishedFileUnwritable checks that a head that cannot be recorded is
// not given to anyone, and that the log goes on once the file is writable.
func TestPublishedFileUnwritable(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := backends[0].open(t)
	l, err := openPublishing(t, s, k, filepath.Join(dir, "published-head"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A file where the directory should be: file modes would not stop
	// tests running as root.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p, v, text := gosum(1)
	if _, _, err := l.Append(context.Background(), p, v, text); err == nil || !strings.Contains(err.Error(), "record the published head") {
		t.Fatalf("Append with an unwritable published-head file = %v, want an error", err)
	}
	if h := l.Head(); h.Size != 0 {
		t.Fatalf("the log serves a head of size %d that it could not record", h.Size)
	}
	if _, _, err := l.Lookup(context.Background(), p, v); err == nil {
		t.Fatal("Lookup of the record served a head that could not be recorded")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	rec, head, err := l.Lookup(context.Background(), p, v)
	if err != nil || rec.ID != 0 || head.Size != 1 {
		t.Fatalf("Lookup once the file is writable = record %d, head %d, %v; want 0, 1", rec.ID, head.Size, err)
	}
	if got := readPublishedFile(t, filepath.Join(dir, "published-head"), k); got.N != 1 {
		t.Errorf("published-head file holds size %d, want 1", got.N)
	}
}

// TestPublishedFileSlots checks the two slots of the published-head file:
// a slot torn by a crash leaves the other one's head, a file with no whole
// slot is refused, and a file of the older format (the signed note alone)
// is read and replaced by the new format at the next head.
func TestPublishedFileSlots(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "published-head")
	s := openSQLiteAt(t, filepath.Join(dir, "sumdb.db"))
	defer s.Close()
	l := openLog(t, s, k)
	appendN(t, l, 0, 10)
	l.Close()
	old := l.Head()

	// The older format.
	if err := os.WriteFile(file, old.Note, 0o600); err != nil {
		t.Fatal(err)
	}
	l2, err := openPublishing(t, s, k, file)
	if err != nil {
		t.Fatalf("Open with a published-head file of the older format: %v", err)
	}
	// One append at a time, so that each head is recorded in turn and the
	// two slots hold different heads (19 and 20) for the tearing below.
	for i := 10; i < 20; i++ {
		p, v, text := gosum(i)
		if _, _, err := l2.Append(context.Background(), p, v, text); err != nil {
			t.Fatal(err)
		}
	}
	l2.Close()
	if got := readPublishedFile(t, file, k); got.N != 20 {
		t.Fatalf("published-head file holds size %d, want 20", got.N)
	}
	data, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(data, []byte("SUMDBPH1")) {
		t.Fatalf("published-head file was not rewritten in the slot format: %q..., %v", data[:min(len(data), 16)], err)
	}

	// Tear the slot of the newest head: the other slot holds an older one.
	newest := 0
	for i := 0; i < 2; i++ {
		if bytes.Contains(data[i*len(data)/2:(i+1)*len(data)/2], l2.Head().Note) {
			newest = i
		}
	}
	torn := bytes.Clone(data)
	torn[newest*len(data)/2+40] ^= 0xff
	if err := os.WriteFile(file, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readPublishedFile(t, file, k); got.N >= 20 || got.N < 10 {
		t.Errorf("after tearing the newest slot, published-head file holds size %d, want the older head", got.N)
	}
	// Both slots torn: refused.
	torn[(1-newest)*len(data)/2+40] ^= 0xff
	if err := os.WriteFile(file, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.ReadPublished(file, k.verifier); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("ReadPublished(both slots torn) = %v, want an error saying the file is damaged", err)
	}
}

// TestPublishedFileDamagedSlot damages the first sector of each slot of a
// log's published-head file in turn, as a torn write or a bad disk would:
// the log opens on the other slot's head, refuses an older database as
// before, and its next head rewrites the file whole. With both slots
// damaged, it refuses to open, saying so.
func TestPublishedFileDamagedSlot(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t)
			file := filepath.Join(t.TempDir(), "published-head")
			s := b.open(t)
			l, err := openPublishing(t, s, k, file)
			if err != nil {
				t.Fatal(err)
			}
			// One append at a time: each head is recorded, and the slots
			// hold the last two.
			for i := range 10 {
				p, v, text := gosum(i)
				if _, _, err := l.Append(context.Background(), p, v, text); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			half := len(data) / 2
			for slot := range 2 {
				damaged := bytes.Clone(data)
				clear(damaged[slot*half : slot*half+4096])
				if err := os.WriteFile(file, damaged, 0o600); err != nil {
					t.Fatal(err)
				}
				pub, err := tlog.ReadPublished(file, k.verifier)
				if err != nil || pub.Size < 9 {
					t.Fatalf("slot %d damaged: ReadPublished = %d, %v; want the other slot's head, 9 or 10", slot, pub.Size, err)
				}
				// The head read still protects: a database without it is refused.
				if _, err := openPublishing(t, b.open(t), k, file); err == nil || !strings.Contains(err.Error(), "this server published a tree of size") {
					t.Fatalf("slot %d damaged: Open(empty database) = %v, want a refusal", slot, err)
				}
				l, err := openPublishing(t, s, k, file)
				if err != nil {
					t.Fatalf("slot %d damaged: Open = %v", slot, err)
				}
				p, v, text := gosum(100 + slot)
				_, head, err := l.Append(context.Background(), p, v, text)
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
				data, err = os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(data[:half], head.Note) || !bytes.Contains(data[half:], head.Note) {
					t.Errorf("slot %d damaged: the next head did not rewrite the file whole", slot)
				}
			}
			damaged := bytes.Clone(data)
			clear(damaged[:512])
			clear(damaged[half : half+512])
			if err := os.WriteFile(file, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = openPublishing(t, s, k, file)
			if err == nil || !strings.Contains(err.Error(), "both of its slots are damaged") {
				t.Fatalf("both slots damaged: Open = %v, want an error saying so", err)
			}
		})
	}
}
