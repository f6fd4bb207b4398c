package pgproxy

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// block records a statement stopped by a deny rule.
func (s *session) block(ctx context.Context, sql string, rule *DenyRule) error {
	payload := statementFields(sql, s.p.cfg.Policy)
	payload["rule"], payload["reason"] = rule.ID, rule.Reason
	_, err := s.gs.Record(ctx, events.CommandBlocked, payload)
	return err
}

// refuse records a statement the proxy refuses for a reason of its own.
func (s *session) refuse(ctx context.Context, sql, why string) error {
	payload := statementFields(sql, s.p.cfg.Policy)
	payload["reason"] = why
	_, err := s.gs.Record(ctx, events.CommandBlocked, payload)
	return err
}

// refusedSQL is what the server gets in place of a refused statement: a
// syntax error, so it fails at once — at Parse in the extended protocol,
// before any parameter is looked at — and skips the rest of the pipeline
// as after any error. The proxy replaces the server's error with the
// refusal (SQLSTATE 42501), so the client gets it in order and a
// surrounding transaction is aborted as by any failed statement.
const refusedSQL = "AUDITLEDGER REFUSED THIS STATEMENT"

func (r *DenyRule) refusal() string {
	return fmt.Sprintf("blocked by policy rule %s: %s", r.ID, r.Reason)
}

// hold records an approval request for sql, tells the client, and waits
// for the decision. ok means the approver granted this text, as recorded
// (detector matches replaced: redactSQL); why says otherwise. err means
// the request could not be recorded. What runs on a grant is the exact
// statement held in this session, never a text read back from the bus.
func (s *session) hold(ctx context.Context, sql string, rule *ApprovalRule) (ok bool, why string, err error) {
	sql, red := redactSQL(sql, s.p.cfg.Policy)
	return s.gs.Hold(ctx, gateway.Hold{Rule: rule.ID, Reason: rule.Reason, Timeout: rule.Timeout, Statement: sql, Redacted: red,
		Notify: func(r *approvals.Request) error {
			s.out.Lock()
			defer s.out.Unlock()
			s.client.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000",
				Message: fmt.Sprintf("statement held for approval %s (rule %s), until %s", r.ID, rule.ID, r.ExpiresAt.Format(time.RFC3339)),
				Detail:  "statement sha256 " + r.StatementSHA256,
				Hint:    "an approver runs: auditledger approvals approve " + r.ID})
			return s.client.Flush()
		}})
}

func (s *session) columnsOf(ctx context.Context, m *pgproto3.RowDescription) []column {
	cols := make([]column, len(m.Fields))
	names := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		names[i] = string(f.Name)
		cols[i] = column{name: names[i], text: textTypes[f.DataTypeOID], oid: f.DataTypeOID, format: f.Format}
	}
	pol := s.pol
	for i, r := range pol.columnRules(names) {
		cols[i].rule = r
		f := m.Fields[i]
		if r != nil || f.TableOID == 0 || !pol.hasColumnRules() {
			continue
		}
		// A column taken straight from a table: the rule for its table
		// name applies, whatever the query renamed it to.
		origin, err := s.p.catalog.name(ctx, s.db, f.TableOID, f.TableAttributeNumber)
		if err != nil {
			s.p.cfg.Logger.Error("cannot name a result column's table column: withholding it", "column", names[i], "err", err)
			cols[i].rule = &opaqueRule
			continue
		}
		if origin != names[i] {
			cols[i].rule = pol.columnRules([]string{origin})[0]
		}
	}
	return cols
}

// mask rewrites a row's values in place before it is forwarded or hashed:
// columns matched by name, and text values matched by a detector. A
// matched value of a type that is not text becomes NULL, the one value
// valid for every type in both formats.
func (s *session) mask(c *command, m *pgproto3.DataRow) {
	pol := s.pol
	if pol == nil || len(pol.Mask) == 0 {
		return
	}
	for i, v := range m.Values {
		if v == nil {
			continue
		}
		var col column
		if i < len(c.columns) {
			col = c.columns[i]
		} else {
			// No Describe told the proxy what this is: it cannot be masked
			// by name or type, so it is withheld.
			col = column{name: fmt.Sprintf("column%d", i+1), rule: &opaqueRule}
		}
		rule := col.rule
		if rule == nil && pol.hasDetectors() {
			switch {
			case col.text:
				// A value inside longer text counts too ('x' || email).
				if masked, r := pol.scrubValue(v); r != nil {
					m.Values[i] = masked
					s.countMask(c, r, col.name)
				}
				continue
			case numericTypes[col.oid]:
				// Digits can be a card or phone number (a bigint column).
				if d := numberText(v, col); d != nil {
					// A numeric can shift the digits (card / 1000).
					rule = firstRule(pol, [][]byte{d, []byte(significant(string(d)))})
				} else {
					rule = &opaqueRule // malformed: not judged
				}
			case col.oid == oidFloat4 || col.oid == oidFloat8 || col.oid == oidUUID:
				// A float or a UUID can denote a card number in another
				// notation (4.111111111111111e+15, hex groups): judged by
				// what it denotes, or withheld.
				rule = denotedRule(pol, v, col)
			case harmlessTypes[col.oid]:
			default:
				// bytea, json, xml, arrays, whole rows, unknown types: the
				// detectors cannot look inside, so the value is withheld.
				rule = &opaqueRule
			}
		}
		if rule == nil {
			continue
		}
		if col.text {
			m.Values[i] = pol.apply(rule, v)
		} else {
			m.Values[i] = nil
		}
		s.countMask(c, rule, col.name)
	}
}

func (s *session) countMask(c *command, rule *MaskRule, column string) {
	if c.masked == nil {
		c.masked = map[maskKey]int{}
	}
	c.masked[maskKey{rule, column}]++
}

// opaqueRule withholds (as NULL) values of types the detectors cannot
// inspect, when the policy has detector rules.
var opaqueRule = MaskRule{Mask: policyfile.Mask{ID: "builtin-uninspectable-type", Version: 1, Method: "null", InfoType: "UNINSPECTABLE_TYPE"}}

// numericTypes are the OIDs whose values are digits (int2, int4, int8,
// numeric, oid): the detectors read them as text.
var numericTypes = map[uint32]bool{21: true, 23: true, 20: true, 1700: true, 26: true}

// harmlessTypes are the OIDs the detectors pass unread: bool, date, time,
// timestamp, timestamptz, interval, timetz. Their text is no notation of
// a card, phone number or address; a value computed to hide one in them
// is beyond what detectors promise (docs/POLICY.md).
var harmlessTypes = map[uint32]bool{16: true, 1082: true, 1083: true, 1114: true, 1184: true, 1186: true, 1266: true}

const (
	oidFloat4 = 700
	oidFloat8 = 701
	oidUUID   = 2950
)

// denotedRule judges a float or a UUID by the numbers and text it
// denotes. A float is read as its plain decimal (4111111111111111) and as
// its significant digits (0.4111111111111111 → 4111111111111111). A
// float8 of 12 significant digits or more may be a card number of 13 or
// more rounded (a client that lowers extra_float_digits gets as few as
// it likes), whose lost last digit the check digit restores; it is
// withheld unless a detector names it, as is a float4 of more than the
// 6 digits it keeps exactly. A UUID
// is read as its text, its 32 hex digits as decimal digits where they all
// are, the number they spell, and its 16 bytes as text.
func denotedRule(pol *Policy, v []byte, col column) *MaskRule {
	var forms [][]byte
	switch col.oid {
	case oidFloat4, oidFloat8:
		bits, keeps := 64, 11
		if col.oid == oidFloat4 {
			bits, keeps = 32, 6
		}
		f, ok := floatValue(v, col, bits)
		if !ok {
			return &opaqueRule
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		plain := strconv.FormatFloat(math.Abs(f), 'f', -1, bits)
		sig := significant(strconv.FormatFloat(math.Abs(f), 'e', -1, bits))
		forms = [][]byte{v, []byte(plain), []byte(sig)}
		if r := firstRule(pol, forms); r != nil {
			return r
		}
		if len(sig) > keeps {
			return &opaqueRule
		}
		return nil
	case oidUUID:
		raw, ok := uuidBytes(v, col)
		if !ok {
			return &opaqueRule
		}
		hexDigits := hex.EncodeToString(raw)
		n := new(big.Int).SetBytes(raw)
		forms = [][]byte{v, []byte(hex.EncodeToString(raw[:4]) + "-" + hex.EncodeToString(raw[4:6]) + "-" + hex.EncodeToString(raw[6:8]) + "-" + hex.EncodeToString(raw[8:10]) + "-" + hex.EncodeToString(raw[10:])), []byte(n.String()), raw}
		if strings.Trim(hexDigits, "0123456789") == "" {
			forms = append(forms, []byte(strings.TrimLeft(hexDigits, "0")), []byte(significant(hexDigits)))
		}
		if r := firstRule(pol, forms); r != nil {
			return r
		}
		// A card number inside a longer form (digits beside it). The
		// number the 16 bytes spell is judged as a whole value only (a
		// card cast through to_hex and lpad spells exactly it): the
		// detectors read every window of a longer run of digits, and a
		// random UUID's 39 digits hold a card-number window four times
		// in five.
		for _, f := range forms {
			if len(f) > 19 && string(f) == n.String() {
				continue
			}
			if _, r := pol.scrubValue(f); r != nil {
				return r
			}
		}
	}
	return nil
}

func firstRule(pol *Policy, forms [][]byte) *MaskRule {
	for _, f := range forms {
		if len(f) == 0 {
			continue
		}
		if r := pol.detectRule(f); r != nil {
			return r
		}
	}
	return nil
}

// floatValue decodes a float4 or float8 in either format.
func floatValue(v []byte, col column, bits int) (float64, bool) {
	if col.format == 0 {
		f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), bits)
		return f, err == nil || errors.Is(err, strconv.ErrRange)
	}
	switch {
	case bits == 64 && len(v) == 8:
		return math.Float64frombits(binary.BigEndian.Uint64(v)), true
	case bits == 32 && len(v) == 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v))), true
	}
	return 0, false
}

// uuidBytes decodes a UUID in either format.
func uuidBytes(v []byte, col column) ([]byte, bool) {
	if col.format != 0 {
		return v, len(v) == 16
	}
	h := strings.NewReplacer("-", "", "{", "", "}", "").Replace(string(v))
	b, err := hex.DecodeString(h)
	return b, err == nil && len(b) == 16
}

// significant is the significant digits of a number's text: its digits,
// exponent and sign dropped, without leading or trailing zeros.
func significant(s string) string {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return strings.Trim(b.String(), "0")
}

// numberText is the decimal text of a numeric value, in either format.
func numberText(v []byte, col column) []byte {
	if col.format == 0 {
		return v
	}
	switch {
	case col.oid == 20 && len(v) == 8:
		return []byte(strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10))
	case (col.oid == 23 || col.oid == 26) && len(v) == 4:
		return []byte(strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(v))), 10))
	case col.oid == 21 && len(v) == 2:
		return []byte(strconv.FormatInt(int64(int16(binary.BigEndian.Uint16(v))), 10))
	case col.oid == 1700:
		return numericText(v)
	}
	return nil
}

// numericText is the decimal text of a binary numeric (base-10000 digits
// with a weight and a scale), nil if it is malformed or not a number.
func numericText(v []byte) []byte {
	if len(v) < 8 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(v))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	scale := int(binary.BigEndian.Uint16(v[6:]))
	if len(v) != 8+2*n || (sign != 0 && sign != 0x4000) || n > 1000 || weight < -1000 || weight > 1000 {
		return nil
	}
	var b strings.Builder
	if sign == 0x4000 {
		b.WriteByte('-')
	}
	digit := func(i int) int { // the base-10000 digit of weight i
		k := weight - i
		if k < 0 || k >= n {
			return 0
		}
		return int(binary.BigEndian.Uint16(v[8+2*k:]))
	}
	if weight < 0 {
		b.WriteByte('0')
	}
	for i := weight; i >= 0; i-- {
		if i == weight {
			b.WriteString(strconv.Itoa(digit(i)))
		} else {
			fmt.Fprintf(&b, "%04d", digit(i))
		}
	}
	if scale > 0 {
		b.WriteByte('.')
		var frac strings.Builder
		for i := -1; frac.Len() < scale; i-- {
			fmt.Fprintf(&frac, "%04d", digit(i))
		}
		b.WriteString(frac.String()[:scale])
	}
	return []byte(b.String())
}

// maskEvents records one mask.applied per rule and column for the result
// that just completed.
func (s *session) maskEvents(ctx context.Context, c *command) {
	for k, n := range c.masked {
		method := k.rule.Method
		if !s.isText(c, k.column) {
			method = "null"
		}
		s.gs.RecordOrLog(ctx, events.MaskApplied, map[string]any{
			"command_id": c.id, "rule_id": k.rule.ID, "rule_version": k.rule.Version,
			"column": k.column, "info_type": k.rule.InfoType, "count": n, "method": method,
		})
	}
	c.masked = nil
}

func (s *session) isText(c *command, name string) bool {
	for _, col := range c.columns {
		if col.name == name {
			return col.text
		}
	}
	return true
}

// describeQueue holds the Describe requests awaiting their RowDescription
// or NoData, in order.
type describeQueue struct {
	mu sync.Mutex
	q  []describeKey
}

type describeKey struct {
	portal bool
	name   string
	stmt   string // for a portal, its statement
}

func describeTarget(m *pgproto3.Describe, portals map[string]portal) describeKey {
	if m.ObjectType == 'P' {
		return describeKey{portal: true, name: m.Name, stmt: portals[m.Name].stmt}
	}
	return describeKey{name: m.Name}
}

func (d *describeQueue) push(k describeKey) { d.mu.Lock(); d.q = append(d.q, k); d.mu.Unlock() }

func (d *describeQueue) reset() { d.mu.Lock(); d.q = d.q[:0]; d.mu.Unlock() }

func (d *describeQueue) pop() (describeKey, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.q) == 0 {
		return describeKey{}, false
	}
	k := d.q[0]
	d.q = d.q[1:]
	return k, true
}

// shapes remembers the columns of prepared statements and portals.
type shapes struct {
	mu       sync.Mutex
	byStmt   map[string][]column
	byPortal map[string][]column
}

func (s *shapes) put(k describeKey, cols []column) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.portal {
		s.byPortal[k.name] = cols
		s.byStmt[k.stmt] = cols
	} else {
		s.byStmt[k.name] = cols
	}
}

// forget drops the shape of a statement (re-parsed) or portal (re-bound):
// until a Describe of the new one is answered, it has none.
func (s *shapes) forget(portal bool, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if portal {
		delete(s.byPortal, name)
	} else {
		delete(s.byStmt, name)
	}
}

// nameQueue holds the portal names of Binds awaiting BindComplete.
type nameQueue struct {
	mu sync.Mutex
	q  []string
}

func (n *nameQueue) push(name string) { n.mu.Lock(); n.q = append(n.q, name); n.mu.Unlock() }

func (n *nameQueue) reset() { n.mu.Lock(); n.q = n.q[:0]; n.mu.Unlock() }

func (n *nameQueue) pop() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.q) == 0 {
		return ""
	}
	name := n.q[0]
	n.q = n.q[1:]
	return name
}

func (s *shapes) get(stmt, portal string) []column {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byPortal[portal]; ok {
		return c
	}
	return s.byStmt[stmt]
}
