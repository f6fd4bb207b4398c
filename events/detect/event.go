package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Match is where a built-in detector matched in an event. It holds no
// part of the value: a member name on Path that holds a match is shown
// with the match replaced by its placeholder.
type Match struct {
	Path     string // e.g. payload.parameters.values[1]
	Detector string
}

// ErrNotJSON is returned for event bytes that are not one JSON value.
var ErrNotJSON = errors.New("detect: not JSON")

// InEvent returns the first place in an event's JSON (document order)
// where a built-in detector matches, and whether there is one. Every
// string value and member name at any depth is judged as Scrub judges
// text, JSON escapes decoded, and so is every number written with 13
// digits or more; not judged are digests (IsDigest) and the members of
// the envelope's top-level "actor", the identity that acted, which an
// audit record exists to name (docs/FORMAT.md §1.4) — except its "email",
// which is recorded sealed (§1.6) or not at all.
//
// It is cheap for an event with nothing to find: one pass over the
// bytes, which allocates only for a string with escapes or one that
// MayHold.
func InEvent(event []byte) (Match, bool, error) {
	var steps [16]pathStep
	w := eventWalker{b: event, at: steps[:0]}
	err := w.value(0)
	if err == nil {
		if w.space(); w.i < len(w.b) && !w.found {
			err = w.fail("data after the value")
		}
	}
	if w.found {
		return w.match, true, nil
	}
	return Match{}, false, err
}

type eventWalker struct {
	b     []byte
	i     int
	at    []pathStep
	found bool
	match Match
	actor bool // inside the top-level actor
}

type pathStep struct {
	name  []byte // member name, JSON escapes decoded; nil for an index
	index int
}

func (w *eventWalker) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrNotJSON, what, w.i)
}

func (w *eventWalker) space() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

// value reads one JSON value at depth, stopping at the first match.
func (w *eventWalker) value(depth int) error {
	w.space()
	if w.i >= len(w.b) {
		return w.fail("unexpected end")
	}
	if depth > 1000 {
		return w.fail("nesting too deep")
	}
	switch c := w.b[w.i]; {
	case c == '{':
		w.i++
		for n := 0; ; n++ {
			if w.space(); w.i < len(w.b) && w.b[w.i] == '}' && n == 0 {
				w.i++
				return nil
			}
			key, escaped, err := w.str()
			if err != nil {
				return err
			}
			// Names are compared as the decoder reads them:
			// "em\u0061il" is email.
			name := key
			if escaped {
				u, ok := unescape(key)
				if !ok {
					return w.fail("invalid escape in a member name")
				}
				name = []byte(u)
			}
			isActor := depth == 0 && string(name) == "actor"
			if !w.actor && w.judge(key, escaped, name) {
				return nil
			}
			if w.space(); w.i >= len(w.b) || w.b[w.i] != ':' {
				return w.fail("missing colon")
			}
			w.i++
			w.at = append(w.at, pathStep{name: name})
			w.actor = isActor || w.actor
			err = w.value(depth + 1)
			if isActor {
				w.actor = false
			}
			if err != nil || w.found {
				return err
			}
			w.at = w.at[:len(w.at)-1]
			if done, err := w.next('}'); done || err != nil {
				return err
			}
		}
	case c == '[':
		w.i++
		for n := 0; ; n++ {
			if w.space(); w.i < len(w.b) && w.b[w.i] == ']' && n == 0 {
				w.i++
				return nil
			}
			w.at = append(w.at, pathStep{index: n})
			if err := w.value(depth + 1); err != nil || w.found {
				return err
			}
			w.at = w.at[:len(w.at)-1]
			if done, err := w.next(']'); done || err != nil {
				return err
			}
		}
	case c == '"':
		s, escaped, err := w.str()
		if err != nil {
			return err
		}
		if !w.actor {
			w.judge(s, escaped, nil)
		} else if w.actorEmail() && !w.judge(s, escaped, nil) {
			w.plainEmail(s, escaped)
		}
		return nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(w.b[w.i:min(len(w.b), w.i+5)]), lit) {
				w.i += len(lit)
				return nil
			}
		}
		return w.fail("invalid literal")
	default:
		start := w.i
		for w.i < len(w.b) && strings.IndexByte("+-.eE0123456789", w.b[w.i]) >= 0 {
			w.i++
		}
		if w.i == start {
			return w.fail(fmt.Sprintf("unexpected %q", c))
		}
		if !w.actor { // a card number written as a number
			for _, n := range numberDigits(w.b[start:w.i]) {
				if w.judge(n, false, nil) {
					break
				}
			}
		}
		return nil
	}
}

// plainEmail records a match for an actor.email that is not a sealed
// field (docs/FORMAT.md §1.6) and holds an @ as read folded: an address
// in clear, whether or not it has a shape the email detector knows
// (jane@localhost).
func (w *eventWalker) plainEmail(raw []byte, escaped bool) {
	s := unsafeString(raw)
	if escaped {
		var ok bool
		if s, ok = unescape(raw); !ok {
			return
		}
	}
	if !strings.HasPrefix(s, sealedPrefix) && bytes.IndexByte(foldBytes([]byte(s)), '@') >= 0 {
		w.found, w.match = true, Match{Path: w.path(), Detector: "email"}
	}
}

// sealedPrefix starts a sealed field (events.SealedPrefix).
const sealedPrefix = "pii1."

// numberDigits returns the runs of digits a JSON number n stands for that
// may be a card number: its digits as written when it has 13 or more
// (4111111111111111, 411111111111111.1), and the integer it denotes when
// it has an exponent (4.111111111111111e15); nil for a shorter number.
func numberDigits(n []byte) [][]byte {
	mant, exp, hasExp := n, 0, false
	if k := bytes.IndexAny(n, "eE"); k >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(string(n[k+1:]), "+"))
		if err != nil || e < -40 || e > 40 {
			return nil // not JSON, or not an integer of a card's size
		}
		mant, exp, hasExp = n[:k], e, true
	}
	mant = bytes.TrimPrefix(mant, []byte{'-'})
	point := bytes.IndexByte(mant, '.')
	digits := mant
	if point >= 0 {
		digits = append(append([]byte(nil), mant[:point]...), mant[point+1:]...)
	} else {
		point = len(mant)
	}
	var out [][]byte
	if len(digits) >= 13 {
		out = append(out, digits)
	}
	if hasExp {
		intLen := point + exp
		switch {
		case intLen >= len(digits):
			out = append(out, append(append([]byte(nil), digits...), bytes.Repeat([]byte{'0'}, intLen-len(digits))...))
		case intLen >= 13:
			out = append(out, digits[:intLen])
		}
	}
	return out
}

// next reads what follows a member or an element: a comma, or close,
// which ends the object or array (done).
func (w *eventWalker) next(close byte) (done bool, err error) {
	if w.space(); w.i >= len(w.b) {
		return false, w.fail("unexpected end")
	}
	switch w.b[w.i] {
	case ',':
		w.i++
		return false, nil
	case close:
		w.i++
		return true, nil
	}
	return false, w.fail("missing comma")
}

// actorEmail reports whether the walk is at the envelope's actor.email.
func (w *eventWalker) actorEmail() bool {
	return len(w.at) == 2 && string(w.at[0].name) == "actor" && string(w.at[1].name) == "email"
}

// str reads a JSON string, w.i at its opening quote, and returns its
// bytes as written between the quotes and whether they hold escapes.
func (w *eventWalker) str() ([]byte, bool, error) {
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return nil, false, w.fail("expected a string")
	}
	start, escaped := w.i+1, false
	for w.i++; w.i < len(w.b); w.i++ {
		switch c := w.b[w.i]; {
		case c == '\\':
			escaped = true
			w.i++
		case c == '"':
			w.i++
			return w.b[start : w.i-1], escaped, nil
		case c < 0x20:
			return nil, false, w.fail("control character in a string")
		}
	}
	return nil, false, w.fail("unterminated string")
}

// unescape decodes the escapes of a JSON string's raw content.
func unescape(raw []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return "", false
	}
	return s, true
}

// judge offers one string (raw, as written) to the detectors and records
// the first match; name, not nil for a member name, is the name decoded,
// whose place is the member it names.
func (w *eventWalker) judge(raw []byte, escaped bool, name []byte) bool {
	s := unsafeString(raw) // not kept: Scrub copies what it keeps
	if escaped {
		var ok bool
		if s, ok = unescape(raw); !ok {
			return false
		}
	}
	if !MayHold(s) || IsDigest(s) || isTimestamp(s) {
		return false
	}
	_, counts := Scrub(s)
	for _, d := range Builtin {
		if counts[d] > 0 {
			if name != nil {
				w.at = append(w.at, pathStep{name: name})
			}
			w.found, w.match = true, Match{Path: w.path(), Detector: d}
			return true
		}
	}
	return false
}

// path renders where the value being read sits, member names scrubbed.
func (w *eventWalker) path() string {
	var sb strings.Builder
	for _, s := range w.at {
		if s.name == nil {
			sb.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		name, _ := Scrub(string(s.name))
		if plainName(name) {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(name)
			continue
		}
		q, _ := json.Marshal(name)
		sb.WriteString("[" + string(q) + "]")
	}
	return sb.String()
}

func plainName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return name != ""
}

// isTimestamp reports whether s is an RFC 3339 time as events write them
// (2026-12-06T19:41:13.123456789Z, or with an offset): its longest run of
// digits is a nanosecond fraction, which no detector matches, but which
// MayHold cannot tell from one.
func isTimestamp(s string) bool {
	if len(s) < 20 || len(s) > 35 {
		return false
	}
	for i, c := range []byte(s[:19]) {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' && c != 't' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if !isDigit(c) {
				return false
			}
		}
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) && rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5]):
		return true
	}
	return false
}

// ErrFound marks an event refused because a built-in detector matches a
// value in it.
var ErrFound = errors.New("a detector matches a value in it")

// FoundError names the event that holds a detector match, where and which
// detector, never the value.
type FoundError struct {
	// Event is the event's id with what the detectors find in it
	// replaced; empty when the bytes hold no id.
	Event string
	Match
}

func (e *FoundError) Error() string {
	who := "the event"
	if e.Event != "" {
		who = "event " + strconv.Quote(e.Event)
	}
	where := ""
	if e.Path != "" {
		path := e.Path
		if len(path) > 200 {
			path = path[:200] + "…"
		}
		where = " at " + path
	}
	return fmt.Sprintf("%s holds a value the %s detector finds%s; events must carry none (the gateways record such values as [REDACTED:%s])", who, e.Detector, where, e.Detector)
}

func (e *FoundError) Unwrap() error { return ErrFound }

// CheckEvent returns a *FoundError when a built-in detector matches in
// event (InEvent), and nil otherwise. Bytes that are not JSON are judged
// as one text.
func CheckEvent(event []byte) error {
	m, ok, err := InEvent(event)
	if err != nil {
		_, counts := Scrub(string(event))
		for _, d := range Builtin {
			if counts[d] > 0 {
				return &FoundError{Match: Match{Detector: d}}
			}
		}
		return nil
	}
	if !ok {
		return nil
	}
	var head struct {
		ID any `json:"id"`
	}
	json.Unmarshal(event, &head)
	id, _ := head.ID.(string)
	id, _ = Scrub(id)
	return &FoundError{Event: id, Match: m}
}
