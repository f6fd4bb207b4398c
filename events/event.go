// Package events defines the version-1 audit event envelope that every
// producer (proxies, services, the ledger itself) publishes, the event type
// catalog, and validation that names the offending field.
//
// The JSON Schema in schema/event.v1.schema.json is the published contract;
// Validate implements the same rules in Go so the hot path needs no schema
// engine. A test checks that both agree on the same corpus.
//
// This package imports nothing else from the module.
package events

import (
	"embed"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Version is the envelope schema version this package reads and writes.
const Version = 1

// MaxSize is the largest encoded event accepted, in bytes. Response bodies
// never enter the ledger; only their digests do.
const MaxSize = 64 << 10

// Type is an event type from the catalog.
type Type string

// The version-1 catalog. Extend it; never repurpose a name.
const (
	SessionStarted    Type = "session.started"
	SessionEnded      Type = "session.ended"
	CommandExecuted   Type = "command.executed"
	CommandBlocked    Type = "command.blocked"
	ResponseDigest    Type = "response.digest"
	MaskApplied       Type = "mask.applied"
	ApprovalRequested Type = "approval.requested"
	ApprovalGranted   Type = "approval.granted"
	ApprovalDenied    Type = "approval.denied"
	ApprovalExpired   Type = "approval.expired"
	AccessGranted     Type = "access.granted"
	AccessRevoked     Type = "access.revoked"
	// AccessRequested, AccessApproved, AccessDenied and AccessExpired
	// record a just-in-time access request's transitions (with
	// AccessGranted and AccessRevoked).
	AccessRequested  Type = "access.requested"
	AccessApproved   Type = "access.approved"
	AccessDenied     Type = "access.denied"
	AccessExpired    Type = "access.expired"
	AuthnSucceeded   Type = "authn.succeeded"
	AuthnFailed      Type = "authn.failed"
	AuditAccessed    Type = "audit.accessed"
	EvidenceExported Type = "evidence.exported"
	// LedgerSegmentSealed is reserved: no writer records it (a segment's
	// sealing is its trailer, docs/FORMAT.md §4), and verify fails on a
	// record of it.
	LedgerSegmentSealed Type = "ledger.segment.sealed"
	// LedgerGap records stream sequences that vanished from AUDIT_EVENTS
	// before they were sealed.
	LedgerGap Type = "ledger.gap"
	// LedgerRejected records an event that failed validation: its digest
	// and the reason; its bytes are kept in AUDIT_REJECTED.
	LedgerRejected Type = "ledger.rejected"
	// ProducerAttested is a producer's signature over the digests of a
	// batch of its events.
	ProducerAttested Type = "producer.attested"
	// PolicyLoaded records the policy file a gateway enforces, before it
	// serves: file, version, digest and the exemptions it makes by
	// omission.
	PolicyLoaded Type = "policy.loaded"
	// SessionOutput is one bounded chunk of a session's byte stream (a
	// terminal's output, an exec's stdin).
	SessionOutput Type = "session.output"
	// LedgerRetentionChanged records a change of the writer's retention
	// for one tenant (or the default), sealed by the writer itself before
	// the first segment the new retention applies to.
	LedgerRetentionChanged Type = "ledger.retention.changed"
	// LedgerClockStatus records the writer's clock: synchronised or not
	// and its maximum error (adjtimex), at start and hourly, sealed by
	// the writer itself.
	LedgerClockStatus Type = "ledger.clock.status"
	// LedgerVerification records a full verification of the log the
	// writer ran (every record, the chain, each checkpoint's signature)
	// and what it found: the gap records and the first failed check,
	// sealed by the writer itself (docs/FORMAT.md §2.1).
	LedgerVerification Type = "ledger.verification"
	// IdentitySnapshot records the identity provider's users and groups
	// (SCIM 2.0), or the identities and groups seen in tokens, at start
	// and daily (services/directory).
	IdentitySnapshot Type = "identity.snapshot"
	// LegalHoldSet and LegalHoldReleased record an operator putting a
	// range of the log's segments under legal hold, and releasing it.
	LegalHoldSet      Type = "legal_hold.set"
	LegalHoldReleased Type = "legal_hold.released"
	// ErasureRequested, ErasurePerformed and ErasureRefused record the
	// erasure of a data subject's sealed fields (their key destroyed),
	// naming the subject's pseudonym only (docs/FORMAT.md §2.4).
	ErasureRequested Type = "erasure.requested"
	ErasurePerformed Type = "erasure.performed"
	ErasureRefused   Type = "erasure.refused"
	// SubjectHoldSet and SubjectHoldReleased record a data subject's
	// legal hold, which refuses their erasure (pseudonym only).
	SubjectHoldSet      Type = "subject_hold.set"
	SubjectHoldReleased Type = "subject_hold.released"
	// AlertRaised is an alert the alerter raised on a sealed event: the
	// rule, and the ledger index and id of the event that raised it.
	AlertRaised Type = "alert.raised"
	// AccessReviewed is a reviewer's sign-off of the just-in-time grants
	// a tenant's identities held in a period (an access review): the
	// period, the counts and the SHA-256 of the listing signed off.
	AccessReviewed Type = "access.reviewed"
	// SSHCertificateIssued is an SSH user certificate the SSH gateway
	// issued for an OIDC token. Earlier releases recorded it as
	// access.granted with grant "ssh-user-certificate" (docs/FORMAT.md
	// §1.1), a form still read.
	SSHCertificateIssued Type = "ssh.certificate.issued"
)

// Catalog lists every known type in catalog order.
var Catalog = []Type{
	SessionStarted, SessionEnded, CommandExecuted, CommandBlocked,
	ResponseDigest, MaskApplied, ApprovalRequested, ApprovalGranted,
	ApprovalDenied, ApprovalExpired, AccessGranted, AccessRevoked,
	AuthnSucceeded, AuthnFailed, AuditAccessed, EvidenceExported,
	LedgerSegmentSealed, LedgerGap, LedgerRejected, ProducerAttested,
	PolicyLoaded, SessionOutput, LedgerRetentionChanged, LedgerClockStatus, LedgerVerification, IdentitySnapshot, LegalHoldSet,
	LegalHoldReleased,
	ErasureRequested, ErasurePerformed, ErasureRefused, SubjectHoldSet, SubjectHoldReleased,
	AccessRequested, AccessApproved, AccessDenied, AccessExpired,
	AlertRaised, AccessReviewed, SSHCertificateIssued,
}

var known = func() map[Type]bool {
	m := make(map[Type]bool, len(Catalog))
	for _, t := range Catalog {
		m[t] = true
	}
	return m
}()

// Known reports whether t is in the catalog.
func (t Type) Known() bool { return known[t] }

// Ledger reports whether t is one of the types only the ledger writer
// records (ledger.*); a producer's event of such a type is rejected.
func (t Type) Ledger() bool { return strings.HasPrefix(string(t), "ledger.") }

// Event is the version-1 envelope. Field order here is the order Marshal
// writes; the ledger never re-encodes an accepted event, so order only
// matters for events this module creates.
type Event struct {
	Version    int            `json:"version"`
	ID         string         `json:"id"`
	Type       Type           `json:"type"`
	Time       time.Time      `json:"time"`
	Tenant     string         `json:"tenant"`
	Source     Source         `json:"source"`
	Actor      Actor          `json:"actor"`
	SessionID  string         `json:"session_id,omitempty"`
	SessionSeq uint64         `json:"session_seq,omitzero"`
	Target     *Target        `json:"target,omitempty"`
	Payload    jsontext.Value `json:"payload"`
}

// Source names the producer of an event.
type Source struct {
	Kind     string `json:"kind"`              // e.g. "postgres-proxy", "http-proxy", "ledger"
	Instance string `json:"instance"`          // which running instance
	Version  string `json:"version,omitempty"` // producer software version
}

// ActorKind says whether a person or an automated agent acted.
type ActorKind string

// Actor kinds.
const (
	Human   ActorKind = "human"
	Machine ActorKind = "machine"
)

// Actor is the identity behind an event, as established by OIDC. Its
// Email is sealed under the actor's key by gateways and the API
// ("pii1.<pseudonym>.<sealed bytes>", docs/FORMAT.md §1.6), so that
// erasing them leaves no readable address in the log; plain text is still
// accepted from producers that seal nothing.
type Actor struct {
	Issuer  string    `json:"issuer"`
	Subject string    `json:"subject"`
	Email   string    `json:"email,omitempty"`
	Groups  []string  `json:"groups,omitempty"`
	Kind    ActorKind `json:"kind"`
	// DevIdentity marks identities from a development users file or the
	// built-in development issuer, never from a production provider.
	DevIdentity bool `json:"dev_identity,omitempty"`
}

// Target is the system acted upon.
type Target struct {
	Kind     string `json:"kind"` // e.g. "postgres", "http"
	Name     string `json:"name,omitempty"`
	Host     string `json:"host,omitempty"`
	Database string `json:"database,omitempty"`
}

//go:embed schema/event.v1.schema.json
var schemaFS embed.FS

// Schema returns the JSON Schema (draft 2020-12) of the version-1 envelope.
func Schema() []byte {
	b, err := schemaFS.ReadFile("schema/event.v1.schema.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Clean makes s fit an envelope text field of at most max characters
// (max ≤ 0 means 256): control characters and bytes that are not UTF-8
// are written as \xNN escapes, and the text is cut at max characters,
// ending in "…". Producers use it for values they do not control — a user
// name a client sent, a path — so the event is recorded rather than
// refused; keep the original's length or digest in the payload when the
// difference matters.
func Clean(s string, max int) string {
	if max <= 0 {
		max = maxNameLen
	}
	out := make([]rune, 0, min(len(s), max+1))
	for len(s) > 0 && len(out) <= max {
		r, size := utf8.DecodeRuneInString(s)
		if (r == utf8.RuneError && size <= 1) || r < ' ' || r == 0x7f {
			for _, c := range fmt.Sprintf(`\x%02x`, s[0]) {
				out = append(out, c)
			}
			size = 1
		} else {
			out = append(out, r)
		}
		s = s[size:]
	}
	if len(out) > max || len(s) > 0 {
		if len(out) >= max {
			out = out[:max-1]
		}
		out = append(out, '…')
	}
	return string(out)
}
