package evidence

import (
	"bytes"
	"cmp"
	"crypto/md5"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/eventscan"
	"github.com/auditledger/auditledger/ledger"
)

// Derived query tables (docs/FORMAT.md §12.3): a control's table whose
// query is marked derived in the framework's mapping is computed here
// from the bundle's own records — the tenant's events as events.jsonl
// holds them, the log's clock status records, segments.json — by the same
// code when the bundle is built and when it is verified, so the verifier
// re-derives it and fails on any byte of difference. Every table is CSV
// (RFC 4180 as encoding/csv writes it, LF line ends): a header line,
// then its rows; a member absent from an event is an empty cell; numbers
// are written as the event writes them; strings are compared byte by
// byte when sorting.

// tableRow is one row's cells.
type tableRow []string

// table derives one control's table.
type table struct {
	columns []string
	// note reads one of the tenant's events (system false) or a clock
	// status record (system true), in index order; nil for a table of a
	// fold the set shares (folds).
	note func(t *tev, system bool)
	// rows returns the table's rows, in order, given the segments.
	rows func(in *tableIn) []tableRow
	// limit is the most rows kept; more is shown as capped.
	limit int
}

// tableIn is what tables read beside the events: the segments
// (segments.json) and the pseudonyms the manifest lists erased.
type tableIn struct {
	segs   []Segment
	erased map[string]bool
	// the verification records of log/verifications.jsonl, and the range
	// [first, end)
	verifs     []VerificationSeen
	first, end uint64
}

// shown is a value as a table shows it: a sealed value (§1.6) as
// "(erased)" when the manifest lists its pseudonym erased, else
// "(sealed)", never its bytes; any other value as recorded.
func (in *tableIn) shown(v string) string {
	p, ok := ledger.SealedPseudonym(v)
	switch {
	case !ok:
		return v
	case in.erased[p]:
		return erasedCell
	}
	return sealedCell
}

// tev is what the derivations read of an event.
type tev struct {
	idx      uint64
	sealedAt string
	ID       string `json:"id"`
	Type     string `json:"type"`
	Time     string `json:"time"`
	Tenant   string `json:"tenant"`
	Session  string `json:"session_id"`
	Source   struct {
		Kind string `json:"kind"`
	} `json:"source"`
	Actor struct {
		Issuer      string   `json:"issuer"`
		Subject     string   `json:"subject"`
		Email       string   `json:"email"`
		Kind        string   `json:"kind"`
		Groups      []string `json:"groups"`
		DevIdentity bool     `json:"dev_identity"`
	} `json:"actor"`
	Target  *tevTarget `json:"target"`
	Payload payload    `json:"payload"`
	// target is where Target points when read by eventscan
	target tevTarget
}

type tevTarget struct {
	Name string `json:"name"`
}

// payload holds the payload members the tables read (decoding into
// named members skips the others: cheaper than a map of every member).
type payload struct {
	Active        json.RawMessage `json:"active"`
	ApprovalId    json.RawMessage `json:"approval_id"`
	BreakGlass    json.RawMessage `json:"break_glass"`
	ClientAddr    json.RawMessage `json:"client_addr"`
	Column        json.RawMessage `json:"column"`
	CommandId     json.RawMessage `json:"command_id"`
	CommandTag    json.RawMessage `json:"command_tag"`
	Count         json.RawMessage `json:"count"`
	ErrorCode     json.RawMessage `json:"error_code"`
	EsterrorUs    json.RawMessage `json:"esterror_us"`
	Field         json.RawMessage `json:"field"`
	Framework     json.RawMessage `json:"framework"`
	From          json.RawMessage `json:"from"`
	Grants        json.RawMessage `json:"grants"`
	Host          json.RawMessage `json:"host"`
	Kind          json.RawMessage `json:"kind"`
	ListingSha256 json.RawMessage `json:"listing_sha256"`
	MaxerrorUs    json.RawMessage `json:"maxerror_us"`
	Method        json.RawMessage `json:"method"`
	Part          json.RawMessage `json:"part"`
	Parts         json.RawMessage `json:"parts"`
	ReadError     json.RawMessage `json:"read_error"`
	Reason        json.RawMessage `json:"reason"`
	Resource      json.RawMessage `json:"resource"`
	Rows          json.RawMessage `json:"rows"`
	Rule          json.RawMessage `json:"rule"`
	RuleId        json.RawMessage `json:"rule_id"`
	RuleVersion   json.RawMessage `json:"rule_version"`
	Snapshot      json.RawMessage `json:"snapshot"`
	Source        json.RawMessage `json:"source"`
	Statement     json.RawMessage `json:"statement"`
	Synchronised  json.RawMessage `json:"synchronised"`
	To            json.RawMessage `json:"to"`
	Unverified    json.RawMessage `json:"unverified"`
	Users         json.RawMessage `json:"users"`
}

// s is the payload member's string value, "" when absent or not a
// string.
func (t *tev) s(raw json.RawMessage) string { return str(raw) }

// n is the payload member's text when it is a JSON number, else "".
func (t *tev) n(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return ""
	}
	return string(raw)
}

// b is the payload member's text when it is true or false, else "".
func (t *tev) b(member json.RawMessage) string {
	switch raw := string(bytes.TrimSpace(member)); raw {
	case "true", "false":
		return raw
	}
	return ""
}

func str(raw json.RawMessage) string { return eventscan.String(raw) }

// cut200 is s's first 200 code points.
func cut200(s string) string {
	if len(s) <= 200 {
		return s // 200 code points at most
	}
	if r := []rune(s); len(r) > 200 {
		return string(r[:200])
	}
	return s
}

// counter counts rows by key (several cells); each key's values are the
// counts the derivation adds up.
type counter struct {
	keys [][]string
	vals map[string][]int64
	sets map[string]map[string]bool // distinct values per key
}

func newCounter() *counter {
	return &counter{vals: map[string][]int64{}, sets: map[string]map[string]bool{}}
}

// keyOf is key as one string, each cell length-prefixed (a cell may hold
// any character).
func keyOf(key []string) string {
	var b strings.Builder
	for _, c := range key {
		b.WriteString(strconv.Itoa(len(c)))
		b.WriteByte(':')
		b.WriteString(c)
	}
	return b.String()
}

func (c *counter) add(key []string, vals ...int64) {
	k := keyOf(key)
	v, ok := c.vals[k]
	if !ok {
		c.keys = append(c.keys, slices.Clone(key))
		v = make([]int64, len(vals))
	}
	for i := range vals {
		v[i] += vals[i]
	}
	c.vals[k] = v
}

func (c *counter) distinct(key []string, value string) {
	k := keyOf(key)
	if c.sets[k] == nil {
		c.sets[k] = map[string]bool{}
	}
	c.sets[k][value] = true
}

// sorted returns each key's cells then its counts, keys in byte order
// (cell by cell).
func (c *counter) sorted() []tableRow {
	keys := slices.Clone(c.keys)
	slices.SortFunc(keys, func(a, b []string) int { return slices.Compare(a, b) })
	var out []tableRow
	for _, key := range keys {
		k := keyOf(key)
		r := tableRow(slices.Clone(key))
		for _, v := range c.vals[k] {
			r = append(r, strconv.FormatInt(v, 10))
		}
		if s, ok := c.sets[k]; ok || len(c.sets) > 0 {
			r = append(r, strconv.Itoa(len(s)))
		}
		out = append(out, r)
	}
	return out
}

// sample keeps the n rows of smallest MD5(id) (hex), ties by index: the
// same sample every time, not the first rows of the period.
type sample struct {
	n    int
	rows []sampled
}

type sampled struct {
	key string
	idx uint64
	row tableRow
}

func (s *sample) add(id string, idx uint64, row tableRow) {
	h := md5.Sum([]byte(id))
	e := sampled{hex.EncodeToString(h[:]), idx, row}
	i, _ := slices.BinarySearchFunc(s.rows, e, cmpSampled)
	s.rows = slices.Insert(s.rows, i, e)
	if len(s.rows) > s.n {
		s.rows = s.rows[:s.n]
	}
}

func cmpSampled(a, b sampled) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}

func (s *sample) out() []tableRow {
	var out []tableRow
	for _, r := range s.rows {
		out = append(out, r.row)
	}
	return out
}

func u(i uint64) string { return strconv.FormatUint(i, 10) }

// grouped makes a table counting, per key, the events of the types.
func grouped(columns []string, types []string, key func(t *tev) []string, vals func(t *tev) []int64) func(*folds) *table {
	return func(*folds) *table {
		c := newCounter()
		return &table{columns: columns,
			note: func(t *tev, system bool) {
				if system || (len(types) > 0 && !slices.Contains(types, t.Type)) {
					return
				}
				v := []int64{1}
				if vals != nil {
					v = vals(t)
				}
				c.add(key(t), v...)
			},
			rows: func(*tableIn) []tableRow { return c.sorted() }}
	}
}

// listed makes a table of one row per event of the types, in index
// order.
func listed(columns []string, limit int, types []string, system bool, row func(t *tev) tableRow) func(*folds) *table {
	return func(*folds) *table {
		var rows []tableRow
		return &table{columns: columns, limit: limit,
			note: func(t *tev, sys bool) {
				if sys == system && slices.Contains(types, t.Type) {
					rows = append(rows, row(t))
				}
			},
			rows: func(*tableIn) []tableRow { return rows }}
	}
}

// sampledOf makes a table of a sample of 25 events of type typ.
func sampledOf(columns []string, typ string, row func(t *tev) tableRow) func(*folds) *table {
	return func(*folds) *table {
		s := &sample{n: 25}
		return &table{columns: columns,
			note: func(t *tev, system bool) {
				if !system && t.Type == typ {
					s.add(t.ID, t.idx, row(t))
				}
			},
			rows: func(*tableIn) []tableRow { return s.out() }}
	}
}

// derivations are the derived tables, by "control/name". FORMAT §12.3
// defines each.
var derivations = map[string]func(*folds) *table{
	"5.15/sessions_by_target": grouped([]string{"target", "actor_kind", "sessions"}, []string{"session.started"},
		func(t *tev) []string {
			target := "-"
			if t.Target != nil && t.Target.Name != "" {
				target = t.Target.Name
			}
			return []string{target, t.Actor.Kind}
		}, nil),
	"5.15/blocked": grouped([]string{"rule", "blocked"}, []string{"command.blocked"},
		func(t *tev) []string { return []string{t.s(t.Payload.Rule)} }, nil),
	"5.16/identities": func(*folds) *table {
		type ident struct {
			dev          bool
			first, last  uint64
			events       int64
			issuer, subj string
			kind, email  string
		}
		byKey := map[[3]string]*ident{}
		return &table{columns: []string{"actor_issuer", "actor_subject", "email", "actor_kind", "dev_identity", "first_idx", "last_idx", "events"}, limit: 1000,
			note: func(t *tev, system bool) {
				if system {
					return
				}
				k := [3]string{t.Actor.Issuer, t.Actor.Subject, t.Actor.Kind}
				i := byKey[k]
				if i == nil {
					i = &ident{first: t.idx, issuer: k[0], subj: k[1], kind: k[2]}
					byKey[k] = i
				}
				i.dev = i.dev || t.Actor.DevIdentity
				if t.Actor.Email != "" {
					i.email = t.Actor.Email
				}
				i.last = t.idx
				i.events++
			},
			rows: func(in *tableIn) []tableRow {
				keys := make([][3]string, 0, len(byKey))
				for k := range byKey {
					keys = append(keys, k)
				}
				slices.SortFunc(keys, func(a, b [3]string) int { return slices.Compare(a[:], b[:]) })
				var out []tableRow
				for _, k := range keys {
					i := byKey[k]
					out = append(out, tableRow{i.issuer, i.subj, in.shown(i.email), i.kind, strconv.FormatBool(i.dev), u(i.first), u(i.last), strconv.FormatInt(i.events, 10)})
				}
				return out
			}}
	},
	"5.17/authentication": grouped([]string{"type", "actor_issuer", "events"}, []string{"authn.succeeded", "authn.failed", "session.started"},
		func(t *tev) []string { return []string{t.Type, t.Actor.Issuer} }, nil),
	"5.17/failures": sampledOf([]string{"idx", "time", "client_addr", "reason"}, "authn.failed",
		func(t *tev) tableRow {
			return tableRow{u(t.idx), t.Time, t.s(t.Payload.ClientAddr), t.s(t.Payload.Reason)}
		}),
	"5.18/access_reviews": listed([]string{"idx", "time", "reviewer", "period_from", "period_to", "grants", "break_glass", "unverified_records", "listing_sha256", "recorded_by"}, 1000,
		[]string{"access.reviewed"}, false, func(t *tev) tableRow {
			unverified := t.n(t.Payload.Unverified)
			if unverified == "" {
				unverified = "0"
			}
			return tableRow{u(t.idx), t.Time, t.Actor.Subject, t.s(t.Payload.From), t.s(t.Payload.To), t.n(t.Payload.Grants), t.n(t.Payload.BreakGlass), unverified, t.s(t.Payload.ListingSha256), t.Source.Kind}
		}),
	"5.18/directory": listed([]string{"idx", "time", "snapshot", "part", "parts", "source", "users", "active", "listing_sha256"}, 1000,
		[]string{"identity.snapshot"}, false, func(t *tev) tableRow {
			return tableRow{u(t.idx), t.Time, t.s(t.Payload.Snapshot), t.n(t.Payload.Part), t.n(t.Payload.Parts), t.s(t.Payload.Source), t.n(t.Payload.Users), t.n(t.Payload.Active), t.s(t.Payload.ListingSha256)}
		}),
	"5.18/groups_held": func(*folds) *table {
		c := newCounter()
		return &table{columns: []string{"actor_subject", "group_name", "events"}, limit: 1000,
			note: func(t *tev, system bool) {
				if system || t.Type != "session.started" {
					return
				}
				for _, g := range t.Actor.Groups {
					c.add([]string{t.Actor.Subject, g}, 1)
				}
			},
			rows: func(*tableIn) []tableRow { return c.sorted() }}
	},
	"5.28/custody": grouped([]string{"type", "actor_subject", "what", "events"}, []string{"audit.accessed", "evidence.exported"},
		func(t *tev) []string {
			what := t.s(t.Payload.Resource)
			if what == "" {
				what = t.s(t.Payload.Framework)
			}
			if what == "" {
				what = "-"
			}
			return []string{t.Type, t.Actor.Subject, what}
		}, nil),
	"5.33/segments": func(*folds) *table {
		return &table{columns: []string{"first", "size", "name", "sha256", "version", "lock_mode", "retain_until"},
			note: func(*tev, bool) {},
			rows: func(in *tableIn) []tableRow {
				var out []tableRow
				for _, s := range in.segs {
					ru := ""
					if s.RetainUntil != nil {
						ru = s.RetainUntil.Format(time.RFC3339Nano) // as segments.json writes it
					}
					out = append(out, tableRow{u(s.First), u(s.Size), s.Name, s.SHA256, s.Version, s.LockMode, ru})
				}
				return out
			}}
	},
	"8.2/privileged_groups": func(*folds) *table {
		c := newCounter()
		return &table{columns: []string{"actor_subject", "group_name"}, limit: 1000,
			note: func(t *tev, system bool) {
				if system || t.Type != "approval.requested" {
					return
				}
				for _, g := range t.Actor.Groups {
					c.add([]string{t.Actor.Subject, g})
				}
			},
			rows: func(*tableIn) []tableRow { return c.sorted() }}
	},
	"8.3/restrictions": func(*folds) *table {
		c := newCounter()
		return &table{columns: []string{"type", "events", "identities"},
			note: func(t *tev, system bool) {
				if system || t.Type != "command.blocked" && t.Type != "mask.applied" {
					return
				}
				c.add([]string{t.Type}, 1)
				c.distinct([]string{t.Type}, t.Actor.Subject)
			},
			rows: func(*tableIn) []tableRow { return c.sorted() }}
	},
	"8.3/blocked_sample": sampledOf([]string{"idx", "actor_subject", "rule", "reason", "statement"}, "command.blocked",
		func(t *tev) tableRow {
			return tableRow{u(t.idx), t.Actor.Subject, t.s(t.Payload.Rule), t.s(t.Payload.Reason), cut200(t.s(t.Payload.Statement))}
		}),
	"8.5/issuers": grouped([]string{"actor_issuer", "sessions", "dev_identity_sessions"}, []string{"session.started"},
		func(t *tev) []string { return []string{t.Actor.Issuer} },
		func(t *tev) []int64 {
			if t.Actor.DevIdentity {
				return []int64{1, 1}
			}
			return []int64{1, 0}
		}),
	"8.5/refused": func(*folds) *table {
		c := newCounter()
		return &table{columns: []string{"reason", "refused"}, limit: 100,
			note: func(t *tev, system bool) {
				if !system && t.Type == "authn.failed" {
					c.add([]string{t.s(t.Payload.Reason)}, 1)
				}
			},
			rows: func(*tableIn) []tableRow {
				rows := c.sorted()
				slices.SortStableFunc(rows, func(a, b tableRow) int {
					x, _ := strconv.ParseInt(a[1], 10, 64)
					y, _ := strconv.ParseInt(b[1], 10, 64)
					return int(y - x)
				})
				return rows
			}}
	},
	"8.15/events_by_type": grouped([]string{"type", "events"}, nil, func(t *tev) []string { return []string{t.Type} }, nil),
	"8.16/reviews": grouped([]string{"actor_subject", "resource", "reads"}, []string{"audit.accessed"},
		func(t *tev) []string { return []string{t.Actor.Subject, t.s(t.Payload.Resource)} }, nil),
	"5.33/verification": func(*folds) *table {
		return &table{columns: []string{"index", "sealed_at", "started", "finished", "size", "root", "ok", "gaps", "failure"},
			note: func(*tev, bool) {},
			rows: func(in *tableIn) []tableRow {
				var out []tableRow
				for _, v := range in.covering() {
					f := ""
					if v.Failure != nil {
						f = v.Failure.Error
					}
					out = append(out, tableRow{u(v.Index), nanos(v.SealedAt), nanos(v.Started), nanos(v.Finished), u(v.Size), v.Root, strconv.FormatBool(v.OK), strconv.Itoa(len(v.Gaps)), f})
				}
				return out
			},
			limit: 1000}
	},
	"8.15/findings": func(*folds) *table {
		return &table{columns: []string{"verification_index", "kind", "record_index", "detail"},
			note: func(*tev, bool) {},
			rows: func(in *tableIn) []tableRow {
				var out []tableRow
				for _, v := range in.covering() {
					for _, g := range v.Gaps {
						if g.Index >= in.first && g.Index < in.end {
							out = append(out, tableRow{u(v.Index), "gap", u(g.Index), fmt.Sprintf("stream sequences %d..%d missing", g.FirstSeq, g.LastSeq)})
						}
					}
					if f := v.Failure; f != nil && (f.Index == nil || *f.Index < in.end) {
						at := ""
						if f.Index != nil {
							at = u(*f.Index)
						}
						out = append(out, tableRow{u(v.Index), "failure", at, f.Error})
					}
				}
				return out
			},
			limit: 1000}
	},
	"8.17/clock": listed([]string{"idx", "sealed_at", "synchronised", "maxerror_us", "esterror_us", "source", "host", "read_error"}, 1000,
		[]string{string(events.LedgerClockStatus)}, true, func(t *tev) tableRow {
			return tableRow{u(t.idx), t.sealedAt, t.b(t.Payload.Synchronised), t.n(t.Payload.MaxerrorUs), t.n(t.Payload.EsterrorUs), t.s(t.Payload.Source), t.s(t.Payload.Host), t.s(t.Payload.ReadError)}
		}),
}

// ddlKinds are the statement kinds 8.32's table of changes lists
// (compared upper-cased).
var ddlKinds = []string{"ALTER", "CREATE", "DROP", "TRUNCATE", "GRANT", "REVOKE", "COMMENT", "RENAME"}

// command is a command.executed of the range and what its result (the
// first response.digest of the range naming it, after it) said.
type command struct {
	idx                            uint64
	time, subject, session, target string
	kind, statement                string
	digest                         bool
	rows                           *int64
	tag, errorCode                 string
	ddl                            bool
}

// commandTables are the tables of commands with their results: one
// fold of the events feeds 8.12's, 8.16's and 8.32's. It keeps the
// commands whose result has not come yet, the first 1000 changes, the 25
// largest results and a count per actor: not every command.
type commandTables struct {
	pending map[string]*command // by event id, awaiting a result
	changes []*command          // DDL, in index order, the first 1001
	largest []*command          // the 25 largest results
	volume  map[string]*[2]int64
	hasRows map[string]bool
}

func newCommandTables() *commandTables {
	return &commandTables{pending: map[string]*command{}, volume: map[string]*[2]int64{}, hasRows: map[string]bool{}}
}

func (c *commandTables) note(t *tev, system bool) {
	if system {
		return
	}
	switch t.Type {
	case "command.executed":
		if _, dup := c.pending[t.ID]; dup {
			return
		}
		target := ""
		if t.Target != nil {
			target = t.Target.Name
		}
		cmd := &command{idx: t.idx, time: t.Time, subject: t.Actor.Subject, session: t.Session, target: target,
			kind: t.s(t.Payload.Kind), statement: cut200(t.s(t.Payload.Statement))}
		cmd.ddl = slices.Contains(ddlKinds, strings.ToUpper(cmd.kind))
		c.pending[t.ID] = cmd
		if cmd.ddl && len(c.changes) <= 1000 {
			c.changes = append(c.changes, cmd)
		}
		v := c.volume[cmd.subject]
		if v == nil {
			v = &[2]int64{}
			c.volume[cmd.subject] = v
		}
		v[0]++
	case "response.digest":
		cmd := c.pending[t.s(t.Payload.CommandId)]
		if cmd == nil {
			return
		}
		delete(c.pending, t.s(t.Payload.CommandId))
		cmd.digest, cmd.tag, cmd.errorCode = true, t.s(t.Payload.CommandTag), t.s(t.Payload.ErrorCode)
		if n, err := strconv.ParseInt(t.n(t.Payload.Rows), 10, 64); err == nil {
			cmd.rows = &n
			c.volume[cmd.subject][1] += n
			c.hasRows[cmd.subject] = true
			i, _ := slices.BinarySearchFunc(c.largest, cmd, cmpLargest)
			c.largest = slices.Insert(c.largest, i, cmd)
			if len(c.largest) > 25 {
				c.largest = c.largest[:25]
			}
		}
	}
}

// cmpLargest orders by rows, largest first, then by index.
func cmpLargest(a, b *command) int {
	if c := cmp.Compare(*b.rows, *a.rows); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}

func optInt(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}

// commandsOf makes a table of the commands' fold.
func commandsOf(columns []string, limit int, rows func(c *commandTables) []tableRow) func(*folds) *table {
	return func(f *folds) *table {
		c := f.commandFold()
		return &table{columns: columns, limit: limit, rows: func(*tableIn) []tableRow { return rows(c) }}
	}
}

// request is an approval.requested of the range and its decision: the
// first approval.granted, denied or expired of the range after it with
// its approval_id.
type request struct {
	idx                              uint64
	id, rule, requester, requestedAt string
	decision, approver, decidedAt    string
	waitedMillis                     string
}

// approvalTables folds the requests and their decisions.
type approvalTables struct {
	order []*request
	byID  map[string]*request
}

func (a *approvalTables) note(t *tev, system bool) {
	if system {
		return
	}
	switch t.Type {
	case "approval.requested":
		id := t.s(t.Payload.ApprovalId)
		r := &request{idx: t.idx, id: id, rule: t.s(t.Payload.Rule), requester: t.Actor.Subject, requestedAt: t.Time}
		a.order = append(a.order, r)
		if id != "" && a.byID[id] == nil {
			a.byID[id] = r
		}
	case "approval.granted", "approval.denied", "approval.expired":
		r := a.byID[t.s(t.Payload.ApprovalId)]
		if r == nil || r.decision != "" {
			return
		}
		r.decision, r.approver, r.decidedAt = strings.TrimPrefix(t.Type, "approval."), t.Actor.Subject, t.Time
		q, err1 := time.Parse(time.RFC3339Nano, r.requestedAt)
		d, err2 := time.Parse(time.RFC3339Nano, r.decidedAt)
		if err1 == nil && err2 == nil {
			r.waitedMillis = strconv.FormatInt(d.Sub(q).Milliseconds(), 10)
		}
	}
}

// shownApprover is the approver as the tables show it: none for an
// expired request, which no one decided.
func (r *request) shownApprover() string {
	if r.decision == "expired" {
		return ""
	}
	return r.approver
}

func (r *request) selfApproved() bool { return r.approver != "" && r.approver == r.requester }

func approvalsOf(columns []string, limit int, rows func(a *approvalTables) []tableRow) func(*folds) *table {
	return func(f *folds) *table {
		a := f.approvalFold()
		return &table{columns: columns, limit: limit, rows: func(*tableIn) []tableRow { return rows(a) }}
	}
}

// folds are the folds several tables read: each reads the events once
// for all of them.
type folds struct {
	commands  *commandTables
	approvals *approvalTables
	notes     []func(t *tev, system bool)
}

func (f *folds) commandFold() *commandTables {
	if f.commands == nil {
		f.commands = newCommandTables()
		f.notes = append(f.notes, f.commands.note)
	}
	return f.commands
}

func (f *folds) approvalFold() *approvalTables {
	if f.approvals == nil {
		f.approvals = &approvalTables{byID: map[string]*request{}}
		f.notes = append(f.notes, f.approvals.note)
	}
	return f.approvals
}

func init() {
	derivations["5.3/decisions"] = approvalsOf([]string{"decision", "requests", "decided_by_requester"}, 0, func(a *approvalTables) []tableRow {
		c := newCounter()
		for _, r := range a.order {
			d := r.decision
			if d == "" {
				d = "pending"
			}
			self := int64(0)
			if r.selfApproved() {
				self = 1
			}
			c.add([]string{d}, 1, self)
		}
		return c.sorted()
	})
	derivations["5.3/sample"] = approvalsOf([]string{"idx", "approval_id", "rule", "requester", "approver", "decision", "requested_at", "decided_at", "waited_ms", "self_approved"}, 0,
		func(a *approvalTables) []tableRow {
			s := &sample{n: 25}
			for _, r := range a.order {
				self := ""
				if r.decision != "" {
					self = strconv.FormatBool(r.selfApproved())
				}
				s.add(r.id, r.idx, tableRow{u(r.idx), r.id, r.rule, r.requester, r.shownApprover(), r.decision, r.requestedAt, r.decidedAt, r.waitedMillis, self})
			}
			return s.out()
		})
	derivations["8.2/privileged_statements"] = approvalsOf([]string{"idx", "approval_id", "rule", "requester", "approver", "decision", "two_people"}, 1000,
		func(a *approvalTables) []tableRow {
			var out []tableRow
			for _, r := range a.order {
				two := ""
				if r.decision != "" && r.decision != "expired" {
					two = strconv.FormatBool(r.requester != r.approver)
				}
				out = append(out, tableRow{u(r.idx), r.id, r.rule, r.requester, r.shownApprover(), r.decision, two})
			}
			return out
		})
	derivations["8.32/approvals"] = approvalsOf([]string{"rule", "decision", "requests"}, 0, func(a *approvalTables) []tableRow {
		c := newCounter()
		for _, r := range a.order {
			d := r.decision
			if d == "" {
				d = "pending"
			}
			c.add([]string{r.rule, d}, 1)
		}
		return c.sorted()
	})
	derivations["8.32/changes"] = commandsOf([]string{"idx", "time", "actor_subject", "target_name", "kind", "statement", "command_tag", "error_code"}, 1000,
		func(c *commandTables) []tableRow {
			var out []tableRow
			for _, x := range c.changes {
				out = append(out, tableRow{u(x.idx), x.time, x.subject, x.target, x.kind, x.statement, x.tag, x.errorCode})
			}
			return out
		})
	derivations["8.12/largest_results"] = commandsOf([]string{"idx", "actor_subject", "target_name", "statement", "rows", "command_tag"}, 0,
		func(c *commandTables) []tableRow {
			var out []tableRow
			for _, x := range c.largest {
				out = append(out, tableRow{u(x.idx), x.subject, x.target, x.statement, optInt(x.rows), x.tag})
			}
			return out
		})
	derivations["8.12/volume"] = commandsOf([]string{"actor_subject", "statements", "rows"}, 100, func(c *commandTables) []tableRow {
		subjects := make([]string, 0, len(c.volume))
		for s := range c.volume {
			subjects = append(subjects, s)
		}
		slices.SortFunc(subjects, func(a, b string) int {
			ha, hb := c.hasRows[a], c.hasRows[b]
			switch {
			case ha != hb && ha:
				return -1
			case ha != hb:
				return 1
			}
			if x := cmp.Compare(c.volume[b][1], c.volume[a][1]); x != 0 {
				return x
			}
			return strings.Compare(a, b)
		})
		var out []tableRow
		for _, s := range subjects {
			rows := ""
			if c.hasRows[s] {
				rows = strconv.FormatInt(c.volume[s][1], 10)
			}
			out = append(out, tableRow{s, strconv.FormatInt(c.volume[s][0], 10), rows})
		}
		return out
	})
	derivations["8.16/statements_without_result"] = commandsOf([]string{"idx", "actor_subject", "session_id", "statement"}, 100,
		func(c *commandTables) []tableRow {
			var left []*command
			for _, x := range c.pending {
				left = append(left, x)
			}
			slices.SortFunc(left, func(a, b *command) int { return cmp.Compare(a.idx, b.idx) })
			var out []tableRow
			for _, x := range left {
				out = append(out, tableRow{u(x.idx), x.subject, x.session, x.statement})
			}
			return out
		})
	derivations["8.11/masks_by_rule"] = func(*folds) *table {
		type key = [4]string
		counts := map[key]*[2]int64{}
		summed := map[key]bool{}
		return &table{columns: []string{"rule_id", "rule_version", "column_or_field", "method", "actions", "values_masked"},
			note: func(t *tev, system bool) {
				if system || t.Type != "mask.applied" {
					return
				}
				col := t.s(t.Payload.Column)
				if col == "" {
					col = t.s(t.Payload.Field)
				}
				k := key{t.s(t.Payload.RuleId), t.n(t.Payload.RuleVersion), col, t.s(t.Payload.Method)}
				v := counts[k]
				if v == nil {
					v = &[2]int64{}
					counts[k] = v
				}
				v[0]++
				if n, err := strconv.ParseInt(t.n(t.Payload.Count), 10, 64); err == nil {
					v[1] += n
					summed[k] = true
				}
			},
			rows: func(*tableIn) []tableRow {
				keys := make([]key, 0, len(counts))
				for k := range counts {
					keys = append(keys, k)
				}
				slices.SortFunc(keys, func(a, b key) int { return slices.Compare(a[:], b[:]) })
				var out []tableRow
				for _, k := range keys {
					vm := ""
					if summed[k] {
						vm = strconv.FormatInt(counts[k][1], 10)
					}
					out = append(out, tableRow{k[0], k[1], k[2], k[3], strconv.FormatInt(counts[k][0], 10), vm})
				}
				return out
			}}
	}
}

// DerivedTables reports whether auditledger derives the table name of
// control (tests: every query the mapping marks derived has one).
func DerivedTables(control, name string) bool { _, ok := derivations[control+"/"+name]; return ok }

// derivedOf lists the tables fw's mapping marks derived, as
// "control/name".
func derivedOf(fw *compliance.Framework) []string {
	var out []string
	for _, ev := range fw.Mapping.Controls {
		for _, q := range ev.Queries {
			if q.Derived {
				out = append(out, ev.Control+"/"+q.Name)
			}
		}
	}
	return out
}

// tableSet derives a bundle's tables as its records are read.
type tableSet struct {
	order  []string
	tables map[string]*table
	// notes are the tables' and the folds' readers, each once
	notes []func(t *tev, system bool)
	folds folds
	t     tev // the event being read (no table keeps it)
	scan  eventscan.Event
	err   error
}

// newTables starts every derivation named in want ("control/name").
func newTables(want []string) (*tableSet, error) {
	ts := &tableSet{tables: map[string]*table{}}
	for _, k := range want {
		mk, ok := derivations[k]
		if !ok {
			return nil, fmt.Errorf("evidence: the mapping marks table %s derived, and this version derives no such table", k)
		}
		ts.order = append(ts.order, k)
		t := mk(&ts.folds)
		ts.tables[k] = t
		if t.note != nil {
			ts.notes = append(ts.notes, t.note)
		}
	}
	ts.notes = append(ts.notes, ts.folds.notes...)
	return ts, nil
}

// note reads one whole record of the range: one of the tenant's events,
// or (system) a clock status record of the log.
func (ts *tableSet) note(idx uint64, sealed time.Time, event []byte, system bool) {
	if ts == nil || ts.err != nil || len(ts.tables) == 0 {
		return
	}
	ts.noteScanned(idx, sealed, event, &ts.scan, ts.scan.Scan(event), system)
}

// noteScanned is note given the event as eventscan read it (scanned
// false: it could not, and encoding/json decodes the event).
func (ts *tableSet) noteScanned(idx uint64, sealed time.Time, event []byte, ev *eventscan.Event, scanned, system bool) {
	if ts == nil || ts.err != nil || len(ts.tables) == 0 {
		return
	}
	t := &ts.t
	*t = tev{idx: idx}
	if scanned {
		t.fill(event, ev)
	} else if err := json.Unmarshal(event, t); err != nil {
		ts.err = fmt.Errorf("record %d: %w", idx, err)
		return
	}
	if system {
		if t.Type != string(events.LedgerClockStatus) || t.Tenant != ledger.SystemTenant {
			return
		}
		t.sealedAt = sealed.UTC().Format(time.RFC3339Nano)
	}
	for _, note := range ts.notes {
		note(t, system)
	}
}

// fill reads t from ev, event's members as eventscan read them: what
// json.Unmarshal would decode. Its strings are of one copy of the event,
// which the tables may keep; its payload members view event itself, read
// only while the event is noted.
func (t *tev) fill(event []byte, ev *eventscan.Event) {
	s := string(event)
	t.ID, t.Type, t.Time = ev.In(s, eventscan.ID), ev.In(s, eventscan.Type), ev.In(s, eventscan.Time)
	t.Tenant, t.Session = ev.In(s, eventscan.Tenant), ev.In(s, eventscan.SessionID)
	t.Source.Kind = ev.In(s, eventscan.SourceKind)
	a := &t.Actor
	a.Issuer, a.Subject, a.Email = ev.In(s, eventscan.ActorIssuer), ev.In(s, eventscan.ActorSubject), ev.In(s, eventscan.ActorEmail)
	a.Kind, a.Groups, a.DevIdentity = ev.In(s, eventscan.ActorKind), ev.Strings(eventscan.ActorGroups), ev.Bool(eventscan.ActorDevIdentity)
	if ev.Has(eventscan.Target) {
		t.target.Name = ev.In(s, eventscan.TargetName)
		t.Target = &t.target
	}
	p := &t.Payload
	p.Active, p.ApprovalId, p.BreakGlass = ev.Raw(eventscan.PActive), ev.Raw(eventscan.PApprovalID), ev.Raw(eventscan.PBreakGlass)
	p.ClientAddr, p.Column, p.CommandId = ev.Raw(eventscan.PClientAddr), ev.Raw(eventscan.PColumn), ev.Raw(eventscan.PCommandID)
	p.CommandTag, p.Count, p.ErrorCode = ev.Raw(eventscan.PCommandTag), ev.Raw(eventscan.PCount), ev.Raw(eventscan.PErrorCode)
	p.EsterrorUs, p.Field, p.Framework = ev.Raw(eventscan.PEsterrorUs), ev.Raw(eventscan.PField), ev.Raw(eventscan.PFramework)
	p.From, p.Grants, p.Host = ev.Raw(eventscan.PFrom), ev.Raw(eventscan.PGrants), ev.Raw(eventscan.PHost)
	p.Kind, p.ListingSha256, p.MaxerrorUs = ev.Raw(eventscan.PKind), ev.Raw(eventscan.PListingSHA256), ev.Raw(eventscan.PMaxerrorUs)
	p.Method, p.Part, p.Parts = ev.Raw(eventscan.PMethod), ev.Raw(eventscan.PPart), ev.Raw(eventscan.PParts)
	p.ReadError, p.Reason, p.Resource = ev.Raw(eventscan.PReadError), ev.Raw(eventscan.PReason), ev.Raw(eventscan.PResource)
	p.Rows, p.Rule, p.RuleId = ev.Raw(eventscan.PRows), ev.Raw(eventscan.PRule), ev.Raw(eventscan.PRuleID)
	p.RuleVersion, p.Snapshot, p.Source = ev.Raw(eventscan.PRuleVersion), ev.Raw(eventscan.PSnapshot), ev.Raw(eventscan.PSource)
	p.Statement, p.Synchronised, p.To = ev.Raw(eventscan.PStatement), ev.Raw(eventscan.PSynchronised), ev.Raw(eventscan.PTo)
	p.Unverified, p.Users = ev.Raw(eventscan.PUnverified), ev.Raw(eventscan.PUsers)
}

// csv returns table k's CSV and its number of rows, and whether rows
// beyond its limit were left out.
func (ts *tableSet) csv(k string, in *tableIn) ([]byte, int, bool) {
	t := ts.tables[k]
	rows := t.rows(in)
	capped := false
	if t.limit > 0 && len(rows) > t.limit {
		rows, capped = rows[:t.limit], true
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(t.columns)
	for _, r := range rows {
		w.Write(r)
	}
	w.Flush()
	return b.Bytes(), len(rows), capped
}
