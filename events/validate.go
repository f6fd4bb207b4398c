package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Sentinel errors; every validation failure is a *FieldError wrapping one.
var (
	ErrTooLarge = errors.New("event too large")
	ErrSyntax   = errors.New("malformed JSON")
	ErrInvalid  = errors.New("invalid event")
)

// FieldError names the field that failed and why. Field is a JSON path such
// as "actor.subject"; it is empty when the whole document is at fault.
type FieldError struct {
	Field  string
	Reason string
	Err    error // ErrTooLarge, ErrSyntax or ErrInvalid
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// Parse decodes and validates one encoded event. It rejects unknown envelope
// members, duplicate member names and invalid UTF-8 anywhere in the document,
// since two parsers that disagree on a duplicate key would see two different
// audit records behind one hash.
func Parse(b []byte) (*Event, error) { return parse(b, false) }

// ParseShared is Parse for a caller that keeps b unchanged for as long
// as it uses the event (the ledger writer, which seals b itself): the
// event's strings and payload view b instead of a copy of it, one
// allocation and copy of the event's bytes fewer. Verdicts and the
// event decoded are Parse's.
func ParseShared(b []byte) (*Event, error) { return parse(b, true) }

func parse(b []byte, shared bool) (*Event, error) {
	if len(b) > MaxSize {
		return nil, &FieldError{Reason: fmt.Sprintf("event is %d bytes, the limit is %d", len(b), MaxSize), Err: ErrTooLarge}
	}
	ev, ok := decodeFastIn(b, shared)
	if !ok {
		var err error
		if ev, err = unmarshal(b); err != nil {
			return nil, err
		}
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// unmarshal decodes b with json.Unmarshal: every form an event may take,
// and the error that names what is wrong. decodeFast decodes the plain
// form the same way, faster.
func unmarshal(b []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev, json.RejectUnknownMembers(true)); err != nil {
		return nil, decodeError(err)
	}
	return &ev, nil
}

// Validate checks b without keeping the decoded event.
func Validate(b []byte) error {
	_, err := Parse(b)
	return err
}

func decodeError(err error) error {
	var se *json.SemanticError
	if errors.As(err, &se) {
		field := pointerToPath(se.JSONPointer)
		reason := "invalid value"
		switch {
		case se.Err != nil && strings.Contains(se.Err.Error(), "unknown object member"):
			return invalid(field, "unknown field (schema version %d has no such member)", Version)
		case field == "time" && se.JSONKind == '"':
			// time.Time's own parser: RFC 3339, and never second 60.
			why := "invalid"
			if se.Err != nil {
				why = se.Err.Error()
			}
			return invalid(field, "not an RFC 3339 date-time this format accepts (a leap second, second 60, is refused: docs/FORMAT.md §1): %s", why)
		case se.JSONKind == '0' && se.GoType != nil && strings.Contains(se.GoType.Kind().String(), "int"):
			return invalid(field, "expected an integer written as digits only (a fraction or exponent, 1.0 or 1e0, is refused: docs/FORMAT.md §1)")
		case se.GoType != nil && se.JSONKind != 0:
			reason = fmt.Sprintf("expected %s, found JSON %s", goKind(se.GoType.Kind().String()), kindName(se.JSONKind))
		case se.Err != nil:
			reason = se.Err.Error()
		}
		return invalid(field, "%s", reason)
	}
	var sy *jsontext.SyntacticError
	if errors.As(err, &sy) {
		field := pointerToPath(sy.JSONPointer)
		reason := fmt.Sprintf("at byte %d: %v", sy.ByteOffset, sy.Err)
		if errors.Is(sy.Err, jsontext.ErrDuplicateName) {
			reason = "duplicate member name"
		}
		return &FieldError{Field: field, Reason: reason, Err: ErrSyntax}
	}
	return &FieldError{Reason: err.Error(), Err: ErrSyntax}
}

func pointerToPath(p jsontext.Pointer) string {
	s := strings.TrimPrefix(string(p), "/")
	s = strings.ReplaceAll(s, "/", ".")
	s = strings.ReplaceAll(s, "~1", "/")
	return strings.ReplaceAll(s, "~0", "~")
}

func goKind(k string) string {
	switch k {
	case "int", "int64", "uint64":
		return "an integer"
	case "struct", "map":
		return "an object"
	case "slice":
		return "an array"
	}
	return "a " + k
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return k.String()
}

// Limits on envelope strings. Identifiers that become NATS subject tokens
// (tenant) are restricted to a safe alphabet.
const (
	maxIDLen    = 128
	maxNameLen  = 256
	maxTenant   = 64
	maxGroups   = 256
	maxGroupLen = 256
)

// Validate checks the semantic rules of the envelope. Parse calls it; call it
// directly on events built in Go before publishing them.
func (ev *Event) Validate() error {
	if ev.Version != Version {
		if ev.Version == 0 {
			return invalid("version", "required (must be %d)", Version)
		}
		return invalid("version", "unsupported schema version %d (this build reads %d)", ev.Version, Version)
	}
	if err := identifier("id", ev.ID, maxIDLen); err != nil {
		return err
	}
	if ev.Type == "" {
		return invalid("type", "required")
	}
	if !ev.Type.Known() {
		return invalid("type", "%q is not in the version-%d catalog", ev.Type, Version)
	}
	if ev.Time.IsZero() {
		return invalid("time", "required (RFC 3339, UTC)")
	}
	if _, off := ev.Time.Zone(); off != 0 {
		return invalid("time", "must be UTC (offset Z), found offset %+d s", off)
	}
	if err := tenant(ev.Tenant); err != nil {
		return err
	}
	if err := text("source.kind", ev.Source.Kind, maxNameLen, true); err != nil {
		return err
	}
	if err := text("source.instance", ev.Source.Instance, maxNameLen, true); err != nil {
		return err
	}
	if err := text("source.version", ev.Source.Version, maxNameLen, false); err != nil {
		return err
	}
	if err := ev.Actor.validate(); err != nil {
		return err
	}
	switch {
	case ev.SessionID == "" && ev.SessionSeq != 0:
		return invalid("session_seq", "set without session_id")
	case ev.SessionID != "":
		if err := identifier("session_id", ev.SessionID, maxIDLen); err != nil {
			return err
		}
		if ev.SessionSeq == 0 {
			return invalid("session_seq", "required with session_id (counts from 1)")
		}
	}
	if ev.Target != nil {
		if err := text("target.kind", ev.Target.Kind, maxNameLen, true); err != nil {
			return err
		}
		for _, f := range []struct{ name, v string }{
			{"target.name", ev.Target.Name}, {"target.host", ev.Target.Host}, {"target.database", ev.Target.Database},
		} {
			if err := text(f.name, f.v, maxNameLen, false); err != nil {
				return err
			}
		}
	}
	if len(ev.Payload) == 0 {
		return invalid("payload", "required (an object, may be empty)")
	}
	if ev.Payload.Kind() != '{' {
		return invalid("payload", "expected an object, found JSON %s", kindName(ev.Payload.Kind()))
	}
	return nil
}

func (a *Actor) validate() error {
	if err := text("actor.issuer", a.Issuer, maxNameLen, true); err != nil {
		return err
	}
	if err := text("actor.subject", a.Subject, maxNameLen, true); err != nil {
		return err
	}
	if err := email(a.Email); err != nil {
		return err
	}
	switch a.Kind {
	case Human, Machine:
	case "":
		return invalid("actor.kind", "required (%q or %q)", Human, Machine)
	default:
		return invalid("actor.kind", "%q is not %q or %q", a.Kind, Human, Machine)
	}
	if len(a.Groups) > maxGroups {
		return invalid("actor.groups", "%d groups, the limit is %d", len(a.Groups), maxGroups)
	}
	for i, g := range a.Groups {
		// The field named only for an error: Sprintf costs more than
		// the check.
		if text("actor.groups", g, maxGroupLen, true) != nil {
			return text(fmt.Sprintf("actor.groups.%d", i), g, maxGroupLen, true)
		}
	}
	return nil
}

// SealedPrefix begins a sealed field (docs/FORMAT.md §1.6).
const SealedPrefix = "pii1."

// maxSealedLen is the longest sealed field: the prefix, a 32-character
// pseudonym, a dot, and the base64url (unpadded) of a 12-byte nonce, the
// ciphertext of up to 256 characters of 4 bytes each and a 16-byte tag.
const maxSealedLen = len(SealedPrefix) + 32 + 1 + (12+4*maxNameLen+16+2)/3*4 - 1

// email checks actor.email: a sealed field, or plain text. Plain text
// cannot begin like a sealed field, so a reader never mistakes one for
// the other.
func email(s string) error {
	rest, sealed := strings.CutPrefix(s, SealedPrefix)
	if !sealed {
		return text("actor.email", s, maxNameLen, false)
	}
	if len(s) > maxSealedLen {
		return invalid("actor.email", "sealed field of %d bytes, the limit is %d", len(s), maxSealedLen)
	}
	p, ct, ok := strings.Cut(rest, ".")
	if !ok || len(p) != 32 || !all(p, isLowerHex) {
		return invalid("actor.email", "begins like a sealed field (%q) but has no 32-character lower-case hex pseudonym", SealedPrefix)
	}
	if len(ct) < 38 || !all(ct, isBase64URL) {
		return invalid("actor.email", "sealed field: the sealed bytes are not base64url of at least 28 bytes")
	}
	return nil
}

// all reports whether every byte of s is one in; strings.Trim with a
// set of bytes would build the set at every call.
func all(s string, in func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !in(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// identifier: printable ASCII without spaces, as ids end up in message
// headers and file names.
func identifier(field, s string, max int) error {
	if s == "" {
		return invalid(field, "required")
	}
	if len(s) > max {
		return invalid(field, "%d bytes, the limit is %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return invalid(field, "byte %d is %q: only printable ASCII without spaces is allowed", i, c)
		}
	}
	return nil
}

// CheckTenant reports what is wrong with s as an event's tenant, or nil.
func CheckTenant(s string) error { return tenant(s) }

func tenant(s string) error {
	if s == "" {
		return invalid("tenant", "required")
	}
	if len(s) > maxTenant {
		return invalid("tenant", "%d bytes, the limit is %d", len(s), maxTenant)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return invalid("tenant", "byte %d is %q: use lower-case letters, digits, '-' and '_'", i, c)
		}
	}
	return nil
}

func text(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return invalid(field, "required")
		}
		return nil
	}
	if printableASCII(s) { // most strings: a character a byte, each allowed
		if len(s) > max {
			return invalid(field, "%d characters, the limit is %d", len(s), max)
		}
		return nil
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(field, "%d characters, the limit is %d", n, max)
	}
	for i, r := range s {
		if r == utf8.RuneError || r < ' ' || r == 0x7f {
			return invalid(field, "control or invalid character at byte %d", i)
		}
	}
	return nil
}

// printableASCII reports whether every byte of s is printable ASCII
// (0x20 to 0x7e), eight at a time.
func printableASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
		if w&(lsb*0x80)|hasLess(w, ' ')|hasZero(w^(lsb*0x7f)) != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Marshal encodes ev after validating it.
func (ev *Event) Marshal() ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	b, err := ev.appendJSON(make([]byte, 0, ev.sizeHint()))
	if err != nil {
		return nil, fmt.Errorf("events: marshal: %w", err)
	}
	if len(b) > MaxSize {
		return nil, &FieldError{Reason: fmt.Sprintf("event is %d bytes, the limit is %d", len(b), MaxSize), Err: ErrTooLarge}
	}
	return b, nil
}

// PeekID returns the id of an encoded event that was validated before (a
// sealed one) without decoding the rest: for indexes built from the log.
func PeekID(b []byte) (string, error) { return peekString(b, "id") }

// PeekTenant returns the tenant of an encoded event without decoding the
// rest (the ledger binds each record to it, §2.4).
func PeekTenant(b []byte) (string, error) { return peekString(b, "tenant") }

// peekString returns the top-level string member member of an encoded event.
func peekString(b []byte, member string) (string, error) {
	d := jsontext.NewDecoder(bytes.NewReader(b))
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return "", fmt.Errorf("event is not a JSON object")
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return "", err
		}
		if name.String() != member {
			if err := d.SkipValue(); err != nil {
				return "", err
			}
			continue
		}
		v, err := d.ReadToken()
		if err != nil || v.Kind() != '"' {
			return "", fmt.Errorf("event %s is not a string", member)
		}
		return v.String(), nil
	}
	return "", fmt.Errorf("event has no %s", member)
}
