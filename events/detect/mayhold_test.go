package detect

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// refMayHoldASCII and refHasPercent are mayHoldASCII and hasPercent as
// first written, a call of secretAt at every byte that may start a
// prefix and a loop over every byte: the faster forms must agree with
// them on every text.
func refMayHoldASCII(text string) bool {
	run, plus, dash, eight := 0, false, false, false
	grp := 0 // digits in a row before text[i]
	for i := 0; i < len(text); i++ {
		g := grp
		grp = 0
		switch holdClass[text[i]] {
		case clOther:
			if !chainLetter(text, i, g) {
				run, dash = 0, false
			}
		case clAt:
			return true
		case clDigit:
			grp = g + 1
			if run++; run >= 9 || run >= 8 && (plus || dash) {
				return true
			}
			eight = eight || run >= 8
		case clDash:
			if run > 0 {
				dash = true
			} else if secretAt(text[i:]) {
				return true
			}
		case clSep:
		case clPlus:
			plus = true
		case clParen:
		case clSecret:
			if !chainLetter(text, i, g) {
				run, dash = 0, false
			}
			if secretAt(text[i:]) {
				return true
			}
		}
	}
	return eight && ibanStart(text)
}

func refHasPercent(text string) bool {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c == '%' || c == '\\' || c == '&' || c == '=' || c == '+' {
			if _, n := escapeAt(text[i:]); n > 0 {
				return true
			}
		}
	}
	return false
}

// holdAlphabet is weighted toward the bytes the two functions look at.
const holdAlphabet = "eyJAKIASghpousrxoabk_-----BEGIN@+()0123456789 .%\\xu4fFzZ=+AE"

func checkMayHoldForms(t *testing.T, s string) {
	t.Helper()
	if got, want := mayHoldASCII(s), refMayHoldASCII(s); got != want {
		t.Fatalf("mayHoldASCII(%q) = %v, the reference says %v", s, got, want)
	}
	if got, want := hasPercent(s), refHasPercent(s); got != want {
		t.Fatalf("hasPercent(%q) = %v, the reference says %v", s, got, want)
	}
}

func TestMayHoldFormsAgree(t *testing.T) {
	for _, p := range []string{"eyJ", "AKIA", "ASIA", "ghp_", "gho_", "xoxb-", "xoxs-", "sk_", "rk_", "-----BEGIN"} {
		for cut := 0; cut <= len(p); cut++ {
			for _, s := range []string{p[:cut], "a " + p[:cut], p[:cut] + " tail", "x" + p[:cut] + "x"} {
				checkMayHoldForms(t, s)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for range 200_000 {
		sb.Reset()
		for range r.IntN(24) {
			sb.WriteByte(holdAlphabet[r.IntN(len(holdAlphabet))])
		}
		checkMayHoldForms(t, sb.String())
	}
}

func FuzzMayHoldForms(f *testing.F) {
	for _, s := range []string{"xoxb-1", "-----BEGIN", "sk_live", "eyJhbGci", "AKIA", "ghp_x", "%41", "\\u0041", "\\x41", "+1 (555) 0100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkMayHoldForms(t, s) })
}
