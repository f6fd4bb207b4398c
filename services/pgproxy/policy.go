package pgproxy

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/mask"
)

// Policy is what the proxy enforces on statements and results. The file
// format is documented in docs/POLICY.md.
//
// Every rule of a Policy applies to every requester; For returns the view
// for one requester, without the rules they are exempt from. Using a
// Policy without For therefore errs on the side of enforcing.
type Policy struct {
	policyfile.Loaded
	policyfile.Rules[MaskRule, DenyRule, ApprovalRule]

	Version int
	// Parameters says how bind parameters of the extended protocol are
	// recorded: omit (the default: only their count), hash, or record.
	Parameters string `yaml:"parameters"`
	// MaskedColumnsBare is accepted from files written when the refusal
	// of computed reads of masked columns (builtin-masked-columns-bare)
	// had to be asked for; it is now always on while a mask rule names
	// columns, and this field changes nothing.
	MaskedColumnsBare bool `yaml:"masked_columns_bare"`

	hashKey []byte
	// relations returns the columns of a relation as the target's
	// catalog has them (rows of a view: its columns and those of the
	// relations it reads), or an error when it cannot tell; nil, every
	// relation is taken to hold a masked column. Set per session
	// (withRelations).
	relations func(relRef) ([]string, error)
}

// withRelations returns p with the catalog lookup of relations' columns,
// by which whole-row reads and relation renames are judged.
func (p *Policy) withRelations(f func(relRef) ([]string, error)) *Policy {
	if p == nil || !p.hasColumnRules() {
		return p
	}
	v := *p
	v.relations = f
	return &v
}

// maskedRelation returns, for a relation, the first of its columns a
// column rule masks and that rule; with a nil rule, why it cannot tell
// ("" when it holds none).
func (p *Policy) maskedRelation(rel relRef) (col string, r *MaskRule, why string) {
	if p.relations == nil {
		return "", nil, "the gateway cannot look up its columns"
	}
	cols, err := p.relations(rel)
	if err != nil {
		return "", nil, "the gateway cannot tell which columns it has (" + err.Error() + ")"
	}
	for _, c := range cols {
		if r := p.columnRules([]string{c})[0]; r != nil {
			return c, r, ""
		}
	}
	return "", nil, ""
}

// MaskRule masks result values by column name or by what a value looks like.
type MaskRule struct {
	policyfile.Mask `yaml:",inline"`
	Columns         []string `yaml:"columns"` // glob patterns on column names, case-insensitive
}

// Match selects statements, for deny and approval rules. Kinds are
// matched against every statement in a query string as PostgreSQL parses
// it, nested ones included (see analysis).
type Match struct {
	Kinds        []string `yaml:"kinds"`         // DROP, TRUNCATE, DELETE, DO, CREATE FUNCTION, COPY TO STDOUT, ...
	Pattern      string   `yaml:"pattern"`       // regular expression on the statement text, as written or as deparsed (canonicalText)
	RequireWhere bool     `yaml:"require_where"` // match only DELETE/UPDATE statements without a WHERE that refers to rows
	re           *regexp.Regexp
}

// compile checks and prepares m; what names the rule in errors.
func (m *Match) compile(what string) error {
	if len(m.Kinds) == 0 && m.Pattern == "" {
		return fmt.Errorf("%s needs kinds or a pattern", what)
	}
	for i, k := range m.Kinds {
		m.Kinds[i] = strings.Join(strings.Fields(strings.ToUpper(k)), " ")
		if err := checkKind(m.Kinds[i]); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if m.Pattern != "" {
		re, err := regexp.Compile(m.Pattern)
		if err != nil {
			return fmt.Errorf("%s: pattern: %v", what, err)
		}
		m.re = re
	}
	return nil
}

// matches reports whether sql, analysed as a, is selected.
func (m *Match) matches(sql string, a *analysis) bool {
	if len(m.Kinds) > 0 && !slices.ContainsFunc(m.Kinds, a.has) {
		return false
	}
	if m.re != nil && !m.re.MatchString(sql) {
		// The text as the server reads it, written one way: U&"pg\005fsleep",
		// "pg_sleep" and pg_catalog . pg_sleep all call pg_sleep.
		canon, ok := canonicalText(sql)
		if ok && !m.re.MatchString(canon) {
			return false
		}
	}
	if !m.RequireWhere {
		return true
	}
	kinds := m.Kinds
	if len(kinds) == 0 {
		kinds = []string{"DELETE", "UPDATE"}
	}
	return slices.ContainsFunc(kinds, func(k string) bool { return a.noWhere[k] })
}

// DenyRule blocks statements by kind or pattern.
type DenyRule struct {
	policyfile.Scope `yaml:",inline"`
	ID               string `yaml:"id"`
	Match            `yaml:",inline"`
	Reason           string `yaml:"reason"`
}

// ApprovalRule holds matching statements until an approver decides.
type ApprovalRule struct {
	policyfile.Scope `yaml:",inline"`
	ID               string `yaml:"id"`
	Match            `yaml:",inline"`
	Timeout          time.Duration `yaml:"timeout"` // default 5m
	Reason           string        `yaml:"reason"`
}

// DefaultApprovalTimeout is how long a statement is held by default.
const DefaultApprovalTimeout = 5 * time.Minute

// LoadPolicy reads and checks a policy file (the gateway core's
// LoadPolicy with this proxy's parser), errors naming the line. The
// policy it returns names its file, version and digest, so the proxy
// records it (policy.loaded) before serving and names it on every event.
func LoadPolicy(file string) (*Policy, error) { return gateway.LoadPolicy(file, ParsePolicy) }

// ParsePolicy parses policy text; name is used in errors.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	var doc struct {
		policyfile.Header   `yaml:",inline"`
		policyfile.Sections `yaml:",inline"`
		Parameters          string `yaml:"parameters"`
		MaskedColumnsBare   bool   `yaml:"masked_columns_bare"`
	}
	if err := policyfile.Decode(name, b, &doc); err != nil {
		return nil, err
	}
	p := &Policy{Version: doc.Version, Parameters: doc.Parameters, MaskedColumnsBare: doc.MaskedColumnsBare}
	switch doc.Parameters {
	case "":
		p.Parameters = paramsOmit
	case paramsOmit, paramsHash, paramsRecord:
	default:
		return nil, fmt.Errorf("policy %s: parameters: %q, want omit, hash or record", name, doc.Parameters)
	}
	p.Source = policyfile.NewSource(name, b, doc.Version)
	if doc.HashKeyEnv != "" {
		p.hashKey = []byte(os.Getenv(doc.HashKeyEnv))
	}
	bad := func(line int, format string, args ...any) error {
		return policyfile.LineError(name, line, format, args...)
	}
	for _, n := range doc.Mask {
		var r MaskRule
		if err := doc.DecodeMask(&p.Loaded, &p.hashKey, &n, &r, &r.Mask, func() int { return len(r.Columns) }, "columns"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		for _, c := range r.Columns {
			if _, err := path.Match(strings.ToLower(c), ""); err != nil {
				return nil, bad(n.Line, "mask rule %s: column pattern %q: %v", r.ID, c, err)
			}
		}
		p.Mask = append(p.Mask, r)
	}
	for _, n := range doc.Deny {
		var r DenyRule
		if err := yamlstrict.DecodeNode(&n, &r, "a deny rule"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		if r.ID == "" || r.Reason == "" {
			return nil, bad(n.Line, "deny rule needs an id and a reason")
		}
		if strings.HasPrefix(r.ID, builtinPrefix) {
			return nil, bad(n.Line, "deny rule %s: ids starting %q name the proxy's built-in rules", r.ID, builtinPrefix)
		}
		if err := r.compile("deny rule " + r.ID); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		if err := doc.Scope(&p.Loaded, policyfile.KindDeny, r.ID, &r.Scope); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		p.Deny = append(p.Deny, r)
	}
	if len(p.Mask) > 0 {
		// COPY ... TO STDOUT sends rows as CopyData, which the proxy does
		// not parse into columns: with masking on, such a COPY could
		// carry unmasked values out, so it is refused.
		r := DenyRule{ID: builtinCopyOut,
			Match:  Match{Kinds: []string{"COPY TO STDOUT"}},
			Reason: "COPY TO STDOUT is not masked, and this policy masks results; use SELECT"}
		if err := r.compile(r.ID); err != nil {
			panic(err) // a constant pattern
		}
		p.Deny = append(p.Deny, r)
	}
	for _, n := range doc.Approve {
		var r ApprovalRule
		if err := yamlstrict.DecodeNode(&n, &r, "an approval rule"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		if r.ID == "" {
			return nil, bad(n.Line, "approval rule needs an id")
		}
		if strings.HasPrefix(r.ID, builtinPrefix) {
			return nil, bad(n.Line, "approval rule %s: ids starting %q name the proxy's built-in rules", r.ID, builtinPrefix)
		}
		if err := r.compile("approval rule " + r.ID); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		if err := doc.Scope(&p.Loaded, policyfile.KindApprove, r.ID, &r.Scope); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		switch {
		case r.Timeout < 0:
			return nil, bad(n.Line, "approval rule %s: timeout %s is negative", r.ID, r.Timeout)
		case r.Timeout > approvals.MaxTimeout:
			return nil, bad(n.Line, "approval rule %s: timeout %s is longer than the %s a request is kept", r.ID, r.Timeout, approvals.MaxTimeout)
		case r.Timeout == 0:
			r.Timeout = DefaultApprovalTimeout
		}
		p.Approve = append(p.Approve, r)
	}
	p.Deny = withUnjudgeable(p.Deny, p.Approve, p.Mask)
	return p, nil
}

// builtinPrefix starts the id of every built-in rule; a policy's own
// deny and approval rules may not use it, so that events name one rule by
// one id and no rule of the file is taken for a built-in one.
const builtinPrefix = "builtin-"

// builtinCopyOut refuses COPY TO STDOUT while mask rules apply.
const builtinCopyOut = "builtin-copy-out-unmasked"

// For returns the policy as it applies to user, a member of groups:
// without the rules they are exempt from (and without the refusal of COPY
// TO STDOUT when no mask rule is left, and of statements the proxy cannot
// judge when no deny, approval or mask rule is). It returns p itself when no
// rule exempts anyone.
func (p *Policy) For(user string, groups []string) *Policy {
	if p == nil {
		return nil
	}
	rules, narrowed := p.Rules.For(user, groups)
	if !narrowed {
		return p
	}
	v := *p
	v.Rules = rules
	if len(v.Mask) == 0 {
		v.Deny = slices.DeleteFunc(slices.Clone(v.Deny), func(r DenyRule) bool { return r.ID == builtinCopyOut })
	}
	v.Deny = withUnjudgeable(v.Deny, v.Approve, v.Mask)
	return &v
}

// builtinUnjudgeable refuses statements whose effect the proxy cannot
// see while deny, approval or mask rules apply to the requester: a body
// can drop what a deny rule protects, and can read a masked column and
// return it transformed, past what the proxy sees of the call.
const builtinUnjudgeable = "builtin-unjudgeable"

// unjudgeableKinds are the statements whose effect the parse tree does
// not show: a DO block runs code built at run time (EXECUTE 'DROP …'),
// and a function, procedure, trigger, event trigger or rule runs its body
// later, when called or fired, where the proxy sees only the call or the
// statement that fires it. ALTER FUNCTION changes how an existing body
// runs (SECURITY DEFINER, SET search_path). Bodies the server already
// holds are not here: calling them is the database's privileges to govern.
var unjudgeableKinds = []string{"DO", "CREATE FUNCTION", "CREATE PROCEDURE", "ALTER FUNCTION",
	"CREATE TRIGGER", "CREATE EVENT TRIGGER", "CREATE RULE"}

// withUnjudgeable returns deny with the built-in refusal of
// unjudgeableKinds when any deny, approval or mask rule of the
// requester's own applies, and without it otherwise: a requester nothing
// is judged or masked for loses nothing by code the proxy cannot judge.
func withUnjudgeable(deny []DenyRule, approve []ApprovalRule, masks []MaskRule) []DenyRule {
	deny = slices.DeleteFunc(slices.Clone(deny), func(r DenyRule) bool { return r.ID == builtinUnjudgeable })
	judged := len(approve) > 0 || len(masks) > 0 || slices.ContainsFunc(deny, func(r DenyRule) bool { return r.ID != builtinCopyOut })
	if !judged {
		return deny
	}
	// The rule's kinds are what it refuses outright, for policy explain;
	// kinds an approval rule names are held where that rule matches
	// (Denied asks unjudged, which looks at every kind).
	var refused, held []string
	for _, k := range unjudgeableKinds {
		names := kindNamesFor(k)
		if slices.ContainsFunc(approve, func(r ApprovalRule) bool {
			return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(r.Kinds, n) })
		}) {
			held = append(held, k)
		} else {
			refused = append(refused, k)
		}
	}
	reason := "code whose effect the gateway cannot see; refused unless an approval rule naming its kind holds it"
	if len(held) > 0 {
		reason += "; " + strings.Join(held, ", ") + " held instead where such a rule matches"
	}
	if len(refused) == 0 {
		refused = held
	}
	r := DenyRule{ID: builtinUnjudgeable, Match: Match{Kinds: refused}, Reason: reason}
	if err := r.compile(r.ID); err != nil {
		panic(err) // constant kinds
	}
	return append(deny, r)
}

// unjudged returns the kind of the first statement in sql (analysed as
// a) whose effect the proxy cannot see and that no approval rule of p
// holds, or "". An approval rule holds such a statement when it matches
// it and its kinds name the statement's kind — the specific one (DO,
// CREATE FUNCTION) or its first word (CREATE, ALTER): the approver reads
// the whole text, body included, so that is an explicit allowance with a
// second person. A DO has no other kind: only a rule naming DO holds it.
func (p *Policy) unjudged(sql string, a *analysis) string {
	for _, k := range unjudgeableKinds {
		if !a.has(k) {
			continue
		}
		names := kindNamesFor(k)
		if !slices.ContainsFunc(p.Approve, func(r ApprovalRule) bool {
			return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(r.Kinds, n) }) && r.matches(sql, a)
		}) {
			return k
		}
	}
	return ""
}

// kindNamesFor lists the kinds a rule may name to cover statements of
// kind k: k and its first word.
func kindNamesFor(k string) []string {
	if w, _, ok := strings.Cut(k, " "); ok {
		return []string{k, w}
	}
	return []string{k}
}

// unjudgeableRefusal is the refusal of a statement of kind, saying why
// and how it could be allowed.
func unjudgeableRefusal(kind string) *DenyRule {
	return &DenyRule{ID: builtinUnjudgeable, Match: Match{Kinds: []string{kind}},
		Reason: fmt.Sprintf("%s runs code whose effect the audit proxy cannot see (built at run time, or run later when called or fired), "+
			"so the deny, approval and mask rules that apply to you cannot judge it (a body can read a masked column and return it transformed); "+
			"to allow it, the policy holds it for an approver with an approval rule naming kind %s, or exempts you from every deny, approval and mask rule", kind, strings.Join(kindNamesFor(kind), " or "))}
}

// builtinMaskedColumnsBare refuses a statement whose results read a
// column a mask rule names other than as the bare column.
const builtinMaskedColumnsBare = "builtin-masked-columns-bare"

// maskedRead refuses what masking by column cannot follow (outputReads):
// a result computed from a column a mask rule names — reverse(card),
// substring(card, 9), card::text, string_agg(card, ','), a subquery, a
// CTE or a UNION branch that computes it — is a value no rule masks, and
// a whole row holds every column, masked ones included. Masking is kept
// for the one form it can follow: the column itself, as the server
// reports its origin.
func (p *Policy) maskedRead(a *analysis) *DenyRule {
	if len(a.reads)+len(a.textSQL) == 0 || !p.hasColumnRules() {
		return nil
	}
	for _, f := range a.textSQL {
		for i := range p.Mask {
			if r := &p.Mask[i]; len(r.Columns) > 0 {
				return &DenyRule{ID: builtinMaskedColumnsBare, Reason: fmt.Sprintf("%s runs a query given as text, or reads whole tables, which the gateway cannot judge, "+
					"and its result can hold the columns mask rule %s masks (%s) unmasked; run the query itself", f, r.ID, strings.Join(r.Columns, ", "))}
			}
		}
	}
	masked := p.maskedNames(a)
	for _, rd := range a.reads {
		if rd.whole {
			continue
		}
		if rd.into != "" && p.columnRules([]string{rd.into})[0] != nil {
			continue // written into a column masked too: UPDATE t SET email = lower(email)
		}
		if r := masked[strings.ToLower(rd.col)]; r != nil {
			col := rd.col
			if r.as != "" {
				col = fmt.Sprintf("%s (%s)", rd.col, r.as)
			}
			if rd.via != "" {
				return &DenyRule{ID: builtinMaskedColumnsBare, Reason: fmt.Sprintf("%s is given column %s, which mask rule %s masks, and keeps its value where a later statement "+
					"reads it back unmasked; call %s without the column", rd.via, col, r.rule.ID, rd.via)}
			}
			return &DenyRule{ID: builtinMaskedColumnsBare, Reason: fmt.Sprintf("the result reads column %s, which mask rule %s masks, through an expression, "+
				"a set operation or a copy into a table, where its values would not be masked; select %s as it is, and it is masked", col, r.rule.ID, rd.col)}
		}
	}
	for _, rd := range a.reads {
		if !rd.whole || rd.into != "" && p.columnRules([]string{rd.into})[0] != nil {
			continue
		}
		if r := p.wholeRowRefusal(rd); r != nil {
			return r
		}
	}
	return nil
}

// wholeRowRefusal refuses a whole-row read (row_to_json(t), to_jsonb(t),
// t.*, SELECT t, * in a set operation or a copy) of rows that can hold a
// masked column: rows of a relation the catalog says has one (a view:
// or reads one), of a function, or of a relation the catalog cannot
// describe (not found, or altered in a transaction still open).
func (p *Policy) wholeRowRefusal(rd outRead) *DenyRule {
	var first *MaskRule
	for i := range p.Mask {
		if len(p.Mask[i].Columns) > 0 {
			first = &p.Mask[i]
			break
		}
	}
	refuse := func(what string) *DenyRule {
		return &DenyRule{ID: builtinMaskedColumnsBare, Reason: fmt.Sprintf("the result reads whole rows of %s (a row value, row_to_json, to_jsonb, or * in a set operation "+
			"or a copy into a table), %s; select the columns by name", rd.col, what)}
	}
	if rd.opaque || p.relations == nil {
		return refuse(fmt.Sprintf("whose columns the gateway cannot look up, and which can hold the columns mask rule %s masks (%s) unmasked", first.ID, strings.Join(first.Columns, ", ")))
	}
	for _, rel := range rd.rels {
		col, r, why := p.maskedRelation(rel)
		switch {
		case r != nil:
			return refuse(fmt.Sprintf("which hold column %s of %s, which mask rule %s masks, unmasked", col, rel, r.ID))
		case why != "":
			return refuse(fmt.Sprintf("from %s: %s, and its rows can hold the columns mask rule %s masks (%s) unmasked", rel, why, first.ID, strings.Join(first.Columns, ", ")))
		}
	}
	return nil
}

// builtinMaskedRename refuses renaming what a column rule protects.
const builtinMaskedRename = "builtin-masked-rename"

// maskedRename refuses, while column rules apply, an ALTER … RENAME of a
// column a mask rule names (ALTER TABLE cards RENAME COLUMN name TO nm):
// rules match columns by name, so the renamed column would be read and
// returned unmasked. A relation renamed (ALTER TABLE … RENAME TO) is
// refused when the catalog says it has a masked column (a view: or reads
// one), or cannot tell.
func (p *Policy) maskedRename(a *analysis) *DenyRule {
	if len(a.renamed) == 0 || !p.hasColumnRules() {
		return nil
	}
	var first *MaskRule
	for i := range p.Mask {
		if len(p.Mask[i].Columns) > 0 {
			first = &p.Mask[i]
			break
		}
	}
	for _, rn := range a.renamed {
		if rn.column == "" {
			rel := relRef{schema: rn.schema, name: rn.rel}
			col, r, why := p.maskedRelation(rel)
			switch {
			case r != nil:
				return &DenyRule{ID: builtinMaskedRename, Reason: fmt.Sprintf("renaming relation %s is refused: it holds column %s, which mask rule %s masks (%s); "+
					"an administrator can rename it outside the gateway", rel, col, r.ID, strings.Join(r.Columns, ", "))}
			case why != "":
				return &DenyRule{ID: builtinMaskedRename, Reason: fmt.Sprintf("renaming relation %s is refused while mask rules name columns (mask rule %s masks %s): "+
					"%s, so it may hold a masked column; an administrator can rename it outside the gateway", rel, first.ID, strings.Join(first.Columns, ", "), why)}
			}
			continue
		}
		if r := p.columnRules([]string{rn.column})[0]; r != nil {
			return &DenyRule{ID: builtinMaskedRename, Reason: fmt.Sprintf("renaming column %s of %s is refused: mask rule %s masks columns by name (%s), "+
				"and under another name its values would not be masked", rn.column, rn.rel, r.ID, strings.Join(r.Columns, ", "))}
		}
	}
	return nil
}

// maskedAs is the rule that masks a name, and the masked column it
// stands for when it is a rename ("" for the column itself).
type maskedAs struct {
	rule *MaskRule
	as   string
}

// maskedNames returns the names the analysis reads that a column rule
// masks: the masked columns, and the names they take on the way to a
// result (renames, followed until nothing changes). A positional alias
// (cards AS t(a, b, e)) may rename any column, so its names count as
// masked by the first column rule.
func (p *Policy) maskedNames(a *analysis) map[string]*maskedAs {
	out := map[string]*maskedAs{}
	for _, rd := range a.reads {
		if r := p.columnRules([]string{rd.col})[0]; r != nil {
			out[strings.ToLower(rd.col)] = &maskedAs{rule: r}
		}
	}
	var first *MaskRule
	for i := range p.Mask {
		if len(p.Mask[i].Columns) > 0 {
			first = &p.Mask[i]
			break
		}
	}
	for changed := true; changed; {
		changed = false
		for _, rn := range a.renames {
			if out[rn.to] != nil {
				continue
			}
			switch r := p.columnRules([]string{rn.from})[0]; {
			case rn.from == "*":
				out[rn.to] = &maskedAs{rule: first, as: "a column alias, which can name any column"}
			case r != nil:
				out[rn.to] = &maskedAs{rule: r, as: "an alias of " + rn.from}
			case out[rn.from] != nil:
				out[rn.to] = &maskedAs{rule: out[rn.from].rule, as: "an alias of " + rn.from}
			default:
				continue
			}
			changed = true
		}
	}
	return out
}

// Denied returns the first deny rule the statement matches, or nil.
// What the parser cannot parse is refused when any rule could apply.
func (p *Policy) Denied(sql string) *DenyRule {
	if p == nil || len(p.Deny) == 0 && len(p.Approve) == 0 && !p.hasColumnRules() {
		return nil
	}
	a := analyze(sql)
	if a.err != nil {
		return &DenyRule{ID: "builtin-unparsable", Reason: errUnparsable(a.err)}
	}
	if r := p.maskedRead(a); r != nil {
		return r
	}
	if r := p.maskedRename(a); r != nil {
		return r
	}
	for i := range p.Deny {
		r := &p.Deny[i]
		if r.ID == builtinUnjudgeable {
			if k := p.unjudged(sql, a); k != "" {
				return unjudgeableRefusal(k)
			}
			continue
		}
		if r.matches(sql, a) {
			return r
		}
	}
	return nil
}

// NeedsApproval returns the first approval rule matching a statement, or
// nil. Call it on the requester's view (For).
func (p *Policy) NeedsApproval(sql string) *ApprovalRule {
	if p == nil {
		return nil
	}
	if len(p.Approve) == 0 {
		return nil
	}
	a := analyze(sql)
	for i := range p.Approve {
		r := &p.Approve[i]
		if r.matches(sql, a) {
			return r
		}
	}
	return nil
}

// columnRules returns, for each column name, the mask rule matching it by
// name (nil if none).
func (p *Policy) columnRules(names []string) []*MaskRule {
	out := make([]*MaskRule, len(names))
	if p == nil {
		return out
	}
	for i, name := range names {
		lname := strings.ToLower(name)
	rules:
		for j := range p.Mask {
			for _, pat := range p.Mask[j].Columns {
				if ok, _ := path.Match(strings.ToLower(pat), lname); ok {
					out[i] = &p.Mask[j]
					break rules
				}
			}
		}
	}
	return out
}

// rules reports whether the policy has deny or approval rules.
func (p *Policy) rules() bool {
	return p != nil && (len(p.Deny) > 0 || len(p.Approve) > 0 || p.hasColumnRules())
}

// hasColumnRules reports whether any mask rule names columns.
func (p *Policy) hasColumnRules() bool {
	if p == nil {
		return false
	}
	for i := range p.Mask {
		if len(p.Mask[i].Columns) > 0 {
			return true
		}
	}
	return false
}

// hasDetectors reports whether any mask rule detects values.
func (p *Policy) hasDetectors() bool {
	if p == nil {
		return false
	}
	for i := range p.Mask {
		if len(p.Mask[i].Detect) > 0 {
			return true
		}
	}
	return false
}

// scrubValue masks what the detectors find inside a text value, whole or
// part of it; rule is the first rule applied, nil if none.
func (p *Policy) scrubValue(v []byte) ([]byte, *MaskRule) {
	if r := p.detectRule(v); r != nil {
		return p.apply(r, v), r
	}
	var first *MaskRule
	out, n := detect.ScrubText(string(v), func(part []byte) ([]byte, bool) {
		if r := p.detectRule(part); r != nil {
			if first == nil {
				first = r
			}
			return p.apply(r, part), true
		}
		return nil, false
	})
	if n == 0 {
		return v, nil
	}
	return []byte(out), first
}

// detectRule returns the first detector rule matching a value, or nil.
func (p *Policy) detectRule(v []byte) *MaskRule {
	if p == nil {
		return nil
	}
	for i := range p.Mask {
		for _, d := range p.Mask[i].Detect {
			if detect.Detect(d, v) {
				return &p.Mask[i]
			}
		}
	}
	return nil
}

// scrubText masks what the policy's detectors find inside free text: the
// server's error and notice texts, which quote the values they could not
// use. Without detector rules it changes nothing.
func (p *Policy) scrubText(text string) (string, int) {
	if p == nil || text == "" {
		return text, 0
	}
	return detect.ScrubText(text, func(v []byte) ([]byte, bool) {
		if r := p.detectRule(v); r != nil {
			return p.apply(r, v), true
		}
		return nil, false
	})
}

// scrubError masks values in every free-text field of a server error or
// notice; n counts them. While a column rule applies, the values the
// server quotes from rows are withheld too (quotedValues): a WHERE clause
// may cast a masked column (WHERE name::int = 1), and the error would
// carry its value past the masking of results.
//
// The server quotes more than the values it could not use: an identifier
// or a type name taken from a row (name::regtype, current_setting(name))
// comes back as 'syntax error at or near "…"' or 'unrecognized
// configuration parameter "…"'. So while a column rule applies, every
// quoted part of the message ('…' and "…") is withheld, and the fields
// that carry context (DETAIL, HINT, WHERE, the internal query, fields
// this version does not know) are replaced whole; the severity, the
// SQLSTATE and the message around the quotes are kept. Words of the
// message holding a digit are withheld too (withholdNumbers).
func (p *Policy) scrubError(e pgproto3.ErrorResponse) (pgproto3.ErrorResponse, int) {
	total := 0
	for _, f := range []*string{&e.Message, &e.Detail, &e.Hint, &e.Where, &e.InternalQuery} {
		var n int
		*f, n = p.scrubText(*f)
		total += n
	}
	if !p.hasColumnRules() {
		return e, total
	}
	var n int
	e.Message, n = withholdQuoted(e.Message)
	total += n
	e.Message, n = quotedValues(e.Message)
	total += n
	e.Message, n = withholdNumbers(e.Message)
	total += n
	withheld := detect.Placeholder(maskedColumn)
	for _, f := range []*string{&e.Detail, &e.Hint, &e.Where, &e.InternalQuery} {
		if *f != "" && *f != withheld {
			*f = withheld
			total++
		}
	}
	if len(e.UnknownFields) > 0 {
		total += len(e.UnknownFields)
		e.UnknownFields = nil
	}
	return e, total
}

// numberWords are the words of a message that hold a digit: 90-13-01,
// 0x5a, varchar(10)'s 10.
var numberWords = regexp.MustCompile(`[0-9A-Za-z_]*[0-9][0-9A-Za-z_]*`)

// withholdNumbers replaces every word of text that holds a digit with
// the masked column placeholder. The server writes numbers it computed
// without quotes (make_date(ascii(name), 13, 1) fails with *date field
// value out of range: 90-13-01*; setseed, chr, make_time, an invalid
// byte sequence's 0x5a likewise), and a number computed from a masked
// column is that column's value, a character at a time.
func withholdNumbers(text string) (string, int) {
	withheld := detect.Placeholder(maskedColumn)
	n := 0
	var b strings.Builder
	for len(text) > 0 {
		// Placeholders already there are kept as they are.
		i := strings.Index(text, withheld)
		head := text
		if i >= 0 {
			head = text[:i]
		}
		b.WriteString(numberWords.ReplaceAllStringFunc(head, func(string) string { n++; return withheld }))
		if i < 0 {
			break
		}
		b.WriteString(withheld)
		text = text[i+len(withheld):]
	}
	return b.String(), n
}

// withholdQuoted replaces what text quotes, between single or double
// quotes (a doubled quote inside stands for itself), with the masked
// column placeholder. A quote left open withholds the rest of the text.
func withholdQuoted(text string) (string, int) {
	withheld := detect.Placeholder(maskedColumn)
	var b strings.Builder
	n := 0
	for i := 0; i < len(text); {
		q := text[i]
		if q != '"' && q != '\'' {
			b.WriteByte(q)
			i++
			continue
		}
		j := i + 1
		closed := false
		for j < len(text) {
			if text[j] == q {
				if j+1 < len(text) && text[j+1] == q {
					j += 2
					continue
				}
				closed = true
				break
			}
			j++
		}
		inner := text[i+1 : j]
		b.WriteByte(q)
		if inner != "" && inner != withheld {
			inner = withheld
			n++
		}
		b.WriteString(inner)
		if closed {
			b.WriteByte(q)
			j++
		}
		i = j
	}
	return b.String(), n
}

// valueQuotes find where PostgreSQL's messages quote a value they read:
// "invalid input syntax for type integer: "…"", "malformed array
// literal: "…"", "value "…" is out of range", "invalid value "…" for",
// "Token "…" is invalid", "Key (email)=(…)", "Failing row contains (…)",
// "JSON data, line 1: …". Group 2 is the value.
var valueQuotes = []*regexp.Regexp{
	regexp.MustCompile(`(: ")((?:[^"]|"")*)("\s*$)`),
	regexp.MustCompile(`((?:value|Token|string|literal|number) ")((?:[^"]|"")*)(")`),
	regexp.MustCompile(`(\)=\()(.*)(\)( already exists| is not present| is still referenced| conflicts)?)`),
	regexp.MustCompile(`(contains \()(.*)(\))`),
	regexp.MustCompile(`(data, line \d+: )(.*)()$`),
}

// quotedValues withholds the values a server text quotes (valueQuotes).
func quotedValues(text string) (string, int) {
	n := 0
	for _, re := range valueQuotes {
		text = re.ReplaceAllStringFunc(text, func(m string) string {
			g := re.FindStringSubmatch(m)
			if g[2] == "" || g[2] == detect.Placeholder(maskedColumn) {
				return m
			}
			n++
			return g[1] + detect.Placeholder(maskedColumn) + g[3]
		})
	}
	return text, n
}

// apply masks one value.
func (p *Policy) apply(r *MaskRule, v []byte) []byte { return mask.Apply(r.Method, p.hashKey, v) }

// maxRecordedParam: longer values are recorded by digest, so that events
// stay within their size limit.
const maxRecordedParam = 1024

// Parameter recording modes.
const (
	paramsOmit   = "omit"
	paramsHash   = "hash"
	paramsRecord = "record"
)

func (p *Policy) paramMode() string {
	if p == nil {
		return paramsOmit
	}
	return p.Parameters
}

// noKey is what stands for a parameter that would be recorded by its
// keyed digest when the gateway has no tenant search key: an unkeyed
// digest could be reversed by guessing (docs/FORMAT.md §1.5).
const noKey = "[NO KEY]"

// recordParams turns bind parameters into what the ledger keeps: nothing
// (omit); for hash, each value's keyed digest under the session tenant's
// search key (keyed, gateway.ParamLabel: "hmac:<hex>"); for record, text
// values as strings, masked when a mask rule's detector matches, and
// binary ones and those over 1 KiB by keyed digest. Without a key (keyed
// nil) a value to digest is recorded as its detector's placeholder when
// a detector finds one in it, else as noKey. Recorded strings pass the
// gateway's detectors like every payload string. NULL is null in every
// mode. A parameter of sql compared with or assigned to a column a mask
// rule names (maskedParams) is recorded as [REDACTED:masked_column] in
// record mode and without a key, as a constant there would be.
//
// found lists each value a detector finds whole that is not recorded as
// a string (digested, or masked by a rule), at "/parameters/values/<i>",
// so that the event records its search digest too: the card number bound
// as a parameter is found like the one written in the text.
func (p *Policy) recordParams(sql string, values [][]byte, formats []int16, keyed func(label string, b []byte) string) (out []any, found []gateway.Redaction) {
	mode := p.paramMode()
	if mode == paramsOmit {
		return nil, nil
	}
	masked := maskedParams(sql, p)
	joined := joinedParams(values, formats)
	out = make([]any, len(values))
	for i, v := range values {
		if v == nil {
			continue
		}
		if d, ok := joined.part[i]; ok && mode == paramsRecord {
			// One part of a value the parameters make joined ($1 || $2):
			// recorded by keyed digest, as a digested value is.
			if keyed != nil {
				out[i] = keyed(gateway.ParamLabel, v)
			} else {
				out[i] = detect.Placeholder(d)
			}
			continue
		}
		if masked[int32(i+1)] && (mode == paramsRecord || keyed == nil) {
			out[i] = detect.Placeholder(maskedColumn)
			found = append(found, gateway.Found("/parameters/values/"+strconv.Itoa(i), []gateway.Finding{{Detector: maskedColumn, Value: string(v)}})...)
			continue
		}
		binary := len(formats) == 1 && formats[0] == 1 || len(formats) > i && formats[i] == 1
		asText := mode == paramsRecord && !binary && len(v) <= maxRecordedParam
		if !asText || p.detectRule(v) != nil {
			var fs []gateway.Finding
			gateway.ScrubFound(string(v), &fs)
			if n, ok := binaryInt(v, binary); ok {
				// A card number bound as a binary int8 is judged as the
				// number it is, as a numeric constant in the text is.
				if d := detect.Find([]byte(n)); d != "" {
					fs = append(fs, gateway.Finding{Detector: d, Value: n})
				}
			}
			found = append(found, gateway.Found("/parameters/values/"+strconv.Itoa(i), fs)...)
		}
		switch {
		case asText:
			if r := p.detectRule(v); r != nil {
				out[i] = string(p.apply(r, v))
			} else {
				out[i] = string(v)
			}
		case keyed != nil:
			out[i] = keyed(gateway.ParamLabel, v)
		default:
			if d := detect.Find(v); d != "" {
				out[i] = detect.Placeholder(d)
				break
			}
			if n, ok := binaryInt(v, binary); ok && detect.Find([]byte(n)) != "" {
				out[i] = detect.Placeholder(detect.Find([]byte(n)))
				break
			}
			if _, counts := detect.Scrub(string(v)); counts != nil {
				out[i] = detect.Placeholder(gateway.Redactions("", counts)[0].Detector)
				break
			}
			out[i] = noKey
		}
	}
	// The values only the parameters joined make, for their search
	// digests.
	for _, j := range joined.found {
		found = append(found, gateway.Found("/parameters/values/"+strconv.Itoa(j.Parts[0]), []gateway.Finding{{Detector: j.Detector, Value: j.Value}})...)
	}
	return out, found
}

// paramJoins are the values a statement's text bind parameters make
// joined (detect.JoinedValues: all in order and each adjacent pair, with
// and without a space between) that none makes alone, and the detector
// of one such value for each parameter that goes into one.
type paramJoins struct {
	found []detect.Joined
	part  map[int]string // parameter index → detector
}

// joinedParams judges values' text parameters joined: a card number or
// an address bound in two halves ($1 || $2) is recorded as one bound
// whole would be — each half by keyed digest, the value it makes found
// for its search digest (docs/FORMAT.md §1.4).
func joinedParams(values [][]byte, formats []int16) paramJoins {
	var parts []string
	var idx []int
	for i, v := range values {
		binary := len(formats) == 1 && formats[0] == 1 || len(formats) > i && formats[i] == 1
		if v == nil || binary || len(v) > maxRecordedParam {
			continue
		}
		parts = append(parts, string(v))
		idx = append(idx, i)
	}
	var j paramJoins
	for _, f := range detect.JoinedValues(parts) {
		for k, p := range f.Parts {
			f.Parts[k] = idx[p]
			if j.part == nil {
				j.part = map[int]string{}
			}
			if _, ok := j.part[idx[p]]; !ok {
				j.part[idx[p]] = f.Detector
			}
		}
		j.found = append(j.found, f)
	}
	return j
}

// binaryInt is the decimal text of a parameter bound in binary format
// that is as long as an int2, int4 or int8 (big-endian, signed, as
// PostgreSQL sends them): what a detector judges of a number bound so.
func binaryInt(v []byte, binary bool) (string, bool) {
	if !binary {
		return "", false
	}
	switch len(v) {
	case 2:
		return strconv.FormatInt(int64(int16(binary16(v))), 10), true
	case 4:
		return strconv.FormatInt(int64(int32(binary32(v))), 10), true
	case 8:
		return strconv.FormatInt(int64(binary64(v)), 10), true
	}
	return "", false
}

func binary16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func binary32(b []byte) uint32 { return uint32(binary16(b[:2]))<<16 | uint32(binary16(b[2:])) }
func binary64(b []byte) uint64 { return uint64(binary32(b[:4]))<<32 | uint64(binary32(b[4:])) }
