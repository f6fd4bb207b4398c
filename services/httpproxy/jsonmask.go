package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/mask"
)

// maskKey counts masked values per rule and field, for mask.applied.
type maskKey struct {
	rule  *MaskRule
	field string // dotted path, array indices as *
}

// maskJSON rewrites a JSON document, masking string values that a rule
// matches by field path or by detector, member names and numbers a
// detector matches, and keeping everything else — member order,
// whitespace aside — as it was. A number, boolean or null matched by field
// path becomes null; a number a detector matches becomes its masked text. It fails on anything that
// is not one valid JSON document, so the caller never forwards a body it
// could not mask.
func (p *Policy) maskJSON(body []byte) ([]byte, map[maskKey]int, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(false))
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out, jsontext.AllowDuplicateNames(true))
	counts := map[maskKey]int{}
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		kind := tok.Kind()
		isName := false
		if depth := dec.StackDepth(); depth > 0 {
			if k, n := dec.StackIndex(depth); k == '{' && n%2 == 1 && kind == '"' {
				isName = true
			}
		}
		if isName {
			// A member name can carry a value too ({"alice@example.com": …}).
			if v, r, ok := p.scrub([]byte(tok.String())); ok {
				segs := pathOf(dec.StackPointer())
				tok = jsontext.String(string(v))
				counts[maskKey{r, p.label(segs[:len(segs)-1]) + ".(name)"}]++
			}
		} else if kind != '{' && kind != '[' && kind != '}' && kind != ']' {
			segs := pathOf(dec.StackPointer())
			if r := p.fieldRule(segs); r != nil {
				if kind == '"' {
					tok = jsontext.String(string(mask.Apply(r.Method, p.hashKey, []byte(tok.String()))))
				} else {
					tok = jsontext.Null
				}
				counts[maskKey{r, p.label(segs)}]++
			} else if kind == '"' || kind == '0' {
				// Detectors look at numbers too: a card number needs no
				// quotes; and inside a longer string.
				if v, r, ok := p.scrub([]byte(tok.String())); ok { // a number's literal text
					tok = jsontext.String(string(v))
					counts[maskKey{r, p.label(segs)}]++
				}
			}
		}
		if err := enc.WriteToken(tok); err != nil {
			return nil, nil, err
		}
	}
	// The encoder ends the document with a newline; keep the original's end.
	res := bytes.TrimSuffix(out.Bytes(), []byte("\n"))
	if bytes.HasSuffix(body, []byte("\n")) {
		res = append(res, '\n')
	}
	return res, counts, nil
}

// pathOf turns a JSON pointer into field segments, array indices as *.
func pathOf(ptr jsontext.Pointer) []string {
	var segs []string
	for t := range ptr.Tokens() {
		if _, err := strconv.Atoi(t); err == nil {
			t = "*"
		}
		segs = append(segs, t)
	}
	return segs
}

// label is a field path for mask.applied, with member names that are
// themselves sensitive (a detector matches them) shown as (masked).
func (p *Policy) label(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s
		if p.detectRule([]byte(s)) != nil {
			out[i] = "(masked)"
		}
	}
	return strings.Join(out, ".")
}

func (p *Policy) fieldRule(segs []string) *MaskRule {
	for i := range p.Mask {
		for _, f := range p.Mask[i].fields {
			if fieldMatch(f, segs) {
				return &p.Mask[i]
			}
		}
	}
	return nil
}

// scrub masks what the policy's detectors find in v, the whole of it or
// inside it (mask.Scrub); r is the first rule applied.
func (p *Policy) scrub(v []byte) ([]byte, *MaskRule, bool) {
	return mask.Scrub(v, p.hashKey, func(v []byte) (*MaskRule, string, bool) {
		if r := p.detectRule(v); r != nil {
			return r, r.Method, true
		}
		return nil, "", false
	})
}

func (p *Policy) detectRule(v []byte) *MaskRule {
	for i := range p.Mask {
		for _, d := range p.Mask[i].Detect {
			if detect.Detect(d, v) {
				return &p.Mask[i]
			}
		}
	}
	return nil
}

// fieldMatch: segments are names, * (one level: any name or index) or **
// (any number of levels). Index segments arrive as *, so a pattern's *
// and a literal * both match them.
func fieldMatch(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if fieldMatch(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 || (pat[0] != "*" && !strings.EqualFold(pat[0], segs[0])) {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
