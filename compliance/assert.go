package compliance

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/eventscan"
	"github.com/auditledger/auditledger/internal/yamlstrict"
)

// Expectations are what each control is tested against (expectations.yaml
// of a framework's folder, or the operator's own file in the same form):
// a declared expectation per control, checked against every event of a
// bundle. An expectation states what should hold — not what the policy in
// force enforced, which may itself be the gap.
//
// Version 2 differs from version 1 only in privileged-sessions-granted:
// version 1 took any access.granted record naming the session's grant as
// the grant, whoever published it; version 2 counts only the access
// broker's signed grants (FORMAT §12.1). Version 3 differs from version 2
// only in audit-reviewed: versions 1 and 2 tested only the time between
// two reviews; version 3 also tests the time from the period's start to
// the first review and from the last review to the period's end.
// Version 4 adds log-verified and log-intact (5.33 and 8.15 derived from
// the writer's sealed verification records); a file of an older version
// cannot declare them, and tests every other check as version 3.
// Version 5 differs from version 4 only in refusals-name-rule: its
// population is the refusals a policy rule decided (a command.blocked
// whose payload has a rule member, or access_required true), where
// versions 1 to 4 took every command.blocked, the API's refusals and a
// gateway's refusals no rule names included. Older versions are read to
// re-derive bundles built with them (Legacy, LegacyReviews,
// LegacyRefusals).
type Expectations struct {
	Version  int           `yaml:"version"`
	Controls []Expectation `yaml:"controls"`
}

// Expectation is one control's declared expectation: a check of the fixed
// vocabulary below (docs/FORMAT.md §12.1 defines each exactly) and its
// parameters.
type Expectation struct {
	Control string `yaml:"control"`
	Check   string `yaml:"check"`
	// Statement says in plain words what was tested.
	Statement string `yaml:"statement"`
	// Kinds are statement kinds (the first keyword, compared upper-cased).
	Kinds []string `yaml:"kinds"`
	// Columns are the columns masking must cover (compared lower-cased).
	Columns []string `yaml:"columns"`
	// ApprovalsCover: a privileged statement a second person approved is
	// covered as if under a grant (check privileged-sessions-granted).
	ApprovalsCover bool `yaml:"approvals_cover"`
	// MaxErrorMicros bounds the clock's maximum error (check
	// clock-synchronised), in microseconds.
	MaxErrorMicros int64 `yaml:"max_error_us"`
	// EveryDays is the longest time, in days, between two reviews of the
	// audit data (check audit-reviewed).
	EveryDays int `yaml:"every_days"`
}

// The checks an expectation can name.
const (
	CheckChangesApproved   = "changes-approved"
	CheckPrivilegedGranted = "privileged-sessions-granted"
	CheckColumnsMasked     = "columns-masked"
	CheckRefusalsNameRule  = "refusals-name-rule"
	CheckApprovalsByOther  = "approvals-decided-by-another"
	CheckClockSynchronised = "clock-synchronised"
	CheckActorsListed      = "actors-listed"
	CheckGroupsProvisioned = "groups-provisioned"
	CheckAuditReviewed     = "audit-reviewed"
	CheckLogVerified       = "log-verified"
	CheckLogIntact         = "log-intact"
)

var checks = []string{CheckChangesApproved, CheckPrivilegedGranted, CheckColumnsMasked, CheckRefusalsNameRule, CheckApprovalsByOther,
	CheckClockSynchronised, CheckActorsListed, CheckGroupsProvisioned, CheckAuditReviewed, CheckLogVerified, CheckLogIntact}

// ExpectationsVersion is the version of expectations files this release
// writes (and builds bundles with).
const ExpectationsVersion = 5

// ParseExpectations reads an expectations file strictly: unknown keys,
// unknown checks, a check without the parameters it needs, and a control
// named twice are errors naming the file.
func ParseExpectations(name string, b []byte) (*Expectations, error) {
	var x Expectations
	if err := yamlstrict.Decode(b, &x, name); err != nil {
		return nil, err
	}
	if x.Version < 1 || x.Version > ExpectationsVersion {
		return nil, fmt.Errorf("%s: version %d, want %d (or 1 to 4, read only to verify bundles built before)", name, x.Version, ExpectationsVersion)
	}
	seen := map[string]bool{}
	for _, e := range x.Controls {
		switch {
		case e.Control == "":
			return nil, fmt.Errorf("%s: an expectation without a control", name)
		case seen[e.Control]:
			return nil, fmt.Errorf("%s: control %s has two expectations, want one", name, e.Control)
		case !slices.Contains(checks, e.Check):
			return nil, fmt.Errorf("%s: control %s: check %q, want one of %s", name, e.Control, e.Check, strings.Join(checks, ", "))
		case e.Statement == "":
			return nil, fmt.Errorf("%s: control %s: no statement: say in plain words what is tested", name, e.Control)
		case (e.Check == CheckChangesApproved || e.Check == CheckPrivilegedGranted) && len(e.Kinds) == 0:
			return nil, fmt.Errorf("%s: control %s: check %s needs kinds (the statement kinds it covers)", name, e.Control, e.Check)
		case e.Check == CheckColumnsMasked && len(e.Columns) == 0:
			return nil, fmt.Errorf("%s: control %s: check %s needs columns", name, e.Control, e.Check)
		case e.Check == CheckClockSynchronised && e.MaxErrorMicros <= 0:
			return nil, fmt.Errorf("%s: control %s: check %s needs max_error_us (the largest maximum error allowed, in microseconds, above 0)", name, e.Control, e.Check)
		case (e.Check == CheckLogVerified || e.Check == CheckLogIntact) && x.Version < 4:
			return nil, fmt.Errorf("%s: control %s: check %s is of version 4 and later: declare version: %d", name, e.Control, e.Check, ExpectationsVersion)
		case e.Check == CheckAuditReviewed && e.EveryDays <= 0:
			return nil, fmt.Errorf("%s: control %s: check %s needs every_days (the longest time between two reviews, in days, above 0)", name, e.Control, e.Check)
		}
		seen[e.Control] = true
	}
	return &x, nil
}

// Legacy reports whether x is of version 1 and declares
// privileged-sessions-granted, which it tests by version 1's rule: any
// access.granted record naming the session's grant covers it, whoever
// published it and signed or not. A bundle is no longer built with such
// a file; a verifier re-derives one built before, and says so.
func (x *Expectations) Legacy() bool {
	return x.Version == 1 && slices.ContainsFunc(x.Controls, func(e Expectation) bool { return e.Check == CheckPrivilegedGranted })
}

// LegacyReviews reports whether x is of version 1 or 2 and declares
// audit-reviewed, which it tests by those versions' rule: only the time
// between two reviews, not the time from the period's start to the first
// review nor from the last review to the period's end. A bundle is no
// longer built with such a file; a verifier re-derives one built before,
// and says so.
func (x *Expectations) LegacyReviews() bool {
	return x.Version < 3 && slices.ContainsFunc(x.Controls, func(e Expectation) bool { return e.Check == CheckAuditReviewed })
}

// LegacyRefusals reports whether x is of a version before 5 and declares
// refusals-name-rule, which it tests by those versions' rule: every
// command.blocked is in the population, the API's refusals and a
// gateway's refusals no rule names included, so each shows as refused
// with no rule named. A bundle is no longer built with such a file; a
// verifier re-derives one built before, and says so.
func (x *Expectations) LegacyRefusals() bool {
	return x.Version < 5 && slices.ContainsFunc(x.Controls, func(e Expectation) bool { return e.Check == CheckRefusalsNameRule })
}

// For returns the expectation of a control, if any.
func (x *Expectations) For(control string) (Expectation, bool) {
	i := slices.IndexFunc(x.Controls, func(e Expectation) bool { return e.Control == control })
	if i < 0 {
		return Expectation{}, false
	}
	return x.Controls[i], true
}

// Results of an assertion.
const (
	Effective   = "effective"
	Exceptions  = "exceptions found"
	NotObserved = "not observed"
)

// Period is the time the assertions cover, [From, To): audit-reviewed
// counts the time from From to the first review and from the last review
// to To (FORMAT §12.1; a bundle's edges are evidence's to say). First and
// End are the range of records it holds, [First, End): log-verified and
// log-intact read them. The other checks read only the events.
type Period struct {
	From, To   time.Time
	First, End uint64
}

// Observed is one of a bundle's events: its ledger index and exact bytes
// (a line of events.jsonl).
type Observed struct {
	Index uint64
	Event []byte
}

// Row is one member of an assertion's population: the event tested, and
// the exception it makes, if any (empty: it meets the expectation).
type Row struct {
	// NoEvent: the row tests the period, not an event (audit-reviewed's
	// time from the last review to the period's end): its index, type,
	// session and actor are empty.
	NoEvent   bool
	Index     uint64
	Type      string
	SessionID string
	// Actor is the actor's subject exactly as the event records it (a
	// pseudonym where the ledger records one).
	Actor string
	// Item says what was tested: the statement, the column, the decision.
	Item string
	// Evidence is the index of the event that meets the expectation (the
	// approval, the grant, the mask), or nil.
	Evidence  *uint64
	Exception string
}

// Assertion is one control's expectation tested against a bundle's events.
type Assertion struct {
	Control    string
	Check      string
	Statement  string
	Rows       []Row
	Exceptions int
	Result     string
}

// AssertionColumns is the header of an assertion's CSV.
var AssertionColumns = []string{"index", "type", "session_id", "actor", "item", "evidence_index", "exception"}

// CSV returns the row as the assertion's CSV writes it.
func (r Row) CSV() []string {
	ev := ""
	if r.Evidence != nil {
		ev = fmt.Sprint(*r.Evidence)
	}
	idx := fmt.Sprint(r.Index)
	if r.NoEvent {
		idx = ""
	}
	return []string{idx, r.Type, r.SessionID, r.Actor, r.Item, ev, r.Exception}
}

// event is what the checks keep of one event: only the members they read
// (statements cut to ItemMax), and only for events a check may need, so
// that a bundle of millions of statements is tested in little memory.
type event struct {
	idx                   uint64
	id, typ, session      string
	time                  time.Time
	issuer, subject, kind string // the actor
	stmtKind, item, sha   string // commands: kind (upper-cased), statement cut, statement_sha256
	psession, approvalID  string // approvals: payload session_id, approval_id
	reqIssuer, reqSubject string // payload requester
	accessID              string
	notBefore, notAfter   string
	grant                 *grantRecord      // access.granted: what its judgement reads
	rule                  string            // command.blocked: rule, trimmed
	byRule                bool              // command.blocked: a rule decided it (refusalsNameRule)
	named                 []string          // commands: the listed columns the statement names
	rows                  bool              // commands naming one: a later result had rows
	masked                map[string]uint64 // commands naming one: the first later mask per column
	// ledger.clock.status
	synced         bool
	maxErr         int64
	clockSrc, host string
	readErr        string
	// session.started of a person: the directory listing in force
	dir         *listed
	tokenGroups []string
	// audit.accessed: what was read
	resource string
}

// grantRecord is what privileged-sessions-granted reads of an
// access.granted record, and its judgement once made.
type grantRecord struct {
	grant, sourceKind, tenant string
	rule, target, signature   string
	breakGlass                bool
	// judged: why is set; why is "" when the record counts as a grant
	judged bool
	why    string
}

// listed is what the identity provider's listing in force when a session
// started said of its actor.
type listed struct {
	// snapshot: the index of the listing's part naming the actor, or of
	// its last part when none does; none: no listing of the provider
	// (source scim) was complete before the session
	snapshot uint64
	none     bool
	found    bool
	active   bool
	// groups the token named that the listing did not give the actor
	extra []string
}

// envelope is the JSON of an event as the checks decode it: every payload
// member raw, so that a member of an unexpected type reads as empty
// rather than failing.
type envelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	SessionID string    `json:"session_id"`
	Actor     struct {
		Issuer  string   `json:"issuer"`
		Subject string   `json:"subject"`
		Kind    string   `json:"kind"`
		Groups  []string `json:"groups"`
	} `json:"actor"`
	Tenant  string          `json:"tenant"`
	Source  json.RawMessage `json:"source"`
	Payload struct {
		Statement  json.RawMessage `json:"statement"`
		SHA        json.RawMessage `json:"statement_sha256"`
		Kind       json.RawMessage `json:"kind"`
		SessionID  json.RawMessage `json:"session_id"`
		ApprovalID json.RawMessage `json:"approval_id"`
		Requester  json.RawMessage `json:"requester"`
		AccessID   json.RawMessage `json:"access_id"`
		NotBefore  json.RawMessage `json:"not_before"`
		NotAfter   json.RawMessage `json:"not_after"`
		Rule       json.RawMessage `json:"rule"`
		// command.blocked of a session refused for want of a grant
		AccessRequired json.RawMessage `json:"access_required"`
		CommandID      json.RawMessage `json:"command_id"`
		Column         json.RawMessage `json:"column"`
		Rows           json.RawMessage `json:"rows"`
		// ledger.clock.status
		Synchronised json.RawMessage `json:"synchronised"`
		MaxError     json.RawMessage `json:"maxerror_us"`
		Source       json.RawMessage `json:"source"`
		Host         json.RawMessage `json:"host"`
		ReadError    json.RawMessage `json:"read_error"`
		// identity.snapshot
		Snapshot json.RawMessage `json:"snapshot"`
		Part     json.RawMessage `json:"part"`
		Parts    json.RawMessage `json:"parts"`
		Members  json.RawMessage `json:"members"`
		// access.granted
		Grant      json.RawMessage `json:"grant"`
		Target     json.RawMessage `json:"target"`
		BreakGlass json.RawMessage `json:"break_glass"`
		Signature  json.RawMessage `json:"signature"`
		// audit.accessed
		Resource json.RawMessage `json:"resource"`
		Method   json.RawMessage `json:"method"`
		Path     json.RawMessage `json:"path"`
	} `json:"payload"`
}

// num is a JSON integer's value, 0 for anything else.
func num(raw json.RawMessage) int64 { return eventscan.Int(raw) }

// str is a JSON string's value, "" for anything else.
func str(raw json.RawMessage) string { return eventscan.String(raw) }

// GrantKey opens a grant's signed note (FORMAT §13) with the key that
// signs grants — the access broker's, approvals.vkey: the verifier's
// OpenNote (ledger.NoteVerifier) — and returns the text it signs; an
// error when the note does not verify with that key.
type GrantKey func(note []byte) (text []byte, err error)

// Asserter tests expectations against events given one at a time, in
// index order.
type Asserter struct {
	x      *Expectations
	grants GrantKey // nil: no grant signature can be checked
	// keyNeeded: the index of the first access.granted whose signature
	// was to be checked without a grant key (0 with none: noKey false)
	keyNeeded uint64
	noKey     bool
	kinds     map[string]bool // every kind a check covers, upper-cased
	columns   []string        // every column a check covers, lower-cased
	evs       []*event
	// commands naming a listed column, by id (the first of each id)
	naming map[string]*event
	// the identity provider's listing: the newest complete one, and the
	// parts of those under way, by snapshot
	listing  *listing
	building map[string]*listing
	// the log's full verifications (AddVerification), in index order
	verifs []verification
}

// listing is one identity.snapshot of source scim: its members' state.
type listing struct {
	parts, seen int
	last        uint64 // the index of its last part seen
	members     map[string]member
}

type member struct {
	idx    uint64 // the part listing it
	active bool
	groups []string
}

// NewAsserter starts testing x; grants checks the signatures of access
// grants (privileged-sessions-granted). Without it (nil) no grant
// signature can be checked, and a grant whose judgement comes to its
// signature does not count (GrantKeyNeeded names the first).
func NewAsserter(x *Expectations, grants GrantKey) *Asserter {
	a := &Asserter{x: x, grants: grants, kinds: map[string]bool{}, naming: map[string]*event{}, building: map[string]*listing{}}
	for _, e := range x.Controls {
		for _, k := range e.Kinds {
			a.kinds[strings.ToUpper(k)] = true
		}
		for _, c := range e.Columns {
			if c = strings.ToLower(c); !slices.Contains(a.columns, c) {
				a.columns = append(a.columns, c)
			}
		}
	}
	return a
}

// Add notes one event (its ledger index and exact bytes); events must come
// in index order. An event that is not JSON is an error.
func (a *Asserter) Add(idx uint64, raw []byte) error {
	var ev eventscan.Event
	if ev.Scan(raw) {
		return a.AddScanned(idx, raw, &ev)
	}
	return a.addDecoded(idx, raw)
}

// addDecoded is Add with the event decoded by encoding/json.
func (a *Asserter) addDecoded(idx uint64, raw []byte) error {
	var v envelope
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("compliance: event %d: %w", idx, err)
	}
	return a.add(idx, &v)
}

// AddScanned is Add given the event as eventscan read it (Scan true):
// the events no check keeps are passed over without decoding them, the
// others decoded from what eventscan read, as json.Unmarshal would.
func (a *Asserter) AddScanned(idx uint64, raw []byte, ev *eventscan.Event) error {
	var at time.Time
	if ev.Has(eventscan.Time) {
		if at.UnmarshalJSON(ev.Raw(eventscan.Time)) != nil {
			return a.addDecoded(idx, raw) // json.Unmarshal's error
		}
	}
	typ := ev.Bytes(eventscan.Type)
	if !tested[string(typ)] {
		return nil
	}
	switch string(typ) {
	case string(events.AccessGranted):
		// Few, and read whole: decoded as Add does.
		return a.addDecoded(idx, raw)
	case string(events.ResponseDigest):
		if c := a.naming[string(ev.Bytes(eventscan.PCommandID))]; c != nil {
			c.noteResult(ev.Raw(eventscan.PRows))
		}
		return nil
	case string(events.MaskApplied):
		if c := a.naming[string(ev.Bytes(eventscan.PCommandID))]; c != nil {
			c.noteMask(idx, str(ev.Raw(eventscan.PColumn)))
		}
		return nil
	case string(events.CommandExecuted):
		// Kept only when a check reads it (as add decides).
		kind := strings.ToUpper(string(ev.Bytes(eventscan.PKind)))
		if !a.kinds[kind] && (len(a.columns) == 0 || a.naming[string(ev.Bytes(eventscan.ID))] != nil || !a.namesAny(ev.Bytes(eventscan.PStatement))) {
			return nil
		}
	}
	v := envelope{ID: ev.Str(eventscan.ID), Type: string(typ), Time: at, SessionID: ev.Str(eventscan.SessionID), Tenant: ev.Str(eventscan.Tenant)}
	v.Actor.Issuer, v.Actor.Subject, v.Actor.Kind = ev.Str(eventscan.ActorIssuer), ev.Str(eventscan.ActorSubject), ev.Str(eventscan.ActorKind)
	v.Actor.Groups = ev.Strings(eventscan.ActorGroups)
	p := &v.Payload
	p.Statement, p.SHA, p.Kind = ev.Raw(eventscan.PStatement), ev.Raw(eventscan.PStatementSHA256), ev.Raw(eventscan.PKind)
	p.SessionID, p.ApprovalID, p.Requester = ev.Raw(eventscan.PSessionID), ev.Raw(eventscan.PApprovalID), ev.Raw(eventscan.PRequester)
	p.AccessID, p.NotBefore, p.NotAfter = ev.Raw(eventscan.PAccessID), ev.Raw(eventscan.PNotBefore), ev.Raw(eventscan.PNotAfter)
	p.Rule, p.CommandID, p.Column, p.Rows = ev.Raw(eventscan.PRule), ev.Raw(eventscan.PCommandID), ev.Raw(eventscan.PColumn), ev.Raw(eventscan.PRows)
	p.AccessRequired = ev.Raw(eventscan.PAccessRequired)
	p.Synchronised, p.MaxError, p.Source = ev.Raw(eventscan.PSynchronised), ev.Raw(eventscan.PMaxerrorUs), ev.Raw(eventscan.PSource)
	p.Host, p.ReadError, p.Snapshot = ev.Raw(eventscan.PHost), ev.Raw(eventscan.PReadError), ev.Raw(eventscan.PSnapshot)
	p.Part, p.Parts, p.Members = ev.Raw(eventscan.PPart), ev.Raw(eventscan.PParts), ev.Raw(eventscan.PMembers)
	p.Resource, p.Method, p.Path = ev.Raw(eventscan.PResource), ev.Raw(eventscan.PMethod), ev.Raw(eventscan.PPath)
	return a.add(idx, &v)
}

// namesAny reports whether stmt names a listed column (as a word).
func (a *Asserter) namesAny(stmt []byte) bool {
	for _, c := range a.columns {
		if hasWord(stmt, c) {
			return true
		}
	}
	return false
}

// noteResult notes a result of c (its payload rows).
func (c *event) noteResult(rows json.RawMessage) {
	if len(rows) > 0 && (rows[0] == '-' || rows[0] >= '0' && rows[0] <= '9') && string(rows) != "0" {
		c.rows = true
	}
}

// noteMask notes a mask.applied of c at idx.
func (c *event) noteMask(idx uint64, column string) {
	col := strings.ToLower(column)
	if _, ok := c.masked[col]; !ok {
		c.masked[col] = idx
	}
}

// add notes the event v decodes to (its payload members read only while
// it is added).
func (a *Asserter) add(idx uint64, v *envelope) error {
	if !tested[v.Type] {
		return nil
	}
	e := &event{idx: idx, id: v.ID, typ: v.Type, time: v.Time, session: v.SessionID,
		issuer: v.Actor.Issuer, subject: v.Actor.Subject, kind: v.Actor.Kind}
	p := &v.Payload
	switch events.Type(v.Type) {
	case events.CommandExecuted:
		e.stmtKind, e.sha = strings.ToUpper(str(p.Kind)), str(p.SHA)
		stmt := str(p.Statement)
		if len(a.columns) > 0 && a.naming[e.id] == nil {
			for _, c := range a.columns {
				if hasWord([]byte(stmt), c) {
					e.named = append(e.named, c)
				}
			}
			if len(e.named) > 0 {
				e.masked = map[string]uint64{}
				a.naming[e.id] = e
			}
		}
		if !a.kinds[e.stmtKind] && len(e.named) == 0 {
			return nil
		}
		if a.kinds[e.stmtKind] {
			e.item = cut(stmt)
		}
	case events.CommandBlocked:
		e.rule = strings.TrimSpace(str(p.Rule))
		// A rule decided the refusal: the gateway named one (rule
		// present, whatever its value), or an access rule required a
		// grant the session lacked (access_required true).
		e.byRule = len(p.Rule) > 0 || string(p.AccessRequired) == "true"
	case events.ResponseDigest:
		// Only a result of a command naming a listed column matters, and
		// it is noted on the command.
		if c := a.naming[str(p.CommandID)]; c != nil {
			c.noteResult(p.Rows)
		}
		return nil
	case events.MaskApplied:
		if c := a.naming[str(p.CommandID)]; c != nil {
			c.noteMask(idx, str(p.Column))
		}
		return nil
	case events.ApprovalRequested, events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired:
		e.approvalID, e.sha, e.psession = str(p.ApprovalID), str(p.SHA), str(p.SessionID)
		var r struct{ Issuer, Subject json.RawMessage }
		if json.Unmarshal(p.Requester, &r) == nil {
			e.reqIssuer, e.reqSubject = str(r.Issuer), str(r.Subject)
		}
	case events.AccessGranted:
		e.accessID, e.notBefore, e.notAfter = str(p.AccessID), str(p.NotBefore), str(p.NotAfter)
		var r struct{ Issuer, Subject json.RawMessage }
		if json.Unmarshal(p.Requester, &r) == nil {
			e.reqIssuer, e.reqSubject = str(r.Issuer), str(r.Subject)
		}
		var src struct{ Kind json.RawMessage }
		json.Unmarshal(v.Source, &src)
		e.grant = &grantRecord{grant: str(p.Grant), sourceKind: str(src.Kind), tenant: v.Tenant, rule: str(p.Rule),
			target: str(p.Target), signature: str(p.Signature), breakGlass: string(p.BreakGlass) == "true"}
	case events.SessionStarted:
		e.accessID = str(p.AccessID)
		if e.kind == string(events.Human) {
			e.dir, e.tokenGroups = a.listedNow(e.subject, v.Actor.Groups), v.Actor.Groups
		}
	case events.LedgerClockStatus:
		if v.Tenant != systemTenant {
			return nil
		}
		e.synced, e.maxErr = string(p.Synchronised) == "true", num(p.MaxError)
		e.clockSrc, e.host, e.readErr = str(p.Source), str(p.Host), str(p.ReadError)
	case events.IdentitySnapshot:
		a.snapshot(idx, p.Snapshot, p.Source, p.Part, p.Parts, p.Members)
		return nil
	case events.AuditAccessed:
		if e.kind != string(events.Human) {
			return nil
		}
		e.resource = str(p.Resource)
		if e.resource == "" {
			e.resource = strings.TrimSpace(str(p.Method) + " " + str(p.Path))
		}
	}
	a.evs = append(a.evs, e)
	return nil
}

// systemTenant is the tenant of the log's own records (FORMAT §2.1).
const systemTenant = "_ledger"

// snapshot notes one part of an identity.snapshot: a listing of source
// scim becomes the one in force when its last part is seen (parts
// numbered 1 to parts, each once). A listing of source tokens is not the
// provider's and is not noted.
func (a *Asserter) snapshot(idx uint64, snap, source, part, parts, members json.RawMessage) {
	id, n, of := str(snap), num(part), num(parts)
	if str(source) != "scim" || id == "" || of < 1 || n < 1 || n > of {
		return
	}
	l := a.building[id]
	if l == nil {
		l = &listing{parts: int(of), members: map[string]member{}}
		a.building[id] = l
	}
	var ms []struct {
		Subject json.RawMessage   `json:"subject"`
		Active  json.RawMessage   `json:"active"`
		Groups  []json.RawMessage `json:"groups"`
	}
	json.Unmarshal(members, &ms)
	for _, m := range ms {
		var gs []string
		for _, g := range m.Groups {
			gs = append(gs, str(g))
		}
		l.members[str(m.Subject)] = member{idx: idx, active: string(m.Active) == "true", groups: gs}
	}
	l.seen++
	l.last = idx
	if l.seen == l.parts {
		a.listing = l
		delete(a.building, id)
	}
}

// listedNow is what the listing in force says of subject, whose token
// named groups.
func (a *Asserter) listedNow(subject string, groups []string) *listed {
	l := a.listing
	if l == nil {
		return &listed{none: true}
	}
	m, ok := l.members[subject]
	if !ok {
		return &listed{snapshot: l.last}
	}
	d := &listed{snapshot: m.idx, found: true, active: m.active}
	for _, g := range groups {
		if !slices.Contains(m.groups, g) && !slices.Contains(d.extra, g) {
			d.extra = append(d.extra, g)
		}
	}
	return d
}

// Assertions tests every expectation against the events added, over the
// period p, and returns one assertion per expectation, in the order of
// the file.
func (a *Asserter) Assertions(p Period) []Assertion {
	ix := index(a.evs)
	out := make([]Assertion, 0, len(a.x.Controls))
	for _, exp := range a.x.Controls {
		as := Assertion{Control: exp.Control, Check: exp.Check, Statement: exp.Statement}
		switch exp.Check {
		case CheckChangesApproved:
			as.Rows = changesApproved(exp, a.evs, ix)
		case CheckPrivilegedGranted:
			as.Rows = a.privilegedGranted(exp, ix)
		case CheckColumnsMasked:
			as.Rows = columnsMasked(exp, a.evs)
		case CheckRefusalsNameRule:
			as.Rows = refusalsNameRule(a.evs, a.x.Version < 5)
		case CheckApprovalsByOther:
			as.Rows = approvalsByOther(a.evs)
		case CheckClockSynchronised:
			as.Rows = clockSynchronised(exp, a.evs)
		case CheckActorsListed:
			as.Rows = actorsListed(a.evs, false)
		case CheckGroupsProvisioned:
			as.Rows = actorsListed(a.evs, true)
		case CheckAuditReviewed:
			as.Rows = auditReviewed(exp, a.evs, p, a.x.Version < 3)
		case CheckLogVerified:
			as.Rows = a.logVerified(p)
		case CheckLogIntact:
			as.Rows = a.logIntact(p)
		}
		for _, r := range as.Rows {
			if r.Exception != "" {
				as.Exceptions++
			}
		}
		switch {
		case len(as.Rows) == 0:
			as.Result = NotObserved
		case as.Exceptions > 0:
			as.Result = Exceptions
		default:
			as.Result = Effective
		}
		out = append(out, as)
	}
	return out
}

// Assert tests every expectation of x against evs (the tenant's events of
// a bundle, in index order) over the period p, access grants' signatures
// checked with grants, and returns one assertion per expectation, in the
// order of x. It is a pure function of its inputs: a verifier holding the
// same events, period, expectations and grant key derives the same rows.
func Assert(x *Expectations, grants GrantKey, p Period, evs []Observed) ([]Assertion, error) {
	if !p.From.Before(p.To) {
		return nil, fmt.Errorf("compliance: the period %s to %s does not start before it ends", p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))
	}
	a := NewAsserter(x, grants)
	for _, o := range evs {
		if err := a.Add(o.Index, o.Event); err != nil {
			return nil, err
		}
	}
	return a.Assertions(p), nil
}

// lookups are the events the checks look up by key.
type lookups struct {
	// grants by (payload session_id, statement_sha256), in index order
	grants map[[2]string][]*event
	// the first session.started naming an access grant, by session
	started map[string]*event
	// access.granted by access_id, in index order
	access map[string][]*event
}

func index(evs []*event) *lookups {
	ix := &lookups{grants: map[[2]string][]*event{}, started: map[string]*event{}, access: map[string][]*event{}}
	for _, e := range evs {
		switch events.Type(e.typ) {
		case events.ApprovalGranted:
			if e.psession != "" && e.sha != "" {
				k := [2]string{e.psession, e.sha}
				ix.grants[k] = append(ix.grants[k], e)
			}
		case events.SessionStarted:
			if ix.started[e.session] == nil && e.session != "" {
				ix.started[e.session] = e
			}
		case events.AccessGranted:
			ix.access[e.accessID] = append(ix.access[e.accessID], e)
		}
	}
	return ix
}

// ItemMax is the most code points of a statement an assertion's item
// keeps.
const ItemMax = 200

func cut(s string) string {
	if r := []rune(s); len(r) > ItemMax {
		return string(r[:ItemMax])
	}
	return s
}

func row(e *event, item string) Row {
	return Row{Index: e.idx, Type: e.typ, SessionID: e.session, Actor: e.subject, Item: item}
}

func kindIn(e *event, kinds []string) bool {
	return e.typ == string(events.CommandExecuted) && e.stmtKind != "" &&
		slices.ContainsFunc(kinds, func(x string) bool { return strings.ToUpper(x) == e.stmtKind })
}

// Exceptions an assertion names.
const (
	ExNoApproval       = "ran without a second person's approval"
	ExSelfApproved     = "approved by its own requester"
	ExMachineApproved  = "approved by a machine identity, not a person"
	ExNoGrant          = "privileged statements ran outside any access grant"
	ExUnverifiedGrant  = "granted only by an unverified record"
	ExUnmasked         = "returned rows with the column unmasked"
	ExNoRule           = "refused with no rule named"
	ExDecidedByRequest = "decided by its own requester"
	ExClockUnread      = "the clock could not be read"
	ExClockUnsynced    = "the clock was not synchronised"
	ExClockError       = "the clock's maximum error was above the bound"
	ExNoListing        = "no listing of the identity provider before the session"
	ExNotListed        = "not listed by the identity provider"
	ExInactive         = "listed as inactive by the identity provider"
	ExExtraGroups      = "held groups the identity provider did not give it"
	ExReviewLate       = "the audit data went unreviewed for longer than the bound before this review"
	ExReviewLateEnd    = "the audit data went unreviewed for longer than the bound before the period's end"
)

// approval finds the approval.granted that let command c run: the last
// one before it with c's session as its payload session_id and c's
// statement digest. It returns the grant and the exception it leaves (""
// when none).
func approval(c *event, ix *lookups) (*event, string) {
	var g *event
	if c.session != "" && c.sha != "" {
		for _, e := range ix.grants[[2]string{c.session, c.sha}] {
			if e.idx >= c.idx {
				break
			}
			g = e
		}
	}
	switch {
	case g == nil:
		return nil, ExNoApproval
	case g.kind != string(events.Human):
		return g, ExMachineApproved
	case g.subject == c.subject && g.issuer == c.issuer,
		g.subject == g.reqSubject && g.issuer == g.reqIssuer:
		return g, ExSelfApproved
	}
	return g, ""
}

func changesApproved(x Expectation, evs []*event, ix *lookups) []Row {
	var rows []Row
	for _, e := range evs {
		if !kindIn(e, x.Kinds) {
			continue
		}
		r := row(e, e.item)
		g, ex := approval(e, ix)
		if g != nil {
			r.Evidence = &g.idx
		}
		r.Exception = ex
		rows = append(rows, r)
	}
	return rows
}

func (a *Asserter) privilegedGranted(x Expectation, ix *lookups) []Row {
	type session struct {
		first    *event
		count    int
		approved bool // every privileged statement approved by another
		lastOK   uint64
	}
	sessions := map[string]*session{}
	var order []string
	for _, e := range a.evs {
		if !kindIn(e, x.Kinds) {
			continue
		}
		key := "s:" + e.session
		if e.session == "" {
			key = fmt.Sprintf("e:%d", e.idx)
		}
		s := sessions[key]
		if s == nil {
			s = &session{first: e, approved: true}
			sessions[key] = s
			order = append(order, key)
		}
		s.count++
		if g, ex := approval(e, ix); ex != "" {
			s.approved = false
		} else {
			s.lastOK = g.idx
		}
	}
	var rows []Row
	for _, key := range order {
		s := sessions[key]
		r := row(s.first, fmt.Sprintf("%d privileged statements", s.count))
		if s.count == 1 {
			r.Item = "1 privileged statement"
		}
		g, unverified := a.grantOf(s.first, ix)
		switch {
		case g != nil:
			r.Evidence = &g.idx
		case x.ApprovalsCover && s.approved:
			r.Evidence = &s.lastOK
		case unverified != nil:
			r.Exception = fmt.Sprintf("%s (index %d): %s", ExUnverifiedGrant, unverified.idx, unverified.grant.why)
		default:
			r.Exception = ExNoGrant
		}
		rows = append(rows, r)
	}
	return rows
}

// Why an access.granted record does not count as a grant (FORMAT §12.1):
// the first condition it fails.
const (
	WhySSHCertificate = "an SSH certificate's record, not a grant"
	WhyNotJustInTime  = "not a just-in-time grant"
	WhyNotAPI         = "not published by the api"
	WhyWindow         = "its window is not two RFC 3339 times"
	WhyNoSignature    = "it carries no grant signature"
	WhyNoKey          = "its grant signature could not be checked: no grant key was given"
	WhyBadSignature   = "its grant signature does not verify with the grant key over the grant text rebuilt from the record"
	WhyNotFirst       = "another record of its access_id counts"
)

// grantOf finds the access grant covering c's session: the session's
// first session.started names an access_id, and the access.granted of it
// that counts as a grant (judge) is for the session's actor and has a
// window holding the session's start. Without one, unverified is the
// first record of that access_id for the session's actor, not counted,
// whose window holds the start or does not parse: the grant the session
// claimed, and why it does not count. Expectations of version 1 take
// the first record of the access_id for the session's subject whose
// window holds the start, judging nothing.
func (a *Asserter) grantOf(c *event, ix *lookups) (g, unverified *event) {
	if c.session == "" {
		return nil, nil
	}
	started := ix.started[c.session]
	if started == nil || started.accessID == "" {
		return nil, nil
	}
	recs := ix.access[started.accessID]
	if a.x.Version == 1 {
		for _, e := range recs {
			if e.reqSubject == started.subject && holds(e, started.time) == 1 {
				return e, nil
			}
		}
		return nil, nil
	}
	a.judge(recs)
	for _, e := range recs {
		if e.reqSubject != started.subject || e.reqIssuer != started.issuer {
			continue
		}
		h := holds(e, started.time)
		switch {
		case e.grant.why == "" && h == 1:
			return e, nil
		case e.grant.why != "" && h != 0 && unverified == nil:
			unverified = e
		}
	}
	return nil, unverified
}

// holds reports whether e's window holds t: 1 when not_before <= t <
// not_after, 0 when not, -1 when they are not RFC 3339 times.
func holds(e *event, t time.Time) int {
	nb, err1 := time.Parse(time.RFC3339Nano, e.notBefore)
	na, err2 := time.Parse(time.RFC3339Nano, e.notAfter)
	switch {
	case err1 != nil || err2 != nil:
		return -1
	case t.Before(nb) || !t.Before(na):
		return 0
	}
	return 1
}

// judge decides, once, which of recs (the access.granted records of one
// access_id, in index order) counts as the grant: the first published by
// the api, of grant just-in-time, with a window and a signature that
// verifies with the grant key over the grant text rebuilt from the
// record. Every other gets why it does not count.
func (a *Asserter) judge(recs []*event) {
	var counted *event
	for _, e := range recs {
		g := e.grant
		if g.judged {
			if g.why == "" {
				counted = e
			}
			continue
		}
		g.judged = true
		nb, err1 := time.Parse(time.RFC3339Nano, e.notBefore)
		na, err2 := time.Parse(time.RFC3339Nano, e.notAfter)
		switch {
		case g.grant == "ssh-user-certificate":
			g.why = WhySSHCertificate
		case g.grant != "just-in-time":
			g.why = WhyNotJustInTime
		case g.sourceKind != "api":
			g.why = WhyNotAPI
		case err1 != nil || err2 != nil:
			g.why = WhyWindow
		case g.signature == "":
			g.why = WhyNoSignature
		case a.grants == nil:
			g.why = WhyNoKey
			if !a.noKey {
				a.noKey, a.keyNeeded = true, e.idx
			}
		default:
			text, err := a.grants([]byte(g.signature))
			want := events.GrantText(events.Grant{ID: e.accessID, Tenant: g.tenant, Rule: g.rule,
				Requester: events.Actor{Issuer: e.reqIssuer, Subject: e.reqSubject}, Target: g.target,
				NotBefore: nb, NotAfter: na, BreakGlass: g.breakGlass})
			if err != nil || string(text) != string(want) {
				g.why = WhyBadSignature
			}
		}
		if g.why == "" && counted != nil {
			g.why = fmt.Sprintf("%s (index %d)", WhyNotFirst, counted.idx)
		}
		if g.why == "" {
			counted = e
		}
	}
}

// GrantKeyNeeded reports whether a grant's signature was to be checked
// without a grant key, and the index of the first such access.granted:
// the assertions then rest on a signature no one checked.
func (a *Asserter) GrantKeyNeeded() (index uint64, needed bool) { return a.keyNeeded, a.noKey }

// hasWord reports whether w (lower-case) is one of s's words: its
// maximal runs of ASCII letters, digits and underscores, lower-cased
// (any other byte, every byte of a code point above ASCII among them,
// separates words).
func hasWord(s []byte, w string) bool {
	for i := 0; i < len(s); {
		if !isWordByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		if j-i == len(w) && asciiLowerEqual(s[i:j], w) {
			return true
		}
		i = j
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func asciiLowerEqual(b []byte, w string) bool {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

func columnsMasked(x Expectation, evs []*event) []Row {
	var rows []Row
	for _, c := range evs {
		if c.masked == nil || !c.rows {
			continue
		}
		for _, col := range x.Columns {
			col = strings.ToLower(col)
			if !slices.Contains(c.named, col) {
				continue
			}
			r := row(c, col)
			if m, ok := c.masked[col]; ok {
				r.Evidence = &m
			} else {
				r.Exception = ExUnmasked
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// refusalsNameRule tests the refusals a policy rule decided; legacy
// (expectations of a version before 5) tests every command.blocked.
func refusalsNameRule(evs []*event, legacy bool) []Row {
	var rows []Row
	for _, e := range evs {
		if e.typ != string(events.CommandBlocked) || !legacy && !e.byRule {
			continue
		}
		r := row(e, e.rule)
		if e.rule == "" {
			r.Exception = ExNoRule
		}
		rows = append(rows, r)
	}
	return rows
}

func approvalsByOther(evs []*event) []Row {
	decision := map[string]*event{}
	for _, e := range evs {
		switch events.Type(e.typ) {
		case events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired:
			if e.approvalID != "" && decision[e.approvalID] == nil {
				decision[e.approvalID] = e
			}
		}
	}
	var rows []Row
	for _, e := range evs {
		if e.typ != string(events.ApprovalRequested) {
			continue
		}
		d := decision[e.approvalID]
		r := row(e, "pending: no decision in the period")
		if d != nil {
			r.Evidence = &d.idx
			switch events.Type(d.typ) {
			case events.ApprovalExpired:
				r.Item = "expired: no one decided"
			case events.ApprovalGranted:
				r.Item = "granted by " + d.subject
			default:
				r.Item = "denied by " + d.subject
			}
			switch {
			case d.typ != string(events.ApprovalExpired) && d.subject == e.subject && d.issuer == e.issuer:
				r.Exception = ExDecidedByRequest
			case d.typ == string(events.ApprovalGranted) && d.kind != string(events.Human):
				r.Exception = ExMachineApproved
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func clockSynchronised(x Expectation, evs []*event) []Row {
	var rows []Row
	for _, e := range evs {
		if e.typ != string(events.LedgerClockStatus) {
			continue
		}
		// The log's own record: no actor is shown (context/clock.json
		// lists the readings as this check reads them).
		r := Row{Index: e.idx, Type: e.typ, Item: fmt.Sprintf("synchronised=%t maxerror_us=%d source=%s host=%s", e.synced, e.maxErr, e.clockSrc, e.host)}
		switch {
		case e.readErr != "":
			r.Exception = ExClockUnread
		case !e.synced:
			r.Exception = ExClockUnsynced
		case e.maxErr > x.MaxErrorMicros:
			r.Exception = fmt.Sprintf("%s (%d us > %d us)", ExClockError, e.maxErr, x.MaxErrorMicros)
		}
		rows = append(rows, r)
	}
	return rows
}

// actorsListed tests each session a person started against the identity
// provider's listing in force: listed and active, and with groups, that
// every group the token named is one the listing gave them.
func actorsListed(evs []*event, groups bool) []Row {
	var rows []Row
	for _, e := range evs {
		if e.dir == nil {
			continue
		}
		d := e.dir
		item := "listed, active"
		switch {
		case d.none:
			item = "no listing"
		case !d.found:
			item = "not listed"
		case !d.active:
			item = "listed, inactive"
		}
		if groups {
			item = "groups: " + strings.Join(e.tokenGroups, ",")
		}
		r := row(e, item)
		if !d.none {
			r.Evidence = &d.snapshot
		}
		switch {
		case d.none:
			r.Exception = ExNoListing
		case !d.found:
			r.Exception = ExNotListed
		case !d.active:
			r.Exception = ExInactive
		case groups && len(d.extra) > 0:
			r.Exception = ExExtraGroups + ": " + strings.Join(d.extra, ",")
		}
		rows = append(rows, r)
	}
	return rows
}

// auditReviewed tests the time between reviews: from p.From (the
// period's start) to the first review, between two reviews, and from the
// last review to p.To (the period's end), each at most every_days days.
// The time before a review runs from the latest of p.From and the
// reviews before it, so a review recorded with an earlier time than
// another's shortens no gap. A late end is one more row, of no event.
// legacy (expectations of version 1 or 2) tests only the time between
// two reviews.
func auditReviewed(x Expectation, evs []*event, p Period, legacy bool) []Row {
	var rows []Row
	prev := p.From
	if legacy {
		prev = time.Time{} // the first review has no time before it
	}
	bound := time.Duration(x.EveryDays) * 24 * time.Hour
	for _, e := range evs {
		if e.typ != string(events.AuditAccessed) {
			continue
		}
		r := row(e, e.resource)
		if !(legacy && prev.IsZero()) && e.time.Sub(prev) > bound {
			r.Exception = ExReviewLate
		}
		if e.time.After(prev) {
			prev = e.time
		}
		rows = append(rows, r)
	}
	if !legacy && p.To.Sub(prev) > bound {
		rows = append(rows, Row{NoEvent: true, Item: "no review from " + utc(prev) + " to " + utc(p.To), Exception: ExReviewLateEnd})
	}
	return rows
}

// utc writes t as the period's rows name times: RFC 3339 in UTC, the
// fraction without trailing zeros.
func utc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// tested are the event types some check reads.
var tested = map[string]bool{
	string(events.CommandExecuted): true, string(events.CommandBlocked): true, string(events.ResponseDigest): true,
	string(events.MaskApplied): true, string(events.ApprovalRequested): true, string(events.ApprovalGranted): true,
	string(events.ApprovalDenied): true, string(events.ApprovalExpired): true, string(events.AccessGranted): true,
	string(events.SessionStarted): true, string(events.LedgerClockStatus): true, string(events.IdentitySnapshot): true,
	string(events.AuditAccessed): true,
}
