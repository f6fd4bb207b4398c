package detect

// Fold is text as the detectors read it (see fold): full-width and other
// compatibility forms, Unicode spaces, dashes and full stops, decimal
// digits of any script folded to their ASCII forms; characters that
// render as nothing and combining marks dropped; a control character
// events.Clean wrote as \xHH read as a space. So that what is digested
// to find a value again (a keyed search digest) is the value the
// detectors judged, whatever form it was written in.
func Fold(text string) string {
	if isASCII(text) && !containsCleaned(text) {
		return text
	}
	return string(newView(text).b)
}

func containsCleaned(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\\' && s[i+1] == 'x' {
			return true
		}
	}
	return false
}

// NumberSeparator reports whether c, in folded text, is a separator a
// detector accepts between the digit groups of a value it finds: white
// space, dash, and every other printable ASCII character that is not a
// letter, a digit or @ (isCardSep, groupSep: dot, underscore, slash,
// colon, comma, plus sign, parentheses, | ; * = and the rest).
func NumberSeparator(c byte) bool { return isCardSep(c) }

// IBANSeparator reports whether c, in folded text, is a separator the
// IBAN detector ignores between the characters of an IBAN: the same as
// NumberSeparator.
func IBANSeparator(c byte) bool { return isCardSep(c) }
