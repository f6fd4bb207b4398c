package events

import (
	"bytes"
	"errors"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxBulkPiece is the most bytes of a stream one bulk piece holds, and
// BulkOverhead what its object adds to them: a nonce and a tag
// (docs/FORMAT.md §1.7).
const (
	MaxBulkPiece = 512 << 10
	BulkOverhead = 12 + 16
)

// Bulk is the bulk piece a session.output event names (docs/FORMAT.md
// §1.7): the object's name (the lower-case hex of its SHA-256), the
// pseudonym of the subject whose key sealed it, and its size.
type Bulk struct {
	Object    string `json:"object"`
	Pseudonym string `json:"pseudonym"`
	Size      int64  `json:"size"`
	// The piece's place and length: the payload's stream, offset and
	// bytes beside bulk (BulkOf fills them in).
	Stream string `json:"-"`
	Offset int64  `json:"-"`
	Bytes  int64  `json:"-"`
}

// BulkOf returns the bulk piece a session.output event names, nil when
// it names none (any other type, or a chunk of text or binary), or an
// error naming the member that breaks §1.7's form: bulk beside data,
// sha256, binary or hmac; an object that is not 64 lower-case hex
// digits; a pseudonym that is not 32; bytes outside 1..524,288; a size
// other than bytes + 28; no stream or offset; a member spelled like
// one a reader acts on in another case (memberNames).
func BulkOf(ev *Event) (*Bulk, error) {
	if ev.Type != SessionOutput {
		return nil, nil
	}
	if err := memberNames(ev.Payload); err != nil {
		return nil, err
	}
	// A member named bulk is spelled with those letters, or escaped.
	if !bytes.Contains(ev.Payload, []byte("bulk")) && !bytes.Contains(ev.Payload, []byte(`\u`)) {
		return nil, nil
	}
	var p struct {
		Stream *string        `json:"stream"`
		Offset *int64         `json:"offset"`
		Bytes  *int64         `json:"bytes"`
		Bulk   jsontext.Value `json:"bulk"`
		Data   jsontext.Value `json:"data"`
		SHA256 jsontext.Value `json:"sha256"`
		Binary jsontext.Value `json:"binary"`
		HMAC   jsontext.Value `json:"hmac"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		if bytes.Contains(ev.Payload, []byte(`"bulk"`)) {
			return nil, invalid("payload", "a session.output with bulk: %v", err)
		}
		return nil, nil // not this form; other rules judge it
	}
	if p.Bulk == nil {
		return nil, nil
	}
	for _, m := range []struct {
		name string
		v    jsontext.Value
	}{{"data", p.Data}, {"sha256", p.SHA256}, {"binary", p.Binary}, {"hmac", p.HMAC}} {
		if m.v != nil {
			return nil, invalid("payload."+m.name, "not allowed beside bulk: a bulk piece's bytes are in its object, never in the event (docs/FORMAT.md §1.7)")
		}
	}
	var b Bulk
	if err := json.Unmarshal(p.Bulk, &b, json.RejectUnknownMembers(true)); err != nil {
		return nil, invalid("payload.bulk", "want {object, pseudonym, size}: %v", err)
	}
	switch {
	case !lowerHexOf(b.Object, 64):
		return nil, invalid("payload.bulk.object", "must be 64 lower-case hex digits (the SHA-256 of the object), found %d characters", len(b.Object))
	case !lowerHexOf(b.Pseudonym, 32):
		return nil, invalid("payload.bulk.pseudonym", "must be 32 lower-case hex digits, found %d characters", len(b.Pseudonym))
	case p.Stream == nil || *p.Stream == "":
		return nil, invalid("payload.stream", "required beside bulk")
	case p.Offset == nil || *p.Offset < 0:
		return nil, invalid("payload.offset", "required beside bulk, at least 0")
	case p.Bytes == nil || *p.Bytes < 1 || *p.Bytes > MaxBulkPiece:
		return nil, invalid("payload.bytes", "a bulk piece holds 1 to %d bytes", MaxBulkPiece)
	case b.Size != *p.Bytes+BulkOverhead:
		return nil, invalid("payload.bulk.size", "%d, but a piece of %d bytes is an object of %d (bytes + %d)", b.Size, *p.Bytes, *p.Bytes+BulkOverhead, BulkOverhead)
	}
	b.Stream, b.Offset, b.Bytes = *p.Stream, *p.Offset, *p.Bytes
	return &b, nil
}

// lowerHexOf reports whether s is n lower-case hex digits.
func lowerHexOf(s string, n int) bool {
	return len(s) == n && all(s, isLowerHex)
}

// readMembers are the members of a session.output payload its readers
// act on.
var readMembers = [...]string{"bulk", "data", "sha256", "binary", "hmac", "stream", "offset", "bytes", "bulk_before", "insert"}

// memberNames refuses a session.output payload that has a member
// spelled like one of readMembers in another case ("Bulk", "DATA", or
// with the Kelvin sign for k: Unicode's simple case folding, as
// strings.EqualFold), or one named twice: a reader that matches names
// without case (encoding/json) would act on it, or on the last of two,
// where the writer and verify, which match them exactly, saw an
// ordinary chunk (docs/FORMAT.md §1.7). A payload that is not an object
// is left to the other rules.
func memberNames(payload []byte) error {
	// The usual payload, read in one pass without allocating: names
	// without escapes, no whitespace between tokens, at most 16
	// members. Anything else is read by jsontext, below.
	s := scanner{b: payload, shared: true}
	bad, like := "", ""
	if s.object(func(name string) bool {
		if m := foldsToReadMember(name); m != "" && bad == "" {
			bad, like = name, m
		}
		return s.skip()
	}) && s.i == len(s.b) {
		return caseMember(bad, like)
	}
	d := jsontext.NewDecoder(bytes.NewReader(payload))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil
	}
	for d.PeekKind() == '"' {
		tok, err := d.ReadToken()
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return invalid("payload", "a member named twice: %v", err)
		}
		if err != nil {
			return nil
		}
		if name := tok.String(); foldsToReadMember(name) != "" {
			return caseMember(name, foldsToReadMember(name))
		}
		if err := d.SkipValue(); err != nil {
			return nil
		}
	}
	return nil
}

// foldsToReadMember returns the member of readMembers name is in
// another case, or "" (name is one itself, or none).
func foldsToReadMember(name string) string {
	if len(name) < len("data") || len(name) > 3*len("bulk_before") {
		return ""
	}
	for _, m := range readMembers {
		if name != m && strings.EqualFold(name, m) {
			return m
		}
	}
	return ""
}

func caseMember(name, like string) error {
	if name == "" {
		return nil
	}
	return invalid("payload."+name, "%s in another case: refused, as a reader that matches member names without case would read it as %s (docs/FORMAT.md §1.7)", like, like)
}
