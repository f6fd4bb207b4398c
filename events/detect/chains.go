package detect

import (
	"bytes"
	"regexp"
	"strconv"
)

// Digit chains. A card number is read across groups of digits however
// they are separated, as a reader that drops the separators would read
// it: a chain is groups of digits of any length joined by gaps of one to
// maxChainGap characters that are neither letters nor digits (white
// space and punctuation: 4084|||7151, 4050", "3737, 4.3.0.8…, 41:68:…,
// 4,793,484,607,257,143, '),(', a UUID's dashes) or by one letter alone
// (4398x2597, a43982597b91907482). Every window of 13 to 19 consecutive
// digits of a chain whose gaps are all one (white space aside: 4050",
// "3737", "3179 is one gap throughout; a date and a time, or a list of
// IPv4 addresses, are not) — at any offset, inside one long run too —
// is a card number when it passes Luhn and its issuer prefix issues
// numbers of its length (issued; never UATP, found as a whole value
// only). Groups separated differently are read by the older rule
// (isCardNumber, cardsIn: groups of 3–6 digits with mixed separators). Inside a hexadecimal word (16 characters or more of
// digits and a–f of one case, dashes allowed, two letters at least: a
// digest, a UUID) a letter joins two groups only when both hold 4 digits
// or more, so that random hex rarely makes a chain.
//
// What this costs ordinary text is measured in TestCardFalsePositives,
// TestNumericIDFalsePositives and TestChainFalsePositives and stated in
// docs/FORMAT.md §1.4: a long numeric id (20 digits or more) almost
// always holds such a window and is partly replaced.

// maxChainGap is how many characters that are neither letters nor
// digits a gap between two groups of a chain holds at most.
const maxChainGap = 6

// chainMode is how a scrubber reads digit chains.
type chainMode uint8

const (
	chainsAll      chainMode = iota // every window (Scrub)
	chainsElements                  // windows of whole groups of 2 digits or more (an array's elements joined, InEvent)
)

// readChains claims the card numbers the digit chains of b hold.
func (s *scrubber) readChains() {
	b := s.b
	var digs [256]byte
	var pos [256]int
	var edge [257]bool  // a group starts (or the chain ends) before digs[i]
	var key [257]gapKey // the gap before the group that starts at digs[i]
	var brk [257]bool   // that gap holds a line break
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		n := 0
		j := i
		var k gapKey
		line := false
		for {
			g := j
			if n < len(digs) {
				edge[n], key[n], brk[n] = true, k, line
			}
			for j < len(b) && isDigit(b[j]) {
				if n < len(digs) {
					digs[n], pos[n] = b[j], j
					n++
					edge[n] = false
				}
				j++
			}
			if n == len(digs) {
				break // judged in pieces: a chain this long is rare
			}
			next, ok := chainGap(b, j, j-g)
			if !ok {
				break
			}
			k = keyOf(b[j:next])
			line = bytes.ContainsAny(b[j:next], "\n\r")
			j = next
		}
		edge[n] = true
		if n >= 13 {
			s.windows(digs[:n], pos[:n], edge[:n+1], key[:n+1], brk[:n+1], hexWordAround(b, i, j) || s.chains == chainsElements)
		}
		i = j
	}
}

// gapKey is a gap of a chain as windows compares them: its characters
// but white space, or "letter" for one letter, or "space" for white
// space only.
type gapKey struct {
	n int
	b [maxChainGap]byte
}

func keyOf(gap []byte) gapKey {
	var k gapKey
	if len(gap) == 1 && isLetter(gap[0]) {
		k.n, k.b[0] = 1, 'A' // any letter
		return k
	}
	for _, c := range gap {
		if !isSpace(c) {
			k.b[k.n] = c
			k.n++
		}
	}
	if k.n == 0 {
		k.n, k.b[0] = 1, ' '
	}
	return k
}

// windows claims, left to right, the longest window of 13–19 digits at
// each offset that is a card number and whose gaps are all one
// (gapKey): a number written with one separator throughout (4.3.0.8…,
// 4084|||7151|||…, 4,793,484,…), not the parts of a date and a time
// (2026-12-07 06:00:00.123456) or a list of addresses (10.0.0.1
// 10.0.0.2). In a hex word (aligned) a window spans whole groups, or
// lies inside one; so does a window across a line break (brk): numbers
// one a line (seq 1 2000, a column of counts) make a chain whose windows
// at any offset pass Luhn one time in ten, while a card number written
// over lines starts a line and ends one.
func (s *scrubber) windows(d []byte, pos []int, edge []bool, key []gapKey, brk []bool, aligned bool) {
	for a := 0; a+13 <= len(d); {
		hit := false
		if d[a] >= '2' {
			for n := min(19, len(d)-a); n >= 13; n-- {
				line := lineIn(brk, a, a+n)
				if (aligned || line) && !(edge[a] && edge[a+n]) && !oneGroup(edge, a, a+n) || !oneGap(edge, key, a, a+n) ||
					line && !lineGroups(edge, a, a+n) ||
					s.chains == chainsElements && (!edge[a] || !edge[a+n] || shortGroup(edge, a, a+n)) {
					continue
				}
				w := d[a : a+n]
				if issued(w) && luhn(w) && s.free(pos[a], pos[a+n-1]+1) {
					s.claim(pos[a], pos[a+n-1]+1, "credit_card")
					a, hit = a+n, true
					break
				}
			}
		}
		if !hit {
			a++
		}
	}
}

// oneGap reports whether the gaps inside digits [a, b) of a chain are
// all one.
func oneGap(edge []bool, key []gapKey, a, b int) bool {
	var first *gapKey
	for k := a + 1; k < b; k++ {
		if !edge[k] {
			continue
		}
		if first == nil {
			first = &key[k]
		} else if key[k] != *first {
			return false
		}
	}
	return true
}

// lineGroups reports whether digits [a, b) of a chain are in groups as
// a card number is written over lines: 4 digits or more in the first,
// 3 or more in each other (4-4-4-4, 4-6-5, 4-4-4-4-3) — not the numbers
// one a line of a count or a listing (…\n8\n9\n10\n11…, 302\n303\n…).
func lineGroups(edge []bool, a, b int) bool {
	start := a
	for k := a + 1; k <= b; k++ {
		if !edge[k] {
			continue
		}
		if min := 3; k-start < min || start == a && k-start < 4 {
			return false
		}
		start = k
	}
	return true
}

// lineIn reports whether a gap inside digits [a, b) of a chain holds a
// line break.
func lineIn(brk []bool, a, b int) bool {
	for k := a + 1; k < b; k++ {
		if brk[k] {
			return true
		}
	}
	return false
}

// shortGroup reports whether digits [a, b) of a chain hold a group of
// one digit.
func shortGroup(edge []bool, a, b int) bool {
	for k := a; k < b; k++ {
		if edge[k] && edge[k+1] {
			return true
		}
	}
	return false
}

// oneGroup reports whether digits [a, b) of a chain are of one group.
func oneGroup(edge []bool, a, b int) bool {
	for k := a + 1; k < b; k++ {
		if edge[k] {
			return false
		}
	}
	return true
}

// hexWordAround reports whether b[lo:hi] stands in a hex word: 16
// characters or more of digits, dashes and letters a–f of one case, two
// letters at least.
func hexWordAround(b []byte, lo, hi int) bool {
	hex := func(c byte) bool { return isDigit(c) || c == '-' || hexLetterOf(c) }
	for lo > 0 && hex(b[lo-1]) {
		lo--
	}
	for hi < len(b) && hex(b[hi]) {
		hi++
	}
	if hi-lo < 16 {
		return false
	}
	lower, upper := 0, 0
	for _, c := range b[lo:hi] {
		switch {
		case c >= 'a' && c <= 'f':
			lower++
		case c >= 'A' && c <= 'F':
			upper++
		}
	}
	return lower+upper >= 2 && (lower == 0 || upper == 0)
}

// chainGap returns where the next group of a chain starts when the gap
// at b[j] (after a group of prev digits) joins two groups.
func chainGap(b []byte, j, prev int) (int, bool) {
	if j >= len(b) {
		return j, false
	}
	if isLetter(b[j]) {
		if j+1 >= len(b) || !isDigit(b[j+1]) {
			return j, false
		}
		if hexLetterOf(b[j]) && inHexWord(b, j) && (prev < 4 || digitsFrom(b, j+1) < 4) {
			return j, false
		}
		return j + 1, true
	}
	k := j
	for k < len(b) && k-j < maxChainGap && b[k] != 0 && b[k] < 0x80 && !isAlnum(b[k]) {
		k++
	}
	if k > j && k < len(b) && isDigit(b[k]) {
		return k, true
	}
	return j, false
}

func hexLetterOf(c byte) bool { return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// digitsFrom counts the digits in a row at b[i:].
func digitsFrom(b []byte, i int) int {
	n := 0
	for i+n < len(b) && isDigit(b[i+n]) {
		n++
	}
	return n
}

// inHexWord reports whether b[j], a hex letter, stands in a word of 16
// or more hex digits of its case, two of them letters at least.
func inHexWord(b []byte, j int) bool {
	upper := b[j] <= 'F'
	hex := func(c byte) bool {
		if upper {
			return isDigit(c) || c == '-' || c >= 'A' && c <= 'F'
		}
		return isDigit(c) || c == '-' || c >= 'a' && c <= 'f'
	}
	lo, hi := j, j+1
	for lo > 0 && hex(b[lo-1]) {
		lo--
	}
	for hi < len(b) && hex(b[hi]) {
		hi++
	}
	if hi-lo < 16 {
		return false
	}
	letters := 0
	for _, c := range b[lo:hi] {
		if isLetter(c) {
			letters++
		}
	}
	return letters >= 2
}

// Numbers in other notations. An integer written in hexadecimal (0x…,
// or a bare token of 10–16 hex digits holding a digit and a letter a–f
// of either case: a SQL x'…' bit string's digits, printf %x's output),
// octal (0o…) or binary (0b…, or a bare token of 40–64 zeros and ones:
// a SQL B'…' bit string; in x'…' up to 16 hex digits, leading zeros
// aside in any), and a decimal number with an exponent
// (4.103571629687250e+15), is judged as the integer it denotes: its
// decimal digits, when they are 13 to 19, a card number (issued, Luhn).
// The whole token is replaced. A hex token next to a dash (a UUID's
// group) is not read this way.
func (s *scrubber) numbers() {
	b := s.b
	for i := 0; i < len(b); {
		if !isAlnum(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && (isAlnum(b[j]) || b[j] == '.' && j+1 < len(b) && isDigit(b[j+1]) || (b[j] == '+' || b[j] == '-') && j > i && (b[j-1] == 'e' || b[j-1] == 'E') && j+1 < len(b) && isDigit(b[j+1])) {
			j++
		}
		if d, ok := notationValue(b, i, j); ok && s.free(i, j) {
			if issued(d) && luhn(d) && s.claim(i, j, "credit_card") {
				s.valueOf(i, j, d)
			}
		}
		i = j
	}
}

// valueOf gives the value found over [lo, hi) its digits d: a number in
// another notation is searched for by the integer it denotes, not by
// the token as written (docs/FORMAT.md §1.5).
func (s *scrubber) valueOf(lo, hi int, d []byte) {
	for k := range s.found {
		if f := &s.found[k]; f.lo <= lo && hi <= f.hi && f.value == "" {
			f.value = string(d)
		}
	}
}

// notationValue returns the decimal digits of the integer token b[i:j]
// denotes in another notation, when it is one.
func notationValue(b []byte, i, j int) ([]byte, bool) {
	tok := b[i:j]
	if len(tok) < 10 {
		return nil, false
	}
	parse := func(t []byte, base int) ([]byte, bool) {
		v, err := strconv.ParseUint(string(t), base, 64)
		if err != nil {
			return nil, false
		}
		d := strconv.AppendUint(nil, v, 10)
		return d, len(d) >= 13 && len(d) <= 19
	}
	if tok[0] == '0' && len(tok) > 2 {
		switch tok[1] {
		case 'x', 'X':
			return parse(tok[2:], 16)
		case 'o', 'O':
			return parse(tok[2:], 8)
		case 'b', 'B':
			return parse(tok[2:], 2)
		}
	}
	if k := bytes.IndexAny(tok, "eE"); k > 0 && isDigit(tok[0]) && k+1 < len(tok) && isFloat(tok, k) {
		ds := numberDigits(tok)
		for k := len(ds) - 1; k >= 0; k-- { // the integer it denotes first
			if d := ds[k]; len(d) >= 13 && len(d) <= 19 {
				return d, true
			}
		}
		return nil, false
	}
	if bytes.IndexByte(tok, '.') >= 0 {
		return nil, false
	}
	dash := i > 0 && b[i-1] == '-' || j < len(b) && b[j] == '-'
	if len(tok) >= 40 && len(tok) <= 64 && len(bytes.Trim(tok, "01")) == 0 {
		return parse(tok, 2)
	}
	sig := bytes.TrimLeft(tok, "0")
	bitString := i >= 2 && b[i-1] == '\'' && (b[i-2] == 'x' || b[i-2] == 'X') // SQL x'…'
	if len(tok) <= 32 && len(sig) >= 10 && (len(sig) <= 14 || bitString && len(sig) <= 16) && !dash {
		digit, letter := false, false
		for _, c := range tok {
			switch {
			case isDigit(c):
				digit = true
			case hexLetterOf(c):
				letter = true
			default:
				return nil, false
			}
		}
		if digit && letter {
			return parse(sig, 16)
		}
	}
	return nil, false
}

// isFloat reports whether tok, its e or E at k, is digits, an optional
// fraction, the exponent's letter, an optional sign and one or two
// digits.
func isFloat(tok []byte, k int) bool {
	point := false
	for i, c := range tok[:k] {
		switch {
		case isDigit(c):
		case c == '.' && !point && i > 0 && i+1 < k:
			point = true
		default:
			return false
		}
	}
	e := tok[k+1:]
	if len(e) > 0 && (e[0] == '+' || e[0] == '-') {
		e = e[1:]
	}
	return len(e) >= 1 && len(e) <= 2 && isDigit(e[0]) && isDigit(e[len(e)-1])
}

// Other detectors' forms, looked for wherever they stand.
var (
	// ssnSpaced is an SSN written AAA GG SSSS or AAA.GG.SSSS (the
	// separator checked the same in code).
	ssnSpaced = regexp.MustCompile(`(?:^|[^0-9.])([0-9]{3})([ .])([0-9]{2})([ .])([0-9]{4})(?:[^0-9.]|$)`)
	// ssnKeyed is nine digits (or 3-2-4 with any of space, dot and dash)
	// after a word that names an SSN.
	ssnKeyed = regexp.MustCompile(`(?i)(?:\bssn|\bsocial[ _-]?security(?:[ _-]?(?:number|num|no))?)[^0-9A-Za-z]{0,4}(?:(?:number|num|no|is)[^0-9A-Za-z]{0,4})?([0-9]{3}[ .-]?[0-9]{2}[ .-]?[0-9]{4})(?:[^0-9]|$)`)
	// nanpRe is a North American number: (NPA) NXX-XXXX, NPA-NXX-XXXX,
	// NPA.NXX.XXXX, with an optional +1 or 1 before.
	nanpRe = regexp.MustCompile(`(?:^|[^0-9A-Za-z+])((?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\) ?[2-9][0-9]{2}-|[2-9][0-9]{2}-[2-9][0-9]{2}-|[2-9][0-9]{2}\.[2-9][0-9]{2}\.)[0-9]{4})(?:[^0-9]|$)`)
)

// others claims SSNs written with spaces or dots, SSNs as nine digits
// after a keyword, and North American phone numbers.
func (s *scrubber) others() {
	b := s.b
	ssn, nanp := shapes(b)
	if !ssn && !nanp {
		if keyword(b) {
			s.keyedSSNs()
		}
		return
	}
	if ssn {
		s.spacedSSNs()
	}
	if keyword(b) {
		s.keyedSSNs()
	}
	if nanp {
		s.nanps()
	}
}

// shapes reports whether b holds what a spaced SSN (3 digits, a space or
// a dot, 2 digits) or a North American number (3 digits, - . or ),
// maybe a space, 3 digits) starts with: a cheap test before the
// regular expressions.
func shapes(b []byte) (ssn, nanp bool) {
	for i := 0; i+6 < len(b); i++ {
		if !isDigit(b[i]) || !isDigit(b[i+1]) || !isDigit(b[i+2]) {
			continue
		}
		c := b[i+3]
		if (c == ' ' || c == '.') && isDigit(b[i+4]) && isDigit(b[i+5]) && !isDigit(b[i+6]) {
			ssn = true
		}
		j := i + 4
		if c == ')' && j < len(b) && b[j] == ' ' {
			j++
		}
		if (c == '-' || c == '.' || c == ')') && j+2 < len(b) && isDigit(b[j]) && isDigit(b[j+1]) && isDigit(b[j+2]) {
			nanp = true
		}
	}
	return ssn, nanp
}

// keyword reports whether b holds ssn or social, in any case, where
// ssnKeyed can match them (keyedSSNs runs it only then).
func keyword(b []byte) bool {
	for i := 0; i+3 <= len(b); i++ {
		c := b[i] | 0x20
		if c == 's' && (b[i+1]|0x20 == 's' && b[i+2]|0x20 == 'n' || i+6 <= len(b) && b[i+1]|0x20 == 'o' && b[i+2]|0x20 == 'c' && b[i+3]|0x20 == 'i' && b[i+4]|0x20 == 'a' && b[i+5]|0x20 == 'l') {
			// ssnKeyed's \b: no ASCII word character before it. Inside
			// a word (base64 text holds "ssn" about once in 30,000
			// characters) the expression cannot match there.
			if i == 0 || !isWordChar(b[i-1]) {
				return true
			}
		}
	}
	return false
}

// isWordChar reports whether c is an ASCII word character, \w to Go's
// regular expressions.
func isWordChar(c byte) bool { return isAlnum(c) || c == '_' }

func (s *scrubber) spacedSSNs() {
	b := s.b
	for _, m := range ssnSpaced.FindAllSubmatchIndex(b, -1) {
		if b[m[4]] == b[m[8]] && ssnValid(b[m[2]:m[3]], b[m[6]:m[7]], b[m[10]:m[11]]) && s.free(m[2], m[11]) {
			s.claim(m[2], m[11], "us_ssn")
		}
	}
}

func (s *scrubber) keyedSSNs() {
	b := s.b
	for _, m := range ssnKeyed.FindAllSubmatchIndex(b, -1) {
		var d []byte
		for _, c := range b[m[2]:m[3]] {
			if isDigit(c) {
				d = append(d, c)
			}
		}
		if len(d) == 9 && ssnValid(d[:3], d[3:5], d[5:]) && s.free(m[2], m[3]) {
			s.claim(m[2], m[3], "us_ssn")
		}
	}
}

func (s *scrubber) nanps() {
	b := s.b
	for _, m := range nanpRe.FindAllSubmatchIndex(b, -1) {
		if s.free(m[2], m[3]) {
			s.claim(m[2], m[3], "phone")
		}
	}
}

// ssnValid: area, group and serial in the ranges the SSA issues.
func ssnValid(area, group, serial []byte) bool {
	a := string(area)
	return a != "000" && a != "666" && a[0] != '9' && string(group) != "00" && string(serial) != "0000"
}
