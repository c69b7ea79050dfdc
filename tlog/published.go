package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// maxPublishedFile bounds a signed tree note in the published-head file: a
// note is a few hundred bytes, with up to 100 signatures a few kilobytes.
const maxPublishedFile = 64 << 10

// The published-head file has two slots, written in turn in place, each
// with a checksum, so that a write torn by a crash leaves the other slot
// whole: a write is one pwrite and one fdatasync of a file whose size never
// changes, several times cheaper than a new file synced and renamed. A
// slot is
//
//	"SUMDBPH1", a sequence number (uint64, big-endian), the note's length
//	(uint32), the CRC-32C of the sequence number, length and note
//	(uint32), then the signed note.
//
// The valid slot with the larger sequence number holds the head. A file
// that does not begin with the magic is the older format, the signed note
// alone; it is read, and replaced by the new format at the next write.
const (
	pubMagic    = "SUMDBPH1"
	pubSlotHdr  = len(pubMagic) + 8 + 4 + 4
	pubSlotSize = pubSlotHdr + maxPublishedFile
	pubFileSize = 2 * pubSlotSize
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

// ReadPublished returns the head recorded in a published-head file
// (Config.PublishedFile), or a zero Head if the file does not exist. The
// head must verify with v.
func ReadPublished(file string, v note.Verifier) (Head, error) {
	h, _, err := readPublished(file, v)
	return h, err
}

// readPublished returns the head recorded in the published-head file and
// the sequence number of its slot (0 for the older format), or a zero Head
// if the file does not exist.
func readPublished(file string, v note.Verifier) (Head, uint64, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Head{}, 0, nil
	}
	if err != nil {
		return Head{}, 0, fmt.Errorf("read published head: %w", err)
	}
	if len(data) > pubFileSize {
		return Head{}, 0, fmt.Errorf("read published head %s: %d bytes is too large for a published-head file", file, len(data))
	}
	msg, seq := data, uint64(0)
	if bytes.HasPrefix(data, []byte(pubMagic)) {
		msg = nil
		for slot := 0; slot*pubSlotSize < len(data); slot++ {
			s, m, ok := decodeSlot(data[slot*pubSlotSize:])
			if ok && (msg == nil || s > seq) {
				seq, msg = s, m
			}
		}
		if msg == nil {
			return Head{}, 0, fmt.Errorf("read published head %s: no slot of the file is whole: the file is damaged (remove the file only if this server now serves another log)", file)
		}
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Head{}, 0, fmt.Errorf("read published head %s: %w: it must hold a tree head signed by key %s (remove the file only if this server now serves another log)", file, err, v.Name())
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return Head{}, 0, fmt.Errorf("read published head %s: %w", file, err)
	}
	return Head{Size: tree.N, Hash: tree.Hash, Note: bytes.Clone(msg)}, seq, nil
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
	seq    uint64   // of the newest slot
	f      *os.File // open for writing in place; nil until the file has the slot format
	closed bool
}

// openPublished returns the published-head file file, and the head it
// holds, without creating it.
func openPublished(file string, v note.Verifier) (*publishedFile, Head, error) {
	removeTemps(file)
	h, seq, err := readPublished(file, v)
	if err != nil {
		return nil, Head{}, err
	}
	return &publishedFile{name: file, seq: seq}, h, nil
}

// write records msg in the file, durably: in the older of the two slots,
// synced with fdatasync. A file that does not exist, has the older format
// or failed the write before is replaced by a new one, synced and renamed
// into place.
func (p *publishedFile) write(msg []byte) error {
	if p.closed {
		return ErrClosed
	}
	if len(msg) > maxPublishedFile {
		return fmt.Errorf("signed note of %d bytes is too large", len(msg))
	}
	p.seq++
	slot := encodeSlot(p.seq, msg)
	if p.f == nil {
		return p.create(slot)
	}
	_, err := p.f.WriteAt(slot, int64(p.seq%2)*int64(pubSlotSize))
	if err == nil {
		err = fdatasync(p.f)
	}
	if err != nil {
		// The slot written may be torn, and the other one may then hold
		// the only whole copy of the newest head: the next write must not
		// go there. It replaces the file whole instead.
		p.f.Close()
		p.f = nil
	}
	return err
}

// create replaces the file by a new one of the full size, holding slot in
// slot 0 and slot 1 (so that both are whole), atomically: written, synced,
// renamed over the old one, its directory synced. A missing directory is
// created. It then opens the file for writes in place.
func (p *publishedFile) create(slot []byte) (err error) {
	dir := filepath.Dir(p.name)
	f, err := os.CreateTemp(dir, filepath.Base(p.name)+".tmp*")
	if errors.Is(err, fs.ErrNotExist) {
		// The data directory of a server whose store is elsewhere.
		if err := os.MkdirAll(dir, 0o700); err != nil {
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
	if d, err := os.Open(dir); err == nil {
		d.Sync() // not every system can sync a directory: best effort
		d.Close()
	}
	p.f = f
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
