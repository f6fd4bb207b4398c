package compliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/yamlstrict"
)

// Expectations are what each control is tested against (expectations.yaml
// of a framework's folder, or the operator's own file in the same form):
// a declared expectation per control, checked against every event of a
// bundle. An expectation states what should hold — not what the policy in
// force enforced, which may itself be the gap.
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
}

// The checks an expectation can name.
const (
	CheckChangesApproved   = "changes-approved"
	CheckPrivilegedGranted = "privileged-sessions-granted"
	CheckColumnsMasked     = "columns-masked"
	CheckRefusalsNameRule  = "refusals-name-rule"
	CheckApprovalsByOther  = "approvals-decided-by-another"
)

var checks = []string{CheckChangesApproved, CheckPrivilegedGranted, CheckColumnsMasked, CheckRefusalsNameRule, CheckApprovalsByOther}

// ParseExpectations reads an expectations file strictly: unknown keys,
// unknown checks, a check without the parameters it needs, and a control
// named twice are errors naming the file.
func ParseExpectations(name string, b []byte) (*Expectations, error) {
	var x Expectations
	if err := yamlstrict.Decode(b, &x, name); err != nil {
		return nil, err
	}
	if x.Version != 1 {
		return nil, fmt.Errorf("%s: version %d, want 1", name, x.Version)
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
		}
		seen[e.Control] = true
	}
	return &x, nil
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

// Observed is one of a bundle's events: its ledger index and exact bytes
// (a line of events.jsonl).
type Observed struct {
	Index uint64
	Event []byte
}

// Row is one member of an assertion's population: the event tested, and
// the exception it makes, if any (empty: it meets the expectation).
type Row struct {
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
	return []string{fmt.Sprint(r.Index), r.Type, r.SessionID, r.Actor, r.Item, ev, r.Exception}
}

// event is the part of an event the checks read.
type event struct {
	idx       uint64
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	SessionID string    `json:"session_id"`
	Actor     struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
		Kind    string `json:"kind"`
	} `json:"actor"`
	Payload map[string]any `json:"payload"`
}

func (e *event) str(name string) string {
	s, _ := e.Payload[name].(string)
	return s
}

// Assert tests every expectation of x against evs (the tenant's events of
// a bundle, in index order) and returns one assertion per expectation, in
// the order of x. It is a pure function of its inputs: a verifier holding
// the same events and expectations derives the same rows.
func Assert(x *Expectations, evs []Observed) ([]Assertion, error) {
	parsed := make([]*event, 0, len(evs))
	for _, o := range evs {
		e := &event{idx: o.Index}
		d := json.NewDecoder(bytes.NewReader(o.Event))
		d.UseNumber()
		if err := d.Decode(e); err != nil {
			return nil, fmt.Errorf("compliance: event %d: %w", o.Index, err)
		}
		parsed = append(parsed, e)
	}
	out := make([]Assertion, 0, len(x.Controls))
	for _, exp := range x.Controls {
		a := Assertion{Control: exp.Control, Check: exp.Check, Statement: exp.Statement}
		switch exp.Check {
		case CheckChangesApproved:
			a.Rows = changesApproved(exp, parsed)
		case CheckPrivilegedGranted:
			a.Rows = privilegedGranted(exp, parsed)
		case CheckColumnsMasked:
			a.Rows = columnsMasked(exp, parsed)
		case CheckRefusalsNameRule:
			a.Rows = refusalsNameRule(parsed)
		case CheckApprovalsByOther:
			a.Rows = approvalsByOther(parsed)
		}
		for _, r := range a.Rows {
			if r.Exception != "" {
				a.Exceptions++
			}
		}
		switch {
		case len(a.Rows) == 0:
			a.Result = NotObserved
		case a.Exceptions > 0:
			a.Result = Exceptions
		default:
			a.Result = Effective
		}
		out = append(out, a)
	}
	return out, nil
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
	return Row{Index: e.idx, Type: e.Type, SessionID: e.SessionID, Actor: e.Actor.Subject, Item: item}
}

func kindIn(e *event, kinds []string) bool {
	k := strings.ToUpper(e.str("kind"))
	return k != "" && slices.ContainsFunc(kinds, func(x string) bool { return strings.ToUpper(x) == k })
}

// Exceptions an assertion names.
const (
	ExNoApproval       = "ran without a second person's approval"
	ExSelfApproved     = "approved by its own requester"
	ExMachineApproved  = "approved by a machine identity, not a person"
	ExNoGrant          = "privileged statements ran outside any access grant"
	ExUnmasked         = "returned rows with the column unmasked"
	ExNoRule           = "refused with no rule named"
	ExDecidedByRequest = "decided by its own requester"
)

// approval finds the approval.granted that let command c run: the last
// one before it in the same session for the same statement digest. It
// returns the grant and the exception it leaves ("" when none).
func approval(c *event, evs []*event) (*event, string) {
	var g *event
	for _, e := range evs {
		if e.idx >= c.idx {
			break
		}
		if e.Type == string(events.ApprovalGranted) && c.SessionID != "" && e.str("session_id") == c.SessionID &&
			e.str("statement_sha256") != "" && e.str("statement_sha256") == c.str("statement_sha256") {
			g = e
		}
	}
	switch {
	case g == nil:
		return nil, ExNoApproval
	case g.Actor.Kind != string(events.Human):
		return g, ExMachineApproved
	case g.Actor.Subject == c.Actor.Subject && g.Actor.Issuer == c.Actor.Issuer:
		return g, ExSelfApproved
	}
	if req, ok := g.Payload["requester"].(map[string]any); ok && req["subject"] == g.Actor.Subject && req["issuer"] == g.Actor.Issuer {
		return g, ExSelfApproved
	}
	return g, ""
}

func changesApproved(x Expectation, evs []*event) []Row {
	var rows []Row
	for _, e := range evs {
		if e.Type != string(events.CommandExecuted) || !kindIn(e, x.Kinds) {
			continue
		}
		r := row(e, cut(e.str("statement")))
		g, ex := approval(e, evs)
		if g != nil {
			r.Evidence = &g.idx
		}
		r.Exception = ex
		rows = append(rows, r)
	}
	return rows
}

func privilegedGranted(x Expectation, evs []*event) []Row {
	type session struct {
		first    *event
		started  *event
		count    int
		approved bool // every privileged statement approved by another
		lastOK   uint64
	}
	sessions := map[string]*session{}
	var order []string
	for _, e := range evs {
		if e.Type != string(events.CommandExecuted) || !kindIn(e, x.Kinds) {
			continue
		}
		key := e.SessionID
		if key == "" {
			key = fmt.Sprintf("(no session: event %d)", e.idx)
		}
		s := sessions[key]
		if s == nil {
			s = &session{first: e, approved: true}
			sessions[key] = s
			order = append(order, key)
		}
		s.count++
		if g, ex := approval(e, evs); ex != "" {
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
		if g := grantOf(s.first, evs); g != nil {
			r.Evidence = &g.idx
		} else if x.ApprovalsCover && s.approved {
			r.Evidence = &s.lastOK
		} else {
			r.Exception = ExNoGrant
		}
		rows = append(rows, r)
	}
	return rows
}

// grantOf finds the access grant covering c's session: the session's
// session.started names an access_id, and an access.granted of it for the
// session's actor has a window holding the session's start.
func grantOf(c *event, evs []*event) *event {
	if c.SessionID == "" {
		return nil
	}
	var started *event
	for _, e := range evs {
		if e.Type == string(events.SessionStarted) && e.SessionID == c.SessionID {
			started = e
			break
		}
	}
	if started == nil || started.str("access_id") == "" {
		return nil
	}
	for _, e := range evs {
		if e.Type != string(events.AccessGranted) || e.str("access_id") != started.str("access_id") {
			continue
		}
		req, _ := e.Payload["requester"].(map[string]any)
		if req == nil || req["subject"] != started.Actor.Subject {
			continue
		}
		nb, err1 := time.Parse(time.RFC3339Nano, e.str("not_before"))
		na, err2 := time.Parse(time.RFC3339Nano, e.str("not_after"))
		if err1 != nil || err2 != nil || started.Time.Before(nb) || !started.Time.Before(na) {
			continue
		}
		return e
	}
	return nil
}

// words splits s into its maximal runs of ASCII letters, digits and
// underscores, lower-cased.
func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) {
		out[strings.ToLower(w)] = true
	}
	return out
}

func columnsMasked(x Expectation, evs []*event) []Row {
	rowsOf := map[string]bool{}      // command ids whose result had rows
	masked := map[[2]string]uint64{} // (command id, column) → first mask
	for _, e := range evs {
		switch events.Type(e.Type) {
		case events.ResponseDigest:
			if n, ok := e.Payload["rows"].(json.Number); ok && n.String() != "0" {
				rowsOf[e.str("command_id")] = true
			}
		case events.MaskApplied:
			k := [2]string{e.str("command_id"), strings.ToLower(e.str("column"))}
			if _, ok := masked[k]; !ok {
				masked[k] = e.idx
			}
		}
	}
	var rows []Row
	for _, e := range evs {
		if e.Type != string(events.CommandExecuted) || !rowsOf[e.ID] {
			continue
		}
		w := words(e.str("statement"))
		for _, col := range x.Columns {
			col = strings.ToLower(col)
			if !w[col] {
				continue
			}
			r := row(e, col)
			if m, ok := masked[[2]string{e.ID, col}]; ok {
				r.Evidence = &m
			} else {
				r.Exception = ExUnmasked
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func refusalsNameRule(evs []*event) []Row {
	var rows []Row
	for _, e := range evs {
		if e.Type != string(events.CommandBlocked) {
			continue
		}
		rule := strings.TrimSpace(e.str("rule"))
		r := row(e, rule)
		if rule == "" {
			r.Exception = ExNoRule
		}
		rows = append(rows, r)
	}
	return rows
}

func approvalsByOther(evs []*event) []Row {
	decision := map[string]*event{}
	for _, e := range evs {
		switch events.Type(e.Type) {
		case events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired:
			if id := e.str("approval_id"); id != "" && decision[id] == nil {
				decision[id] = e
			}
		}
	}
	var rows []Row
	for _, e := range evs {
		if e.Type != string(events.ApprovalRequested) {
			continue
		}
		d := decision[e.str("approval_id")]
		r := row(e, "pending: no decision in the period")
		if d != nil {
			r.Evidence = &d.idx
			switch events.Type(d.Type) {
			case events.ApprovalExpired:
				r.Item = "expired: no one decided"
			case events.ApprovalGranted:
				r.Item = "granted by " + d.Actor.Subject
			default:
				r.Item = "denied by " + d.Actor.Subject
			}
			switch {
			case d.Type != string(events.ApprovalExpired) && d.Actor.Subject == e.Actor.Subject && d.Actor.Issuer == e.Actor.Issuer:
				r.Exception = ExDecidedByRequest
			case d.Type == string(events.ApprovalGranted) && d.Actor.Kind != string(events.Human):
				r.Exception = ExMachineApproved
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// tested are the event types some check reads.
var tested = map[string]bool{
	string(events.CommandExecuted): true, string(events.CommandBlocked): true, string(events.ResponseDigest): true,
	string(events.MaskApplied): true, string(events.ApprovalRequested): true, string(events.ApprovalGranted): true,
	string(events.ApprovalDenied): true, string(events.ApprovalExpired): true, string(events.AccessGranted): true,
	string(events.SessionStarted): true,
}

// Tested reports whether a check may read the event, so that a caller
// need keep only those for Assert. An event that does not parse is kept
// (Assert then reports it).
func Tested(event []byte) bool {
	var t struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(event, &t) != nil {
		return true
	}
	return tested[t.Type]
}
