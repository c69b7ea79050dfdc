package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/durable"
)

// maxPublishedFile bounds a signed tree note in the published-head file: a
// note is a few hundred bytes, with up to 100 signatures a few kilobytes.
// A file of the older format, the note alone, is at most this long.
const maxPublishedFile = 64 << 10

// The published-head file has two slots, written in turn in place, each
// with a checksum, so that a write torn by a crash leaves the other slot
// whole: a write is one pwrite and one fdatasync of a file whose size never
// changes, several times cheaper than a new file synced and renamed. A
// slot is
//
//	"SUMDBPH1", a sequence number (uint64, big-endian), the note's length
//	(uint32), the CRC-32C of the sequence number, length and note
//	(uint32), then the signed note,
//
// padded to pubSlotSize. The whole slot, holding a head signed by the
// log's key, with the larger sequence number holds the head.
//
// The format is told by the file's size and first bytes, never by slot 0's
// magic alone, which a torn or zeroed first sector destroys: a file of the
// older format, the signed note alone, is at most maxPublishedFile bytes and
// begins with the tree note's first line (pubOldPrefix), which no slot
// begins with; any other file is read as two slots, a file of another size
// than pubFileSize (cut short, or extended) too, for what it holds of them.
const (
	pubMagic     = "SUMDBPH1"
	pubOldPrefix = "go.sum database tree\n"
	pubSlotHdr   = len(pubMagic) + 8 + 4 + 4
	pubSlotSize  = pubSlotHdr + maxPublishedFile
	pubFileSize  = 2 * pubSlotSize
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// encodeSlot returns the slot holding msg with sequence number seq.
func encodeSlot(seq uint64, msg []byte) []byte {
	b := make([]byte, pubSlotHdr, pubSlotHdr+len(msg))
	copy(b, pubMagic)
	binary.BigEndian.PutUint64(b[8:], seq)
	binary.BigEndian.PutUint32(b[16:], uint32(len(msg)))
	b = append(b, msg...)
	crc := crc32.Update(crc32.Checksum(b[8:20], crc32c), crc32c, msg)
	binary.BigEndian.PutUint32(b[20:], crc)
	return b
}

// decodeSlot returns the sequence number and note of a slot, or ok false
// if it is not whole.
func decodeSlot(b []byte) (seq uint64, msg []byte, ok bool) {
	if len(b) < pubSlotHdr || string(b[:8]) != pubMagic {
		return 0, nil, false
	}
	seq = binary.BigEndian.Uint64(b[8:])
	n := binary.BigEndian.Uint32(b[16:])
	if n == 0 || n > maxPublishedFile || len(b) < pubSlotHdr+int(n) {
		return 0, nil, false
	}
	msg = b[pubSlotHdr : pubSlotHdr+int(n)]
	if crc32.Update(crc32.Checksum(b[8:20], crc32c), crc32c, msg) != binary.BigEndian.Uint32(b[20:]) {
		return 0, nil, false
	}
	return seq, msg, true
}

// isOldFormat reports whether data, the content of a published-head file,
// has the older format: the signed note alone.
func isOldFormat(data []byte) bool {
	return len(data) <= maxPublishedFile && bytes.HasPrefix(data, []byte(pubOldPrefix))
}

// ReadPublished returns the head recorded in a published-head file
// (Config.PublishedFile), or a zero Head if the file does not exist. The
// head must verify with v. Of a file of two slots, it returns the newest
// head of a whole slot, and fails only if neither slot holds one.
func ReadPublished(file string, v note.Verifier) (Head, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("read published head: %w", err)
	}
	defer f.Close()
	// Past pubFileSize, nothing is read: a slot lies within it.
	data, err := io.ReadAll(io.LimitReader(f, int64(pubFileSize)+1))
	if err != nil {
		return Head{}, fmt.Errorf("read published head: %w", err)
	}
	return parsePublished(data, v, file)
}

// parsePublished returns the head recorded in data, the content of the
// published-head file file (named in errors), or the first pubFileSize+1
// bytes of it.
func parsePublished(data []byte, v note.Verifier, file string) (Head, error) {
	if isOldFormat(data) {
		h, err := openHead(data, v)
		var unverified *note.UnverifiedNoteError
		switch {
		case err == nil:
			return h, nil
		case errors.As(err, &unverified): // signed by other keys only
			return Head{}, wrongKey(file, v, err)
		default:
			return Head{}, damaged(file, fmt.Sprintf("its signed tree head, of the older format, is damaged (%v)", err))
		}
	}
	var (
		found      bool
		best       Head
		bestSeq    uint64
		foreignErr error // of a whole slot whose head does not verify with v
	)
	data = data[:min(len(data), pubFileSize)]
	for i := range 2 {
		if i*pubSlotSize >= len(data) {
			break
		}
		seq, msg, ok := decodeSlot(data[i*pubSlotSize : min(len(data), (i+1)*pubSlotSize)])
		if !ok {
			continue
		}
		h, err := openHead(msg, v)
		if err != nil {
			// Whole, but not this log's: another key's, or a note whose
			// checksum was recomputed after a change. It is not a head
			// this log published; the other slot may be.
			foreignErr = err
			continue
		}
		if !found || seq > bestSeq || (seq == bestSeq && h.Size > best.Size) {
			found, best, bestSeq = true, h, seq
		}
	}
	switch {
	case found:
		return best, nil
	case foreignErr != nil:
		return Head{}, wrongKey(file, v, foreignErr)
	case len(data) == pubFileSize:
		return Head{}, damaged(file, "both of its slots are damaged")
	default:
		return Head{}, damaged(file, fmt.Sprintf("it is %d bytes long and holds neither a whole slot of the two-slot format (%d bytes) nor a signed tree head of the older format", len(data), pubFileSize))
	}
}

// openHead returns the head of the signed tree note msg, which must verify
// with v.
func openHead(msg []byte, v note.Verifier) (Head, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Head{}, err
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return Head{}, err
	}
	return Head{Size: tree.N, Hash: tree.Hash, Note: bytes.Clone(msg)}, nil
}

// wrongKey returns the error of a published-head file whose heads do not
// verify with v: the file of another log, or a key file of another log.
func wrongKey(file string, v note.Verifier, err error) error {
	return fmt.Errorf("read published head %s: %w: it must hold a tree head signed by key %s: "+
		"give the server the key of the log this data directory belongs to, "+
		"or remove the file only if this server now serves another log", file, err, v.Name())
}

// damaged returns the error of a published-head file that holds no whole
// head, what says why: what the operator may do, and what each choice costs.
func damaged(file, what string) error {
	return fmt.Errorf("read published head %s: the file is damaged: %s; the newest head this server published is lost with it (check the disk): "+
		"put in its place the newest signed head of this log that a client has (a go command's $GOPATH/pkg/sumdb/<name>/latest, read as it is), "+
		"so that the database is checked against it, or, as a last resort, remove the file: the server then trusts the database as it is, "+
		"and can no longer tell whether it was restored from an older backup or lost commits",
		file, what)
}

// removeTemps removes the temporary files that publishedFile.create leaves
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

// A publishedFile writes a published-head file in place, alternating its
// slots. Its methods are not safe for concurrent use (Log.pubMu).
type publishedFile struct {
	name   string
	f      *os.File // open for writing in place; nil until this process has created the file
	seq    uint64   // sequence number of the newest slot, once f is open
	newest int      // the slot holding the newest head, once f is open
	closed bool

	syncDir func(dir string) error // durable.SyncDir; tests record the calls
}

// openPublished returns the published-head file file, and the head it
// holds, without creating it.
func openPublished(file string, v note.Verifier) (*publishedFile, Head, error) {
	removeTemps(file)
	h, err := ReadPublished(file, v)
	if err != nil {
		return nil, Head{}, err
	}
	return &publishedFile{name: file, syncDir: durable.SyncDir}, h, nil
}

// write records msg in the file, durably. The first write of a process
// replaces the file by a new one, synced and renamed into place, whatever
// the old one held (the older format, a damaged slot, a wrong size); later
// ones go in place to the slot that does not hold the newest head, synced
// with fdatasync. After a failed write, the next one replaces the file too.
func (p *publishedFile) write(msg []byte) error {
	if p.closed {
		return ErrClosed
	}
	if len(msg) > maxPublishedFile {
		return fmt.Errorf("signed note of %d bytes is too large", len(msg))
	}
	// A new file starts the sequence numbers again, rather than let
	// them wrap and make the newest slot look the oldest.
	if p.f == nil || p.seq == math.MaxUint64 {
		return p.create(msg)
	}
	next := 1 - p.newest
	_, err := p.f.WriteAt(encodeSlot(p.seq+1, msg), int64(next)*int64(pubSlotSize))
	if err == nil {
		err = fdatasync(p.f)
	}
	if err != nil {
		// The slot written may be torn, and the other one may then hold
		// the only whole copy of the newest head: the next write must not
		// go there. It replaces the file whole instead.
		p.f.Close()
		p.f = nil
		return err
	}
	p.seq, p.newest = p.seq+1, next
	return nil
}

// create replaces the file by a new one of the full size, holding msg in
// both slots with sequence number 1, atomically: written, synced, renamed
// over the old one, its directory synced. A missing directory is created.
// It then keeps the file open for writes in place.
func (p *publishedFile) create(msg []byte) (err error) {
	dir := filepath.Dir(p.name)
	f, err := os.CreateTemp(dir, filepath.Base(p.name)+".tmp*")
	if errors.Is(err, fs.ErrNotExist) {
		// The data directory of a server whose store is elsewhere.
		if err := durable.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, filepath.Base(p.name)+".tmp*")
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
	slot := encodeSlot(1, msg)
	data := make([]byte, pubFileSize)
	copy(data, slot)
	copy(data[pubSlotSize:], slot)
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p.name); err != nil {
		return err
	}
	// Until the directory is synced, a power cut may bring back the file
	// before the rename: the head is not recorded yet.
	if err := p.syncDir(dir); err != nil {
		return err
	}
	if p.f != nil {
		p.f.Close()
	}
	p.f, p.seq, p.newest = f, 1, 0
	return nil
}

// close closes the file.
func (p *publishedFile) close() error {
	if p == nil {
		return nil
	}
	p.closed = true
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
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
	pf, pub, err := openPublished(file, v)
	if err != nil {
		return Head{}, err
	}
	defer pf.close()
	if err := checkPublished(ctx, s, head, pub, file); err != nil {
		return Head{}, err
	}
	if pub.Size >= head.Size {
		return head, nil
	}
	if err := pf.write(head.Note); err != nil {
		return Head{}, fmt.Errorf("record the published head of size %d: %w", head.Size, err)
	}
	return head, nil
}
