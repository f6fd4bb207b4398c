// Package eventscan reads, in one pass over an event's bytes and without
// allocating, the members an evidence bundle's checks and tables read
// (docs/FORMAT.md §12.1, §12.3): the envelope's strings, the actor, the
// target's name and the payload members they name, each as its JSON text.
//
// It takes the plain form only: valid JSON whose objects decoded into
// members (the envelope, source, actor, target, payload) have names
// without escapes, upper-case letters or bytes above ASCII, each such
// member once, and whose envelope members have the types events have
// (strings, objects, an array of strings, a boolean; never null). For
// anything else Scan reports false and the caller decodes the event with
// encoding/json as before. When Scan reports true, every member read is
// what encoding/json would have decoded (FuzzScan holds it to that).
package eventscan

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Field is a member Scan reads.
type Field uint8

// The envelope's members.
const (
	ID Field = iota
	Type
	Time
	Tenant
	SessionID
	SourceKind
	ActorIssuer
	ActorSubject
	ActorEmail
	ActorKind
	ActorGroups      // an array of strings
	ActorDevIdentity // a boolean
	Target           // the target object
	TargetName
	Payload // the payload object
	firstPayload
)

// The payload's members.
const (
	PAccessID Field = firstPayload + iota
	PAccessRequired
	PActive
	PApprovalID
	PBreakGlass
	PClientAddr
	PColumn
	PCommandID
	PCommandTag
	PCount
	PErrorCode
	PEsterrorUs
	PField
	PFramework
	PFrom
	PGrants
	PHost
	PKind
	PListingSHA256
	PMaxerrorUs
	PMembers
	PMethod
	PNotAfter
	PNotBefore
	PPart
	PParts
	PPath
	PReadError
	PReason
	PRequester
	PResource
	PRows
	PRule
	PRuleID
	PRuleVersion
	PSessionID
	PSnapshot
	PSource
	PStatement
	PStatementSHA256
	PSynchronised
	PTo
	PUnverified
	PUsers
	numFields
)

func payloadField(name []byte) (Field, bool) {
	switch string(name) {
	case "access_id":
		return PAccessID, true
	case "access_required":
		return PAccessRequired, true
	case "active":
		return PActive, true
	case "approval_id":
		return PApprovalID, true
	case "break_glass":
		return PBreakGlass, true
	case "client_addr":
		return PClientAddr, true
	case "column":
		return PColumn, true
	case "command_id":
		return PCommandID, true
	case "command_tag":
		return PCommandTag, true
	case "count":
		return PCount, true
	case "error_code":
		return PErrorCode, true
	case "esterror_us":
		return PEsterrorUs, true
	case "field":
		return PField, true
	case "framework":
		return PFramework, true
	case "from":
		return PFrom, true
	case "grants":
		return PGrants, true
	case "host":
		return PHost, true
	case "kind":
		return PKind, true
	case "listing_sha256":
		return PListingSHA256, true
	case "maxerror_us":
		return PMaxerrorUs, true
	case "members":
		return PMembers, true
	case "method":
		return PMethod, true
	case "not_after":
		return PNotAfter, true
	case "not_before":
		return PNotBefore, true
	case "part":
		return PPart, true
	case "parts":
		return PParts, true
	case "path":
		return PPath, true
	case "read_error":
		return PReadError, true
	case "reason":
		return PReason, true
	case "requester":
		return PRequester, true
	case "resource":
		return PResource, true
	case "rows":
		return PRows, true
	case "rule":
		return PRule, true
	case "rule_id":
		return PRuleID, true
	case "rule_version":
		return PRuleVersion, true
	case "session_id":
		return PSessionID, true
	case "snapshot":
		return PSnapshot, true
	case "source":
		return PSource, true
	case "statement":
		return PStatement, true
	case "statement_sha256":
		return PStatementSHA256, true
	case "synchronised":
		return PSynchronised, true
	case "to":
		return PTo, true
	case "unverified":
		return PUnverified, true
	case "users":
		return PUsers, true
	}
	return 0, false
}

// span is a value's extent in the event; j 0: absent.
type span struct{ i, j int32 }

// Event is one event's members as Scan read them: views of its bytes,
// valid until the bytes change or the next Scan.
type Event struct {
	b  []byte
	at [numFields]span
}

// maxDepth is the deepest nesting Scan reads (encoding/json's limit is
// far deeper: deeper events are decoded by it).
const maxDepth = 100

// Scan reads b; false: b is not the plain form (or not JSON), decode it
// with encoding/json.
func (e *Event) Scan(b []byte) bool {
	*e = Event{b: b}
	if len(b) > 1<<30 {
		return false
	}
	s := scanner{b: b}
	s.space()
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case "id":
			return s.str(e, ID)
		case "type":
			return s.str(e, Type)
		case "time":
			return s.str(e, Time)
		case "tenant":
			return s.str(e, Tenant)
		case "session_id":
			return s.str(e, SessionID)
		case "source":
			return s.once(1) && s.object(func(name []byte) bool {
				if string(name) == "kind" {
					return s.str(e, SourceKind)
				}
				return s.skip(1)
			})
		case "actor":
			return s.once(2) && s.object(func(name []byte) bool {
				switch string(name) {
				case "issuer":
					return s.str(e, ActorIssuer)
				case "subject":
					return s.str(e, ActorSubject)
				case "email":
					return s.str(e, ActorEmail)
				case "kind":
					return s.str(e, ActorKind)
				case "groups":
					return s.strings(e, ActorGroups)
				case "dev_identity":
					return s.bool(e, ActorDevIdentity)
				}
				return s.skip(1)
			})
		case "target":
			start := s.i
			ok := s.once(4) && s.object(func(name []byte) bool {
				if string(name) == "name" {
					return s.str(e, TargetName)
				}
				return s.skip(1)
			})
			e.at[Target] = span{int32(start), int32(s.i)}
			return ok
		case "payload":
			start := s.i
			ok := s.once(8) && s.object(func(name []byte) bool {
				if f, ok := payloadField(name); ok {
					return s.raw(e, f)
				}
				return s.skip(1)
			})
			e.at[Payload] = span{int32(start), int32(s.i)}
			return ok
		}
		return s.skip(1)
	})
	s.space()
	return ok && s.i == len(b)
}

// Has reports whether the event has member f.
func (e *Event) Has(f Field) bool { return e.at[f].j != 0 }

// Raw is member f's JSON text, nil when absent.
func (e *Event) Raw(f Field) []byte {
	sp := e.at[f]
	if sp.j == 0 {
		return nil
	}
	return e.b[sp.i:sp.j:sp.j]
}

// Bytes is member f's value when it is a JSON string (a view of the
// event's bytes when it needs no unescaping), else nil.
func (e *Event) Bytes(f Field) []byte { return StringBytes(e.Raw(f)) }

// Str is member f's value when it is a JSON string, else "".
func (e *Event) Str(f Field) string { return String(e.Raw(f)) }

// Bool reports whether member f is true.
func (e *Event) Bool(f Field) bool { return string(e.Raw(f)) == "true" }

// Strings is member f's array of strings (nil when absent).
func (e *Event) Strings(f Field) []string {
	raw := e.Raw(f)
	if raw == nil {
		return nil
	}
	out := []string{}
	s := scanner{b: raw}
	s.next('[')
	for {
		s.space()
		if s.next(']') {
			return out
		}
		start := s.i
		s.skipString()
		out = append(out, String(raw[start:s.i]))
		s.space()
		s.next(',')
	}
}

// Plain returns raw's content when raw is a JSON string needing no
// unescaping and holding valid UTF-8: then its value is exactly those
// bytes.
func Plain(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	v := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range v {
		switch {
		case c == '\\' || c == '"' || c < ' ':
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(v) {
		return nil, false
	}
	return v, true
}

// StringBytes is raw's value when raw is a JSON string, else nil.
func StringBytes(raw []byte) []byte {
	if v, ok := Plain(raw); ok {
		return v
	}
	if s := String(raw); s != "" {
		return []byte(s)
	}
	return nil
}

// String is raw's value when raw is a JSON string, else "" (as
// encoding/json decodes it).
func String(raw []byte) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	if v, ok := Plain(raw); ok {
		return string(v)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Int is raw's value when raw is a JSON integer that fits int64, else 0
// (as encoding/json decodes it into an int64).
func Int(raw []byte) int64 {
	if isInteger(raw) {
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return n
		}
	}
	var n int64
	if json.Unmarshal(raw, &n) != nil {
		return 0
	}
	return n
}

// scanner reads the plain form; each method reports false at anything
// else.
type scanner struct {
	b     []byte
	i     int
	depth int   // objects read into open
	seen  uint8 // source, actor, target, payload
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// once marks the object of bit seen; false when it was (a member named
// twice).
func (s *scanner) once(bit uint8) bool {
	if s.seen&bit != 0 {
		return false
	}
	s.seen |= bit
	return true
}

// object reads an object whose members' names are plain (no escapes,
// no upper-case letters, ASCII), calling member after each name's colon
// with the value ahead.
func (s *scanner) object(member func(name []byte) bool) bool {
	s.depth++
	defer func() { s.depth-- }()
	if s.depth > maxDepth || !s.next('{') {
		return false
	}
	s.space()
	if s.next('}') {
		return true
	}
	for {
		if !s.next('"') {
			return false
		}
		start := s.i
		for s.i < len(s.b) && s.b[s.i] != '"' {
			c := s.b[s.i]
			if c < ' ' || c == '\\' || c >= utf8.RuneSelf || c >= 'A' && c <= 'Z' {
				return false
			}
			s.i++
		}
		if s.i >= len(s.b) {
			return false
		}
		name := s.b[start:s.i]
		s.i++
		s.space()
		if !s.next(':') {
			return false
		}
		s.space()
		if !member(name) {
			return false
		}
		s.space()
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
		s.space()
	}
}

// set notes member f's value, [start, s.i); false when f was seen.
func (s *scanner) set(e *Event, f Field, start int) bool {
	if e.at[f].j != 0 {
		return false
	}
	e.at[f] = span{int32(start), int32(s.i)}
	return true
}

func (s *scanner) str(e *Event, f Field) bool {
	start := s.i
	return s.skipString() && s.set(e, f, start)
}

func (s *scanner) raw(e *Event, f Field) bool {
	start := s.i
	return s.skip(1) && s.set(e, f, start)
}

func (s *scanner) bool(e *Event, f Field) bool {
	start := s.i
	switch {
	case bytes.HasPrefix(s.b[s.i:], []byte("true")):
		s.i += 4
	case bytes.HasPrefix(s.b[s.i:], []byte("false")):
		s.i += 5
	default:
		return false
	}
	return s.set(e, f, start)
}

func (s *scanner) strings(e *Event, f Field) bool {
	start := s.i
	if !s.next('[') {
		return false
	}
	s.space()
	if !s.next(']') {
		for {
			if !s.skipString() {
				return false
			}
			s.space()
			if s.next(']') {
				break
			}
			if !s.next(',') {
				return false
			}
			s.space()
		}
	}
	return s.set(e, f, start)
}

// skipString reads a JSON string: no control characters, valid escapes.
func (s *scanner) skipString() bool {
	if !s.next('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < ' ':
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// skip reads any JSON value (depth: the nesting it is at).
func (s *scanner) skip(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.skipString()
	case c == '{' || c == '[':
		if s.depth+depth > maxDepth {
			return false
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		s.i++
		s.space()
		if s.next(close) {
			return true
		}
		for {
			if c == '{' {
				if !s.skipString() {
					return false
				}
				s.space()
				if !s.next(':') {
					return false
				}
				s.space()
			}
			if !s.skip(depth + 1) {
				return false
			}
			s.space()
			if s.next(close) {
				return true
			}
			if !s.next(',') {
				return false
			}
			s.space()
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *scanner) literal(l string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(l)) {
		return false
	}
	s.i += len(l)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() bool {
	s.next('-')
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.next('0') {
		// no more integer digits
	} else if digits() == 0 {
		return false
	}
	if s.next('.') && digits() == 0 {
		return false
	}
	if s.next('e') || s.next('E') {
		if !s.next('+') {
			s.next('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// In is member f's value when it is a JSON string, else "": when it
// needs no unescaping, the substring of s that holds it, s being the
// event's bytes as a string (no copy); else decoded.
func (e *Event) In(s string, f Field) string {
	sp := e.at[f]
	if sp.j == 0 {
		return ""
	}
	if _, ok := Plain(e.b[sp.i:sp.j]); ok && len(s) == len(e.b) {
		return s[sp.i+1 : sp.j-1]
	}
	return String(e.b[sp.i:sp.j])
}

// isInteger reports whether raw is -?(0|[1-9][0-9]*), the JSON integer
// grammar.
func isInteger(raw []byte) bool {
	d := raw
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 1 && d[0] == '0' {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
