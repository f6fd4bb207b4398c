package detect

import (
	"math/rand/v2"
	"testing"
)

// isIBANAsFirstWritten is isIBAN as first written (its characters
// gathered on the heap), the reference the stack version is held to.
func isIBANAsFirstWritten(v []byte) bool {
	var b []byte
	gap := 0
	for _, c := range v {
		if !isAlnum(c) {
			if !isCardSep(c) {
				return false
			}
			if !isSpace(c) {
				if gap++; gap > maxGap {
					return false
				}
			}
			continue
		}
		gap = 0
		switch {
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		default:
			b = append(b, c)
		}
	}
	if len(b) < 15 || len(b) > 34 || !isUpper(b[0]) || !isUpper(b[1]) || !isDigit(b[2]) || !isDigit(b[3]) || !digitRun(b[4:], 8) {
		return false
	}
	if n, ok := ibanLength[string(b[:2])]; !ok || len(b) != n {
		return false
	}
	rem := 0
	for _, c := range append(b[4:], b[:4]...) {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isUpper(c):
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// TestIsIBANAgrees: isIBAN answers as it was first written, over valid
// IBANs of several countries written plainly, in groups, lower-cased,
// with a character changed, cut or lengthened, and random words.
func TestIsIBANAgrees(t *testing.T) {
	valid := []string{"DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NL91ABNA0417164300",
		"MT84MALT011000012345MTLCAST001S", "NO9386011117947", "BE68539007547034", "CH9300762011623852957"}
	r := rand.New(rand.NewPCG(19, 23))
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -./|_:+"
	yes := 0
	for range 200000 {
		var v []byte
		switch r.IntN(3) {
		case 0:
			v = []byte(valid[r.IntN(len(valid))])
			for range r.IntN(4) {
				switch i := r.IntN(len(v)); r.IntN(5) {
				case 0:
					v[i] = alpha[r.IntN(len(alpha))]
				case 1:
					v = append(v[:i], v[i+1:]...)
				case 2:
					v = append(v[:i], append([]byte{alpha[r.IntN(len(alpha))]}, v[i:]...)...)
				case 3:
					v = append(v[:i], append([]byte(" "), v[i:]...)...)
				case 4:
					v = append(v, v...)
				}
			}
		case 1:
			for range 10 + r.IntN(30) {
				v = append(v, alpha[r.IntN(len(alpha))])
			}
		default:
			v = []byte(valid[r.IntN(len(valid))])
			for i := range v {
				if r.IntN(2) == 0 && v[i] >= 'A' && v[i] <= 'Z' {
					v[i] += 'a' - 'A'
				}
			}
		}
		got, want := isIBAN(v), isIBANAsFirstWritten(v)
		if got != want {
			t.Fatalf("isIBAN(%q) = %v, as first written %v", v, got, want)
		}
		if got {
			yes++
		}
	}
	if yes < 1000 {
		t.Errorf("only %d IBANs among the cases: the test no longer tests them", yes)
	}
}
