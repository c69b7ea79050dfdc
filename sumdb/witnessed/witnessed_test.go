package witnessed_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/cosigntest"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

type testWitness = cosigntest.Witness

var newWitness = cosigntest.New

// signedHead returns a tree head of size n signed by a log key, and the
// log's verifier.
func signedHead(t *testing.T, n int64) ([]byte, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	tree := xtlog.Tree{N: n, Hash: xtlog.RecordHash([]byte("x"))}
	msg, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(tree))}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg, v
}

// cosign appends the cosignatures of ws to the head msg signed by v.
func cosign(t *testing.T, msg []byte, v note.Verifier, ws ...testWitness) []byte {
	return cosigntest.Cosign(t, msg, v, ws...)
}

func TestCheck(t *testing.T) {
	a, b, c := newWitness(t, "a.example"), newWitness(t, "b.example"), newWitness(t, "c.example")
	head, logV := signedHead(t, 3)
	other, otherV := signedHead(t, 4)
	// A cosignature of another head, moved onto this one, does not verify.
	badB := lastLine(cosign(t, other, otherV, b))

	tests := []struct {
		name        string
		vkeys       []string
		quorum      int
		msg         []byte
		wantSigners []string
		wantMissing []string
		wantInvalid []string
	}{
		{name: "quorum met", vkeys: []string{a.VKey, b.VKey}, quorum: 2,
			msg: cosign(t, head, logV, a, b), wantSigners: []string{"a.example", "b.example"}},
		{name: "quorum 0 means all", vkeys: []string{a.VKey, b.VKey},
			msg: cosign(t, head, logV, b, a), wantSigners: []string{"a.example", "b.example"}},
		{name: "one of two", vkeys: []string{a.VKey, b.VKey}, quorum: 1,
			msg: cosign(t, head, logV, a), wantSigners: []string{"a.example"}},
		{name: "quorum not met", vkeys: []string{a.VKey, b.VKey}, quorum: 2,
			msg: cosign(t, head, logV, a), wantSigners: []string{"a.example"}, wantMissing: []string{"b.example"}},
		{name: "unknown witness ignored", vkeys: []string{a.VKey, b.VKey}, quorum: 2,
			msg: cosign(t, head, logV, a, c), wantSigners: []string{"a.example"}, wantMissing: []string{"b.example"}},
		{name: "no cosignature", vkeys: []string{a.VKey}, quorum: 1,
			msg: head, wantMissing: []string{"a.example"}},
		{name: "bad cosignature", vkeys: []string{a.VKey, b.VKey}, quorum: 2,
			msg:         []byte(string(cosign(t, head, logV, a)) + badB),
			wantSigners: []string{"a.example"}, wantMissing: []string{"b.example"}, wantInvalid: []string{"b.example"}},
		{name: "bad cosignature beside enough good ones", vkeys: []string{a.VKey, b.VKey}, quorum: 1,
			msg:         []byte(string(cosign(t, head, logV, a)) + badB),
			wantSigners: []string{"a.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := witnessed.New(tt.vkeys, tt.quorum)
			if err != nil {
				t.Fatalf("New() = %v", err)
			}
			signers, err := p.Check(tt.msg)
			if !slices.Equal(signers, tt.wantSigners) {
				t.Errorf("Check() signers = %q, want %q", signers, tt.wantSigners)
			}
			if tt.wantMissing == nil && tt.wantInvalid == nil {
				if err != nil {
					t.Errorf("Check() = %v, want nil", err)
				}
				return
			}
			var nerr *witnessed.NotWitnessedError
			if !errors.As(err, &nerr) || !errors.Is(err, witnessed.ErrNotWitnessed) {
				t.Fatalf("Check() = %v, want a *NotWitnessedError", err)
			}
			if !slices.Equal(nerr.Missing, tt.wantMissing) || !slices.Equal(nerr.Invalid, tt.wantInvalid) {
				t.Errorf("Check() missing %q, invalid %q; want %q, %q", nerr.Missing, nerr.Invalid, tt.wantMissing, tt.wantInvalid)
			}
			for _, m := range tt.wantMissing {
				if !strings.Contains(err.Error(), "missing "+m) {
					t.Errorf("Check() = %q, want it to name missing %s", err, m)
				}
			}
			for _, m := range tt.wantInvalid {
				if !strings.Contains(err.Error(), m+" (its cosignature does not verify)") {
					t.Errorf("Check() = %q, want it to say the cosignature of %s does not verify", err, m)
				}
			}
		})
	}
}

// lastLine returns the last signature line of a signed note.
func lastLine(msg []byte) string {
	lines := strings.SplitAfter(strings.TrimSuffix(string(msg), "\n"), "\n")
	return strings.TrimSuffix(lines[len(lines)-1], "\n") + "\n"
}

func TestCheckNotANote(t *testing.T) {
	a := newWitness(t, "a.example")
	p, err := witnessed.New([]string{a.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Check([]byte("not a note")); err == nil || errors.Is(err, witnessed.ErrNotWitnessed) {
		t.Errorf("Check(not a note) = %v, want an error other than ErrNotWitnessed", err)
	}
}

func TestNewErrors(t *testing.T) {
	a := newWitness(t, "a.example")
	tests := []struct {
		name   string
		vkeys  []string
		quorum int
	}{
		{"none", nil, 0},
		{"quorum too large", []string{a.VKey}, 2},
		{"negative quorum", []string{a.VKey}, -1},
		{"bad key", []string{"a.example+00000000+AAAA"}, 1},
		{"twice", []string{a.VKey, a.VKey}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := witnessed.New(tt.vkeys, tt.quorum); err == nil {
				t.Errorf("New(%q, %d) = %v, nil; want an error", tt.vkeys, tt.quorum, p)
			}
		})
	}
}

func TestParse(t *testing.T) {
	a, b, c := newWitness(t, "a.example"), newWitness(t, "b.example"), newWitness(t, "c.example")
	head, logV := signedHead(t, 3)
	// a, and one of b and c.
	policy := fmt.Sprintf(`# the CI's witnesses
log log.example+00000000+AAAA
witness wa %s https://a.example/
witness wb %s https://b.example/
witness wc %s https://c.example/
group others any wb wc
group q all wa others
quorum q
`, a.VKey, b.VKey, c.VKey)
	p, err := witnessed.Parse([]byte(policy))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if got, want := p.String(), "all of (a.example, 1 of (b.example, c.example))"; got != want {
		t.Errorf("Parse().String() = %q, want %q", got, want)
	}
	tests := []struct {
		name    string
		ws      []testWitness
		signers []string
		ok      bool
	}{
		{"a and c", []testWitness{a, c}, []string{"a.example", "c.example"}, true},
		{"all", []testWitness{c, b, a}, []string{"a.example", "b.example", "c.example"}, true},
		{"b and c without a", []testWitness{b, c}, []string{"b.example", "c.example"}, false},
		{"a alone", []testWitness{a}, []string{"a.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signers, err := p.Check(cosign(t, head, logV, tt.ws...))
			if !slices.Equal(signers, tt.signers) {
				t.Errorf("Check() signers = %q, want %q", signers, tt.signers)
			}
			if (err == nil) != tt.ok {
				t.Errorf("Check() = %v, want ok %v", err, tt.ok)
			}
		})
	}

	for name, bad := range map[string]string{
		"quorum none":   "quorum none\n",
		"no quorum":     fmt.Sprintf("witness wa %s https://a.example/\n", a.VKey),
		"unknown group": "quorum nowhere\n",
		"bad key":       "witness wa a.example+00000000+AAAA https://a.example/\nquorum wa\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := witnessed.Parse([]byte(bad)); err == nil {
				t.Errorf("Parse(%q) = nil error, want one", bad)
			}
		})
	}
}
