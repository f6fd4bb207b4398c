package piikeys_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// TestCanonicalFormsDetectorsFind: every form in which the detectors
// find a card number, an IBAN or an address digests as its plain form,
// as the detectors hand it, so that a search finds the value however it
// was recorded.
func TestCanonicalFormsDetectorsFind(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	groups := []struct {
		detector string
		forms    []string
	}{
		{"credit_card", []string{
			"4111111111111111",
			"4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111",
			"4111:1111:1111:1111", "4111,1111,1111,1111", "4111_1111_1111_1111",
			"4111/1111/1111/1111", "4111+1111+1111+1111", "4111\t1111\t1111\t1111",
			`4111\x091111\x091111\x091111`,
			"٤١١١١١١١١١١١١١١١",                   // Arabic-Indic digits
			"४१११ ११११ ११११ ११११",                // Devanagari digits
			"４１１１ １１１１ １１１１ １１１１",                // full-width
			"4111\u200b1111\u200b1111\u200b1111", // zero-width spaces
			"4\u03011\u03011\u03011111111111111", // combining marks
			"4111\u00a01111\u20131111\u22121111", // no-break space, en dash, minus sign
			"4111|1111|1111|1111", "4111;1111;1111;1111", "4111 | 1111 | 1111 | 1111",
			"4111·1111·1111·1111", "4111・1111・1111・1111", "4111*1111=1111;1111", // any short run of punctuation or symbols
		}},
		{"iban", []string{
			"DE89370400440532013000",
			"DE89 3704 0044 0532 0130 00", "de89370400440532013000", "DE89-3704-0044-0532-0130-00",
			"ＤＥ８９３７０４００４４０５３２０１３０００", "DE89\u200b3704\u200b0044\u200b0532\u200b0130\u200b00",
			"DE89\u20133704\u20130044\u20130532\u20130130\u201300",
			"DE89.3704.0044.0532.0130.00", "DE89;3704;0044;0532;0130;00", "DE89·3704·0044·0532·0130·00",
		}},
		{"email", []string{
			"jane@example.com",
			"Jane@Example.com", " jane@example.com ", "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "jane\u200b@example.com",
		}},
	}
	for _, g := range groups {
		want := piikeys.MatchDigest(k, g.forms[0])
		for _, v := range g.forms {
			// The value a gateway digests: as the detector found it.
			var found []string
			detect.ScrubEach(v, func(d, value string) {
				if d == g.detector {
					found = append(found, value)
				}
			})
			// Another reading of the same characters may be reported
			// too (the text as written, where an escape's digits make a
			// chain: docs/FORMAT.md §1.5, matches): one of the values
			// is the one a search by the form finds.
			if !slices.ContainsFunc(found, func(f string) bool { return piikeys.MatchDigest(k, f) == want }) {
				var canon []string
				for _, f := range found {
					canon = append(canon, piikeys.Canonical(f))
				}
				t.Errorf("%q found as %q (canonical %q): none digests like %q", v, found, canon, g.forms[0])
			}
			if piikeys.MatchDigest(k, v) != want {
				t.Errorf("%q (canonical %q) digests unlike %q", v, piikeys.Canonical(v), g.forms[0])
			}
		}
	}
	// A decomposed letter of an address is its composed letter, not the
	// letter without its accent.
	if a, b := piikeys.Canonical("jos\u00e9@example.com"), piikeys.Canonical("jose\u0301@example.com"); a != b || a == "jose@example.com" {
		t.Errorf("composed %q, decomposed %q", a, b)
	}
}

// TestSubjectLookupVector pins the name of a subject's entries in the key
// store, as docs/FORMAT.md §1.6 gives it.
func TestSubjectLookupVector(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	if got, want := piikeys.SubjectLookup(k, "https://idp.example", "alice"), "b2fa6e32277aebee6b8b69b781f0f30c"; got != want {
		t.Errorf("SubjectLookup = %s, want %s", got, want)
	}
}
