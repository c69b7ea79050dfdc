// Package witnessed checks the witnesses' cosignatures on a checksum
// database's signed tree heads against a client's witness policy: which
// witnesses the client trusts, and how many of them must have cosigned a
// head before the client trusts it.
//
// A witness checks each new head of a log for consistency with the last one
// it saw, and cosigns it (c2sp.org/tlog-witness); the cosignature is one
// more signature line of the head's note, of the cosignature/v1 kind
// (c2sp.org/tlog-cosignature). A log that shows one client one tree and
// another client a fork cannot get both cosigned by the same witnesses, so
// a client that trusts only heads cosigned by a quorum of them sees the
// same tree as every other such client.
//
// The cosignatures are verified with transparency-dev/formats's
// cosignature/v1 verifier, and policy files parsed with its witness package.
// A Policy does not verify the log's own signature: the caller opens the
// head with the log's key (client.OpenTreeHead) as well.
package witnessed

import (
	"errors"
	"fmt"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// ErrNotWitnessed marks a signed tree head that lacks valid cosignatures of
// enough witnesses to meet a Policy. Errors wrapping it are
// *NotWitnessedError.
var ErrNotWitnessed = errors.New("tree head not cosigned by a quorum of the witnesses")

// A NotWitnessedError is a signed tree head whose valid cosignatures do not
// meet a Policy.
type NotWitnessedError struct {
	// Signers are the witnesses whose cosignature verified, Missing the
	// others, in the order of the policy.
	Signers, Missing []string
	// Invalid are those of Missing whose cosignature is on the head but
	// does not verify: they count as missing.
	Invalid []string
	// Policy describes the policy: "2 of (a.example, b.example)".
	Policy string
}

func (e *NotWitnessedError) Error() string {
	var b strings.Builder
	b.WriteString("tree head not cosigned by a quorum of the witnesses: ")
	if len(e.Signers) == 0 {
		b.WriteString("no witness cosigned it")
	} else {
		b.WriteString("cosigned by " + strings.Join(e.Signers, ", "))
	}
	missing := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		missing[i] = m
		for _, bad := range e.Invalid {
			if bad == m {
				missing[i] += " (its cosignature does not verify)"
			}
		}
	}
	fmt.Fprintf(&b, "; missing %s; the policy wants %s: try again once the witnesses have cosigned a newer head, or tell the log's operator", strings.Join(missing, ", "), e.Policy)
	return b.String()
}

// Is reports whether target is ErrNotWitnessed.
func (e *NotWitnessedError) Is(target error) bool { return target == ErrNotWitnessed }

// A Policy says which witnesses must have cosigned a signed tree head for a
// client to trust it. It is safe for concurrent use.
type Policy struct {
	root      *node
	witnesses []*node // the leaves, in the order of the policy
}

// A node is a witness (v set) or a group of n of its children.
type node struct {
	name     string        // a witness's name in messages
	v        note.Verifier // a witness's cosignature/v1 verifier
	n        int
	children []*node
}

// maxWitnesses bounds the witnesses of a policy: every one of them opens
// every head checked.
const maxWitnesses = 64

// New returns the policy of the simple flags: the witnesses of the verifier
// keys vkeys (c2sp.org/signed-note: "<name>+<hash>+<key>", of an Ed25519
// or cosignature/v1 key), quorum of which must have cosigned a head. A
// quorum of 0 means all of them.
func New(vkeys []string, quorum int) (*Policy, error) {
	if len(vkeys) == 0 {
		return nil, errors.New("witness policy: no witness given: give each witness's verifier key")
	}
	if len(vkeys) > maxWitnesses {
		return nil, fmt.Errorf("witness policy: %d witnesses, more than %d", len(vkeys), maxWitnesses)
	}
	if quorum < 0 || quorum > len(vkeys) {
		return nil, fmt.Errorf("witness policy: quorum %d of %d witnesses: want a number from 1 to %d", quorum, len(vkeys), len(vkeys))
	}
	if quorum == 0 {
		quorum = len(vkeys)
	}
	root := &node{n: quorum}
	for _, k := range vkeys {
		v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("witness policy: invalid witness key %q: %w: want \"<name>+<hash>+<key>\", the witness's verifier key", k, err)
		}
		root.children = append(root.children, &node{v: v})
	}
	return newPolicy(root)
}

// Parse returns the policy of a policy file: the Sigsum policy format
// (witness, group and quorum lines; log lines are ignored), with the
// witnesses' cosignature/v1 verifier keys, as transparency-dev/formats's
// witness.ParsePolicy reads it. Its parser wants a URL on every witness
// line, which a client does not use. A quorum of none is refused: a client
// policy that requires no witness protects nothing.
func Parse(data []byte) (*Policy, error) {
	g, err := witness.ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if g.N == 0 {
		return nil, errors.New("witness policy: the quorum requires no witness (quorum none): name a witness or group")
	}
	root, err := fromGroup(g, 0, make(map[leafID]*node))
	if err != nil {
		return nil, err
	}
	return newPolicy(root)
}

// A leafID names a witness key: its name and hash.
type leafID struct {
	name string
	hash uint32
}

// fromGroup converts a parsed policy group at nesting depth. A witness
// named in several groups is one node, shared by them (leaves, by key);
// named twice in one group, it is an error, for one cosignature would count
// twice.
func fromGroup(g witness.Group, depth int, leaves map[leafID]*node) (*node, error) {
	if depth > maxWitnesses {
		return nil, errors.New("witness policy: groups nested too deep")
	}
	// Any group, not only the top one: a group that needs no cosignature
	// is met by a head that has none, and so may the policy be.
	if g.N == 0 || len(g.Components) == 0 {
		return nil, errors.New("witness policy: a group requires no witness (a threshold of 0, or no member): every group must need at least one cosignature")
	}
	n := &node{n: g.N}
	inGroup := make(map[leafID]bool)
	for _, c := range g.Components {
		switch c := any(c).(type) {
		case witness.Witness:
			id := leafID{c.Key.Name(), c.Key.KeyHash()}
			if inGroup[id] {
				return nil, fmt.Errorf("witness policy: witness %s+%08x given twice in one group", id.name, id.hash)
			}
			inGroup[id] = true
			leaf := leaves[id]
			if leaf == nil {
				leaf = &node{v: c.Key}
				leaves[id] = leaf
			}
			n.children = append(n.children, leaf)
		case witness.Group:
			child, err := fromGroup(c, depth+1, leaves)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, child)
		default:
			return nil, fmt.Errorf("witness policy: unknown policy component %T", c)
		}
	}
	return n, nil
}

// newPolicy names the witnesses of root: by their key's name, or with its
// hash too where two keys share a name.
func newPolicy(root *node) (*Policy, error) {
	p := &Policy{root: root}
	listed := make(map[*node]bool) // a witness shared by groups is listed once
	var walk func(*node)
	walk = func(n *node) {
		if n.v != nil && !listed[n] {
			listed[n] = true
			p.witnesses = append(p.witnesses, n)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)
	if len(p.witnesses) > maxWitnesses {
		return nil, fmt.Errorf("witness policy: %d witnesses, more than %d", len(p.witnesses), maxWitnesses)
	}
	type id struct {
		name string
		hash uint32
	}
	names := make(map[string]int)
	seen := make(map[id]bool)
	for _, w := range p.witnesses {
		k := id{w.v.Name(), w.v.KeyHash()}
		if seen[k] {
			// One witness counted twice would count one cosignature twice.
			return nil, fmt.Errorf("witness policy: witness %s+%08x given twice", k.name, k.hash)
		}
		seen[k] = true
		names[k.name]++
	}
	for _, w := range p.witnesses {
		w.name = w.v.Name()
		if names[w.name] > 1 {
			w.name = fmt.Sprintf("%s+%08x", w.name, w.v.KeyHash())
		}
	}
	return p, nil
}

// Witnesses returns the names of the policy's witnesses, in its order.
func (p *Policy) Witnesses() []string {
	names := make([]string, len(p.witnesses))
	for i, w := range p.witnesses {
		names[i] = w.name
	}
	return names
}

// String describes the policy: "2 of (a.example, b.example)".
func (p *Policy) String() string { return p.root.String() }

func (n *node) String() string {
	if n.v != nil {
		return n.name
	}
	parts := make([]string, len(n.children))
	for i, c := range n.children {
		parts[i] = c.String()
	}
	q := fmt.Sprint(n.n)
	if n.n == len(n.children) && n.n > 1 {
		q = "all"
	}
	return fmt.Sprintf("%s of (%s)", q, strings.Join(parts, ", "))
}

// Check verifies the witnesses' cosignatures on msg, a signed note of a
// tree head, and returns the names of the witnesses whose cosignature
// verified, in the order of the policy. If they do not meet the policy, the
// error is a *NotWitnessedError (wrapping ErrNotWitnessed) naming the
// witnesses missing. A cosignature that does not verify counts as missing;
// signature lines of keys the policy does not know (the log's own, other
// witnesses') are ignored. A msg that is not a signed note is an error
// too.
func (p *Policy) Check(msg []byte) (signers []string, err error) {
	var unverified *note.UnverifiedNoteError
	if _, err := note.Open(msg, note.VerifierList()); !errors.As(err, &unverified) {
		return nil, fmt.Errorf("check cosignatures: not a signed note: %v", err)
	}
	signed := make(map[*node]bool)
	var missing, invalid []string
	for _, w := range p.witnesses {
		// One witness at a time: note.Open fails the whole note on one
		// signature that does not verify.
		_, err := note.Open(msg, note.VerifierList(w.v))
		var bad *note.InvalidSignatureError
		switch {
		case err == nil:
			signed[w] = true
			signers = append(signers, w.name)
		case errors.As(err, &bad):
			missing, invalid = append(missing, w.name), append(invalid, w.name)
		default:
			missing = append(missing, w.name)
		}
	}
	if !p.root.satisfied(signed) {
		return signers, &NotWitnessedError{Signers: signers, Missing: missing, Invalid: invalid, Policy: p.String()}
	}
	return signers, nil
}

// satisfied reports whether the witnesses signed meet n.
func (n *node) satisfied(signed map[*node]bool) bool {
	if n.v != nil {
		return signed[n]
	}
	count := 0
	for _, c := range n.children {
		if c.satisfied(signed) {
			count++
		}
	}
	return count >= n.n
}
