package detect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
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
// digits or more, and the text adjacent short scalars of one array make
// (adjacentScalars). The envelope's actor is judged like the rest. Only
// values the ledger and the gateways write in a form no detector reads
// are left out, each at its place and in its exact form (digestAt): the
// digests docs/FORMAT.md defines, actor.subject as a pseudonym, and
// actor.email as a sealed field (§1.6) — an actor.email that is not one
// and holds an @ is a match whatever its shape. A string of a digest's
// shape elsewhere is judged as text, and its decimal digits as a number
// (hexWordCard).
//
// It is cheap for an event with nothing to find: one pass over the
// bytes, which allocates only for a string with escapes or one that
// MayHold.
func InEvent(event []byte) (Match, bool, error) {
	w := walkers.Get().(*eventWalker)
	defer w.release()
	w.b = event
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

// InEventScrubbed is InEvent for an event in which Scrub has read every
// string, values and member names, but those of a digest's shape
// (IsDigest), and found nothing: those strings are not read again (Scrub
// would find nothing in them once more). What InEvent reads beyond them
// is read as it reads it: numbers, the text adjacent scalars make, the
// strings of a digest's shape (and digestAt's places), and strings of a
// hex word's shape (hexWordCard). A gateway's recording rule scrubs
// every string before it checks the payload the writer will judge; the
// two readings of a chunk of bulk output were half its cost.
func InEventScrubbed(event []byte) (Match, bool, error) {
	w := walkers.Get().(*eventWalker)
	defer w.release()
	w.b, w.scrubbed = event, true
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

// PayloadClean reports whether payload, the JSON value of an event's
// payload member, is one the recording rule leaves as it is, in one walk:
// no string in it (member names too) holds an escape, or may hold a value
// (MayHold) without having a digest's shape (IsDigest), and the writer's
// judge finds nothing in it where an event carries it (InEvent on
// {"payload": payload}). false says only that the payload needs a closer
// look (the scrub, then InEvent), never that it holds a value.
func PayloadClean(payload []byte) bool {
	clean, _ := PayloadCheck(payload)
	return clean
}

// PayloadCheck is PayloadClean, and when payload is not clean, whether
// the walk stopped at a string the scrub must read: one, or a member
// name, that holds an escape, or that MayHold without a digest's shape —
// so that a caller need not look for one again.
func PayloadCheck(payload []byte) (clean, candidate bool) {
	w := walkers.Get().(*eventWalker)
	defer w.release()
	w.b, w.strict = payload, true
	w.at = append(w.at, pathStep{name: payloadName})
	err := w.value(1)
	if err == nil {
		w.space()
		if w.i < len(w.b) {
			return false, w.candidate
		}
	}
	return err == nil && !w.found, w.candidate
}

var payloadName = []byte("payload")

// walkers keeps walkers and their path stacks between events: a walker
// escapes to the heap (its methods recurse), and the writer judges every
// event.
var walkers = sync.Pool{New: func() any { return &eventWalker{at: make([]pathStep, 0, 16)} }}

// release returns w to walkers, holding nothing of the event it read.
func (w *eventWalker) release() {
	clear(w.at[:cap(w.at)])
	*w = eventWalker{at: w.at[:0]}
	walkers.Put(w)
}

type eventWalker struct {
	b     []byte
	i     int
	at    []pathStep
	found bool
	match Match
	// joined and spaced are the short scalars of the array being read,
	// joined without and with a space between (adjacentScalars), made
	// from the second on; first is the first, as read; n counts them.
	joined, spaced, first []byte
	n                     int
	// exempt: the last string judge read is one digestAt exempts.
	exempt bool
	// strict (PayloadClean) stops the walk, as found, at any string
	// the scrub would read; candidate says it stopped so.
	strict, candidate bool
	// scrubbed (InEventScrubbed): Scrub found nothing in the event's
	// strings but those of a digest's shape; text is such a string
	// while judge reads it.
	scrubbed, text bool
	// mode is how judge reads digit chains: chainsAll but for the
	// joined elements of an array (adjacentEnd).
	mode chainMode
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
			w.text = true
			hit := w.judge(key, escaped, name)
			w.text = false
			if hit {
				return nil
			}
			if w.space(); w.i >= len(w.b) || w.b[w.i] != ':' {
				return w.fail("missing colon")
			}
			w.i++
			w.at = append(w.at, pathStep{name: name})
			if err := w.value(depth + 1); err != nil || w.found {
				return err
			}
			w.at = w.at[:len(w.at)-1]
			if done, err := w.next('}'); done || err != nil {
				return err
			}
		}
	case c == '[':
		w.i++
		outer, outerSpaced, outerN, outerFirst := w.joined, w.spaced, w.n, w.first
		w.joined, w.spaced, w.n, w.first = nil, nil, 0, nil
		err := w.array(depth)
		// Restored without a defer, which cost a walk of many small
		// arrays about a twentieth of its time.
		w.joined, w.spaced, w.n, w.first = outer, outerSpaced, outerN, outerFirst
		return err
	case c == '"':
		s, escaped, err := w.str()
		if err != nil {
			return err
		}
		w.exempt = false
		w.text = true
		hit := w.judge(s, escaped, nil)
		w.text = false
		if !hit && w.actorEmail() && !w.exempt {
			w.plainEmail(s, escaped) // a sealed field (exempt) is none
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
		for _, n := range numberDigits(w.b[start:w.i]) { // a card number written as a number
			if w.judge(n, false, nil) {
				break
			}
		}
		return nil
	}
}

// array reads the elements of an array, w.i after its opening bracket.
func (w *eventWalker) array(depth int) error {
	for n := 0; ; n++ {
		if w.space(); w.i < len(w.b) && w.b[w.i] == ']' && n == 0 {
			w.i++
			return nil
		}
		w.at = append(w.at, pathStep{index: n})
		start := w.i
		if err := w.value(depth + 1); err != nil || w.found {
			return err
		}
		w.at = w.at[:len(w.at)-1]
		if !w.adjacent(w.b[start:w.i]) {
			return nil
		}
		if done, err := w.next(']'); done || err != nil {
			if err == nil {
				w.adjacentEnd()
			}
			return err
		}
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
	if !sealedField(s) && bytes.IndexByte(foldBytes([]byte(s)), '@') >= 0 {
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
	b, i := w.b, w.i
	if i >= len(b) || b[i] != '"' {
		return nil, false, w.fail("expected a string")
	}
	start, escaped := i+1, false
	for i++; ; {
		// Eight bytes at a time while none is a quote, a backslash or
		// a control character (most strings hold none but their end),
		// then straight to the first that is.
		if i+8 <= len(b) {
			m := quoteEscapeOrControl(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
				i++
			}
			if i >= len(b) {
				break
			}
		}
		switch c := b[i]; {
		case c == '\\':
			escaped = true
			i += 2
		case c == '"':
			w.i = i + 1
			return b[start:i], escaped, nil
		default: // below 0x20
			w.i = i
			return nil, false, w.fail("control character in a string")
		}
	}
	w.i = i
	return nil, false, w.fail("unterminated string")
}

// quoteEscapeOrControl returns, for the eight bytes of x read little-
// endian, a mask with the high bit of each byte that is a quote, a
// backslash or below 0x20 set — exactly for the first such byte (the
// lowest), maybe for bytes after it (the bit tricks of "Determine if a
// word has a byte equal to / less than n": a borrow only carries
// upward) — and 0 when there is none.
func quoteEscapeOrControl(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, e := x^(ones*'"'), x^(ones*'\\')
	return ((q-ones)&^q | (e-ones)&^e | (x-ones*0x20)&^x) & highs
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
	if w.strict && escaped {
		w.found, w.candidate = true, w.text
		return true
	}
	s := unsafeString(raw) // not kept: Scrub copies what it keeps
	if escaped {
		var ok bool
		if s, ok = unescape(raw); !ok {
			return false
		}
	}
	cannot := false // MayHold(s) is known to be false
	if w.strict {
		if digest := IsDigest(s); !digest && MayHold(s) {
			w.found, w.candidate = true, w.text
			return true
		} else {
			cannot = !digest
		}
	}
	// Only a string is a digest in its exact form: a number's digits, or
	// the text an array's scalars make joined, at a digest's place are
	// read as any text (payload.sha256 written as a 64-digit number).
	if name == nil && w.text && w.digestAt(s) {
		w.exempt = true
		return false
	}
	// A text judged clean before, as read here (chainsAll), is clean
	// again: the same envelope names (a session's id, its target's host)
	// come in every event of a session.
	memo, h := !w.strict && w.mode == chainsAll && cleanTexts.fits(s), uint64(0)
	if memo {
		if h = cleanTexts.hash(s); cleanTexts.has(s, h) {
			return false
		}
	}
	d := ""
	if hexWordCard(s) {
		d = "credit_card"
	} else if w.scrubbed && w.text && w.mode == chainsAll && !IsDigest(s) {
		return false // Scrub read it and found nothing (InEventScrubbed)
	} else if cannot || isTimestamp(s) || !MayHold(s) {
		// isTimestamp first: the envelope's time is one, and MayHold
		// cannot call it clean (its digits).
		if memo {
			cleanTexts.saw(s, h)
		}
		return false
	} else {
		var counts map[string]int
		if w.mode == chainsAll {
			_, counts = Scrub(s)
			if memo && counts == nil {
				cleanTexts.saw(s, h)
			}
		} else {
			_, all := scan(s, 0, w.mode)
			counts = map[string]int{}
			for _, d := range all {
				counts[d]++
			}
		}
		for _, b := range Builtin {
			if counts[b] > 0 {
				d = b
				break
			}
		}
	}
	if d == "" {
		return false
	}
	if name != nil {
		w.at = append(w.at, pathStep{name: name})
	}
	w.found, w.match = true, Match{Path: w.path(), Detector: d}
	return true
}

// digestAt reports whether s, at the walk's place, is a value the ledger
// or a gateway writes in a form no detector reads, in its exact form:
//   - a SHA-256 digest, 64 lower-case hex digits, in a member named
//     sha256 or statement_sha256 of the payload, at any depth
//     (docs/FORMAT.md §1.1, §2.1, §12);
//   - a keyed digest, "hmac:" and 64 lower-case hex digits (§1.5), in a
//     payload member named hmac, body_hmac or match_digest, an element of
//     a payload array named matches, or one of payload.parameters.values;
//   - a pseudonym, 32 lower-case hex digits, in payload.pseudonym
//     (erasure and subject hold events) and payload.bulk.pseudonym;
//   - a bulk piece's name, 64 lower-case hex digits, in
//     payload.bulk.object (§1.7);
//   - "pseudonym:" and 32 lower-case hex digits in a payload member named
//     subject, at any depth (an identity recorded as actors are);
//   - actor.subject as "pseudonym:" and 32 lower-case hex digits, and
//     actor.email as a sealed field (§1.6).
//
// Anywhere else, or in another form, it is judged as any text.
func (w *eventWalker) digestAt(s string) bool {
	n := len(w.at)
	if n == 2 && string(w.at[0].name) == "actor" {
		switch string(w.at[1].name) {
		case "subject":
			p, ok := strings.CutPrefix(s, "pseudonym:")
			return ok && lowerHex(p, 32)
		case "email":
			return sealedField(s)
		}
		return false
	}
	if n < 2 || string(w.at[0].name) != "payload" {
		return false
	}
	last := w.at[n-1]
	if last.name == nil { // an array element
		switch parent := string(w.at[n-2].name); {
		case parent == "matches":
			return keyedDigest(s)
		case parent == "values" && n == 4 && string(w.at[1].name) == "parameters":
			return keyedDigest(s)
		}
		return false
	}
	switch string(last.name) {
	case "sha256", "statement_sha256":
		return lowerHex(s, 64)
	case "hmac", "body_hmac", "match_digest":
		return keyedDigest(s)
	case "pseudonym":
		return (n == 2 || n == 3 && string(w.at[1].name) == "bulk") && lowerHex(s, 32)
	case "object":
		// A bulk piece's name: the SHA-256 of its object (§1.7).
		return n == 3 && string(w.at[1].name) == "bulk" && lowerHex(s, 64)
	case "subject":
		// An identity recorded as events record actors, in a payload
		// (identity.snapshot members, a request's requester).
		p, ok := strings.CutPrefix(s, "pseudonym:")
		return ok && lowerHex(p, 32)
	}
	return false
}

// keyedDigest reports whether s is "hmac:" and 64 lower-case hex digits.
func keyedDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "hmac:")
	return ok && lowerHex(h, 64)
}

// lowerHex reports whether s is n lower-case hex digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if c := s[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// sealedField reports whether s is a sealed field in its exact form
// (docs/FORMAT.md §1.6): "pii1.", a pseudonym of 32 lower-case hex
// digits, ".", and base64url without padding of at least 28 bytes that
// are not printable text, at most 1,441 characters in all.
func sealedField(s string) bool {
	rest, ok := strings.CutPrefix(s, sealedPrefix)
	if !ok || len(s) > 1441 || len(rest) < 33+38 || rest[32] != '.' || !lowerHex(rest[:32], 32) {
		return false
	}
	for _, c := range []byte(rest[33:]) {
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	// Ciphertext is random bytes: one that decodes to text is text
	// written in the sealed form (pii1.….<base64 of an address>).
	text := base64Printable([]byte(rest[33:]))
	return len(rest[33:])%4 != 1 && !text // no base64 text has that length
}

// hexWordCard reports whether s is a hex word of a digest's size or more
// (32 hex digits and more, in one case, after an optional "hmac:" or
// "sha256:") whose decimal digits hold a card number as a longer number
// would (cardsIn). Text reads the digits inside such a word as part of an
// identifier; a whole string of that shape outside the places digests
// are written (digestAt) is a value someone chose, and its digits are
// read. About 0.12 % of random 64-digit hex strings hold one
// (TestEventFalsePositives): such a string in a free member is refused.
func hexWordCard(s string) bool {
	if len(s) < 32 || len(s) > 256 {
		return false
	}
	if t, ok := strings.CutPrefix(s, "hmac:"); ok {
		s = t
	} else if t, ok := strings.CutPrefix(s, "sha256:"); ok {
		s = t
	}
	lower, upper := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
		case c >= 'a' && c <= 'f':
			lower = true
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return false
		}
	}
	if len(s) < 32 || lower && upper {
		return false
	}
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j-i >= 13 && len(cardsIn([]byte(s[i:j]))) > 0 {
			return true
		}
		i = j
	}
	return false
}

// maxFragment is the longest scalar, in characters, adjacentScalars
// joins to its neighbours: a card number's group (up to 8 digits: a
// card in two halves), a digit alone.
const maxFragment = 8

// adjacent notes a scalar element of the array being read, tok as
// written, for adjacentScalars; it returns false when the text it ends
// holds a match (w.found).
//
// adjacentScalars: the short scalars (strings and numbers of at most
// maxFragment characters) that stand next to each other in one array are
// also judged as the text they make, joined without a separator and
// joined by spaces, as a reader that concatenates them would read them:
// a card number as an array of digits ([4,5,3,9,…]) or of its groups
// (["4539","5787",…]). Longer scalars are judged alone: a run of
// ids side by side is not one number. Members of an object are not
// joined: they are named values (counts, sizes, sequence numbers) that
// side by side would make digit runs a detector reads by chance.
func (w *eventWalker) adjacent(tok []byte) bool {
	var v []byte
	switch {
	case len(tok) > 2*maxFragment*utf8.UTFMax:
		// Too long to be one, escaped or not.
	case len(tok) > 0 && tok[0] == '"':
		v = tok[1 : len(tok)-1]
		if bytes.IndexByte(v, '\\') >= 0 {
			s, ok := unescape(v)
			if !ok {
				return w.adjacentEnd()
			}
			v = []byte(s)
		}
	case len(tok) > 0 && (tok[0] == '-' || isDigit(tok[0])):
		v = tok
	}
	if len(v) == 0 || utf8.RuneCount(v) > maxFragment {
		return w.adjacentEnd()
	}
	// The first is kept as it stands (most arrays of short scalars hold
	// one); the two texts are made from the second on.
	switch w.n {
	case 0:
		w.first = v
	case 1:
		w.joined = append(append(w.joined, w.first...), v...)
		w.spaced = append(append(append(w.spaced, w.first...), ' '), v...)
	default:
		w.joined, w.spaced = append(w.joined, v...), append(append(w.spaced, ' '), v...)
	}
	w.n++
	return true
}

// adjacentEnd judges the scalars adjacent noted, if more than one, and
// starts again; it returns false when they hold a match.
func (w *eventWalker) adjacentEnd() bool {
	n := w.n
	joined, spaced := w.joined, w.spaced
	w.joined, w.spaced, w.n, w.first = joined[:0], spaced[:0], 0, nil
	if n < 2 {
		return true
	}
	// Joined, the elements are read as digit chains only in windows of
	// whole elements of two digits or more (chainsElements): a run of 30
	// single digits holds a card number at some offset two times in
	// three, and 4398x2597x… (an element between the groups) is still
	// read. docs/FORMAT.md §1.4.
	w.mode = chainsElements
	hit := w.judge(joined, false, nil)
	w.mode = chainsElements
	hit = hit || w.judge(spaced, false, nil)
	w.mode = chainsAll
	return !hit
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
