// Package evidence builds and verifies evidence bundles: one zip file per
// tenant, framework and period, signed with an SSH key, that an auditor
// checks offline — with `auditledger evidence verify`, or with ssh-keygen
// and sha256sum for the signature and the files' hashes. The layout and
// every check are in docs/FORMAT.md §12.
package evidence

import (
	"time"
)

// Format names the bundle layout; a verifier refuses others but
// FormatV1, the layout before SHA256SUMS was signed.
const (
	Format   = "auditledger-evidence/2"
	FormatV1 = "auditledger-evidence/1"
)

// Files of a bundle with fixed names.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.sig"
	SumsFile      = "SHA256SUMS"
	SumsSigFile   = "SHA256SUMS.sig"
	SignersFile   = "keys/allowed_signers"
	LogKeyFile    = "keys/log.vkey"
	// GrantKeyFile is the builder's copy of the grant key (the access
	// broker's approvals.vkey) the assertions were derived with.
	GrantKeyFile    = "keys/grant.vkey"
	StartCheckpoint = "log/checkpoint-start"
	EndCheckpoint   = "log/checkpoint-end"
	ConsistencyFile = "log/consistency.txt"
	PrefixFile      = "log/prefix.txt"
	RecordsFile     = "log/records.bin"
	SegmentsFile    = "log/segments.json"
	RetentionFile   = "log/retention.jsonl"
	// The legal holds: the newest checkpoint when the bundle was built,
	// the consistency proof to it from the end checkpoint, and the
	// legal-hold records of the range proven in it.
	LatestCheckpoint      = "log/checkpoint-latest"
	LatestConsistencyFile = "log/consistency-latest.txt"
	LegalHoldsFile        = "log/legal-holds.jsonl"
	EventsFile            = "events.jsonl"
	// The context an audit asks for, derived from the range's records
	// (context.go) and re-derived by the verifier.
	PoliciesFile   = "context/policies.json"
	IdentitiesFile = "context/identities.json"
	ClockFile      = "context/clock.json"
	OSCALFile      = "oscal/assessment-results.json"
	ReportFile     = "index.html"
	VerifyFile     = "VERIFY.md"
)

// Manifest describes a bundle; its signature covers every file through
// their hashes.
type Manifest struct {
	Format    string    `json:"format"`
	BundleID  string    `json:"bundle_id"`
	Tenant    string    `json:"tenant"`
	Period    Period    `json:"period"`
	Range     Range     `json:"range"`
	Framework Framework `json:"framework"`
	// Generator names the program and its version that built the bundle.
	Generator string `json:"generator"`
	// RequestedBy is who asked for the bundle, as the export is recorded
	// in evidence.exported; absent from bundles built before it was
	// carried.
	RequestedBy *Requester `json:"requested_by,omitempty"`
	Created     time.Time  `json:"created"`
	Log         LogInfo    `json:"log"`
	// GrantVKey is the key access grants' signatures were checked with
	// (privileged-sessions-granted), keys/grant.vkey; absent when the
	// bundle was built without one.
	GrantVKey string `json:"grant_vkey,omitempty"`
	// Signer is the principal keys/allowed_signers names for the key that
	// signed the manifest.
	Signer string `json:"signer"`
	// Events is how many of the tenant's events the range holds.
	Events   int       `json:"events"`
	Controls []Control `json:"controls"`
	Files    []File    `json:"files"`
	// SealedFields, when the tenant's events hold sealed fields, counts
	// them and names those erased (sealed.go).
	SealedFields *SealedFields `json:"sealed_fields,omitempty"`
	// LegalHolds accounts for the legal holds of the range (holds.go);
	// absent from bundles built before they were carried.
	LegalHolds *LegalHolds `json:"legal_holds,omitempty"`
	// Verifications accounts for the writer's verification records sealed
	// after the range (verifications.go); absent from bundles built
	// before they were carried.
	Verifications *Verifications `json:"verifications,omitempty"`
	// Expectations names the expectations file the controls were tested
	// against (assert.go); absent from bundles built before assertions.
	Expectations *Expectations `json:"expectations,omitempty"`
	// Warnings are what a reader must know before relying on the bundle,
	// each derived from the bundle itself (assert.go).
	Warnings []string `json:"warnings,omitempty"`
}

// Requester is who asked for a bundle: the API's caller as authenticated
// (the token's issuer and subject), or the operator running the CLI.
type Requester struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// Period is what was asked for: [From, To).
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Range is the ledger index range the bundle proves: [First, End), from
// the start checkpoint's size to the end checkpoint's. It covers the
// period whole, starting and ending on segment boundaries, so it may hold
// a few records sealed just before or after it.
type Range struct {
	First uint64 `json:"first"`
	End   uint64 `json:"end"`
	// Sealing times of its first and last record.
	FirstSealed *time.Time `json:"first_sealed,omitempty"`
	LastSealed  *time.Time `json:"last_sealed,omitempty"`
	// Open is set when the log had not yet been sealed past the period's
	// end when the bundle was built: later records of the period may come.
	Open bool `json:"open,omitempty"`
}

// Framework names the control data the bundle was built with.
type Framework struct {
	ID             string `json:"id"`
	Version        string `json:"version"`
	MappingVersion int    `json:"mapping_version"`
}

// LogInfo names the log and the key its checkpoints are signed with.
type LogInfo struct {
	Origin string `json:"origin"`
	VKey   string `json:"vkey"`
}

// Control is one control's result in the bundle.
type Control struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Observed is false when no query found a row: the report then says
	// plainly that nothing was observed in the period.
	Observed bool           `json:"observed"`
	Counts   map[string]int `json:"rows"` // rows per query
	// Capped names the queries whose rows were cut at the bundle's limit.
	Capped []string `json:"capped,omitempty"`
	// Derived names the tables derived from the bundle's records
	// (FORMAT §12.3), which the verifier re-derives; the others were
	// queried on the projection.
	Derived []string `json:"derived,omitempty"`
	// Assertion is the control's expectation tested against the bundle's
	// events; absent when none is declared for it.
	Assertion *ControlAssertion `json:"assertion,omitempty"`
	Files     []string          `json:"files"`
}

// Result labels a control's outcome for a reader: its assertion's result
// (effective, exceptions found, not observed) when an expectation is
// declared for it; else what the ledger observed is not assessed against
// anything, so a control with rows is "observed, not assessed" — never
// "effective", and never merely "evidence" — and one without is "not
// observed".
func (c Control) Result() string {
	if c.Assertion != nil {
		return c.Assertion.Result
	}
	if !c.Observed {
		return "not observed"
	}
	return "observed, not assessed"
}

// File is one file of the bundle with its size, SHA-256 (hex) and the
// controls it supports.
type File struct {
	Path     string   `json:"path"`
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
	Controls []string `json:"controls,omitempty"`
}

// Segment is one segment holding records of the range, with its lock as
// the store reported it.
type Segment struct {
	Name        string     `json:"name"`
	First       uint64     `json:"first"`
	Size        uint64     `json:"size"` // tree size at its end
	SHA256      string     `json:"sha256"`
	Version     string     `json:"version,omitempty"`
	LockMode    string     `json:"lock_mode,omitempty"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	// Sealed is the sealing time of its last record.
	Sealed time.Time `json:"sealed"`
	// LegalHold: the legal-hold records leave the segment held; LegalHoldBy
	// is the last of them concerning it (absent: none does).
	LegalHold   bool    `json:"legal_hold"`
	LegalHoldBy *uint64 `json:"legal_hold_by,omitempty"`
	// StoreLegalHold and Checkpoint: the segment's legal hold, and the
	// lock and legal hold of the checkpoint signed at its end, as the store
	// reported them when the bundle was built; absent when it was built
	// without the store.
	StoreLegalHold *bool       `json:"store_legal_hold,omitempty"`
	Checkpoint     *ObjectLock `json:"checkpoint,omitempty"`
}

// EventLine is one line of events.jsonl: one of the tenant's events in
// the range, with its ledger index and leaf hash. Event is the event's
// exact bytes, whose SHA-256 its record commits to.
type EventLine struct {
	Index  uint64    `json:"index"`
	Leaf   string    `json:"leaf"`
	Sealed time.Time `json:"sealed_at"`
	Event  any       `json:"event"`
}
