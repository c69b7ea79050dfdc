package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/module"
)

// A Kind names a kind of alert.
type Kind string

// The kinds of alerts.
const (
	// KindUnauthorized: a version of a watched module that is not among
	// the authorized versions.
	KindUnauthorized Kind = "unauthorized"
	// KindMismatch: an authorized version logged with other hashes than
	// the authorized ones.
	KindMismatch Kind = "mismatch"
	// KindNew: a version of a watched module, when no authorized versions
	// are given: every new version is reported.
	KindNew Kind = "new"
	// KindMalformed: a record that is not well formed (not the two go.sum
	// lines of one version, as "sumdb audit" requires) and names a watched
	// module path, but in no line of the form
	// "<path> <version>[/go.mod] <hash>" that the go command would read:
	// Module is the watched path it names, Version is "", and Problem says
	// what is wrong with the record.
	KindMalformed Kind = "malformed"
)

// Hashes are the two hashes of a module version, "h1:..." each: its zip
// and its go.mod file. An authorized version may name only one of them,
// and a record may give only one: the other is then "". A record that
// gives several hashes of one kind (the go command accepts any of them)
// has them all, joined by a space.
type Hashes struct {
	Zip string `json:"zip,omitempty"`
	Mod string `json:"go_mod,omitempty"`
}

// An Alert is a version of a watched module that the log holds and that
// its owner should look at, or a record of the log that names a watched
// module and is not well formed (KindMalformed).
type Alert struct {
	Kind    Kind   `json:"kind"`
	Module  string `json:"module"`
	Version string `json:"version"`
	// Hashes are the hashes the log holds for the version.
	Hashes Hashes `json:"hashes"`
	// Authorized are the hashes of the authorized version, for a mismatch.
	Authorized *Hashes `json:"authorized,omitempty"`
	// Problem says why the record is not well formed, for KindMalformed.
	Problem string `json:"problem,omitempty"`
	// Record is the id of the log's record of the version.
	Record int64 `json:"record"`
	// HeadSize is the size of the signed tree head that the record was
	// verified against.
	HeadSize int64 `json:"head_size"`
	// Database is the name of the checksum database.
	Database string `json:"database"`
}

// String returns the alert as one line for a person to read.
func (a Alert) String() string {
	where := fmt.Sprintf("record %d of %s (signed head of size %d)", a.Record, a.Database, a.HeadSize)
	switch a.Kind {
	case KindMismatch:
		var diffs []string
		if a.Authorized.Zip != "" && a.Authorized.Zip != a.Hashes.Zip {
			diffs = append(diffs, fmt.Sprintf("zip hash %s, authorized %s", a.Hashes.Zip, a.Authorized.Zip))
		}
		if a.Authorized.Mod != "" && a.Authorized.Mod != a.Hashes.Mod {
			diffs = append(diffs, fmt.Sprintf("go.mod hash %s, authorized %s", a.Hashes.Mod, a.Authorized.Mod))
		}
		return fmt.Sprintf("mismatch: %s@%s is logged with other hashes than the authorized version: %s; %s", a.Module, a.Version, strings.Join(diffs, "; "), where)
	case KindMalformed:
		return fmt.Sprintf("malformed: a record that names %s is not well formed (%s): %s", a.Module, a.Problem, where)
	case KindUnauthorized:
		return fmt.Sprintf("unauthorized: %s@%s is not an authorized version: %s (zip %s, go.mod %s)", a.Module, a.Version, where, a.Hashes.Zip, a.Hashes.Mod)
	default:
		return fmt.Sprintf("%s: %s@%s: %s (zip %s, go.mod %s)", a.Kind, a.Module, a.Version, where, a.Hashes.Zip, a.Hashes.Mod)
	}
}

// A Sink delivers alerts: to a terminal, a file, a webhook.
type Sink interface {
	// Deliver delivers alerts, in order, and returns nil only if all were
	// delivered.
	Deliver(ctx context.Context, alerts []Alert) error
}

// A WriterSink writes alerts to W, one a line: as Alert.String, or with
// JSON set, one JSON object a line.
type WriterSink struct {
	W    io.Writer
	JSON bool
}

// Deliver writes alerts to s.W.
func (s WriterSink) Deliver(_ context.Context, alerts []Alert) error {
	var b strings.Builder
	for _, a := range alerts {
		if s.JSON {
			line, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("write alert: %w", err)
			}
			b.Write(line)
			b.WriteByte('\n')
		} else {
			b.WriteString(a.String())
			b.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(s.W, b.String()); err != nil {
		return fmt.Errorf("write alerts: %w", err)
	}
	return nil
}

// A Pattern is a module path to watch, or a prefix of module paths.
type Pattern struct {
	path   string
	prefix bool
}

// ParsePattern parses a module path, or a prefix of module paths written
// with a trailing "/..." or "/": "example.com/org/..." matches
// example.com/org and every module path under it, such as
// example.com/org/m/v2.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{path: s}
	if t, ok := strings.CutSuffix(s, "/..."); ok {
		p = Pattern{path: t, prefix: true}
	} else if t, ok := strings.CutSuffix(s, "/"); ok {
		p = Pattern{path: t, prefix: true}
	}
	if p.path == "" {
		return Pattern{}, errors.New("empty module path: give a module path such as example.com/m, or a prefix such as example.com/org/...")
	}
	if err := module.CheckImportPath(p.path); err != nil {
		return Pattern{}, fmt.Errorf("module path %q: %w", s, err)
	}
	return p, nil
}

// Match reports whether the module path is the pattern's, or under it.
func (p Pattern) Match(path string) bool {
	if path == p.path {
		return true
	}
	return p.prefix && strings.HasPrefix(path, p.path+"/")
}

// String returns the pattern as ParsePattern reads it.
func (p Pattern) String() string {
	if p.prefix {
		return p.path + "/..."
	}
	return p.path
}
