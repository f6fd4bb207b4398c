package ledger

import (
	"context"
	"time"
)

// SegmentStore keeps sealed segments and checkpoints as immutable objects.
// Names are slash-separated paths such as "segments/00000000000000000000.seg".
type SegmentStore interface {
	// Create stores data as a new object called name. It MUST NOT replace
	// an existing object: if name exists, whoever wrote it, Create returns
	// an error wrapping ErrExist and the existing object is unchanged. When
	// Create returns nil the object MUST be durable and readable by Get.
	// A non-zero retainUntil is the date before which the object MUST NOT
	// be deletable where the store can enforce it; stores that cannot say
	// so in their documentation. On any other error the object may or may
	// not exist: the caller finds out with Get.
	Create(ctx context.Context, name string, data []byte, retainUntil time.Time) error

	// Get returns the object's content as first written. If the object
	// does not exist it returns an error wrapping ErrNotExist.
	Get(ctx context.Context, name string) ([]byte, error)

	// List returns the names of all objects whose name starts with prefix,
	// in lexical order, including objects a store-level delete has hidden
	// but not destroyed.
	List(ctx context.Context, prefix string) ([]string, error)

	// String describes the store for messages. It MUST NOT contain secrets.
	String() string
}

// Inspector is implemented by stores that can report how an object is
// protected. Verify uses it when available.
type Inspector interface {
	// Inspect reports the protection of name. Problems lists tampering
	// that does not change what Get returns (an S3 delete marker or a
	// newer version hiding the original); Verify fails on any.
	Inspect(ctx context.Context, name string) (Protection, error)
}

// Protection is how one stored object is protected against change.
type Protection struct {
	// Locked is true when the store enforces retention (S3 Object Lock).
	Locked bool
	// Mode is the lock mode ("COMPLIANCE", "GOVERNANCE") or a description
	// such as "read-only file".
	Mode        string
	RetainUntil time.Time // zero when not Locked
	// LegalHold is true while the object is under legal hold (LegalHolder):
	// not deletable whatever its retain-until date.
	LegalHold bool
	Version   string   // the version Get reads, where the store has versions
	Problems  []string // tampering found; empty when intact
	Warnings  []string // worth a look, not proof of tampering
}

// LegalHolder is implemented by stores that can put an object under legal
// hold: S3 Object Lock's legal hold, or a local store's hold marker.
type LegalHolder interface {
	// SetLegalHold puts name under legal hold (on) or releases it (off).
	// While held, the store MUST refuse to delete the object, even after
	// its retain-until date. Setting a hold that is set, or releasing one
	// that is not, succeeds. If name does not exist it returns an error
	// wrapping ErrNotExist and changes nothing. When it returns nil the
	// change is durable and Inspect reports it.
	SetLegalHold(ctx context.Context, name string, on bool) error
}

// Deleter is implemented by stores that can destroy an object: what an
// operator does once a segment's retention has ended.
type Deleter interface {
	// Delete destroys name's sealed version. It MUST refuse, with an error
	// wrapping ErrProtected, while name is under legal hold, and while its
	// retain-until date is in the future where the store enforces one.
	// If name does not exist it returns an error wrapping ErrNotExist.
	Delete(ctx context.Context, name string) error
}
