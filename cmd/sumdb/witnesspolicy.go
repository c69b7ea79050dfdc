package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/sumdb/sumdb/sumdb/witnessed"
)

// witnessFlagsUsage is the part of check's and audit's usage about the
// witness policy.
const witnessFlagsUsage = `With --witness (repeatable) and --quorum, or --witness-policy, a tree
head of the log is trusted only if a quorum of the witnesses cosigned it
(c2sp.org/tlog-cosignature, cosignature/v1 signature lines of the head).
--witness takes a witness's verifier key, "<name>+<hash>+<key>"; --quorum
defaults to all of them. --witness-policy names a policy file in the Sigsum
form with cosignature/v1 keys: "witness NAME VKEY URL" lines (the URL is
required by the parser, and not used), "group NAME all|any|N NAME..." lines
and one "quorum NAME" line.
`

// addWitnessFlags adds the witness policy flags to fs.
func addWitnessFlags(fs *pflag.FlagSet) {
	fs.StringSlice("witness", nil, "verifier `key` of a witness whose cosignature counts toward the quorum (repeat, or separate with commas)")
	fs.Int("quorum", 0, "witnesses of --witness that must have cosigned a tree head (default: all)")
	fs.String("witness-policy", "", "witness policy `file` (Sigsum form, cosignature/v1 keys), instead of --witness and --quorum")
}

// witnessRules are the rules of the witness policy settings; cfg's fields
// are those of the flags.
func witnessRules(vkeys *[]string, quorum *int) []rule {
	return []rule{
		{"witness", "want witness verifier keys, as a list or separated by commas", vkeys, nil},
		{"quorum", "want a number of witnesses, at least 1", quorum, func() bool { return *quorum >= 0 }},
	}
}

// maxPolicyFile bounds a witness policy file.
const maxPolicyFile = 1 << 20

// witnessPolicy returns the witness policy of the settings, or nil if
// none is set.
func witnessPolicy(s *settings, vkeys []string, quorum int, file string) (*witnessed.Policy, error) {
	switch {
	case file != "" && (len(vkeys) > 0 || quorum != 0):
		key := "witness"
		if len(vkeys) == 0 {
			key = "quorum"
		}
		where, _ := s.origin(key)
		return nil, s.fail(key, fmt.Errorf("%s and --witness-policy exclude each other: give the witnesses with flags, or in the policy file", where))
	case file != "":
		data, err := readPolicyFile(file)
		if err != nil {
			return nil, s.invalid("witness-policy", "%v", err)
		}
		p, err := witnessed.Parse(data)
		if err != nil {
			return nil, s.invalid("witness-policy", "%s: %v", file, err)
		}
		return p, nil
	case len(vkeys) > 0:
		p, err := witnessed.New(vkeys, quorum)
		if err != nil {
			return nil, s.invalid("witness", "%v", err)
		}
		return p, nil
	case quorum != 0:
		where, _ := s.origin("quorum")
		return nil, s.fail("quorum", fmt.Errorf("%s is set without --witness: name the witnesses whose cosignatures count", where))
	}
	return nil, nil
}

// readPolicyFile reads a witness policy file, bounded.
func readPolicyFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPolicyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: it is not a witness policy", file, maxPolicyFile)
	}
	return data, nil
}
