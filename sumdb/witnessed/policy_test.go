package witnessed_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/sumdb/witnessed"
)

// TestPolicyRequiringNoWitness checks that a policy file whose quorum
// a head meets without any cosignature is refused, as "quorum none" is:
// a nested group of threshold 0, or an empty "all" group.
func TestPolicyRequiringNoWitness(t *testing.T) {
	a := newWitness(t, "a.example")
	head, _ := signedHead(t, 3)
	for _, tt := range []struct{ name, policy string }{
		{"threshold 0", fmt.Sprintf("witness a %s https://a.example/\ngroup g 0 a\ngroup top any g\nquorum top\n", a.VKey)},
		{"empty all", "group e all\ngroup top any e\nquorum top\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := witnessed.Parse([]byte(tt.policy))
			if err != nil {
				return // refused: fine
			}
			if signers, err := p.Check(head); !errors.Is(err, witnessed.ErrNotWitnessed) {
				t.Errorf("Parse(%q).Check(head without cosignatures) = %v, %v; want ErrNotWitnessed (or the policy refused, as quorum none is)", tt.policy, signers, err)
			}
		})
	}
}

// TestSameKeyTwoForms checks that one witness key given twice, as its
// Ed25519 verifier key and as its cosignature/v1 key, is refused rather
// than counted as two witnesses.
func TestSameKeyTwoForms(t *testing.T) {
	_, vkey, err := note.GenerateKey(rand.Reader, "a.example")
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := witnessed.New([]string{vkey, cvkey}, 2); err == nil {
		t.Errorf("New([Ed25519 key, its cosignature/v1 key], 2) = %v, want an error: one witness", p)
	}
}

// TestWitnessInTwoGroups checks that a policy naming one witness in
// two groups (as the Sigsum policy form allows: groups refer to components
// by name) is accepted, and met when that witness and one more cosigned.
func TestWitnessInTwoGroups(t *testing.T) {
	a, b, c := newWitness(t, "a.example"), newWitness(t, "b.example"), newWitness(t, "c.example")
	head, logV := signedHead(t, 3)
	policy := fmt.Sprintf("witness a %s https://a.example/\nwitness b %s https://b.example/\nwitness c %s https://c.example/\n"+
		"group g1 any a b\ngroup g2 any a c\ngroup top all g1 g2\nquorum top\n", a.VKey, b.VKey, c.VKey)
	p, err := witnessed.Parse([]byte(policy))
	if err != nil {
		t.Fatalf("Parse(a in two groups) = %v, want the policy", err)
	}
	if _, err := p.Check(cosign(t, head, logV, a)); err != nil {
		t.Errorf("Check(cosigned by a) = %v, want it to meet both groups", err)
	}
}
