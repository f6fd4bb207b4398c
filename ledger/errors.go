package ledger

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers (and the HTTP layer's error-to-status mapping) can test the kind.
var (
	ErrExist        = errors.New("object already exists")
	ErrNotExist     = errors.New("object does not exist")
	ErrMalformed    = errors.New("malformed")
	ErrBadKey       = errors.New("bad key")
	ErrBadSignature = errors.New("bad signature")
	ErrBadProof     = errors.New("proof does not verify")
	ErrOutOfRange   = errors.New("out of range")
	ErrTampered     = errors.New("verification failed")
	// ErrFenced means another writer sealed the segment or checkpoint this
	// writer was about to write: this writer must stop and reopen the log.
	ErrFenced = errors.New("log is being written by another writer")
	// ErrWrongKey means the store's checkpoints are signed by another
	// key than the writer's: the wrong signing key, or the wrong store.
	ErrWrongKey = errors.New("the store's log is signed by another key")
	// ErrGaps means the log is intact but records stream sequences that
	// vanished before they were sealed (see GapsError).
	ErrGaps = errors.New("log records gaps")
	// ErrUnattested means the log is intact but holds events no
	// attestation of their producer covers (see UnattestedError).
	ErrUnattested = errors.New("events not attested by their producer")
	// ErrProtected means a store refused to delete an object that is under
	// legal hold or within its retention.
	ErrProtected = errors.New("object is protected (legal hold or retention)")
)

// VerifyError is a verification failure with its evidence: where it was
// found, what was expected and what was found.
type VerifyError struct {
	Object   string // segment or checkpoint name, if any
	Index    int64  // log index, or -1
	Check    string // which check failed
	Expected string
	Found    string
}

func (e *VerifyError) Error() string {
	s := e.Check
	if e.Object != "" {
		s = e.Object + ": " + s
	}
	if e.Index >= 0 {
		s = fmt.Sprintf("index %d: %s", e.Index, s)
	}
	if e.Expected != "" || e.Found != "" {
		s += fmt.Sprintf(": expected %s, found %s", e.Expected, e.Found)
	}
	return s
}

func (e *VerifyError) Unwrap() error { return ErrTampered }

func verr(object string, index int64, check, expected, found string) error {
	return &VerifyError{Object: object, Index: index, Check: check, Expected: expected, Found: found}
}
