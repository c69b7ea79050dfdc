package check

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// A Kind is the outcome of checking one go.sum line.
type Kind string

// Kinds, by the exit status they lead to (see Report.ExitStatus).
const (
	// Status 0.
	OK      Kind = "ok"      // the log holds the line, proved by a signed tree head
	Skipped Kind = "skipped" // not sent to the log: a private module, or a line the go command ignores

	// Status 1: the log contradicts the file, or the log contradicts itself.
	Mismatch Kind = "mismatch"  // the log holds another hash for the line's module version
	Fork     Kind = "fork"      // the log's tree heads are inconsistent (SECURITY ERROR)
	BadProof Kind = "bad-proof" // the log answered, but its answer does not verify against its signed tree head, or that head is of impossible size

	// Status 2: the file holds something the log cannot vouch for, or
	// contradicts itself.
	Unknown   Kind = "unknown"   // the log does not have the module version
	Conflict  Kind = "conflict"  // another line gives the same module version another hash, and the log cannot tell which is right
	Malformed Kind = "malformed" // not a go.sum line, or not a valid module path and version

	// Status 3: the line could not be checked (network, server error).
	Unchecked Kind = "unchecked"
)

// kinds lists the kinds in the order of summaries.
var kinds = []Kind{OK, Skipped, Mismatch, Fork, BadProof, Unknown, Conflict, Malformed, Unchecked}

// Status returns the exit status that a line of kind k calls for on its own.
func (k Kind) Status() int {
	switch k {
	case OK, Skipped:
		return 0
	case Mismatch, Fork, BadProof:
		return 1
	case Unknown, Conflict, Malformed:
		return 2
	default:
		return 3
	}
}

// label returns what a line of kind k is called in messages.
func (k Kind) label() string {
	switch k {
	case OK:
		return "verified"
	case Skipped:
		return "skipped"
	case Mismatch:
		return "mismatch"
	case Fork:
		return "SECURITY ERROR"
	case BadProof:
		return "invalid proof"
	case Unknown:
		return "unknown to the log"
	case Conflict:
		return "conflicting hashes"
	case Malformed:
		return "malformed"
	default:
		return "could not check"
	}
}

// A Result is the outcome of checking one go.sum line.
type Result struct {
	Entry
	Kind Kind `json:"kind"`
	// LogHash is the hash the log holds for the line's module version, when
	// the log answered with a verified record.
	LogHash string `json:"log_hash,omitempty"`
	// Message says what is wrong, or why the line was skipped; empty for OK.
	Message string `json:"message,omitempty"`
}

// A Head is a tree head of the log: its size and root hash.
type Head struct {
	Size int64  `json:"size"`
	Hash string `json:"hash"`
}

// A Report is the outcome of Run.
type Report struct {
	Database string   `json:"database"` // the log's name, from its verifier key
	URL      string   `json:"url"`      // where it was reached
	Files    []string `json:"files"`
	// StartHead is the head in the state file when Run started (nil if none),
	// and Head the newest head verified when it ended (nil if none): Run has
	// proved Head consistent with StartHead.
	StartHead *Head `json:"start_head,omitempty"`
	Head      *Head `json:"head,omitempty"`
	// Results has one entry per line of the files, in file and line order.
	Results []Result `json:"entries"`
	// SecurityErrors are the messages of the inconsistencies found between
	// the log's tree heads, each naming both heads and proving the
	// inconsistency, as the go command prints them.
	SecurityErrors []string `json:"security_errors,omitempty"`
	// StateError, if not empty, says why the state file could not be
	// written (or read again) during the run, and what to do. The lines
	// were checked all the same, but Head was not kept for the next run to
	// prove the log's heads consistent with: the run could not check all
	// it should have (exit status 3).
	StateError string `json:"state_error,omitempty"`
	// StateWarning, if not empty, says that tiles of the state file did not
	// prove its own signed tree head, and were not used: the log's tiles
	// were verified against that head instead, so the check lost nothing,
	// and the exit status does not change. The tiles are a copy of the
	// log's that only a local failure (a damaged disk, an edit) can spoil.
	StateWarning string `json:"state_warning,omitempty"`
	// Witnesses is the outcome of checking the witnesses' cosignatures on
	// the log's newest head, with a witness policy (nil without one).
	Witnesses *WitnessReport `json:"witnesses,omitempty"`
}

// Counts returns the number of lines of each kind.
func (r *Report) Counts() map[Kind]int {
	c := make(map[Kind]int)
	for _, res := range r.Results {
		c[res.Kind]++
	}
	return c
}

// ExitStatus returns the exit status of the check:
//
//	1  a line's hash differs from the log's, or the log is inconsistent
//	   or hostile (a fork: SECURITY ERROR, an answer that fails its proof,
//	   a tree head of impossible size), or its newest tree head lacks the
//	   cosignatures of a quorum of the witnesses (Witnesses)
//	3  otherwise, a line could not be checked (network, server error, a
//	   record newer than the witnessed head), or the state file could not
//	   be kept up to date (StateError), or the log's newest head could not
//	   be read for the witness policy
//	2  otherwise, a line is unknown to the log, malformed, or conflicts
//	   with another line of its module version
//	0  every line is verified or skipped
//
// Evidence against the log or the file comes first, and is never hidden by
// anything else. A line that could not be checked comes before an unknown
// one because it might have been a mismatch: status 2 promises that every
// other line was checked. A conflict is evidence against the files, as a
// malformed line is, found in the files alone: status 2, not 1, which says
// that the log contradicts a file or itself.
func (r *Report) ExitStatus() int {
	worst := map[int]bool{}
	for _, res := range r.Results {
		worst[res.Kind.Status()] = true
	}
	witness := 0
	if r.Witnesses != nil {
		witness = r.Witnesses.Status
	}
	switch {
	case worst[1] || len(r.SecurityErrors) > 0 || witness == 1:
		return 1
	case worst[3] || r.StateError != "" || witness == 3:
		return 3
	case worst[2]:
		return 2
	}
	return 0
}

// A Format is an output format of a Report.
type Format string

// Formats.
const (
	Text   Format = "text"   // one line per problem and a summary
	JSON   Format = "json"   // one JSON document with every line's result
	GitHub Format = "github" // GitHub Actions workflow commands annotating the go.sum lines
)

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case Text, JSON, GitHub:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want text, json or github)", s)
}

// Write writes r to w in format f. The format never changes what was found
// nor the exit status.
func (r *Report) Write(w io.Writer, f Format) error {
	switch f {
	case Text:
		return r.writeText(w)
	case JSON:
		return r.writeJSON(w)
	case GitHub:
		return r.writeGitHub(w)
	}
	return fmt.Errorf("write report: unknown format %q", f)
}

// problem returns the one-line description of a result that is not OK:
// "go.sum:12: example.com/m v1.0.0: mismatch: go.sum has h1:..., log has h1:...".
func (res Result) problem() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", res.File, res.Line)
	if res.Path != "" {
		b.WriteString(res.Module() + ": ")
	}
	b.WriteString(res.Kind.label())
	if res.Message != "" {
		b.WriteString(": " + oneLine(res.Message))
	}
	return b.String()
}

// summary returns the one-line summary of r.
func (r *Report) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sumdb check: %d %s in %d %s against %s", len(r.Results), plural(len(r.Results), "line", "lines"), len(r.Files), plural(len(r.Files), "file", "files"), r.Database)
	if r.Head != nil {
		fmt.Fprintf(&b, " (tree size %d", r.Head.Size)
		if r.StartHead != nil && r.StartHead.Size != r.Head.Size {
			fmt.Fprintf(&b, ", up from %d", r.StartHead.Size)
		}
		b.WriteString(")")
	}
	if w := r.Witnesses; w != nil && w.Error == "" && w.Head != nil {
		fmt.Fprintf(&b, ", witnessed at size %d by %s", w.Head.Size, strings.Join(w.Signers, ", "))
	}
	b.WriteString(":")
	counts := r.Counts()
	sep := " "
	for _, k := range kinds {
		if n := counts[k]; n > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, n, k.label())
			sep = ", "
		}
	}
	if len(r.Results) == 0 {
		b.WriteString(" nothing to check")
	}
	if r.StateError != "" {
		b.WriteString("; state file not updated")
	}
	fmt.Fprintf(&b, "; exit status %d", r.ExitStatus())
	return b.String()
}

func (r *Report) writeText(w io.Writer) error {
	var b strings.Builder
	for _, res := range r.Results {
		if res.Kind != OK {
			b.WriteString(res.problem() + "\n")
		}
	}
	for _, msg := range r.SecurityErrors {
		b.WriteString(strings.TrimRight(msg, "\n") + "\n")
	}
	if w := r.Witnesses; w != nil && w.Error != "" {
		b.WriteString("sumdb check: witnesses: " + oneLine(w.Error) + "\n")
	}
	if r.StateError != "" {
		b.WriteString("sumdb check: " + oneLine(r.StateError) + "\n")
	}
	if r.StateWarning != "" {
		b.WriteString("sumdb check: warning: " + oneLine(r.StateWarning) + "\n")
	}
	b.WriteString(r.summary() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeJSON(w io.Writer) error {
	counts := r.Counts()
	named := make(map[string]int, len(counts))
	for k, n := range counts {
		named[string(k)] = n
	}
	doc := struct {
		*Report
		Summary struct {
			Lines      int            `json:"lines"`
			Counts     map[string]int `json:"counts"`
			ExitStatus int            `json:"exit_status"`
		} `json:"summary"`
	}{Report: r}
	if doc.Results == nil {
		rr := *r
		rr.Results = []Result{}
		doc.Report = &rr
	}
	doc.Summary.Lines = len(r.Results)
	doc.Summary.Counts = named
	doc.Summary.ExitStatus = r.ExitStatus()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// writeGitHub writes workflow commands: an error annotation on the go.sum
// line of every problem, plain log lines for skipped lines (annotations are
// few per step, and a skip is no problem), each SECURITY ERROR as an error,
// a head without the witnesses' quorum as an error,
// a state file that failed as an error and one whose tiles were left
// unused as a warning, and the summary as a notice, or an error if the
// check fails.
func (r *Report) writeGitHub(w io.Writer) error {
	var b strings.Builder
	for _, res := range r.Results {
		switch res.Kind {
		case OK:
		case Skipped:
			b.WriteString(res.problem() + "\n")
		default:
			msg := res.Kind.label()
			if res.Message != "" {
				msg += ": " + res.Message
			}
			if res.Path != "" {
				msg = res.Module() + ": " + msg
			}
			fmt.Fprintf(&b, "::error file=%s,line=%d,title=%s::%s\n",
				ghProperty(res.File), res.Line, ghProperty("sumdb check: "+res.Kind.label()), ghData(msg))
		}
	}
	for _, msg := range r.SecurityErrors {
		fmt.Fprintf(&b, "::error title=%s::%s\n", ghProperty("sumdb check: SECURITY ERROR"), ghData(strings.TrimRight(msg, "\n")))
	}
	if w := r.Witnesses; w != nil && w.Error != "" {
		fmt.Fprintf(&b, "::error title=%s::%s\n", ghProperty("sumdb check: witnesses"), ghData(w.Error))
	}
	if r.StateError != "" {
		fmt.Fprintf(&b, "::error title=%s::%s\n", ghProperty("sumdb check: state file"), ghData(r.StateError))
	}
	if r.StateWarning != "" {
		fmt.Fprintf(&b, "::warning title=%s::%s\n", ghProperty("sumdb check: state file"), ghData(r.StateWarning))
	}
	cmd := "notice"
	if r.ExitStatus() != 0 {
		cmd = "error"
	}
	fmt.Fprintf(&b, "::%s title=%s::%s\n", cmd, ghProperty("sumdb check"), ghData(r.summary()))
	_, err := io.WriteString(w, b.String())
	return err
}

// ghData escapes the message of a workflow command (the runner's
// escapeData: %, CR and LF).
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a property value of a workflow command (the runner's
// escapeProperty: also ':' and ',').
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// oneLine joins the lines of s, for one-line messages.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sortResults orders results by file, in the order files were given, and
// line.
func sortResults(results []Result, files []string) {
	order := make(map[string]int, len(files))
	for i, f := range files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	slices.SortStableFunc(results, func(a, b Result) int {
		if c := order[a.File] - order[b.File]; c != 0 {
			return c
		}
		return a.Line - b.Line
	})
}
