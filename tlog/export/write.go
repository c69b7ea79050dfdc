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

// Write is WriteFile returning only the log's head.
func Write(ctx context.Context, s tlog.Store, w io.Writer, vkey string, progress Progress) (tlog.Head, error) {
	res, err := WriteFile(ctx, s, w, vkey, progress)
	if err != nil {
		return tlog.Head{}, err
	}
	return res.Head, nil
}

// A Written tells what WriteFile wrote.
type Written struct {
	Head    tlog.Head       // the log's head, zero for an empty log
	Mirrors []MirrorSummary // the caches of mirrored databases, sorted by name
}

// WriteFile writes the log in s, up to its current head, to w as an export
// file, then the cache of mirrored checksum databases if s is a
// MirrorStore, and returns what it wrote. vkey is the log's verifier key:
// the head must verify with it; it may be empty if the log is empty. A
// store with an empty log and no mirror cache is an error: there is
// nothing to export. Write checks every head's root against the tree of
// the records and its signature with vkey, and refuses to write more than
// the first damaged part of a store that fails. It reads the store in
// chunks while it writes, so its memory does not grow with the log;
// records and heads are never changed once stored, so the log may be
// served while it is exported.
func WriteFile(ctx context.Context, s tlog.Store, w io.Writer, vkey string, progress Progress) (*Written, error) {
	head, err := s.ReadHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: read head: %w", err)
	}
	ms, _ := s.(MirrorStore)
	bw := bufio.NewWriterSize(w, 1<<20)
	res := new(Written)
	if head.Size == 0 {
		var dbs []string
		if ms != nil {
			if dbs, err = ms.MirrorDatabases(ctx); err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
		}
		if len(dbs) == 0 {
			return nil, fmt.Errorf("export: the log is empty and no mirrored database is cached: nothing to export")
		}
		if vkey != "" {
			if _, err := note.NewVerifier(vkey); err != nil {
				return nil, fmt.Errorf("export: verifier key: %w", err)
			}
		}
		if err := writeHeader(bw, Header{Key: vkey}); err != nil {
			return nil, fmt.Errorf("export: write: %w", err)
		}
		return res, writeEnd(ctx, bw, ms, res, 0, 0)
	}
	if vkey == "" {
		return nil, fmt.Errorf("export: the log holds %d records: its verifier key is needed", head.Size)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("export: verifier key: %w", err)
	}
	if _, err := verifyHead(head.Note, v); err != nil {
		return nil, fmt.Errorf("export: the stored head of size %d does not verify with key %s: %w (give the key of this log)", head.Size, v.Name(), err)
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

	if err := writeHeader(bw, Header{Key: vkey, Records: head.Size}); err != nil {
		return nil, fmt.Errorf("export: write: %w", err)
	}
	edge := tlog.NewEdge()
	var leaves []xtlog.Hash
	var last tlog.Head
	var nheads int64
	for c := range chunks {
		if c.err != nil {
			return nil, fmt.Errorf("export: %w", c.err)
		}
		h := 0
		for i, r := range c.recs {
			if err := writeFrame(bw, tagRecord, r.Text); err != nil {
				return nil, fmt.Errorf("export: write: %w", err)
			}
			leaves = append(leaves, xtlog.RecordHash(r.Text))
			size := c.start + int64(i) + 1
			if h < len(c.heads) && c.heads[h].Size < size {
				return nil, fmt.Errorf("export: the store returned the head of size %d out of order", c.heads[h].Size)
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
				return nil, fmt.Errorf("export: the stored head of size %d is not the signed tree head of its size: the database is damaged", hd.Size)
			}
			if root := edge.Root(); root != hd.Hash {
				return nil, fmt.Errorf("export: the stored head of size %d has root %v, but the stored records give %v: the database is damaged; restore it from a backup", hd.Size, hd.Hash, root)
			}
			if err := writeFrame(bw, tagHead, hd.Note); err != nil {
				return nil, fmt.Errorf("export: write: %w", err)
			}
			last = hd
			nheads++
		}
		progress(c.start+int64(len(c.recs)), head.Size)
	}
	if err := contextErr(ctx, "export"); err != nil {
		return nil, err
	}
	if last.Size != head.Size {
		return nil, fmt.Errorf("export: the head history has no head of size %d, the current head's: the database is damaged", head.Size)
	}
	res.Head = last
	return res, writeEnd(ctx, bw, ms, res, head.Size, nheads)
}

// writeEnd writes the mirror sections of ms (if not nil) into res and bw,
// then the end frame of a log of records and heads, and flushes bw.
func writeEnd(ctx context.Context, bw *bufio.Writer, ms MirrorStore, res *Written, records, heads int64) error {
	var counts mirrorCounts
	if ms != nil {
		var err error
		if res.Mirrors, counts, err = writeMirrors(ctx, bw, ms); err != nil {
			return err
		}
	}
	end := binary.AppendUvarint(nil, uint64(records))
	for _, n := range []int64{heads, counts.heads, counts.tiles, counts.records} {
		end = binary.AppendUvarint(end, uint64(n))
	}
	if err := writeFrame(bw, tagEnd, end); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}
