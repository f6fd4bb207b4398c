// Package detect holds the built-in value detectors (e-mail, card
// numbers, IBAN, phone, US SSN, credentials) and the scrub that replaces
// what they find in text by a placeholder naming the detector. The
// gateways scrub what they record with it, and the ledger's writer
// refuses an event that still holds a match (docs/FORMAT.md §1.4), so
// both sides of the bus apply one rule.
package detect

import (
	"bytes"
	"regexp"
	"strings"
)

var detectors = map[string]func([]byte) bool{
	"email":       isEmail,
	"credit_card": isCardNumber,
	"iban":        isIBAN,
	"phone":       isPhone,
	"us_ssn":      isSSN,
	"secret":      isSecret,
}

// DetectorNames lists the detectors, for error messages.
const DetectorNames = "email, credit_card, iban, phone, us_ssn, secret"

// Known reports whether a detector exists.
func Known(detector string) bool { return detectors[detector] != nil }

// Detect reports whether v, as a whole, is what the detector looks for,
// v read folded (see fold), or is one token of hex or base64 whose text
// holds what it looks for (encodedTokens).
// An unknown detector matches nothing.
func Detect(detector string, v []byte) bool {
	f := detectors[detector]
	if f == nil {
		return false
	}
	if f(foldBytes(v)) {
		return true
	}
	if d, ok := encodedWhole(v); ok {
		_, counts := Scrub(d)
		return counts[detector] > 0
	}
	return false
}

// emailPattern is an e-mail address: a local part and a domain with a
// top-level domain of letters. The local part takes every character
// RFC 5322 allows in an atom (letters, digits and !#$%&'*+/=?^_`{|}~-,
// and dots), and letters, digits and combining marks of any script
// (internationalised addresses, RFC 6531); the domain letters, digits
// and marks of any script (IDN, RFC 5890) or a punycode top-level domain
// (xn--p1ai). The local part may be quoted ("jane.doe"@example.com) and
// the domain an address literal (jane@[10.0.0.1], RFC 5321), an IPv4
// address without brackets (jane@192.168.1.1) or localhost; a comment
// (RFC 5322) may stand before or after the @ (jane(x)@example.com). Inside
// longer text the local part is cut where URL syntax ends (emailLocal).
const emailPattern = `(?:[\p{L}\p{N}\p{M}.!#$%&'*+/=?^_\x60{|}~-]+|"[^"\\\x00-\x1f]{1,64}")@(?:[\p{L}\p{N}\p{M}.-]+\.(?:xn--[A-Za-z0-9-]{2,}|\p{L}[\p{L}\p{M}]+)|\[(?:IPv6:)?[0-9A-Fa-f.:]{2,45}\])`

// emailPatternMore is emailPattern with the forms fewer texts hold: a
// comment before or after the @, an IPv4 address without brackets,
// localhost. Inside text it is looked for only where such a form may
// stand (emailMoreCue), as it costs more to run.
const emailPatternMore = `(?:[\p{L}\p{N}\p{M}.!#$%&'*+/=?^_\x60{|}~-]+|"[^"\\\x00-\x1f]{1,64}")(?:\([^()@\s]{0,64}\))?@(?:\([^()@\s]{0,64}\))?(?:[\p{L}\p{N}\p{M}.-]+\.(?:xn--[A-Za-z0-9-]{2,}|\p{L}[\p{L}\p{M}]+)|\[(?:IPv6:)?[0-9A-Fa-f.:]{2,45}\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|(?i:localhost)(?:\b|$))`

var emailRe = regexp.MustCompile(`^(?:` + emailPatternMore + `)$`)

// isEmail: v as a whole is an address, its local part not cut by
// emailLocal (/cb?to=jane@… is a URL holding one).
func isEmail(v []byte) bool {
	return len(v) < 255 && bytes.IndexByte(v, '@') > 0 && emailRe.Match(v) && emailLocal(v, 0, len(v)) == 0
}

// isCardNumber: 13–19 digits passing Luhn, written plainly or with
// separators (isCardSep). A number written with dots, underscores,
// slashes, colons, commas or plus signs is a card number only in groups
// of 3 to 6 digits, as cards are written (4111.1111.1111.1111,
// {4111,1111,1111,1111}): a decimal fraction, a date, a time or a list
// of small numbers is not.
func isCardNumber(v []byte) bool {
	var digits []byte
	group, grouped, odd := 0, false, false
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) && (i == 0 || isDigit(v[i-1])) {
			if _, ok := gapEnd(v, i); !ok {
				return false
			}
		}
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
			group++
			continue
		case groupSep(c):
			grouped = true
		case !isCardSep(c):
			return false
		}
		if group > 0 && (group < 3 || group > 6) {
			odd = true
		}
		group = 0
	}
	if group > 0 && (group < 3 || group > 6) {
		odd = true
	}
	if grouped && (odd || !isDigit(v[0]) || !isDigit(v[len(v)-1])) {
		return false
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	// Luhn alone takes one number in ten (a byte count, a timestamp in
	// milliseconds): a card number also starts with the prefix of a scheme
	// that issues numbers of its length, as one inside a longer run must.
	ascii := make([]byte, len(digits))
	for i, d := range digits {
		ascii[i] = d + '0'
	}
	if !issued(ascii) && !uatp(ascii) {
		return false
	}
	sum := 0
	for i := range digits {
		d := int(digits[len(digits)-1-i])
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// isIBAN: 15–34 characters (separators between them: white space,
// dashes and every other ASCII character groupSep names, at most maxGap
// in a row), country code,
// check digits, an account part with a run of 8 digits or more (as every
// country's format has), and the ISO 13616 mod-97 check. Letters are read
// in either case (de89…, as a form may lower-case it). The run keeps one
// in 97 random letters-and-digits words from passing, and MayHold
// certain.
func isIBAN(v []byte) bool {
	// Its letters and digits, upper-cased, on the stack: find tries
	// every token of every text, and building them on the heap was a
	// tenth of a statement's scrub. More than 34 is no IBAN.
	var buf [34]byte
	n := 0
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
		if n == len(buf) {
			return false
		}
		if c >= 'a' && c <= 'z' {
			c = c - 'a' + 'A'
		}
		buf[n] = c
		n++
	}
	b := buf[:n]
	if len(b) < 15 || !isUpper(b[0]) || !isUpper(b[1]) || !isDigit(b[2]) || !isDigit(b[3]) || !digitRun(b[4:], 8) {
		return false
	}
	// The length its country's IBANs have (ISO 13616): an upper-case hex
	// digest passes the check digits one time in 97 otherwise.
	if n, ok := ibanLength[string(b[:2])]; !ok || len(b) != n {
		return false
	}
	rem := 0
	for i := range b {
		c := b[(i+4)%len(b)] // the country code and check digits last
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

// isPhone: an international number, + then 8–15 digits, with
// separators between them (white space, dashes, dots, parentheses and
// every other ASCII character groupSep names but +, at most maxGap in a
// row; E.164 when written plainly).
func isPhone(v []byte) bool {
	if len(v) < 9 || len(v) > 24 || v[0] != '+' {
		return false
	}
	n, gap := 0, 0
	for _, c := range v[1:] {
		switch {
		case isDigit(c):
			n++
			gap = 0
		case c != '+' && isCardSep(c):
			if !isSpace(c) {
				if gap++; gap > maxGap {
					return false
				}
			}
		default:
			return false
		}
	}
	return n >= 8 && n <= 15
}

var ssnRe = regexp.MustCompile(`^(\d{3})-(\d{2})-(\d{4})$`)

// isSSN: a US social security number written AAA-GG-SSSS, with the
// ranges the SSA never issues excluded (area 000, 666, 9xx; group 00;
// serial 0000).
func isSSN(v []byte) bool {
	if len(v) != 11 || v[3] != '-' || v[6] != '-' {
		return false
	}
	m := ssnRe.FindSubmatch(v)
	if m == nil {
		return false
	}
	area := string(m[1])
	return area != "000" && area != "666" && area[0] != '9' && string(m[2]) != "00" && string(m[3]) != "0000"
}

// secretRes are shapes of credentials: JWTs, and API keys with a
// well-known prefix (AWS access key ids, GitHub, Slack and Stripe tokens,
// PEM private keys).
var secretRes = []*regexp.Regexp{
	regexp.MustCompile(`^eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}$`),
	regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`),
	regexp.MustCompile(`^gh[pousr]_[A-Za-z0-9]{36,}$`),
	regexp.MustCompile(`^xox[abprs]-[A-Za-z0-9-]{10,}$`),
	regexp.MustCompile(`^(sk|rk)_(live|test)_[A-Za-z0-9]{16,}$`),
	regexp.MustCompile(`^-----BEGIN [A-Z ]*PRIVATE KEY-----`),
}

func isSecret(v []byte) bool {
	if len(v) < 20 || !hasSecretPrefix(unsafeString(v)) {
		return false
	}
	for _, re := range secretRes {
		if re.Match(v) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// digitRun reports whether b holds n digits in a row.
func digitRun(b []byte, n int) bool {
	run := 0
	for _, c := range b {
		if !isDigit(c) {
			run = 0
		} else if run++; run >= n {
			return true
		}
	}
	return false
}
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// ScrubText masks sensitive values inside free text, such as a database
// error message that quotes the value it could not convert, or a
// response body. It finds values as Scrub does — with the same passes
// over the same folded text, so a card number in full-width digits or
// split by Unicode spaces is found in a response as it is in recorded
// text — and offers each, as written in text, to mask, which returns the
// replacement and true for a value to hide, or false to leave it (a
// policy that masks e-mail addresses only leaves card numbers). A value
// left may still hold a smaller one mask takes. It returns the text with
// every value mask took replaced, and how many were.
func ScrubText(text string, mask func(v []byte) ([]byte, bool)) (string, int) {
	if !MayHold(text) {
		return text, 0
	}
	v := newView(text)
	s := scrubber{b: v.b, accept: func(lo, hi int) ([]byte, bool) {
		lo, hi = v.span(text, lo, hi)
		return mask([]byte(text[lo:hi]))
	}}
	s.run()
	if len(s.found) == 0 {
		return text, 0
	}
	var sb strings.Builder
	last := 0
	for _, f := range s.found {
		lo, hi := v.span(text, f.lo, f.hi)
		sb.WriteString(text[last:lo])
		sb.Write(f.repl)
		last = hi
	}
	sb.WriteString(text[last:])
	return sb.String(), len(s.all)
}

// isCardSep reports whether c may stand between the digits of a card
// number: white space, dash, and the separators groupSep names.
func isCardSep(c byte) bool {
	switch c {
	case ' ', '-', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return groupSep(c)
}

// groupSep reports whether c is a separator a number is a card number
// with only when every group has 3 to 6 digits: every printable ASCII
// character that is neither a letter, a digit, white space, a dash nor
// @ — dot, underscore, slash, colon, comma (a list, an array's text
// {4111,1111,…}), plus sign (a path's literal +, a query's space), and
// | ; * = # ~ ! ? quotes, brackets and the rest (4111|1111|1111|1111).
// A character beyond ASCII that is punctuation or a symbol (· ・ ‧ €)
// is folded to a space (fold) before a detector reads it.
func groupSep(c byte) bool {
	return c > ' ' && c < 0x7f && c != '-' && c != '@' && !isAlnum(c)
}

// legacySep reports whether c is a separator a gap between digit
// groups may hold any number of: white space, dash, dot, underscore,
// slash, colon, comma, plus sign. A gap holding any other (| ; * = …)
// is at most maxGap characters long, so that digits apart in a text
// (a list's items, a table's cells) are not read as one number.
func legacySep(c byte) bool {
	switch c {
	case ' ', '-', '\t', '\n', '\r', '\v', '\f', '.', '_', '/', ':', ',', '+':
		return true
	}
	return false
}

// maxGap is how many separators but white space a run between two digit
// groups of one number holds at most, when it holds one that legacySep
// does not name: 4111 | 1111 and 4111|;1111 join, a list's (4001),(4002) does not.
const maxGap = 2

// gapEnd returns where the run of separators that b[i:] starts with
// ends, and whether it may join two digit groups of one number (a short
// run, or one of legacySep's only).
func gapEnd(b []byte, i int) (int, bool) {
	j, legacy, n := i, true, 0
	for j < len(b) && isCardSep(b[j]) {
		legacy = legacy && legacySep(b[j])
		if !isSpace(b[j]) {
			n++
		}
		j++
	}
	return j, legacy || n <= maxGap
}

func isSeparator(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', ',', ';', '(', ')', '[', ']', '{', '}', '<', '>', '=', '`':
		return true
	}
	return false
}

// ibanLength is the length of each country's IBAN, from the SWIFT IBAN
// registry.
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
	"FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
	"IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
	"LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
	"SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
	"UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
