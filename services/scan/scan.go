// Package scan finds text in sealed events that a value detector of
// events/detect matches: the check that nothing personal was sealed in
// clear, and a way to audit logs sealed before the gateways scrubbed what
// they record. It walks an event's JSON (envelope and payload, member
// names too) and reports where a detector matched and which one, never
// the value: a Finding holds no part of what it found, and a member name
// that holds a match appears in paths scrubbed.
package scan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events/detect"
)

// Finding is one place in an event where a detector matched. It holds no
// part of the value.
type Finding struct {
	// Path is where the string sits in the event, e.g.
	// payload.parameters.values[1]. A member name that itself holds a
	// match appears with the match replaced by [REDACTED:detector].
	Path string `json:"path"`
	// Detector is the detector that matched (detect.DetectorNames).
	Detector string `json:"detector"`
	// Key is true when the match is in the member name at Path, not in
	// its value.
	Key bool `json:"key,omitempty"`
	// Decoded names the encoding the string was decoded from before the
	// detector matched ("base64", "url"); empty when it matched as sealed.
	Decoded string `json:"decoded,omitempty"`
	// Count is how many values of this detector the string holds.
	Count int `json:"count"`
}

// Scanner runs a set of detectors over events. It is safe for concurrent
// use.
type Scanner struct {
	detectors []string
}

// All lists every built-in detector, in the order a Scanner tries them.
func All() []string { return strings.Split(detect.DetectorNames, ", ") }

// New returns a Scanner running the named detectors; none names every
// built-in one. An unknown name is an error that lists the known ones.
func New(detectors ...string) (*Scanner, error) {
	if len(detectors) == 0 {
		detectors = All()
	}
	seen := map[string]bool{}
	var ds []string
	for _, d := range detectors {
		if !detect.Known(d) {
			return nil, fmt.Errorf("scan: unknown detector %q (known: %s)", d, detect.DetectorNames)
		}
		if !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	return &Scanner{detectors: ds}, nil
}

// Detectors lists the detectors s runs.
func (s *Scanner) Detectors() []string { return append([]string(nil), s.detectors...) }

// ErrNotJSON is returned for event bytes that are not one JSON value.
var ErrNotJSON = errors.New("scan: event is not JSON")

// Event returns every finding in one event's JSON, in document order:
// every string value and member name at any depth, and numbers written
// with enough digits to be a card number, are offered to the detectors.
func (s *Scanner) Event(event []byte) ([]Finding, error) {
	w := walker{s: s, b: event}
	if err := w.value(); err != nil {
		return nil, err
	}
	if w.space(); w.i < len(w.b) {
		return nil, w.fail("data after the value")
	}
	// The writer refuses an event detect.InEvent matches (docs/FORMAT.md
	// §1.4), and InEvent reads what the walker leaves out (short scalars
	// of one array read together, a digest's shape out of its place). Its
	// first match is reported too when the walker missed it, so every
	// event the writer would refuse has a finding.
	if m, found, _ := detect.InEvent(event); found && s.runs(m.Detector) && !reported(w.found, m) {
		w.found = append(w.found, Finding{Path: m.Path, Detector: m.Detector, Count: 1})
	}
	return w.found, nil
}

// runs reports whether s runs detector d.
func (s *Scanner) runs(d string) bool {
	for _, x := range s.detectors {
		if x == d {
			return true
		}
	}
	return false
}

// reported reports whether a finding already names m's place and detector.
func reported(found []Finding, m detect.Match) bool {
	for _, f := range found {
		if f.Path == m.Path && f.Detector == m.Detector {
			return true
		}
	}
	return false
}

// Text returns the findings in one free text, reported at path.
func (s *Scanner) Text(path, text string) []Finding {
	w := walker{s: s, at: []step{{name: path}}}
	w.text(text, false)
	return w.found
}

// walker reads one event's JSON. It is a small parser rather than
// encoding/json's Decoder.Token, which costs four times as much here:
// it keeps member order and builds a path only for a finding.
type walker struct {
	s     *Scanner
	b     []byte
	i     int
	at    []step // where the value being read sits
	found []Finding
}

// step is one member name or array index of a path.
type step struct {
	name  string
	index int // when name is ""
}

func (w *walker) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrNotJSON, what, w.i)
}

func (w *walker) space() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

// value reads one JSON value.
func (w *walker) value() error {
	w.space()
	if w.i >= len(w.b) {
		return w.fail("unexpected end")
	}
	switch c := w.b[w.i]; {
	case c == '{':
		return w.container('}', func(int) error {
			key, err := w.str()
			if err != nil {
				return err
			}
			if w.space(); w.i >= len(w.b) || w.b[w.i] != ':' {
				return w.fail("missing colon")
			}
			w.i++
			w.at = append(w.at, step{name: w.member(key)})
			err = w.value()
			w.at = w.at[:len(w.at)-1]
			return err
		})
	case c == '[':
		return w.container(']', func(n int) error {
			w.at = append(w.at, step{index: n})
			err := w.value()
			w.at = w.at[:len(w.at)-1]
			return err
		})
	case c == '"':
		v, err := w.str()
		if err == nil {
			w.text(v, false)
		}
		return err
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(w.b[w.i:], []byte(lit)) {
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
		// A card number sealed as a JSON number; shorter numbers
		// cannot be one, nor anything else a detector finds.
		if w.i-start >= 13 {
			w.text(string(w.b[start:w.i]), false)
		}
		return nil
	}
}

// container reads the members or elements of an object or array, w.i at
// its opening bracket, calling each for the n-th one.
func (w *walker) container(closing byte, each func(n int) error) error {
	w.i++
	if w.space(); w.i < len(w.b) && w.b[w.i] == closing {
		w.i++
		return nil
	}
	for n := 0; ; n++ {
		w.space()
		if err := each(n); err != nil {
			return err
		}
		if w.space(); w.i >= len(w.b) {
			return w.fail("unexpected end")
		}
		switch w.b[w.i] {
		case ',':
			w.i++
		case closing:
			w.i++
			return nil
		default:
			return w.fail("missing comma")
		}
	}
}

// str reads a JSON string, w.i at its opening quote.
func (w *walker) str() (string, error) {
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return "", w.fail("expected a string")
	}
	start, escaped := w.i, false
	for w.i++; w.i < len(w.b); w.i++ {
		switch c := w.b[w.i]; {
		case c == '\\':
			escaped = true
			w.i++
		case c == '"':
			w.i++
			if !escaped {
				return string(w.b[start+1 : w.i-1]), nil
			}
			var v string
			if err := json.Unmarshal(w.b[start:w.i], &v); err != nil {
				return "", w.fail("invalid string")
			}
			return v, nil
		case c < 0x20:
			return "", w.fail("control character in a string")
		}
	}
	return "", w.fail("unterminated string")
}

// path renders where the value being read sits, e.g. payload.values[1].
func (w *walker) path() string {
	var sb strings.Builder
	for _, s := range w.at {
		if s.name == "" {
			sb.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if sb.Len() > 0 && s.name[0] != '[' {
			sb.WriteByte('.')
		}
		sb.WriteString(s.name)
	}
	return sb.String()
}

// member offers a member name to the detectors and returns it as a path
// shows it: scrubbed of what they found, quoted when it is not a plain
// identifier.
func (w *walker) member(key string) string {
	shown, n := w.scrub(key)
	name := pathName(shown)
	if n > 0 {
		w.at = append(w.at, step{name: name})
		w.text(key, true)
		w.at = w.at[:len(w.at)-1]
	}
	return name
}

// pathName is a member name as a path shows it: as it is when it is a
// plain identifier, else a quoted JSON string in brackets.
func pathName(name string) string {
	plain := name != ""
	for i := 0; i < len(name) && plain; i++ {
		c := name[i]
		plain = c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0
	}
	if plain {
		return name
	}
	q, _ := json.Marshal(name)
	return "[" + string(q) + "]"
}

// shortest is the length of the shortest value any detector matches (an
// e-mail like a@b.co); shorter strings are not looked at.
const shortest = 6

// text records the detectors' matches in one string: as sealed, and once
// decoded when it is URL-escaped or base64 text.
func (w *walker) text(v string, key bool) {
	if len(v) < shortest || detect.IsDigest(v) {
		return
	}
	plain := w.count(v)
	w.record("", key, plain, nil)
	if strings.IndexByte(v, '%') >= 0 {
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			w.record("url", key, w.count(d), plain)
		}
	}
	if d, ok := decodeBase64(v); ok {
		w.record("base64", key, w.count(d), plain)
	}
}

// record adds a finding per detector in counts; a decoded reading adds
// only what the sealed reading did not already find.
func (w *walker) record(decoded string, key bool, counts, already []int) {
	for i, d := range w.s.detectors {
		n := counts[i]
		if already != nil {
			n -= already[i]
		}
		if n > 0 {
			w.found = append(w.found, Finding{Path: w.path(), Detector: d, Key: key, Decoded: decoded, Count: n})
		}
	}
}

// count returns how many values each of the scanner's detectors finds
// in v, by the detectors' order: what detect.Scrub replaces, the rule the
// gateways and the writer apply.
func (w *walker) count(v string) []int {
	counts := make([]int, len(w.s.detectors))
	if !detect.MayHold(v) {
		return counts
	}
	_, all := detect.Scrub(v)
	for i, d := range w.s.detectors {
		counts[i] = all[d]
	}
	return counts
}

// scrub returns v with what every built-in detector finds replaced by
// placeholders naming them, for showing (a path's member name, an event
// id); n counts the replacements of the scanner's own detectors.
func (w *walker) scrub(v string) (string, int) {
	if len(v) < shortest || !detect.MayHold(v) {
		return v, 0
	}
	out, all := detect.Scrub(v)
	n := 0
	for _, d := range w.s.detectors {
		n += all[d]
	}
	return out, n
}

// decodeBase64 decodes v when it is standard or URL-safe base64 of at
// least 12 bytes of UTF-8 text (a recorded terminal chunk, a header
// value), so that what the text holds is found too.
func decodeBase64(v string) (string, bool) {
	if len(v) < 16 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return "", false
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			if utf8.Valid(b) {
				return string(b), true
			}
			return "", false
		}
	}
	return "", false
}

// Scrub returns v with what the scanner's detectors find in it replaced
// by placeholders naming them ([REDACTED:email]), for showing a text
// that locates a finding (an event id) without the value.
func (s *Scanner) Scrub(v string) string {
	w := walker{s: s}
	out, _ := w.scrub(v)
	return out
}
