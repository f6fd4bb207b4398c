package detect

import "testing"

// TestOrdinaryValuesAreNotPersonal: shapes real traffic is full of that
// a looser rule took for personal data — a digest in upper-case hex that
// passes an IBAN's check digits, arithmetic and version strings with a +
// before digits, a byte count near a terabyte, an epoch in milliseconds
// — are left as they are, while the values they resemble are found.
func TestOrdinaryValuesAreNotPersonal(t *testing.T) {
	for _, v := range []string{"B37AA18503F646954456F33C0EBD341F", "SELECT x+12345678 FROM t", "v1.2.3+44440713", "order+54292319",
		"1099511627789", "bytes 1099511627789 sent"} {
		if out, c := Scrub(v); c != nil {
			t.Errorf("Scrub(%q) = %q, %v; want it left as it is", v, out, c)
		}
	}
	for _, v := range []string{"DE89 3704 0044 0532 0130 00", "pay DE89 3704 0044 0532 0130 00 EUR", "GB82WEST12345698765432", "call +44 20 7946 0958", "4111111111111111"} {
		if _, c := Scrub(v); c == nil {
			t.Errorf("Scrub(%q) found nothing", v)
		}
	}
}
