package projections

import (
	"errors"
	"fmt"
)

// What the read side answers when it cannot: each caller maps these to its
// own terms (the API to HTTP statuses, in services/api's status).
var (
	// ErrNotProjected means the projection has not reached the size asked
	// for.
	ErrNotProjected = errors.New("projections: not projected yet")
	// ErrNotFound means nothing in the projection matches: no such
	// session, record or checkpoint (yet). Its text is the bare "not
	// found", as the API shows it.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means the reader has no projection database to read.
	ErrUnavailable = errors.New("projections: no projection database")
	// ErrNoSchema means the projection database does not hold this
	// version's schema yet: the projector creates it (migrates) when it
	// starts. It is an ErrUnavailable: try again shortly.
	ErrNoSchema = fmt.Errorf("%w yet: the projector has not created the projection's schema (it does when it starts); try again shortly", ErrUnavailable)
	// ErrBadFilter is what every FilterError is.
	ErrBadFilter = errors.New("projections: bad filter")
)

// FilterError is a filter, cursor or size the reader refuses, before any
// query: Field names it as the API's query parameter of the same meaning
// does ("type", "actor", "after", "limit", "size", ...), Reason says what
// is wrong with it.
type FilterError struct {
	Field  string
	Reason string
}

func (e *FilterError) Error() string        { return "projections: " + e.Field + ": " + e.Reason }
func (e *FilterError) Is(target error) bool { return target == ErrBadFilter }
