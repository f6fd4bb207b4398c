package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// The recording rule: nothing a detector finds leaves a gateway in clear.
// Every string of every payload the core records — member names too, at
// any depth — passes the built-in detectors (detect.Builtin) before the
// event is encoded for the bus, whatever the policy says, and each value
// found is replaced in place by detect.Placeholder(detector). What was
// replaced is listed in the payload's "redacted" member, by place and
// detector, never by value (docs/FORMAT.md §1.4), and, with the key store
// (Config.Keys), by each value's keyed search digest under the session
// tenant's key (§1.5): the values themselves go no further than the
// encoding of the event.

// RedactedKey is the payload member that lists what was replaced.
const RedactedKey = "redacted"

// Redaction is one entry of a payload's "redacted" member: where (a JSON
// Pointer into the payload, RFC 6901), which detector, how many values it
// found there, and each value's keyed search digest (docs/FORMAT.md §1.5),
// in order, each once.
type Redaction struct {
	Path     string   `json:"path"`
	Detector string   `json:"detector"`
	Count    int      `json:"count"`
	Matches  []string `json:"matches,omitempty"`
	// values are the values replaced, handed by a gateway (Found) to the
	// core, which turns them into Matches when it encodes the event and
	// drops them. Never encoded.
	values []string
}

// Finding is a value a detector found and a gateway replaced, handed to
// the core so that the event records its keyed search digest.
type Finding struct {
	Detector string
	Value    string
}

// Found turns the values replaced in the text at path into entries of
// the "redacted" member, in detector order (the built-in detectors, then
// others a gateway names, such as pgproxy's masked_column, in the order
// first found), each carrying its values to the core (encodePayload),
// which records their digests and drops them.
func Found(path string, found []Finding) []Redaction {
	var out []Redaction
	order := slices.Clone(detect.Builtin)
	for _, f := range found {
		if !slices.Contains(order, f.Detector) {
			order = append(order, f.Detector)
		}
	}
	for _, d := range order {
		var r *Redaction
		for _, f := range found {
			if f.Detector != d {
				continue
			}
			if r == nil {
				out = append(out, Redaction{Path: path, Detector: d})
				r = &out[len(out)-1]
			}
			r.Count++
			r.values = append(r.values, f.Value)
		}
	}
	return out
}

// ScrubFound is detect.ScrubEach, with each value replaced appended to
// *found.
func ScrubFound(text string, found *[]Finding) (string, map[string]int) {
	return detect.ScrubEach(text, func(d, v string) { *found = append(*found, Finding{d, v}) })
}

// Judged is a text the recording rule has already read, as the core
// would read it (ScrubFound), made only by JudgeText: a producer that
// judges a long text itself (the PostgreSQL gateway judges each
// statement, to digest it as recorded) hands it to the core as Judged so
// that the core does not read it a second time. It is recorded as a JSON
// string. A text in which something was replaced is judged again by the
// core like any other string (the placeholders stand beside what is
// left): only a text the detectors found nothing in is spared.
type Judged struct {
	text  string
	clean bool // ScrubFound found nothing: the text is as written
}

// JudgeText is ScrubFound, its outcome marked as judged. A text that is
// not UTF-8 is not spared: it is recorded with U+FFFD for each byte that
// is not, which the detectors may read otherwise than the bytes they were
// given here.
func JudgeText(text string, found *[]Finding) (Judged, map[string]int) {
	out, counts := ScrubFound(text, found)
	return Judged{text: out, clean: counts == nil && utf8.ValidString(out)}, counts
}

// String returns the text as recorded.
func (j Judged) String() string { return j.text }

// MarshalJSON encodes the text as a JSON string, as a string member of a
// payload is encoded.
func (j Judged) MarshalJSON() ([]byte, error) { return appendString(nil, j.text), nil }

// Redactions turns the counts detect.Scrub returns for the text at path
// into entries of the "redacted" member, in detector order.
func Redactions(path string, counts map[string]int) []Redaction {
	var out []Redaction
	for _, d := range detect.Builtin {
		if n := counts[d]; n > 0 {
			out = append(out, Redaction{Path: path, Detector: d, Count: n})
		}
	}
	return out
}

// AddRedactions adds rs to payload's "redacted" member: what a gateway
// replaced itself before handing the payload to the core (SQL literals,
// found by the gateway's own parser), so the count is kept.
func AddRedactions(payload map[string]any, rs ...Redaction) {
	if len(rs) == 0 {
		return
	}
	have, _ := payload[RedactedKey].([]Redaction)
	payload[RedactedKey] = append(have, rs...)
}

// digester makes the keyed search digest of a value, or "" when it cannot;
// nil: the event records no digests.
type digester func(value string) string

// encodePayload encodes payload for an event, every string scrubbed; with
// digest, each value replaced is recorded in its "redacted" entry as its
// digest. The values the caller handed in the payload's "redacted"
// member (Found) are dropped from it: their digests take their place.
func encodePayload(payload map[string]any, digest digester) ([]byte, error) {
	body, judged, scrubbed, err := encodeScrubbed(payload, digest)
	if err != nil || judged {
		return body, err
	}
	return writerRule(body, scrubbed, digest)
}

// restClean reports whether payload, which has no "redacted" member, is
// clean but for the texts the detectors found nothing in that were handed
// as Judged: it holds at least one, none in which something was replaced,
// and the rest of it is clean (detect.PayloadCheck). Then every string of
// its encoding but those of a digest's shape has been scrubbed and
// nothing found, and the writer's judge need not read them again.
func restClean(payload map[string]any) (bool, error) {
	n := 0
	for k, v := range payload {
		if j, is := v.(Judged); is {
			if !j.clean || detect.MayHold(k) {
				return false, nil
			}
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	b, err := appendObjectWithout(make([]byte, 0, 512), payload, isJudged)
	if err != nil {
		return false, err
	}
	clean, _ := detect.PayloadCheck(b)
	return clean, nil
}

func isJudged(v any) bool { _, is := v.(Judged); return is }

// encodeScrubbed is encodePayload without the writer's check; judged
// reports that the one walk that found nothing to scrub found nothing
// the writer's judge finds either (detect.PayloadClean), so that the
// check is done; scrubbed, that every string of body but those of a
// digest's shape was scrubbed and nothing found (the writer's check
// need not read them again: detect.InEventScrubbed).
func encodeScrubbed(payload map[string]any, digest digester) (body []byte, judged, scrubbed bool, err error) {
	given, _ := payload[RedactedKey].([]Redaction)
	if given != nil {
		// The caller's map keeps its members, but its entries' values
		// give way to their digests: no value it handed outlives the
		// encoding, and encoding it again records the same digests.
		given = slices.Clone(given)
		for i := range given {
			given[i].digest(digest)
		}
		payload[RedactedKey] = slices.Clip(given)
		p := make(map[string]any, len(payload))
		for k, v := range payload {
			if k != RedactedKey {
				p[k] = v
			}
		}
		payload = p
	}
	body, err = marshalPayload(payload)
	if err != nil {
		return nil, false, false, err
	}
	if len(given) == 0 {
		// Most payloads: one walk finds nothing to scrub and nothing
		// the writer's judge would find.
		clean, candidate := detect.PayloadCheck(body)
		if clean {
			return body, true, false, nil
		}
		// What holds a value is a text the producer judged (a long
		// statement): the rest is read, the text is not read again.
		if ok, err := restClean(payload); ok || err != nil {
			return body, false, ok, err
		}
		// The walk stopped at a string the scrub must read, or, for what
		// else it found, every string is looked at.
		if !candidate && !anyCandidate(body) {
			return body, false, false, nil
		}
	}
	// Walk the payload as JSON: its members are of any Go type, and the
	// encoded form is exactly what would leave the gateway.
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false, false, fmt.Errorf("scrub: %w", err)
	}
	var found []Redaction
	v = scrubValue(v, "", &found)
	if len(given)+len(found) == 0 {
		return body, false, true, nil // every string read, nothing found
	}
	for i := range found {
		found[i].digest(digest)
	}
	all := mergeRedactions(append(given, found...))
	m, _ := v.(map[string]any)
	if m == nil {
		return nil, false, false, fmt.Errorf("scrub: the payload is not an object")
	}
	m[RedactedKey] = all
	body, err = json.Marshal(m)
	return body, false, false, err
}

// digest turns r's values into Matches (each once, in order) and drops
// them.
func (r *Redaction) digest(digest digester) {
	if digest != nil {
		for _, v := range r.values {
			if m := digest(v); m != "" && !slices.Contains(r.Matches, m) {
				r.Matches = append(r.Matches, m)
			}
		}
	}
	r.values = nil
}

// scrubValue returns v with every string scrubbed, noting what it
// replaced under path, with the values.
func scrubValue(v any, path string, found *[]Redaction) any {
	switch x := v.(type) {
	case string:
		if detect.IsDigest(x) {
			return x
		}
		var fs []Finding
		out, _ := ScrubFound(x, &fs)
		*found = append(*found, Found(path, fs)...)
		return out
	case []any:
		for i := range x {
			x[i] = scrubValue(x[i], path+"/"+strconv.Itoa(i), found)
		}
		return x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // a stable order for the redacted list
		for _, k := range keys {
			val := x[k]
			var fs []Finding
			name, counts := ScrubFound(k, &fs)
			if counts != nil {
				delete(x, k)
				for _, taken := x[name]; taken; _, taken = x[name] { // two keys scrubbed alike stay apart
					name += "_"
				}
				*found = append(*found, Found(path+"/"+pointerEscape(name), fs)...)
			}
			x[name] = scrubValue(val, path+"/"+pointerEscape(name), found)
		}
		return x
	}
	return v
}

// anyCandidate reports whether a string of the encoded payload (member
// names included) may hold what a detector finds, so that most payloads
// are encoded once and never decoded. json.Marshal escapes none of the
// characters the test looks at (@, digits, letters, _ and -), but it does
// escape separators a value can be written with (tab, line breaks, U+2028):
// a string holding an escape is always decoded and judged.
func anyCandidate(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(body) && body[j] != '"' {
			if body[j] == '\\' {
				j++
			}
			j++
		}
		if j > len(body) {
			j = len(body)
		}
		s := body[i+1 : j]
		// An escape stands for a character the test cannot see as
		// written (a tab or a line separator between the groups of a
		// card number): such a string is decoded and judged.
		if bytes.IndexByte(s, '\\') >= 0 {
			return true
		}
		if str := string(s); !detect.IsDigest(str) && detect.MayHold(str) {
			return true
		}
		i = j
	}
	return false
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// mergeRedactions adds up entries of the same path and detector, keeping
// the first one's place, and their digests, each once.
func mergeRedactions(rs []Redaction) []Redaction {
	var out []Redaction
	at := map[[2]string]int{}
	for _, r := range rs {
		k := [2]string{r.Path, r.Detector}
		r.Matches = slices.Clip(r.Matches) // appending below copies, never writes into a caller's array
		if i, ok := at[k]; ok {
			out[i].Count += r.Count
			for _, m := range r.Matches {
				if !slices.Contains(out[i].Matches, m) {
					out[i].Matches = append(out[i].Matches, m)
				}
			}
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	return out
}

// scrubTarget is t with its names scrubbed: what leaves a gateway about a
// target (events, the approvals bucket, the journal) carries no value a
// detector finds, whoever chose the name.
func scrubTarget(t events.Target) events.Target {
	t.Name, t.Host, t.Database = scrubName(t.Name), scrubName(t.Host), scrubName(t.Database)
	return t
}

// scrubName is s with what the detectors find replaced.
func scrubName(s string) string {
	if s == "" || !detect.MayHold(s) {
		return s
	}
	out, _ := detect.Scrub(s)
	return out
}

// EncodePayload applies the recording rule for a producer that records
// outside a gateway session (the API's own events): payload encoded with
// every string scrubbed, each value replaced recorded by its keyed search
// digest under key (a tenant's, piikeys.Store.TenantKey; nil records no
// digests). The writer refuses an event holding a value a detector finds,
// so a producer that skipped this would lose its record.
func EncodePayload(payload map[string]any, key []byte) ([]byte, error) {
	var d digester
	if key != nil {
		d = func(v string) string { return piikeys.MatchDigest(key, v) }
	}
	return encodePayload(payload, d)
}

// writerRule returns body, a payload scrubbed, once the writer's own judge
// finds nothing in it: detect.InEvent, which also reads long numbers,
// short scalars side by side in an array and strings of a digest's shape
// away from the places docs/FORMAT.md gives digests, and which the writer
// applies to every event before sealing it. What it finds is replaced by
// its placeholder, at the smallest value that holds it (a scalar, else
// the array whose elements make it together), and counted in "redacted"
// without a search digest; a payload it still finds something in is an
// error, so the record fails and what it describes is refused, never
// sealed for the writer to refuse after the fact.
//
// scrubbed says every string of body but those of a digest's shape was
// scrubbed and nothing found: the judge does not read them again
// (detect.InEventScrubbed).
func writerRule(body []byte, scrubbed bool, digest digester) ([]byte, error) {
	doc := make([]byte, 0, len(body)+len(`{"payload":}`))
	doc = append(append(append(doc, `{"payload":`...), body...), '}')
	judge := detect.InEvent
	if scrubbed {
		judge = detect.InEventScrubbed
	}
	if _, found, _ := judge(doc); !found {
		return body, nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil, fmt.Errorf("scrub: the payload is not an object")
	}
	var found []Redaction
	replaceFound(m, func(x any) any { return map[string]any{"payload": x} }, "", &found)
	for i := range found {
		found[i].digest(digest)
	}
	if have, ok := m[RedactedKey].([]any); ok {
		for _, r := range found {
			have = append(have, r)
		}
		m[RedactedKey] = have
	} else {
		m[RedactedKey] = found
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if d := writerFinds(map[string]any{"payload": json.RawMessage(out)}); d != "" {
		return nil, fmt.Errorf("scrub: the %s detector still finds a value in the payload once every value it found is replaced", d)
	}
	return out, nil
}

// replaceFound replaces, below v, each value the writer's judge finds
// something in where wrap places it (the member names above it kept, as
// the judge's exemptions depend on them), noting each under path.
func replaceFound(v any, wrap func(any) any, path string, found *[]Redaction) any {
	switch x := v.(type) {
	case map[string]any:
		// In member order, so that the "redacted" entries, and so the
		// record, are the same whenever the payload is.
		for _, k := range slices.Sorted(maps.Keys(x)) {
			val := x[k]
			if path == "" && k == RedactedKey {
				continue
			}
			x[k] = replaceFound(val, func(inner any) any { return wrap(map[string]any{k: inner}) }, path+"/"+pointerEscape(k), found)
			if was, ok := val.(string); ok && x[k] != val {
				redigest(x, k, x[k].(string), was)
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = replaceFound(x[i], func(inner any) any { return wrap([]any{inner}) }, path+"/"+strconv.Itoa(i), found)
		}
	}
	if d := writerFinds(wrap(v)); d != "" {
		*found = append(*found, Redaction{Path: path, Detector: d, Count: 1, values: valuesIn(v)})
		return detect.Placeholder(d)
	}
	return v
}

// valuesIn returns the values the scrub finds in v, a scalar the
// writer's judge found something in (a number, a string), or in the text
// an array's scalars make side by side: the values replaced with it, for
// their search digests. None when the judge's reading is not the
// scrub's (a card number in a hex word's digits).
func valuesIn(v any) []string {
	var text string
	switch x := v.(type) {
	case string:
		text = x
	case json.Number:
		text = x.String()
	case []any:
		var sb strings.Builder
		for _, e := range x {
			switch y := e.(type) {
			case string:
				sb.WriteString(y)
			case json.Number:
				sb.WriteString(y.String())
			}
		}
		text = sb.String()
	default:
		return nil
	}
	var fs []Finding
	ScrubFound(text, &fs)
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Value)
	}
	return out
}

// redigest: a member k replaced whole (was, now now) takes its digests
// with it. A digest of the text as it was is a digest of text holding the
// value found, which a guess of the value reverses; the sibling that
// digests k — k+"_sha256", or "sha256" beside a stream chunk's "data" —
// becomes the SHA-256 of the text as recorded (hex, as it was), which is
// what those digests are of everywhere else (docs/FORMAT.md §1.4).
func redigest(x map[string]any, k, now, was string) {
	names := []string{k + "_sha256"}
	if k == "data" {
		names = append(names, "sha256")
	}
	for _, n := range names {
		if _, ok := x[n].(string); ok && now != was {
			sum := sha256.Sum256([]byte(now))
			x[n] = hex.EncodeToString(sum[:])
		}
	}
}

// writerFinds returns the detector the writer's judge finds something
// with in the event doc makes, or "" when none does.
func writerFinds(doc any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		return detect.Builtin[0]
	}
	if m, found, _ := detect.InEvent(b); found {
		return m.Detector
	}
	return ""
}
