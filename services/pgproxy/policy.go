package pgproxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Policy is what the proxy enforces on statements and results. The file
// format is documented in docs/POLICY.md.
type Policy struct {
	Version int            `yaml:"version"`
	Mask    []MaskRule     `yaml:"mask"`
	Deny    []DenyRule     `yaml:"deny"`
	Approve []ApprovalRule `yaml:"approve"`

	hashKey []byte
}

// MaskRule masks result values by column name or by what a value looks like.
type MaskRule struct {
	ID       string   `yaml:"id"`
	Version  int      `yaml:"version"`
	Columns  []string `yaml:"columns"` // glob patterns on column names, case-insensitive
	Detect   []string `yaml:"detect"`  // value detectors: email, credit_card
	Method   string   `yaml:"method"`  // redact, partial, hash
	InfoType string   `yaml:"info_type"`
	line     int
}

// DenyRule blocks statements by kind or pattern.
type DenyRule struct {
	ID           string   `yaml:"id"`
	Kinds        []string `yaml:"kinds"`         // first keyword: DROP, TRUNCATE, DELETE, ...
	Pattern      string   `yaml:"pattern"`       // regular expression on the statement
	RequireWhere bool     `yaml:"require_where"` // match only statements without WHERE
	Reason       string   `yaml:"reason"`
	re           *regexp.Regexp
	line         int
}

// ApprovalRule holds matching statements until an approver decides.
type ApprovalRule struct {
	ID           string   `yaml:"id"`
	Kinds        []string `yaml:"kinds"`
	Pattern      string   `yaml:"pattern"`
	RequireWhere bool     `yaml:"require_where"`
	// Groups limits the rule to requesters in any of these groups; empty
	// means everyone.
	Groups  []string      `yaml:"groups"`
	Timeout time.Duration `yaml:"timeout"` // default 5m
	Reason  string        `yaml:"reason"`
	re      *regexp.Regexp
	line    int
}

// DefaultApprovalTimeout is how long a statement is held by default.
const DefaultApprovalTimeout = 5 * time.Minute

var detectors = map[string]func([]byte) bool{
	"email":       isEmail,
	"credit_card": isCardNumber,
	"iban":        isIBAN,
	"phone":       isPhone,
	"us_ssn":      isSSN,
	"secret":      isSecret,
}

// detectorNames lists the detectors for error messages.
const detectorNames = "email, credit_card, iban, phone, us_ssn, secret"

// LoadPolicy reads and checks a policy file. Errors name the line.
func LoadPolicy(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParsePolicy(file, b)
}

// ParsePolicy parses policy text; name is used in errors.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	var doc struct {
		Version    int         `yaml:"version"`
		Mask       []yaml.Node `yaml:"mask"`
		Deny       []yaml.Node `yaml:"deny"`
		Approve    []yaml.Node `yaml:"approve"`
		HashKeyEnv string      `yaml:"hash_key_env"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("policy %s: version: %d, this proxy reads version 1", name, doc.Version)
	}
	p := &Policy{Version: 1}
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("policy %s: line %d: %s", name, line, fmt.Sprintf(format, args...))
	}
	for _, n := range doc.Mask {
		var r MaskRule
		if err := decodeStrict(&n, &r); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		r.line = n.Line
		switch {
		case r.ID == "":
			return nil, bad(n.Line, "mask rule needs an id")
		case len(r.Columns) == 0 && len(r.Detect) == 0:
			return nil, bad(n.Line, "mask rule %s needs columns or detect", r.ID)
		}
		if r.Version == 0 {
			r.Version = 1
		}
		switch r.Method {
		case "redact", "partial":
		case "hash":
			if doc.HashKeyEnv == "" || os.Getenv(doc.HashKeyEnv) == "" {
				return nil, bad(n.Line, "mask rule %s uses method hash: set hash_key_env to an environment variable holding the key", r.ID)
			}
			p.hashKey = []byte(os.Getenv(doc.HashKeyEnv))
		default:
			return nil, bad(n.Line, "mask rule %s: method %q, want redact, partial or hash", r.ID, r.Method)
		}
		for _, d := range r.Detect {
			if detectors[d] == nil {
				return nil, bad(n.Line, "mask rule %s: unknown detector %q (known: %s)", r.ID, d, detectorNames)
			}
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
		if err := decodeStrict(&n, &r); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		r.line = n.Line
		if r.ID == "" || r.Reason == "" {
			return nil, bad(n.Line, "deny rule needs an id and a reason")
		}
		if len(r.Kinds) == 0 && r.Pattern == "" {
			return nil, bad(n.Line, "deny rule %s needs kinds or a pattern", r.ID)
		}
		for i, k := range r.Kinds {
			r.Kinds[i] = strings.ToUpper(k)
		}
		if r.Pattern != "" {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, bad(n.Line, "deny rule %s: pattern: %v", r.ID, err)
			}
			r.re = re
		}
		p.Deny = append(p.Deny, r)
	}
	for _, n := range doc.Approve {
		var r ApprovalRule
		if err := decodeStrict(&n, &r); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		r.line = n.Line
		if r.ID == "" {
			return nil, bad(n.Line, "approval rule needs an id")
		}
		if len(r.Kinds) == 0 && r.Pattern == "" {
			return nil, bad(n.Line, "approval rule %s needs kinds or a pattern", r.ID)
		}
		for i, k := range r.Kinds {
			r.Kinds[i] = strings.ToUpper(k)
		}
		if r.Pattern != "" {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, bad(n.Line, "approval rule %s: pattern: %v", r.ID, err)
			}
			r.re = re
		}
		switch {
		case r.Timeout < 0:
			return nil, bad(n.Line, "approval rule %s: timeout %s is negative", r.ID, r.Timeout)
		case r.Timeout == 0:
			r.Timeout = DefaultApprovalTimeout
		}
		p.Approve = append(p.Approve, r)
	}
	return p, nil
}

func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

var whereRe = regexp.MustCompile(`(?i)\bWHERE\b`)

// Denied returns the first deny rule the statement matches, or nil.
func (p *Policy) Denied(sql string) *DenyRule {
	if p == nil {
		return nil
	}
	kind := statementKind(sql)
	for i := range p.Deny {
		r := &p.Deny[i]
		if matches(sql, kind, r.Kinds, r.re, r.RequireWhere) {
			return r
		}
	}
	return nil
}

// NeedsApproval returns the first approval rule that applies to a
// statement from actor, or nil.
func (p *Policy) NeedsApproval(sql string, groups []string) *ApprovalRule {
	if p == nil {
		return nil
	}
	kind := statementKind(sql)
	for i := range p.Approve {
		r := &p.Approve[i]
		if len(r.Groups) > 0 && !slices.ContainsFunc(groups, func(g string) bool { return contains(r.Groups, g) }) {
			continue
		}
		if matches(sql, kind, r.Kinds, r.re, r.RequireWhere) {
			return r
		}
	}
	return nil
}

func matches(sql, kind string, kinds []string, re *regexp.Regexp, requireWhere bool) bool {
	if len(kinds) > 0 && !contains(kinds, kind) {
		return false
	}
	if re != nil && !re.MatchString(sql) {
		return false
	}
	return !requireWhere || !whereRe.MatchString(sql)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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

// detectRule returns the first detector rule matching a value, or nil.
func (p *Policy) detectRule(v []byte) *MaskRule {
	if p == nil {
		return nil
	}
	for i := range p.Mask {
		for _, d := range p.Mask[i].Detect {
			if detectors[d](v) {
				return &p.Mask[i]
			}
		}
	}
	return nil
}

// apply masks one value.
func (p *Policy) apply(r *MaskRule, v []byte) []byte {
	switch r.Method {
	case "partial":
		if at := bytes.IndexByte(v, '@'); at > 0 {
			return append(append([]byte{v[0]}, "***"...), v[at:]...)
		}
		if len(v) > 4 {
			return append(bytes.Repeat([]byte("*"), len(v)-4), v[len(v)-4:]...)
		}
		return []byte("****")
	case "hash":
		m := hmac.New(sha256.New, p.hashKey)
		m.Write(v)
		return []byte("hmac:" + hex.EncodeToString(m.Sum(nil))[:16])
	}
	return []byte("[REDACTED]")
}

var emailRe = regexp.MustCompile(`^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$`)

func isEmail(v []byte) bool { return len(v) < 255 && bytes.IndexByte(v, '@') > 0 && emailRe.Match(v) }

// isCardNumber: 13–19 digits (spaces or dashes allowed) passing Luhn.
func isCardNumber(v []byte) bool {
	var digits []byte
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	sum := 0
	for i := range digits {
		d := int(digits[len(digits)-1-i])
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// isIBAN: 15–34 characters (spaces allowed), country code, check digits,
// and the ISO 13616 mod-97 check.
func isIBAN(v []byte) bool {
	var b []byte
	for _, c := range v {
		if c != ' ' {
			b = append(b, c)
		}
	}
	if len(b) < 15 || len(b) > 34 || !isUpper(b[0]) || !isUpper(b[1]) || !isDigit(b[2]) || !isDigit(b[3]) {
		return false
	}
	rem := 0
	for _, c := range append(b[4:], b[:4]...) {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isUpper(c):
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// isPhone: an international number, + then 8–15 digits, with spaces,
// dashes, dots or parentheses between them (E.164 when written plainly).
func isPhone(v []byte) bool {
	if len(v) < 9 || len(v) > 24 || v[0] != '+' {
		return false
	}
	n := 0
	for _, c := range v[1:] {
		switch {
		case isDigit(c):
			n++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return n >= 8 && n <= 15
}

var ssnRe = regexp.MustCompile(`^(\d{3})-(\d{2})-(\d{4})$`)

// isSSN: a US social security number written AAA-GG-SSSS, with the
// ranges the SSA never issues excluded (area 000, 666, 9xx; group 00;
// serial 0000).
func isSSN(v []byte) bool {
	m := ssnRe.FindSubmatch(v)
	if m == nil {
		return false
	}
	area := string(m[1])
	return area != "000" && area != "666" && area[0] != '9' && string(m[2]) != "00" && string(m[3]) != "0000"
}

// secretRes are shapes of credentials: JWTs, and API keys with a
// well-known prefix (AWS access key ids, GitHub, Slack and Stripe tokens,
// PEM private keys).
var secretRes = []*regexp.Regexp{
	regexp.MustCompile(`^eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}$`),
	regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`),
	regexp.MustCompile(`^gh[pousr]_[A-Za-z0-9]{36,}$`),
	regexp.MustCompile(`^xox[abprs]-[A-Za-z0-9-]{10,}$`),
	regexp.MustCompile(`^(sk|rk)_(live|test)_[A-Za-z0-9]{16,}$`),
	regexp.MustCompile(`^-----BEGIN [A-Z ]*PRIVATE KEY-----`),
}

func isSecret(v []byte) bool {
	if len(v) < 20 {
		return false
	}
	for _, re := range secretRes {
		if re.Match(v) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
