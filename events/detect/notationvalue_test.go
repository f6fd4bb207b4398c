package detect

import "testing"

// A card number written in another notation is replaced, and the value
// reported for its search digest is the integer it denotes — what an
// investigator searches for — not the token as written.
func TestNotationValueIsTheNumber(t *testing.T) {
	for _, in := range []string{"4.111111111111111e15", "4.111111111111111E+15", "0xe9b08a568f1c7", "0o164660424532170707", "amount 0xE9B08A568F1C7 paid"} {
		var got []string
		out, _ := ScrubEach(in, func(d, v string) { got = append(got, d+" "+v) })
		if len(got) != 1 || got[0] != "credit_card 4111111111111111" {
			t.Errorf("%q: scrubbed %q, values %q; want the card number's digits", in, out, got)
		}
	}
}
