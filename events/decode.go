package events

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// decodeFast decodes the usual event in one pass over its bytes (Parse
// then takes 2.0 µs instead of 3.0, BenchmarkParse): the writer, every
// producer, verify and the projector decode each event of the log. It takes only the plain
// form Marshal writes — no whitespace inside the envelope, strings
// without escapes, integers without fraction or exponent, no nulls, each
// member known and once. For anything else it returns false and Parse
// uses json.Unmarshal, which names what is wrong. When it returns true,
// the event is what json.Unmarshal would have decoded (FuzzDecodeFast and
// TestDecodeFastMatchesJSON hold it to that).
func decodeFast(b []byte) (*Event, bool) { return decodeFastIn(b, false) }

// decodeFastIn is decodeFast; shared: the event's strings and payload
// view b itself instead of a copy (ParseShared).
func decodeFastIn(b []byte, shared bool) (*Event, bool) {
	// One copy of the event's bytes holds every string and the payload
	// the event keeps, rather than an allocation for each.
	s := scanner{b: b, shared: shared}
	if !shared {
		s.arena = make([]byte, 0, len(b))
	}
	s.space()
	ev := new(Event)
	ok := s.object(func(name string) bool {
		switch name {
		case "version":
			n, ok := s.int()
			ev.Version = int(n)
			return ok
		case "id":
			return s.str(&ev.ID)
		case "type":
			var v string
			ok := s.str(&v)
			ev.Type = Type(v)
			return ok
		case "time":
			start := s.i
			v, ok := s.rawString()
			if !ok {
				return false
			}
			// The form producers write, read directly; any other, v2's
			// own time parsing, so that what it accepts is the same
			// (FuzzUTCTime holds the first to the second).
			if t, ok := utcTime(v); ok {
				ev.Time = t
				return true
			}
			return json.Unmarshal(b[start:s.i], &ev.Time) == nil
		case "tenant":
			return s.str(&ev.Tenant)
		case "source":
			return s.object(func(name string) bool {
				switch name {
				case "kind":
					return s.str(&ev.Source.Kind)
				case "instance":
					return s.str(&ev.Source.Instance)
				case "version":
					return s.str(&ev.Source.Version)
				}
				return false
			})
		case "actor":
			a := &ev.Actor
			return s.object(func(name string) bool {
				switch name {
				case "issuer":
					return s.str(&a.Issuer)
				case "subject":
					return s.str(&a.Subject)
				case "email":
					return s.str(&a.Email)
				case "groups":
					return s.strings(&a.Groups)
				case "kind":
					var v string
					ok := s.str(&v)
					a.Kind = ActorKind(v)
					return ok
				case "dev_identity":
					return s.bool(&a.DevIdentity)
				}
				return false
			})
		case "session_id":
			return s.str(&ev.SessionID)
		case "session_seq":
			n, ok := s.uint()
			ev.SessionSeq = n
			return ok
		case "target":
			t := new(Target)
			ev.Target = t
			return s.object(func(name string) bool {
				switch name {
				case "kind":
					return s.str(&t.Kind)
				case "name":
					return s.str(&t.Name)
				case "host":
					return s.str(&t.Host)
				case "database":
					return s.str(&t.Database)
				}
				return false
			})
		case "payload":
			v, ok := s.value()
			// As json.Unmarshal keeps a jsontext.Value: checked (syntax,
			// UTF-8, unique names), bytes as they came.
			if !ok || v[0] != '{' || !jsontext.Value(v).IsValid() {
				return false
			}
			ev.Payload = s.keepBytes(v)
			return true
		}
		return false
	})
	s.space()
	if !ok || s.i != len(b) {
		return nil, false
	}
	return ev, true
}

// space skips JSON whitespace (before and after the event only).
func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// scanner reads the plain JSON decodeFast takes; every method reports
// false at anything else.
type scanner struct {
	b []byte
	i int
	// arena holds the copies of what the event keeps, side by side:
	// each is written once, then only read (a string views its bytes,
	// the payload's capacity ends where its bytes do).
	arena []byte
	// shared: keep and keepBytes return what they are given, viewing
	// the input (ParseShared).
	shared bool
}

// keep returns a copy of v that does not alias the input (v itself when
// shared).
func (s *scanner) keep(v string) string {
	if v == "" || s.shared {
		return v
	}
	if len(s.arena)+len(v) > cap(s.arena) {
		return strings.Clone(v) // not reached: the arena is the input's size
	}
	start := len(s.arena)
	s.arena = append(s.arena, v...)
	return unsafeString(s.arena[start:])
}

// keepBytes returns a copy of v that does not alias the input; appending
// to it copies it elsewhere.
func (s *scanner) keepBytes(v []byte) []byte {
	if s.shared {
		return v[:len(v):len(v)]
	}
	if len(s.arena)+len(v) > cap(s.arena) {
		return append([]byte(nil), v...)
	}
	start := len(s.arena)
	s.arena = append(s.arena, v...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

func (s *scanner) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads {"name":value,...}, calling member after each name's colon
// to read its value; a name seen twice fails.
func (s *scanner) object(member func(name string) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seen [16]string
	n := 0
	for {
		name, ok := s.rawString()
		if !ok || !s.next(':') {
			return false
		}
		for _, prev := range seen[:n] {
			if prev == name {
				return false
			}
		}
		if n == len(seen) {
			return false
		}
		seen[n] = name
		n++
		if !member(name) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// rawString reads a string without escapes or control characters, in
// valid UTF-8, and returns it without allocating (it aliases the input).
func (s *scanner) rawString() (string, bool) {
	if !s.next('"') {
		return "", false
	}
	start := s.i
	ascii := true
	// Eight bytes at a time while none of them ends the string or needs
	// a look: a quote, a backslash, a control character (most of an
	// event's bytes are in strings, and this loop was a quarter of
	// decoding one).
	// The lowest byte flagged is one of those (a flag's borrow reaches
	// only the bytes above it), so the loop below starts on it.
	for s.i+8 <= len(s.b) {
		w := binary.LittleEndian.Uint64(s.b[s.i:])
		m := hasZero(w^(lsb*'"')) | hasZero(w^(lsb*'\\')) | hasLess(w, ' ')
		if m == 0 {
			if w&(lsb*0x80) != 0 {
				ascii = false
			}
			s.i += 8
			continue
		}
		k := bits.TrailingZeros64(m) / 8
		if w&(lsb*0x80)&(1<<(8*k)-1) != 0 {
			ascii = false
		}
		s.i += k
		break
	}
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return "", false
			}
			return unsafeString(v), true
		case c == '\\' || c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// lsb has the low bit of each byte set: lsb*c is c in every byte.
const lsb = 0x0101010101010101

// hasZero is not zero when some byte of w is zero.
func hasZero(w uint64) uint64 { return (w - lsb) &^ w & (lsb * 0x80) }

// hasLess is not zero when some byte of w is less than n (n ≤ 128).
func hasLess(w uint64, n byte) uint64 { return (w - lsb*uint64(n)) &^ w & (lsb * 0x80) }

// str reads a string into a copy of its own.
func (s *scanner) str(out *string) bool {
	v, ok := s.rawString()
	if ok {
		*out = s.keep(v)
	}
	return ok
}

func (s *scanner) strings(out *[]string) bool {
	if !s.next('[') {
		return false
	}
	list := []string{}
	if !s.next(']') {
		for {
			var v string
			if !s.str(&v) {
				return false
			}
			list = append(list, v)
			if s.next(']') {
				break
			}
			if !s.next(',') {
				return false
			}
		}
	}
	*out = list
	return true
}

func (s *scanner) bool(out *bool) bool {
	switch {
	case hasPrefix(s.b[s.i:], "true"):
		s.i += 4
		*out = true
	case hasPrefix(s.b[s.i:], "false"):
		s.i += 5
		*out = false
	default:
		return false
	}
	return true
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// digits reads -?(0|[1-9][0-9]*).
func (s *scanner) digits() (string, bool) {
	start := s.i
	s.next('-')
	d := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == d || s.b[d] == '0' && s.i-d > 1 {
		return "", false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return "", false
	}
	return unsafeString(s.b[start:s.i]), true
}

func (s *scanner) int() (int64, bool) {
	v, ok := s.digits()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 0)
	return n, err == nil
}

func (s *scanner) uint() (uint64, bool) {
	v, ok := s.digits()
	if !ok || v[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// value returns the bytes of the object or array that starts here: its
// extent only (strings skipped with their escapes); the caller checks it.
func (s *scanner) value() ([]byte, bool) {
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return s.b[start:s.i], true
			}
			if depth < 0 {
				return nil, false
			}
		case '"':
			for s.i++; s.i < len(s.b) && s.b[s.i] != '"'; s.i++ {
				if s.b[s.i] == '\\' {
					s.i++
				}
			}
			if s.i >= len(s.b) {
				return nil, false
			}
		default:
			if depth == 0 {
				return nil, false
			}
		}
		s.i++
	}
	return nil, false
}

// skip passes over one value: a string (to the first quote after an
// even run of backslashes, found with bytes.IndexByte: a chunk's base64
// data is most of a payload), an object or array (value), or a literal
// up to the next comma or closing brace. It checks no more than it needs
// to find the value's end: the event was parsed before.
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		for j := s.i + 1; ; {
			k := bytes.IndexByte(s.b[j:], '"')
			if k < 0 {
				return false
			}
			q, n := j+k, 0
			for q-1-n > s.i && s.b[q-1-n] == '\\' {
				n++
			}
			if n%2 == 0 {
				s.i = q + 1
				return true
			}
			j = q + 1
		}
	case '{', '[':
		_, ok := s.value()
		return ok
	}
	start := s.i
	for s.i < len(s.b) && s.b[s.i] != ',' && s.b[s.i] != '}' && s.b[s.i] != '"' {
		s.i++
	}
	return s.i > start
}

// utcTime reads the form every producer writes (Marshal's, time in UTC):
// YYYY-MM-DDTHH:MM:SS, a fraction of one to nine digits or none, then Z,
// each field in its range. It reports false for anything else, which
// json.Unmarshal then reads or refuses: in the writer and every reader
// of the log, json.Unmarshal's reading of the time was a sixth of
// decoding an event.
func utcTime(v string) (time.Time, bool) {
	if len(v) < len("2006-01-02T15:04:05Z") || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		x := 0
		for _, c := range []byte(v[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			x = x*10 + int(c-'0')
		}
		return x, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := v[19 : len(v)-1]; frac != "" {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		f, ok := num(20, len(frac)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			f *= 10
		}
		nsec = f
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// daysIn is the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
