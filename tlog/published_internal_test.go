package tlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// Keys of the published-head tests, fixed so that the fuzz corpus stays
// signed by the key the fuzz test verifies with. The other key has the same
// name: a head of another log under the same name.
const (
	pubTestSKey      = "PRIVATE+KEY+published.test+6ab86bfa+AZJnkPnNA5HWSiapB8g7nHX5QEIHhEkO9JHVy5y42TPu"
	pubTestVKey      = "published.test+6ab86bfa+AbYo+/E7BCuGSGTmWwRVH2znhp7d3+WOLJTMgT4QQf5i"
	pubTestOtherSKey = "PRIVATE+KEY+published.test+4524c3cc+AcewPUtN5WRFPXsXTuqQ1flIIOUWaChtaSgtbIeKO2tL"
)

// pubKeys returns the signer and verifier of pubTestSKey, and a signer of
// another key of the same name.
func pubKeys(t testing.TB) (signer note.Signer, verifier note.Verifier, other note.Signer) {
	t.Helper()
	signer, err := note.NewSigner(pubTestSKey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err = note.NewVerifier(pubTestVKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err = note.NewSigner(pubTestOtherSKey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier, other
}

// signTree returns the tree note of size n, signed by signer.
func signTree(t testing.TB, signer note.Signer, n int64) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: n, Hash: xtlog.Hash{byte(n), 1}}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// slotFile returns a two-slot published-head file holding slot0 and slot1
// (each from encodeSlot).
func slotFile(slot0, slot1 []byte) []byte {
	data := make([]byte, pubFileSize)
	copy(data, slot0)
	copy(data[pubSlotSize:], slot1)
	return data
}

// TestPublishedFileAfterFailedWrite checks that a write that fails (an I/O
// error, here a closed file) does not leave the next write to the other
// slot, which may hold the only whole copy of the newest head: the next
// write replaces the file, both slots whole.
func TestPublishedFileAfterFailedWrite(t *testing.T) {
	signer, verifier, _ := pubKeys(t)
	file := filepath.Join(t.TempDir(), "published-head")
	p, _, err := openPublished(file, verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for n := int64(1); n <= 2; n++ {
		if err := p.write(signTree(t, signer, n)); err != nil {
			t.Fatalf("write head %d: %v", n, err)
		}
	}
	p.f.Close()
	if err := p.write(signTree(t, signer, 3)); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	last := signTree(t, signer, 4)
	if err := p.write(last); err != nil {
		t.Fatalf("write after a failed write: %v", err)
	}
	h, err := ReadPublished(file, verifier)
	if err != nil || h.Size != 4 {
		t.Fatalf("published head = %d, %v; want 4", h.Size, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, msg, ok := decodeSlot(data[i*pubSlotSize : (i+1)*pubSlotSize]); !ok || string(msg) != string(last) {
			t.Errorf("slot %d is not a whole copy of head 4", i)
		}
	}
}

// TestReadPublishedDamaged damages one slot, both, or the file's length,
// as a torn write, a zeroed sector or a bad disk would, and checks that the
// newest whole head is read, and that a file with none is refused with the
// operator's choices and not simply "remove the file".
func TestReadPublishedDamaged(t *testing.T) {
	t.Parallel()
	signer, verifier, other := pubKeys(t)
	zero := func(from, to int) func([]byte) []byte {
		return func(b []byte) []byte {
			clear(b[from:to])
			return b
		}
	}
	// Damage to one slot, from its start.
	damages := []struct {
		name   string
		damage func(slot []byte, n int) // n: the length of the slot's note
	}{
		{"zeroed first 512 bytes", func(s []byte, _ int) { clear(s[:512]) }},
		{"zeroed first 4096 bytes", func(s []byte, _ int) { clear(s[:4096]) }},
		{"zeroed header", func(s []byte, _ int) { clear(s[:pubSlotHdr]) }},
		{"torn mid-note", func(s []byte, n int) { clear(s[pubSlotHdr+n/2:]) }},
		{"bad CRC", func(s []byte, _ int) { s[pubSlotHdr-1] ^= 0x40 }},
		{"flipped note byte", func(s []byte, n int) { s[pubSlotHdr+n-3] ^= 0x01 }},
		{"length beyond the slot", func(s []byte, _ int) { s[16] = 0xff }},
		{"all ones", func(s []byte, _ int) {
			for i := range s {
				s[i] = 0xff
			}
		}},
	}
	type tcase struct {
		name    string
		data    []byte
		want    int64 // the head read, if wantErr is empty
		wantErr []string
	}
	var cases []tcase
	// newest names the slot of the newer head (size 8, sequence number 8);
	// the other holds size 7.
	for newest := range 2 {
		notes := [2][]byte{}
		seqs := [2]uint64{}
		notes[newest], seqs[newest] = signTree(t, signer, 8), 8
		notes[1-newest], seqs[1-newest] = signTree(t, signer, 7), 7
		base := slotFile(encodeSlot(seqs[0], notes[0]), encodeSlot(seqs[1], notes[1]))
		cases = append(cases, tcase{fmt.Sprintf("whole/newest in %d", newest), bytes.Clone(base), 8, nil})
		for _, d := range damages {
			for slot := range 2 {
				data := bytes.Clone(base)
				d.damage(data[slot*pubSlotSize:(slot+1)*pubSlotSize], len(notes[slot]))
				want := int64(8)
				if slot == newest {
					want = 7
				}
				cases = append(cases, tcase{fmt.Sprintf("slot %d %s/newest in %d", slot, d.name, newest), data, want, nil})
			}
			data := bytes.Clone(base)
			for slot := range 2 {
				d.damage(data[slot*pubSlotSize:(slot+1)*pubSlotSize], len(notes[slot]))
			}
			cases = append(cases, tcase{fmt.Sprintf("both slots %s/newest in %d", d.name, newest), data, 0, []string{"both of its slots are damaged"}})
		}
		// A slot whole but signed by another key (or tampered with and its
		// checksum recomputed) is not this log's head: the other is read.
		for slot := range 2 {
			data := bytes.Clone(base)
			copy(data[slot*pubSlotSize:], encodeSlot(seqs[slot], signTree(t, other, 9)))
			want := int64(8)
			if slot == newest {
				want = 7
			}
			cases = append(cases, tcase{fmt.Sprintf("slot %d of another key/newest in %d", slot, newest), data, want, nil})
		}
		// A file cut short keeps what it holds of slot 0.
		cut := func(n int) []byte { return bytes.Clone(base[:n]) }
		cases = append(cases,
			tcase{fmt.Sprintf("cut after slot 0's note/newest in %d", newest), cut(pubSlotHdr + len(notes[0])), int64(7 + 1 - newest), nil},
			tcase{fmt.Sprintf("cut at 64 KiB/newest in %d", newest), cut(maxPublishedFile), int64(7 + 1 - newest), nil},
			tcase{fmt.Sprintf("cut after slot 0/newest in %d", newest), cut(pubSlotSize), int64(7 + 1 - newest), nil},
			tcase{fmt.Sprintf("cut in slot 1/newest in %d", newest), cut(pubSlotSize + pubSlotHdr + 10), int64(7 + 1 - newest), nil},
			tcase{fmt.Sprintf("cut before slot 1's end/newest in %d", newest), cut(pubFileSize - 1), 8, nil},
			tcase{fmt.Sprintf("cut in slot 0's note/newest in %d", newest), cut(pubSlotHdr + 10), 0, []string{"damaged"}},
			tcase{fmt.Sprintf("cut at 64 KiB, slot 0 zeroed/newest in %d", newest), zero(0, 512)(cut(maxPublishedFile)), 0, []string{"damaged"}},
			tcase{fmt.Sprintf("extended/newest in %d", newest), append(bytes.Clone(base), 0), 8, nil},
		)
	}
	both := slotFile(encodeSlot(5, signTree(t, other, 5)), encodeSlot(6, signTree(t, other, 6)))
	cases = append(cases,
		tcase{"older format", signTree(t, signer, 3), 3, nil},
		tcase{"older format damaged", zero(0, 8)(signTree(t, signer, 3)), 0, []string{"damaged"}},
		tcase{"older format of another key", signTree(t, other, 3), 0, []string{"must hold a tree head signed by key"}},
		tcase{"both slots of another key", both, 0, []string{"must hold a tree head signed by key"}},
		tcase{"zeros of the two-slot size", make([]byte, pubFileSize), 0, []string{"both of its slots are damaged"}},
		tcase{"empty", []byte{}, 0, []string{"damaged"}},
		tcase{"one byte", []byte{'g'}, 0, []string{"damaged"}},
	)

	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := ReadPublished(file, verifier)
			if tc.wantErr == nil {
				if err != nil || h.Size != tc.want {
					t.Fatalf("ReadPublished = size %d, %v; want %d", h.Size, err, tc.want)
				}
				if _, err := note.Open(h.Note, note.VerifierList(verifier)); err != nil {
					t.Fatalf("ReadPublished returned a head that does not verify: %v", err)
				}
				// Open reads the same head.
				p, oh, err := openPublished(file, verifier)
				if err != nil || oh.Size != tc.want {
					t.Fatalf("openPublished = size %d, %v; want %d", oh.Size, err, tc.want)
				}
				p.close()
				return
			}
			if err == nil {
				t.Fatalf("ReadPublished = size %d; want an error saying %q", h.Size, tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ReadPublished error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "damaged") {
				// The operator's real choices, and what deleting costs.
				for _, want := range []string{"$GOPATH/pkg/sumdb/", "last resort", "no longer"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("ReadPublished error %q does not say %q", err, want)
					}
				}
			}
			if _, _, err := openPublished(file, verifier); err == nil {
				t.Errorf("openPublished succeeded where ReadPublished failed")
			}
		})
	}
}

// TestPublishedFileWritesOverDamage checks that a write never goes to the
// only whole slot: with slot 0 damaged and the head in slot 1, and the
// other way round, writes leave a file whose newest head is the last one
// written, and which a torn next write could not take below the one before.
func TestPublishedFileWritesOverDamage(t *testing.T) {
	t.Parallel()
	signer, verifier, _ := pubKeys(t)
	for good := range 2 {
		t.Run(fmt.Sprintf("whole slot %d", good), func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "published-head")
			var slots [2][]byte
			slots[good] = encodeSlot(41, signTree(t, signer, 10))
			slots[1-good] = make([]byte, pubSlotHdr) // zeroed
			if err := os.WriteFile(file, slotFile(slots[0], slots[1]), 0o600); err != nil {
				t.Fatal(err)
			}
			p, h, err := openPublished(file, verifier)
			if err != nil || h.Size != 10 {
				t.Fatalf("openPublished = size %d, %v; want 10", h.Size, err)
			}
			defer p.close()
			for n := int64(11); n <= 14; n++ {
				if err := p.write(signTree(t, signer, n)); err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				// Tear each slot in turn: the other must hold head n or n-1.
				for torn := range 2 {
					d := bytes.Clone(data)
					clear(d[torn*pubSlotSize : torn*pubSlotSize+512])
					if err := os.WriteFile(file+".torn", d, 0o600); err != nil {
						t.Fatal(err)
					}
					h, err := ReadPublished(file+".torn", verifier)
					if err != nil || h.Size < n-1 {
						t.Fatalf("after head %d, with slot %d torn: ReadPublished = %d, %v; want at least %d", n, torn, h.Size, err, n-1)
					}
				}
				if h, err := ReadPublished(file, verifier); err != nil || h.Size != n {
					t.Fatalf("after head %d: ReadPublished = %d, %v", n, h.Size, err)
				}
			}
		})
	}
}

// TestPublishedFileSequenceWraps checks that a file whose sequence number
// reaches its largest value still records each new head as the newest.
func TestPublishedFileSequenceWraps(t *testing.T) {
	t.Parallel()
	signer, verifier, _ := pubKeys(t)
	file := filepath.Join(t.TempDir(), "published-head")
	p, _, err := openPublished(file, verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.write(signTree(t, signer, 1)); err != nil {
		t.Fatal(err)
	}
	p.seq = ^uint64(0) - 2
	for n := int64(2); n <= 8; n++ {
		if err := p.write(signTree(t, signer, n)); err != nil {
			t.Fatal(err)
		}
		if h, err := ReadPublished(file, verifier); err != nil || h.Size != n {
			t.Fatalf("after head %d, sequence number %d: ReadPublished = %d, %v", n, p.seq, h.Size, err)
		}
	}
}

// checkParsePublished checks what parsePublished makes of data: a head
// that verifies with verifier, or an error, never a panic; and never an
// error, nor an older head, where a slot is whole and holds a head of the
// log.
func checkParsePublished(t *testing.T, data []byte, verifier note.Verifier) {
	h, err := parsePublished(data, verifier, "published-head")
	if err == nil {
		got, oerr := openHead(h.Note, verifier)
		if oerr != nil || got.Size != h.Size || got.Hash != h.Hash {
			t.Fatalf("parsePublished = head %d %v, whose note gives %d %v, %v", h.Size, h.Hash, got.Size, got.Hash, oerr)
		}
	} else if err.Error() == "" || strings.ContainsRune(err.Error(), '\n') {
		t.Fatalf("parsePublished error %q is not one line", err)
	}

	// The whole slots holding a head of the log, as the format defines them.
	var valid []Head
	var seqs []uint64
	b := data[:min(len(data), pubFileSize)]
	for i := 0; i*pubSlotSize < len(b); i++ {
		seq, msg, ok := decodeSlot(b[i*pubSlotSize : min(len(b), (i+1)*pubSlotSize)])
		if !ok {
			continue
		}
		if isOldFormat(data) {
			t.Fatalf("file of the older format with a whole slot %d", i)
		}
		if sh, err := openHead(msg, verifier); err == nil {
			valid, seqs = append(valid, sh), append(seqs, seq)
		}
	}
	if isOldFormat(data) {
		if _, oerr := openHead(data, verifier); (oerr == nil) != (err == nil) {
			t.Fatalf("file of the older format: parsePublished error %v, note error %v", err, oerr)
		}
		return
	}
	if len(valid) == 0 {
		if err == nil {
			t.Fatalf("parsePublished = head %d from a file with no whole slot of the log", h.Size)
		}
		return
	}
	if err != nil {
		t.Fatalf("parsePublished = %v, with %d whole slots holding heads of the log", err, len(valid))
	}
	newest := -1
	for i := range valid {
		if newest < 0 || seqs[i] > seqs[newest] || (seqs[i] == seqs[newest] && valid[i].Size > valid[newest].Size) {
			newest = i
		}
	}
	if !bytes.Equal(h.Note, valid[newest].Note) {
		t.Fatalf("parsePublished = head %d, want the newest whole slot's, %d (sequence number %d)", h.Size, valid[newest].Size, seqs[newest])
	}
}

// FuzzReadPublished reads any byte string as a published-head file. Its
// seeds are short, as inputs of the two-slot size slow the fuzzer down (it
// minimizes each new input by running it again and again):
// FuzzReadPublishedSlots covers whole files.
func FuzzReadPublished(f *testing.F) {
	signer, verifier, other := pubKeys(f)
	n7, n8 := signTree(f, signer, 7), signTree(f, signer, 8)
	f.Add(encodeSlot(8, n8))
	f.Add(encodeSlot(8, signTree(f, other, 8)))
	torn := encodeSlot(8, n8)
	clear(torn[pubSlotHdr+10:])
	f.Add(torn)
	f.Add(n7)
	f.Add(signTree(f, other, 7))
	f.Add([]byte(pubMagic))
	f.Add([]byte(pubOldPrefix))
	f.Add(make([]byte, 512))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsePublished(t, data, verifier)
	})
}

// FuzzReadPublishedSlots reads files of two slots damaged at random: a
// byte string written over them at any offset, and the file cut at any
// length. It reaches what random bytes rarely make: two whole slots.
func FuzzReadPublishedSlots(f *testing.F) {
	signer, verifier, other := pubKeys(f)
	f.Add(uint64(8), uint64(7), int64(8), int64(7), false, false, uint32(0), make([]byte, 512), uint32(pubFileSize))
	f.Add(uint64(1), uint64(1), int64(5), int64(6), false, true, uint32(pubSlotSize), []byte{1}, uint32(pubFileSize))
	f.Add(^uint64(0), uint64(0), int64(8), int64(9), false, false, uint32(100), []byte{}, uint32(pubSlotSize+200))
	f.Add(uint64(3), uint64(4), int64(1), int64(2), true, false, uint32(pubSlotHdr-4), []byte{0, 0, 0, 0}, uint32(maxPublishedFile))
	f.Fuzz(func(t *testing.T, seq0, seq1 uint64, n0, n1 int64, other0, other1 bool, off uint32, garbage []byte, cut uint32) {
		sign := func(n int64, isOther bool) []byte {
			n &= 1<<40 - 1
			if isOther {
				return signTree(t, other, n)
			}
			return signTree(t, signer, n)
		}
		data := slotFile(encodeSlot(seq0, sign(n0, other0)), encodeSlot(seq1, sign(n1, other1)))
		if int(off) < len(data) {
			copy(data[off:], garbage)
		}
		checkParsePublished(t, data[:min(int(cut), len(data))], verifier)
	})
}

// TestPublishedFileCreateSyncsDirectory checks that a new published-head
// file is made durable before its head counts as recorded: its directory
// is synced once the file is in place, and a failed sync fails the write,
// whose head is then not served. (A real power cut cannot be made in a
// test; this proves the order of the calls, and that a sync error is not
// passed over.)
func TestPublishedFileCreateSyncsDirectory(t *testing.T) {
	t.Parallel()
	signer, verifier, _ := pubKeys(t)
	dir := filepath.Join(t.TempDir(), "data") // created by the first write
	file := filepath.Join(dir, "published-head")
	p, _, err := openPublished(file, verifier)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	failed := errors.New("injected sync failure")
	var synced []string
	p.syncDir = func(d string) error {
		synced = append(synced, d)
		if len(synced) == 1 {
			return failed
		}
		if d == dir {
			if h, err := ReadPublished(file, verifier); err != nil || h.Size != 2 {
				t.Errorf("directory synced before the file was in place: ReadPublished = %d, %v", h.Size, err)
			}
		}
		return nil
	}
	if err := p.write(signTree(t, signer, 1)); !errors.Is(err, failed) {
		t.Fatalf("write with a failing directory sync = %v, want that error", err)
	}
	if err := p.write(signTree(t, signer, 2)); err != nil {
		t.Fatalf("write after a failed sync: %v", err)
	}
	if want := []string{dir, dir}; !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q: each new file's directory", synced, want)
	}
	// Writes in place need no directory sync.
	if err := p.write(signTree(t, signer, 3)); err != nil || len(synced) != 2 {
		t.Errorf("write in place = %v, synced %q", err, synced)
	}
}
