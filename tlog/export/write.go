package export

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// readChunk is the number of records Write reads from the store at once.
const readChunk = 8192

// A chunk is records [start, start+len(recs)) and the heads of sizes in
// (start, start+len(recs)].
type chunk struct {
	start int64
	recs  []tlog.Record
	heads []tlog.Head
	err   error
}

// Write writes the log in s, up to its current head, to w as an export
// file, and returns that head. vkey is the log's verifier key: the head
// must verify with it. Write checks every head's root against the tree of
// the records and its signature with vkey, and refuses to write more than
// the first damaged part of a store that fails. It reads the store in
// chunks while it writes, so its memory does not grow with the log;
// records and heads are never changed once stored, so the log may be
// served while it is exported.
func Write(ctx context.Context, s tlog.Store, w io.Writer, vkey string, progress Progress) (tlog.Head, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return tlog.Head{}, fmt.Errorf("export: verifier key: %w", err)
	}
	head, err := s.ReadHead(ctx)
	if err != nil {
		return tlog.Head{}, fmt.Errorf("export: read head: %w", err)
	}
	if head.Size == 0 {
		return tlog.Head{}, fmt.Errorf("export: the log is empty: nothing to export")
	}
	if _, err := verifyHead(head.Note, v); err != nil {
		return tlog.Head{}, fmt.Errorf("export: the stored head of size %d does not verify with key %s: %w (give the key of this log)", head.Size, v.Name(), err)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2) // read ahead while the last chunk is written
	go func() {
		defer close(chunks)
		for start := int64(0); start < head.Size; start += readChunk {
			n := int(min(readChunk, head.Size-start))
			c := chunk{start: start}
			c.recs, c.err = s.ReadRecords(ctx, start, n)
			if c.err == nil && len(c.recs) != n {
				c.err = fmt.Errorf("read records [%d, %d): got %d records: the stored log has a gap", start, start+int64(n), len(c.recs))
			}
			if c.err == nil {
				c.heads, c.err = s.ReadHeads(ctx, start+1, start+int64(n))
			}
			if c.err == nil {
				// Here, while the chunk before is written: Import verifies
				// every head, and a file it refuses is no export.
				if err := verifyHeads(c.heads, v); err != nil {
					c.err = fmt.Errorf("%w: the database is damaged", err)
				}
			}
			select {
			case chunks <- c:
			case <-ctx.Done():
				return
			}
			if c.err != nil {
				return
			}
		}
	}()

	bw := bufio.NewWriterSize(w, 1<<20)
	if err := writeHeader(bw, Header{Key: vkey, Records: head.Size}); err != nil {
		return tlog.Head{}, fmt.Errorf("export: write: %w", err)
	}
	edge := tlog.NewEdge()
	var leaves []xtlog.Hash
	var last tlog.Head
	var nheads int64
	for c := range chunks {
		if c.err != nil {
			return tlog.Head{}, fmt.Errorf("export: %w", c.err)
		}
		h := 0
		for i, r := range c.recs {
			if err := writeFrame(bw, tagRecord, r.Text); err != nil {
				return tlog.Head{}, fmt.Errorf("export: write: %w", err)
			}
			leaves = append(leaves, xtlog.RecordHash(r.Text))
			size := c.start + int64(i) + 1
			if h < len(c.heads) && c.heads[h].Size < size {
				return tlog.Head{}, fmt.Errorf("export: the store returned the head of size %d out of order", c.heads[h].Size)
			}
			if h == len(c.heads) || c.heads[h].Size != size {
				continue
			}
			hd := c.heads[h]
			h++
			edge.AppendFull(leaves)
			leaves = leaves[:0]
			tree, err := parseHead(hd.Note)
			if err != nil || tree.N != hd.Size || tree.Hash != hd.Hash {
				return tlog.Head{}, fmt.Errorf("export: the stored head of size %d is not the signed tree head of its size: the database is damaged", hd.Size)
			}
			if root := edge.Root(); root != hd.Hash {
				return tlog.Head{}, fmt.Errorf("export: the stored head of size %d has root %v, but the stored records give %v: the database is damaged; restore it from a backup", hd.Size, hd.Hash, root)
			}
			if err := writeFrame(bw, tagHead, hd.Note); err != nil {
				return tlog.Head{}, fmt.Errorf("export: write: %w", err)
			}
			last = hd
			nheads++
		}
		progress(c.start+int64(len(c.recs)), head.Size)
	}
	if err := contextErr(ctx, "export"); err != nil {
		return tlog.Head{}, err
	}
	if last.Size != head.Size {
		return tlog.Head{}, fmt.Errorf("export: the head history has no head of size %d, the current head's: the database is damaged", head.Size)
	}
	end := binary.AppendUvarint(nil, uint64(head.Size))
	end = binary.AppendUvarint(end, uint64(nheads))
	if err := writeFrame(bw, tagEnd, end); err != nil {
		return tlog.Head{}, fmt.Errorf("export: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return tlog.Head{}, fmt.Errorf("export: write: %w", err)
	}
	return last, nil
}
