package client

import (
	"errors"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// CheckLookupHead returns the error of OpenTreeHead, wrapping
// ErrTreeTooLarge, if data, the answer to a lookup, ends in a tree head
// signed by one of verifiers of more than MaxTreeSize records; otherwise
// nil. x/mod's sumdb.Client verifies everything else about the answer, but
// its tree arithmetic never ends on such a head: a ClientOps.ReadRemote
// refuses it before the client sees it. (The client reads tree heads from
// lookup answers only: tiles carry none.)
func CheckLookupHead(data []byte, verifiers note.Verifiers) error {
	_, _, msg, err := xtlog.ParseRecord(data)
	if err != nil {
		return nil // the client refuses it
	}
	if _, err := OpenTreeHead(msg, verifiers); errors.Is(err, ErrTreeTooLarge) {
		return err
	}
	return nil
}
